#!/usr/bin/env bash
# Sets up a fresh Debian machine and boots guests with Skiff, console on this terminal:
# first the guest kit's hello program; then skiffd, the host daemon, with two VMs created
# from specs, listed, and one console attached (Ctrl-] detaches); then Debian's stock
# kernel with a busybox initramfs (a shell on the console; Ctrl-A then x stops the VM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-release.sh skiffd
skiff=.build/release/skiff
echo "== skiff run --kernel guests/build/hello.elf"
"$skiff" run --kernel guests/build/hello.elf --memory 64M || true
scripts/demo-skiffd.sh
cmdline="console=ttyS0 earlyprintk=serial noxsave panic=-1 skiff.shell"
# Hosts whose KVM emulates guest instructions (nested setups) run Linux at emulation speed and
# mishandle SYSCALL from ring 3; the guest kit's user-mode program tells them apart.
if ! "$skiff" run --kernel guests/build/user-mode.elf --memory 64M >/dev/null 2>&1; then
    echo "note: this host's KVM emulates guest instructions and fails the ring-3 SYSCALL check:"
    echo "      Linux takes about ten minutes to reach /init here and dies at its first system call"
    echo "      (see docs/emulation-assist.md). Skipping the slow initcalls and crypto self-tests."
    cmdline="$cmdline initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs cryptomgr.notests"
fi
echo "== skiff run --kernel artifacts/kernel/vmlinux (Debian $(cat artifacts/kernel/version))"
exec "$skiff" run --kernel artifacts/kernel/vmlinux --initrd artifacts/initramfs.cpio --memory 512M --cpus 2 \
    --cmdline "$cmdline"
