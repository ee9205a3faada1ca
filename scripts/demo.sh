#!/usr/bin/env bash
# Sets up a fresh Debian machine and boots guests with Skiff, console on this terminal:
# first the guest kit's hello program, then Debian's stock kernel with a busybox
# initramfs (a shell on the console; Ctrl-A then x stops the VM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product skiff
skiff=.build/release/skiff
echo "== skiff run --kernel guests/build/hello.elf"
"$skiff" run --kernel guests/build/hello.elf --memory 64M || true
echo "== skiff run --kernel artifacts/kernel/vmlinux (Debian $(cat artifacts/kernel/version))"
exec "$skiff" run --kernel artifacts/kernel/vmlinux --initrd artifacts/initramfs.cpio --memory 512M --cpus 2 \
    --cmdline "console=ttyS0 earlyprintk=serial noxsave panic=-1 skiff.shell"
