#!/bin/sh
# Counts the instructions a guest executes, under QEMU TCG in single-step mode with the
# exec trace (slow: the firmware runs single-stepped too). Only instructions at guest
# addresses 1-16 MiB (the guest image; SeaBIOS relocates itself near the top of RAM), 0x10000-0x1ffff (bzImage real-mode setup) and
# 0x70000-0x70fff (the smp trampoline) are counted; firmware code is not.
# Usage: tools/count-insns.sh GUEST [extra qemu arguments...]
set -eu
guest=$1
shift
fifo=$(mktemp -u /tmp/count-insns.XXXXXX)
mkfifo "$fifo"
trap 'rm -f "$fifo"' EXIT
awk '
    /^Trace/ {
        split($4, f, "/")
        pc = f[2]   # 16 zero-padded hex digits: string comparison orders them
        if ((pc >= "0000000000100000" && pc < "0000000001000000") || (pc >= "0000000000010000" && pc < "0000000000020000") ||
            (pc >= "0000000000070000" && pc < "0000000000071000"))
            n++
    }
    END { printf "instructions %d\n", n }' "$fifo" &
awk_pid=$!
status=0
timeout 600 qemu-system-x86_64 -accel tcg -singlestep -d exec,nochain -D "$fifo" -m 64 -nographic \
    -serial stdio -display none -monitor none -net none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest" "$@" > /dev/null 2>&1 || status=$?
wait "$awk_pid"
echo "exit status $status"
