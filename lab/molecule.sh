#!/usr/bin/env bash
# Run molecule against the lab image of one Debian release: lab/molecule.sh RELEASE [MOLECULE ARGS...]
# Without arguments after RELEASE it runs `molecule test --all`. Builds the image first when it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

release="${1:-}"
[ -n "$release" ] || die "usage: $0 RELEASE [molecule args] (RELEASE is one of: $LAB_RELEASES)"
check_release "$release"
shift
"$here/build-image.sh" "$release"
# The stack scenario's verify drives Debian's chromium (molecule/stack/tests/test_browser.py).
ensure_browser
export LAB_RELEASE="$release"
CELERYOPS_LAB_IMAGE=$(lab_image "$release")
export CELERYOPS_LAB_IMAGE
if [ $# -eq 0 ]; then
  set -- test --all
fi
# The shared base config by its path: molecule finds it on its own only through the git work tree, and without it
# every scenario would "pass" with nothing created, converged or verified.
exec molecule --base-config "$here/../.config/molecule/config.yml" "$@"
