#!/usr/bin/env bash
# Remove the lab's containers and network. Credentials on the controller stay.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
if ! docker info >/dev/null 2>&1; then
  say "no Docker engine is running: nothing to remove"
  exit 0
fi
docker ps -aq --filter "label=celeryops.lab=$LAB_PREFIX" | xargs -r docker rm -f >/dev/null
docker network rm "$LAB_NETWORK" >/dev/null 2>&1 || true
say "lab removed"
