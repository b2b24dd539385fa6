#!/usr/bin/env bash
# Start the lab's four systemd hosts (broker, app1, app2, monitor) on their own Docker network.
# Usage: lab/up.sh RELEASE. Re-running with the same release keeps the running hosts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

release="${1:-bookworm}"
check_release "$release"
ensure_docker
image=$(lab_image "$release")
docker image inspect "$image" >/dev/null 2>&1 || die "image $image is missing: run lab/build-image.sh $release"

running=$(docker ps -a --filter "label=celeryops.lab=$LAB_PREFIX" --format '{{.Label "celeryops.release"}}' | sort -u)
if [ -n "$running" ] && [ "$running" != "$release" ]; then
  die "a lab with Debian '$running' is already running; remove it first with 'make lab-destroy'"
fi

docker network inspect "$LAB_NETWORK" >/dev/null 2>&1 || docker network create "$LAB_NETWORK" >/dev/null

# Published ports stay on loopback: the management UI of the broker (HTTPS) and Flower on app1 (HTTPS).
# LAB_PUBLISH=0 publishes nothing (a second lab beside the first, with its own LAB_PREFIX and LAB_NETWORK).
declare -A ports=([broker]="-p 127.0.0.1:15671:15671" [app1]="-p 127.0.0.1:5555:5555" [app2]="" [monitor]="")
if [ "${LAB_PUBLISH:-1}" = 0 ]; then
  ports=([broker]="" [app1]="" [app2]="" [monitor]="")
fi
for host in $LAB_HOSTS; do
  name="$LAB_PREFIX-$host"
  state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || true)
  case "$state" in
    running) say "$name is running"; continue ;;
    "") ;;
    *) say "$name is $state: starting it"; docker start "$name" >/dev/null; continue ;;
  esac
  say "starting $name (Debian $release)"
  # shellcheck disable=SC2086
  docker run -d --name "$name" --hostname "$host" \
    --network "$LAB_NETWORK" --network-alias "$host" \
    --label "celeryops.lab=$LAB_PREFIX" --label "celeryops.release=$release" \
    --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    ${ports[$host]:-} "$image" /sbin/init $LAB_INIT_ARGS >/dev/null
done

for host in $LAB_HOSTS; do
  wait_systemd "$LAB_PREFIX-$host"
done
say "lab is up: $LAB_HOSTS (Debian $release)"
