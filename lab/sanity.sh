#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection laid out as ansible_collections/celeryops/stack,
# outside this git checkout (ansible-test reads the tree from where it sits). Tests' Python: 3.11.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/celeryops-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/celeryops/stack"
mkdir -p "$dest"
# Tracked and new (not ignored) files: what the collection ships, without caches and generated links.
(cd "$top" && git ls-files --cached --others --exclude-standard -z) |
  (cd "$top" && xargs -0 cp --parents -P -t "$dest" 2>/dev/null || true)
cd "$dest"
git init -q . && git add -A >/dev/null
say "ansible-test sanity in $dest"
ansible-test sanity --venv --python "${SANITY_PYTHON:-3.11}" --color no "$@"
