#!/usr/bin/env bash
# Flip every host of an environment back to its warm standby slot (ansible/rollback.yml):
#   scripts/rollback.sh ENV [VERSION] [ansible-playbook options...]
# With VERSION, only hosts whose active slot runs VERSION are flipped (after a deploy of
# VERSION failed part-way, the hosts it reached go back; the others are left alone).
# Refuses, changing nothing, when a host to flip has no healthy standby holding a release.
# See docs/runbooks/rollback.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,7p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
env=$1
shift
only=()
if [[ $# -gt 0 && "$1" != -* ]]; then
    only=(-e "rollback_only_version=$1")
    shift
fi
cd "$root/ansible"
exec ansible-playbook rollback.yml -e "env=$env" "${only[@]}" "$@"
