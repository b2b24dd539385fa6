#!/usr/bin/env bash
# Run molecule against the lab image of one Debian release: lab/molecule.sh RELEASE [MOLECULE ARGS...]
# Without arguments after RELEASE it runs `molecule test` of the scenarios stack and cluster (CELERYOPS_SCENARIOS),
# each with an ephemeral directory of its own per release, so another release's run can go on beside it
# (lab/molecule-releases.sh). Builds the image first when it is missing. The hosts are containers named
# celeryops-molecule-RELEASE-SCENARIO-<host> (molecule/lab/create.yml).
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
# The shared base config by its path: molecule finds it on its own only through the git work tree, and without it
# every scenario would "pass" with nothing created, converged or verified.
base="$here/../.config/molecule/config.yml"
if [ $# -eq 0 ]; then
  # make test's scenarios: the whole stack on one broker, then on a cluster of three (where the supervisor role
  # also runs alone). The harness scenario `default` (the hosts boot systemd and reach the package registries) is
  # left to `molecule test`: the other scenarios prove the same on every converge, and CI time is short.
  # CELERYOPS_SCENARIOS names others.
  for scenario in ${CELERYOPS_SCENARIOS:-stack cluster}; do
    MOLECULE_EPHEMERAL_DIRECTORY="$HOME/.cache/molecule/celeryops/$release-$scenario" \
      molecule --base-config "$base" test -s "$scenario"
  done
  exit 0
fi
exec molecule --base-config "$base" "$@"
