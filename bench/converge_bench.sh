#!/usr/bin/env bash
# Converge benchmark (issue 5), in one run on one machine:
#   1. three fresh lab containers, a full playbooks/site.yml converge, timed;
#   2. a second converge of the same containers, timed (its recap must say changed=0);
#   3. three other fresh containers given the same apt and pinned pip installs by a plain script through
#      docker exec, the hosts in parallel: the floor.
# Writes docs/bench-converge.md with the ratios first/floor (goal <= 2, information since issue 13) and
# second/first (goal <= 0.2) and exits 1 when a goal is missed.
#
# Usage: bench/converge_bench.sh [PREFIX] [RELEASE] [OUTPUT]     (defaults: bch bookworm docs/bench-converge.md)
# BENCH_SITE_ARGS: further arguments of both converges, e.g. "-e celeryops_serial=100%" (all app hosts at once).
# The containers are PREFIX-broker, PREFIX-app1 and PREFIX-app2: any lab with that prefix is removed first,
# and at the end. Nothing is published on the controller.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

prefix="${1:-bch}"
release="${2:-bookworm}"
output="${3:-$BENCH_REPO/docs/bench-converge.md}"
[ "$prefix" != celeryops ] || bench_die "prefix 'celeryops' is the lab's own: choose another one"

work=$(mktemp -d "${TMPDIR:-/tmp}/celeryops-converge-bench.XXXXXX")
cleanup() {
  bench_lab_down "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cd "$BENCH_REPO"
bench_inventory "$prefix" "$work/inventory"
# Each host's own task times (profile_tasks cannot tell them apart under strategy free).
export ANSIBLE_CALLBACK_PLUGINS="$here/callback_plugins"
export ANSIBLE_CALLBACKS_ENABLED=host_timeline

HOSTS=(broker app1 app2)

# hosts_cpu FILE: each container's CPU-seconds so far, one "HOST SECONDS" line per host, into FILE.
hosts_cpu() {
  local host
  for host in "${HOSTS[@]}"; do
    printf '%s %s\n' "$host" "$(bench_container_cpu "$prefix-$host")"
  done >"$1"
}

# cpu_parts RUN: --cpu-part arguments for the report from $work/RUN.hosts0, RUN.hosts1 (containers before and
# after) and RUN.controller (the controller's processes).
cpu_parts() {
  local run="$1"
  printf -- '--cpu-part\n%s:controller=%s\n' "$run" "$(cat "$work/$run.controller")"
  paste -d' ' "$work/$run.hosts0" "$work/$run.hosts1" |
    awk -v run="$run" '$2 != "" && $4 != "" { printf "--cpu-part\n%s:%s=%.2f\n", run, $1, $4 - $2 }'
}

# measured NAME COMMAND...: run COMMAND (its output in $work/NAME.log) and record what it cost: its wall seconds
# in NAME.seconds (it started at the epoch seconds in NAME.start), the machine's busy CPU-seconds in NAME.cpu,
# the controller's (COMMAND and its children) in NAME.controller, and each container's before and after in
# NAME.hosts0 and NAME.hosts1. Returns 1, after the log's tail, when COMMAND fails.
measured() {
  local name="$1" busy start end
  shift
  hosts_cpu "$work/$name.hosts0"
  busy=$(bench_busy)
  start=$(bench_now)
  # In a subshell, so that its `times` counts COMMAND's processes only.
  if ! (
    "$@" >"$work/$name.log" 2>&1 || exit
    bench_children_cpu >"$work/$name.controller"
  ); then
    tail -n 40 "$work/$name.log" >&2
    return 1
  fi
  end=$(bench_now)
  hosts_cpu "$work/$name.hosts1"
  bench_elapsed "$busy" "$(bench_busy)" >"$work/$name.cpu"
  echo "$start" >"$work/$name.start"
  bench_elapsed "$start" "$end" >"$work/$name.seconds"
}

# BENCH_SITE_ARGS split into words (no globbing), for both converges.
read -r -a site_args <<<"${BENCH_SITE_ARGS:-}"

# converge NAME: run site.yml against the bench inventory, measured as NAME; the wall seconds on stdout.
converge() {
  local name="$1"
  bench_say "$name converge (log: $work/$name.log)"
  measured "$name" env HOST_TIMELINE_FILE="$work/$name.timeline" \
    ansible-playbook -i "$work/inventory" playbooks/site.yml "${site_args[@]}" || bench_die "the $name converge failed"
  cat "$work/$name.seconds"
}

# floor_scripts: the floor's plain scripts, the hosts in parallel through docker exec; fails if one failed.
floor_scripts() {
  local host pid status=0 pids=()
  for host in "${HOSTS[@]}"; do
    docker exec -i "$prefix-$host" bash -s <"$work/floor-$host.sh" >"$work/floor-$host.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
  done
  return "$status"
}

# The price of one remote task, measured on app1 as "loop": bench/task_cost.yml runs TASK_LOOP stat tasks.
TASK_LOOP=30

bench_say "fresh containers for the converges ($prefix, Debian $release)"
bench_lab_down "$prefix" >/dev/null
bench_lab_up "$prefix" "$release"
first=$(converge first)
second=$(converge second)
bench_say "$TASK_LOOP remote tasks in a loop on app1 (the cost of one task)"
measured loop ansible-playbook -i "$work/inventory" "$here/task_cost.yml" -e "bench_task_count=$TASK_LOOP" ||
  bench_die "the task loop failed"
debian=$(bench_debian "$prefix-app1")
bench_say "first converge ${first} s, second ${second} s"

bench_say "fresh containers for the floor"
bench_lab_down "$prefix" >/dev/null
bench_lab_up "$prefix" "$release"
for host in "${HOSTS[@]}"; do
  python3 "$here/converge_helper.py" floor "$host" >"$work/floor-$host.sh"
done
if ! measured floor floor_scripts; then
  tail -n 20 "$work"/floor-*.log >&2
  bench_die "the floor script failed"
fi
floor=$(cat "$work/floor.seconds")
start=$(cat "$work/floor.start")
bench_say "floor ${floor} s"

mapfile -t cpu_args < <(cpu_parts first && cpu_parts floor && cpu_parts loop)
python3 "$here/converge_helper.py" report \
  --first-seconds "$first" --second-seconds "$second" --floor-seconds "$floor" \
  --first-log "$work/first.log" --second-log "$work/second.log" --first-timeline "$work/first.timeline" \
  --floor-start "$start" --floor-log broker="$work/floor-broker.log" --floor-log app1="$work/floor-app1.log" \
  --floor-log app2="$work/floor-app2.log" \
  --cpu-seconds "first=$(cat "$work/first.cpu")" --cpu-seconds "second=$(cat "$work/second.cpu")" \
  --cpu-seconds "floor=$(cat "$work/floor.cpu")" --cpu-seconds "loop=$(cat "$work/loop.cpu")" \
  "${cpu_args[@]}" --task-loop "$TASK_LOOP" --site-args "${BENCH_SITE_ARGS:-}" \
  --debian "$debian" --ansible "$(ansible --version | head -n 1)" \
  --machine "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
  --date "$(date -u +%Y-%m-%d)" --output "$output" --json "${BENCH_JSON:-/dev/null}"
