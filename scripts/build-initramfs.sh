#!/usr/bin/env bash
# Builds artifacts/initramfs.cpio (left uncompressed: inflating it costs minutes on hosts whose
# KVM emulates instructions): busybox-static and an /init that mounts the usual
# file systems, prints a marker line, then either starts a shell on the console (when the
# kernel command line has `skiff.shell`) or powers the VM off.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/initramfs.cpio
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-initramfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
if [ -s "$out" ] && [ "$out" -nt "$0" ] && [ "$out" -nt "$busybox" ]; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,sbin,dev,proc,sys,tmp,etc,root}
cp "$busybox" "$work/bin/busybox"
cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "SKIFF-INIT-OK kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
if grep -qw skiff.shell /proc/cmdline; then
    echo "Skiff guest shell: type 'poweroff -f' to stop the VM."
    setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
fi
poweroff -f
INIT
chmod +x "$work/init"
mkdir -p artifacts
(cd "$work" && find . | cpio -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
echo "build-initramfs: $out"
