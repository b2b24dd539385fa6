#!/usr/bin/env bash
# Provide Debian's promtool on the controller without installing the prometheus package, and print its path.
#
# Usage: hacking/promtool.sh            (from anywhere; the cache lives in the checkout's git-ignored build/)
#
# The first run fetches the prometheus .deb of the controller's APT sources with `apt-get download` (after an
# `apt-get update` when run as root and the first download fails), unpacks it with `dpkg-deb -x` into
# build/promtool/root/ and prints root/usr/bin/promtool. Later runs print the unpacked binary at once. To take a
# newer package, remove build/promtool/. Everything but the path goes to stderr, so callers can use "$(...)".
# Exit status: 0 with the path printed; 1 when the package cannot be downloaded or holds no working promtool.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${repo}/build/promtool"
promtool="${cache}/root/usr/bin/promtool"

if [[ -x "${promtool}" ]] && "${promtool}" --version >/dev/null 2>&1; then
    printf '%s\n' "${promtool}"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
        echo "promtool.sh: ${tool} not found; this script needs a Debian or Ubuntu controller" >&2
        exit 1
    fi
done

mkdir -p "${cache}"
work="$(mktemp -d "${cache}/.work.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

download() {
    # apt-get download writes into the current directory; as root it warns about the unsandboxed download.
    (cd "${work}" && apt-get download -q prometheus) >&2
}

if ! download; then
    if [[ "$(id -u)" -eq 0 ]]; then
        echo "promtool.sh: download failed; refreshing the package lists and retrying" >&2
        apt-get update -qq >&2
        download
    else
        echo "promtool.sh: apt-get download prometheus failed; run 'apt-get update' as root, then retry" >&2
        exit 1
    fi
fi

shopt -s nullglob
debs=("${work}"/prometheus_*.deb)
if [[ ${#debs[@]} -ne 1 ]]; then
    echo "promtool.sh: expected one prometheus_*.deb in ${work}, found ${#debs[@]}" >&2
    exit 1
fi

dpkg-deb -x "${debs[0]}" "${work}/root"
if ! "${work}/root/usr/bin/promtool" --version >&2; then
    echo "promtool.sh: ${debs[0]##*/} holds no working usr/bin/promtool" >&2
    exit 1
fi

# Replace the cache in one rename, so that a concurrent run never sees half an unpacked tree.
rm -rf "${cache}/root"
mv "${work}/root" "${cache}/root"
printf '%s\n' "${promtool}"
