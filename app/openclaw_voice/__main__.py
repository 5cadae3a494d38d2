"""``python -m openclaw_voice`` runs the CLI."""

import sys

from openclaw_voice.cli import main

sys.exit(main())
