# shellcheck shell=bash
# Shared helpers for the lab scripts: messages, release checks, and a Docker engine that is running.

LAB_RELEASES="bookworm trixie"
LAB_PREFIX="${LAB_PREFIX:-celeryops}"
LAB_NETWORK="${LAB_NETWORK:-$LAB_PREFIX-lab}"
# The hosts (container name suffixes, host names and network aliases); molecule scenarios set their own.
export LAB_HOSTS="${LAB_HOSTS:-broker app1 app2 monitor}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# check_release RELEASE: fail with the allowed values unless RELEASE is one the lab builds.
check_release() {
  local rel="$1" known
  for known in $LAB_RELEASES; do
    [ "$rel" = "$known" ] && return 0
  done
  die "unknown Debian release '$rel' (LAB_RELEASE): allowed values are: $LAB_RELEASES"
}

# lab_image RELEASE: the image name the lab uses for RELEASE (LAB_IMAGE overrides it).
lab_image() {
  if [ -n "${LAB_IMAGE:-}" ]; then
    printf '%s\n' "$LAB_IMAGE"
  else
    printf 'celeryops-lab:%s\n' "$1"
  fi
}

# need_root_or_hint PACKAGE...: install Debian packages when root, otherwise say what to install.
need_packages() {
  local missing=() cmd pkg
  while [ $# -gt 0 ]; do
    cmd="$1" pkg="$2"; shift 2
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}"
  fi
  say "installing ${missing[*]} with apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_docker: a Docker engine answers on the default socket, starting dockerd if needed.
ensure_docker() {
  need_packages dockerd docker.io
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "no Docker engine is running and only root can start one here: start dockerd (or run as root)"
  fi
  say "starting dockerd (log: /var/log/celeryops-dockerd.log)"
  local dockerd_bin
  dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)
  nohup "$dockerd_bin" >/var/log/celeryops-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "dockerd did not answer within 60 s; see /var/log/celeryops-dockerd.log"
}

# ensure_browser: Debian's chromium on the controller, for the stack's browser test (molecule/stack/tests/
# test_browser.py drives it with Playwright, which downloads no browser of its own).
ensure_browser() {
  need_packages chromium chromium
}

# Kernel-command-line style arguments for systemd as PID 1: on a cgroup v1 host, systemd 256 and newer
# (Debian 13) refuse to boot unless legacy hierarchies are forced; in a container these are read from
# PID 1's own arguments.
LAB_INIT_ARGS="${LAB_INIT_ARGS-systemd.unified_cgroup_hierarchy=0 SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1}"

# wait_systemd CONTAINER: wait until systemd in CONTAINER has finished booting.
wait_systemd() {
  local name="$1" state
  for _ in $(seq 1 90); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in
      running|degraded) return 0 ;;
    esac
    sleep 1
  done
  docker logs --tail 30 "$name" >&2 || true
  die "systemd in $name did not finish booting within 90 s (state: ${state:-unknown})"
}
