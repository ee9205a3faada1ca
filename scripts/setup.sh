#!/usr/bin/env bash
# Prepares a fresh Debian machine for Skiff: system packages, the guest test kit, and the
# stock Debian cloud kernel used by the Linux tests. Safe to run again; it skips done work.
set -euo pipefail
cd "$(dirname "$0")/.."

# dosfstools and mtools: skiffd builds cloud-init seed disks (FAT, label CIDATA) with mkfs.vfat and mcopy.
# python3-venv: the API conformance check runs schemathesis from a virtual environment.
packages=(build-essential qemu-system-x86 qemu-utils acpica-tools lz4 busybox-static cpio iproute2 python3 python3-venv xz-utils e2fsprogs zlib1g-dev
          dosfstools mtools curl openssl libseccomp-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Guest test kit (small freestanding programs the KVM tests boot).
if [ -f guests/Makefile ]; then
    make -s -C guests
fi

# Debian's stock cloud kernel: the package the linux-image-cloud-amd64 metapackage points to.
scripts/fetch-kernel.sh
scripts/build-initramfs.sh
