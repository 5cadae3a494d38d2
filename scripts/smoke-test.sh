#!/usr/bin/env bash
# Smoke test every host of an environment (ansible/smoke.yml): /health, /ready, /metrics
# (parsed) and /status (version) through HAProxy and on each running slot.
#   scripts/smoke-test.sh ENV [ansible-playbook options...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,4p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
env=$1
shift
cd "$root/ansible"
exec ansible-playbook smoke.yml -e "env=$env" "$@"
