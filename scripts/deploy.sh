#!/usr/bin/env bash
# Blue-green deploy of a built release to every host of an environment (ansible/deploy.yml):
#   scripts/deploy.sh ENV [ansible-playbook options...]
# ENV is staging, production or local. The release comes from $RELEASE_DIR (default: dist/,
# made by scripts/build-release). Exits non-zero when any host failed; that host was
# reverted to its previous slot and the output says which host runs which version.
# See docs/runbooks/deploy.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,7p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
env=$1
shift
release_dir=$(realpath -m "${RELEASE_DIR:-$root/dist}")
cd "$root/ansible"
exec ansible-playbook deploy.yml -e "env=$env" -e "openclaw_voice_release_dir=$release_dir" "$@"
