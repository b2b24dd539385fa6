#!/usr/bin/env bash
# Restart benchmark (issue 4): fresh lab containers, a full converge, then bench/restart_bench.py restarts one
# worker under load three ways side by side (celeryops.stack.celery_worker, plain `supervisorctl restart`
# with supervisor's defaults, community.general.supervisorctl) and writes docs/bench-restart.md.
# Exits 1 when the module misses its goal (0 lost, wall/limit <= 1.2).
#
# Usage: bench/restart_bench.sh [PREFIX] [RELEASE] [OUTPUT]     (defaults: bch bookworm docs/bench-restart.md)
# The containers are PREFIX-broker, PREFIX-app1 and PREFIX-app2: any lab with that prefix is removed first,
# and at the end. BENCH_REUSE=1 uses a running, converged lab with that prefix instead and leaves it running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

prefix="${1:-bch}"
release="${2:-bookworm}"
output="${3:-$BENCH_REPO/docs/bench-restart.md}"
reuse="${BENCH_REUSE:-0}"
[ "$prefix" != celeryops ] || bench_die "prefix 'celeryops' is the lab's own: choose another one"

work=$(mktemp -d "${TMPDIR:-/tmp}/celeryops-restart-bench.XXXXXX")
cleanup() {
  [ "$reuse" = 1 ] || bench_lab_down "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cd "$BENCH_REPO"
bench_inventory "$prefix" "$work/inventory"
if [ "$reuse" != 1 ]; then
  bench_say "fresh containers ($prefix, Debian $release) and a full converge (log: $work/converge.log)"
  bench_lab_down "$prefix" >/dev/null
  bench_lab_up "$prefix" "$release"
  if ! ansible-playbook -i "$work/inventory" playbooks/site.yml >"$work/converge.log" 2>&1; then
    tail -n 40 "$work/converge.log" >&2
    bench_die "the converge failed"
  fi
fi
bench_say "restarting a worker under load, three ways"
python3 "$here/restart_bench.py" -i "$work/inventory" --prefix "$prefix" --output "$output" --workdir "$work" \
  --json "${BENCH_JSON:-/dev/null}"
