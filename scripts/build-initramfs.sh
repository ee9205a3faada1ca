#!/usr/bin/env bash
# Builds artifacts/initramfs.cpio (left uncompressed: inflating it costs minutes on hosts whose
# KVM emulates instructions): busybox-static and an /init that mounts the usual
# file systems, prints a marker line, then either starts a shell on the console (when the
# kernel command line has `skiff.shell`) or powers the VM off.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${SKIFF_INITRAMFS:-artifacts/initramfs.cpio}
busybox=${SKIFF_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "build-initramfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
if [ -s "$out" ] && [ "$out" -nt "$0" ] && [ "$out" -nt "$busybox" ]; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,sbin,dev,proc,sys,tmp,etc,root,mnt,lib/modules}
cp "$busybox" "$work/bin/busybox"
# The stock kernel's own virtio drivers, loaded by /init when the command line says skiff.virtio.
modules=artifacts/kernel/modules/kernel
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk net/core/failover \
         drivers/net/net_failover drivers/net/virtio_net drivers/char/hw_random/virtio-rng drivers/virtio/virtio_balloon \
         net/vmw_vsock/vsock net/vmw_vsock/vmw_vsock_virtio_transport_common net/vmw_vsock/vmw_vsock_virtio_transport \
         drivers/char/virtio_console; do
    if [ -f "$modules/$m.ko" ]; then cp "$modules/$m.ko" "$work/lib/modules/"; fi
done
cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "SKIFF-INIT-OK kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
if grep -qw skiff.virtio /proc/cmdline; then
    for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover \
             virtio_net virtio-rng virtio_balloon vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio_console; do
        insmod /lib/modules/$m.ko || echo "SKIFF-VIRTIO insmod $m failed"
    done
    echo "SKIFF-VIRTIO modules $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
    if mount -t ext4 /dev/vda /mnt; then
        echo "SKIFF-VIRTIO disk says: $(cat /mnt/hello.txt)"
        echo "written by the guest" > /mnt/guest.txt
        sync
        umount /mnt && echo "SKIFF-VIRTIO blk ok"
    fi
    [ -e /dev/hwrng ] && echo "SKIFF-VIRTIO rng $(head -c 8 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
    address=$(sed -n 's/.*skiff.ip=\([0-9.]*\).*/\1/p' /proc/cmdline)
    peer=$(sed -n 's/.*skiff.peer=\([0-9.]*\).*/\1/p' /proc/cmdline)
    if [ -n "$address" ] && [ -n "$peer" ]; then
        ip link set eth0 up
        ip addr add "$address/30" dev eth0
        echo "SKIFF-VIRTIO net reply: $(echo hello-from-linux | nc -w 30 "$peer" 7777)"
    fi
fi
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
