#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection laid out as ansible_collections/celeryops/stack,
# outside this git checkout (ansible-test reads the tree from where it sits). Tests' Python: 3.11.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

# ansible-test runs in a virtualenv of its own, so its pinned sanity requirements stay out of .venv.
venv="$top/.cache/sanity-venv"
core=$("$top/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))')
if [ ! -x "$venv/bin/ansible-test" ] || [ "$("$venv/bin/ansible-test" --version | awk '{print $NF}')" != "$core" ]; then
  say "creating $venv with ansible-core $core"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ansible-core==$core"
fi

# ansible-test's shellcheck test needs the tool (it is skipped, with a warning, without it).
if [ "$(id -u)" -eq 0 ]; then
  need_packages shellcheck shellcheck
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/celeryops-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/celeryops/stack"
mkdir -p "$dest"
# Tracked and new (not ignored) files: what the collection ships, without caches and generated links.
(cd "$top" && git ls-files --cached --others --exclude-standard -z) |
  (cd "$top" && xargs -0 -r cp --parents -P -t "$dest" 2>/dev/null) || true
cd "$dest"
git init -q . && git add -A >/dev/null
say "ansible-test sanity in $dest"
# ansible-test passes HOME through and keeps its caches and virtualenvs there: give it a home of its own
# with the offline pip bootstrap in its cache.
home="$top/.cache/sanity-home"
# The pip version ansible-test bootstraps names the cached script it looks for.
pip_version=$(grep -ho "pip='[0-9.]*'" "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py |
  head -n 1 | tr -dc '0-9.')
[ -n "$pip_version" ] || die "cannot tell which pip ansible-test bootstraps"
mkdir -p "$home/.ansible/test/cache"
# ansible-test hands pip a clean environment: carry over the CA bundle pip uses here (PIP_CERT), if any.
mkdir -p "$home/.config/pip"
printf '[global]\ncert = %s\n' "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" >"$home/.config/pip/pip.conf"
cp "$here/sanity/get_pip.py" "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
HOME="$home" "$venv/bin/ansible-test" sanity --requirements --python "${SANITY_PYTHON:-3.11}" --color no "$@"
