#!/usr/bin/env bash
# Build the lab's systemd base image for one Debian release, locally: debootstrap, then docker import.
# Usage: lab/build-image.sh RELEASE [--force]
# The host's extra CA certificates (/usr/local/share/ca-certificates/*.crt) are copied into the image and
# trusted there, so apt and pip inside the lab work behind the same TLS-inspecting proxy as the host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

release="${1:-}"
[ -n "$release" ] || die "usage: $0 RELEASE [--force] (RELEASE is one of: $LAB_RELEASES)"
check_release "$release"
force="${2:-}"

image=$(lab_image "$release")
ensure_docker
if [ -z "$force" ] && docker image inspect "$image" >/dev/null 2>&1; then
  say "image $image is present"
  exit 0
fi
[ -z "${LAB_IMAGE:-}" ] || die "LAB_IMAGE=$LAB_IMAGE is not present locally; build or load it first"
[ "$(id -u)" -eq 0 ] || die "building the lab image needs root (debootstrap); run as root or set LAB_IMAGE"
need_packages debootstrap debootstrap

rootfs=$(mktemp -d /var/tmp/celeryops-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
say "debootstrap $release into $rootfs"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,gnupg \
  "$release" "$rootfs" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; die "debootstrap of $release failed"; }
rm -f "$rootfs.log"

say "trusting the host's extra CA certificates inside the image"
extra_cas=(/usr/local/share/ca-certificates/*.crt)
if [ -e "${extra_cas[0]}" ]; then
  cp "${extra_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
fi
chroot "$rootfs" update-ca-certificates >/dev/null
mkdir -p "$rootfs/etc"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"

say "preparing systemd for a container"
# Units that make no sense in a container, or that would wait for hardware.
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
  systemd-firstboot.service systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
chroot "$rootfs" apt-get clean
# The package lists stay: apt works at once, and a lists directory emptied "just now" would look fresh.
rm -rf "$rootfs"/tmp/* "$rootfs"/var/tmp/*

say "importing $image"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/sbin/init"]' \
  - "$image" >/dev/null
say "built $image"
