#!/usr/bin/env bash
# Run lab/molecule.sh for several Debian releases side by side: lab/molecule-releases.sh RELEASE...
# Each release has its own containers, network, molecule state and credentials, so the runs do not meet. The images
# and the browser are made first, one at a time. Each run's output goes to build/molecule/RELEASE.log and is printed
# whole once every run has ended, then a line per release; the exit status is 1 when one failed. The failed tests
# and steps are repeated last, so the end of the output says what failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

[ $# -gt 0 ] || die "usage: $0 RELEASE... (each one of: $LAB_RELEASES)"
for release in "$@"; do
  check_release "$release"
done
ensure_docker
for release in "$@"; do
  "$here/build-image.sh" "$release"
done
ensure_browser

# Wide lines: molecule boxes its commands' output at the terminal's width, and a wrapped test name would hide from the
# summary of failures below.
export COLUMNS="${COLUMNS:-250}"
logs="$here/../build/molecule"
mkdir -p "$logs"
declare -A pids
for release in "$@"; do
  say "molecule $release: started, output in build/molecule/$release.log"
  "$here/timed.sh" "molecule $release" "$here/molecule.sh" "$release" >"$logs/$release.log" 2>&1 &
  pids[$release]=$!
done

failed=()
for release in "$@"; do
  wait "${pids[$release]}" || failed+=("$release")
done
for release in "$@"; do
  printf '\n===== build/molecule/%s.log =====\n' "$release"
  cat "$logs/$release.log"
done
printf '\n'
for release in "$@"; do
  tail -n 1 "$logs/$release.log"
done
[ ${#failed[@]} -eq 0 ] && exit 0
for release in "${failed[@]}"; do
  printf '\nmolecule %s failed at:\n' "$release"
  sed 's/\x1b\[[0-9;]*m//g' "$logs/$release.log" | grep -E '(FAILED|ERROR) [^ ]+::|::[^ ]+ (FAILED|ERROR)|Executed: Failed|fatal: \[' | sort -u | head -n 40
done
exit 1
