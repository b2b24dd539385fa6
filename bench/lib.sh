# shellcheck shell=bash
# Shared helpers of the benchmark scripts: a throwaway lab with its own prefix, and an inventory for it.
# Source after setting BENCH_PREFIX and BENCH_RELEASE; needs lab/lib.sh's names (LAB_PREFIX, say, die).

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$BENCH_REPO/ansible.cfg}"
if [ -x "$BENCH_REPO/.venv/bin/ansible-playbook" ]; then
  PATH="$BENCH_REPO/.venv/bin:$PATH"
fi

bench_say() { printf '==> [bench] %s\n' "$*" >&2; }
bench_die() { printf 'bench error: %s\n' "$*" >&2; exit 1; }

# bench_inventory PREFIX DIR: write DIR/hosts.yml for the containers PREFIX-broker, PREFIX-app1, PREFIX-app2:
# the lab's own inventory (inventories/lab/hosts.yml, the one definition of the lab's hosts and groups) with the
# containers' prefix, and its group_vars and host_vars (symlinks). Generated secrets go to DIR/credentials, so the
# bench never touches the lab's own credentials.
bench_inventory() {
  local prefix="$1" dir="$2"
  mkdir -p "$dir"
  ln -sfn "$BENCH_REPO/inventories/lab/group_vars" "$dir/group_vars"
  ln -sfn "$BENCH_REPO/inventories/lab/host_vars" "$dir/host_vars"
  sed "s/^\( *ansible_host: \)celeryops-/\1$prefix-/" "$BENCH_REPO/inventories/lab/hosts.yml" >"$dir/hosts.yml"
  grep -q "ansible_host: $prefix-broker\$" "$dir/hosts.yml" || bench_die "no broker host in $dir/hosts.yml"
}

# bench_lab_up PREFIX RELEASE / bench_lab_down PREFIX: the lab scripts with this prefix, nothing published.
bench_lab_up() {
  LAB_PREFIX="$1" LAB_PUBLISH=0 "$BENCH_REPO/lab/up.sh" "$2"
}
bench_lab_down() {
  LAB_PREFIX="$1" "$BENCH_REPO/lab/down.sh"
}

# bench_now: seconds since the epoch with fractions.
bench_now() { date +%s.%N; }

# bench_busy: CPU-seconds the whole machine has spent busy since boot (all CPUs; /proc/stat minus idle and
# iowait). The difference of two readings is what a run cost the machine, the containers included.
bench_busy() {
  awk '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit }' /proc/stat
}

# bench_container_cpu CONTAINER: CPU-seconds the container's processes have used since it started (its cgroup:
# cpuacct.usage in nanoseconds on cgroup v1, usage_usec in cpu.stat on v2); empty when neither is found.
bench_container_cpu() {
  local id file
  id=$(docker inspect --format '{{.Id}}' "$1")
  for file in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" "/sys/fs/cgroup/cpu,cpuacct/docker/$id/cpuacct.usage"; do
    if [ -r "$file" ]; then
      awk '{ printf "%.2f\n", $1 / 1e9 }' "$file"
      return 0
    fi
  done
  for file in "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat" "/sys/fs/cgroup/docker/$id/cpu.stat"; do
    if [ -r "$file" ]; then
      awk '$1 == "usage_usec" { printf "%.2f\n", $2 / 1e6 }' "$file"
      return 0
    fi
  done
}

# bench_children_cpu: the CPU-seconds (user + system) of the calling shell's finished children, from `times`.
# Call it at the end of a subshell that ran the command: its children are that command and their own children.
# (`times` runs in this shell, not in a pipeline's subshell, which would have no children.)
bench_children_cpu() {
  local file
  file=$(mktemp)
  times >"$file"
  awk 'NR == 2 {
    total = 0
    for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); total += t[1] * 60 + t[2] }
    printf "%.2f\n", total
  }' "$file"
  rm -f "$file"
}

# bench_elapsed START END: END - START in seconds, one decimal.
bench_elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f\n", e - s }'; }

# bench_debian CONTAINER: the Debian release of a host, e.g. "12.13 (bookworm)".
bench_debian() {
  docker exec "$1" sh -c '. /etc/os-release; printf "%s (%s)\n" "$(cat /etc/debian_version)" "$VERSION_CODENAME"'
}
