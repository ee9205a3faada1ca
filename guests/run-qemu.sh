#!/usr/bin/env bash
# Runs every guest of the kit under QEMU (the reference PC) and checks its exit status
# and output lines. Usage:
#   ./run-qemu.sh [-a kvm|tcg] [-k] [-t SECONDS] [CASE...]
#     -a   accelerator (default: kvm if /dev/kvm is usable, else tcg)
#     -k   keep the per-case logs (printed directory)
#     -t   per-case timeout in seconds (default 60 with kvm, 300 with tcg)
#     CASE run only the named cases (see the list printed with -l)
#   ./run-qemu.sh -l   lists the cases
# Builds the kit first (make -C this directory). Exit status 0 if every case passed.
set -u
cd "$(dirname "$0")"

accel=""
keep=0
timeout_s=""
list=0
while getopts "a:kt:l" opt; do
    case $opt in
        a) accel=$OPTARG ;;
        k) keep=1 ;;
        t) timeout_s=$OPTARG ;;
        l) list=1 ;;
        *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$accel" ]; then
    if [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi
fi
if [ -z "$timeout_s" ]; then
    if [ "$accel" = kvm ]; then timeout_s=60; else timeout_s=300; fi
fi

command -v qemu-system-x86_64 > /dev/null || { echo "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"; exit 2; }
if [ "$list" = 0 ]; then
    make -s all || exit 2
fi

work=$(mktemp -d /tmp/skiff-guests.XXXXXX)
printf 'kit-module-data\n' > "$work/module.txt"
printf 'second\000module' > "$work/module2.bin"
# 1 MiB disks for the virtio-blk guests; sector 0 starts with a marker string.
for d in disk disk-ro disk-hostile; do
    { printf 'SKIFF-BLK-HOST-DATA'; head -c $((1048576 - 19)) /dev/zero; } > "$work/$d.img"
done
VBLK="-device virtio-blk-pci,drive=d0,disable-legacy=on,serial=qemu-disk"
B=build

# case NAME MACHINE KERNEL EXPECTED_STATUS "QEMU ARGS" "REGEX;REGEX;..." [stdin-line]
# Regexes are grep -E patterns that must each match a line; a pattern starting with
# '!' must match no line. A stdin line is typed into the serial port after "ready".
cases=()
case_def() { cases+=("$(printf '%s\x1f' "$@")"); }

case_def hello pc $B/hello.elf 33 "" "^Hello from Skiff guest$;^SKIFF-TEST PASS hello$"
case_def hello-q35 q35 $B/hello.elf 33 "" "^Hello from Skiff guest$;^SKIFF-TEST PASS hello$"
case_def hello-aout-bin pc $B/hello-aout.bin 33 "" "^aout load 0x200000 ;bss clean$;^SKIFF-TEST PASS hello-aout$"
case_def hello-aout-elf pc $B/hello-aout.elf 33 "" "bss clean$;^SKIFF-TEST PASS hello-aout$"
case_def hello-pvh pc $B/hello-pvh.elf 33 "-append 'console=ttyS0 pvh=1' -initrd $work/module.txt" \
    "^pvh mode 32$;^pvh magic 0x336ec578 version 1 ;^cmdline \"console=ttyS0 pvh=1\"$;^memmap 0x100000 0x[0-9a-f]+ 1$;^module 0 0x[0-9a-f]+ 0x10 cmdline none data \"kit-module-data.\"$;^rsdp 0x[1-9a-f];^SKIFF-TEST PASS hello-pvh$"
case_def hello-pvh64 pc $B/hello-pvh64.elf 33 "-append 'console=ttyS0 pvh=1' -initrd $work/module.txt" \
    "^pvh mode 64$;^pvh magic 0x336ec578 version 1 ;^memmap entries [1-9];^module 0 ;^SKIFF-TEST PASS hello-pvh64$"
case_def bootinfo pc $B/bootinfo.elf 33 "-append 'a=1 b=two' -initrd '$work/module.txt mod-arg,$work/module2.bin'" \
    "^cmdline \".*a=1 b=two\"$;^mem_lower [0-9]+ mem_upper [0-9]+$;^mmap 0x0 0x[0-9a-f]+ 1$;^mmap 0x100000 0x[0-9a-f]+ 1$;^module 0 0x[0-9a-f]+ 0x[0-9a-f]+ cmdline \".*module.txt mod-arg\" data \"kit-module-data.\"$;^module 1 .* data \"second.module\"$;^modules 2$;^SKIFF-TEST PASS bootinfo$"
case_def smp-1 pc $B/smp.elf 33 "-smp 1" "^fw_cfg cpus 1$;^madt cpus 1$;^smp online 1 apic ids 0$;^SKIFF-TEST PASS smp$"
case_def smp-2 pc $B/smp.elf 33 "-smp 2" "^fw_cfg cpus 2$;^madt cpus 2$;^cpu 1 apic 1$;^smp online 2 apic ids 0 1$;^SKIFF-TEST PASS smp$"
case_def smp-4 q35 $B/smp.elf 33 "-smp 4" "^fw_cfg cpus 4$;^madt cpus 4$;^cpu 3 apic [0-9]+$;^smp online 4 apic ids 0( [1-3]){3}$;^SKIFF-TEST PASS smp$"
case_def timer pc $B/timer.elf 33 "" "^pit ticks [5-9]$;^lapic ticks [5-9]$;^SKIFF-TEST PASS timer$"
case_def timer-q35 q35 $B/timer.elf 33 "" "^pit ticks [5-9]$;^lapic ticks [5-9]$;^SKIFF-TEST PASS timer$"
case_def i8042-reset pc $B/i8042-reset.elf 0 "-no-reboot" "^resetting$;!SKIFF-TEST"
case_def reboot-bios pc $B/reboot-bios.elf 0 "-no-reboot" "rebooting through the BIOS reset vector$;!SKIFF-TEST"
case_def cmdline pc $B/cmdline.elf 33 "-append 'first second=2  third'" \
    "^cmdline \"$B/cmdline.elf first second=2  third\"$;^argc 4$;^argv\[0\] \"$B/cmdline.elf\"$;^argv\[1\] \"first\"$;^SKIFF-TEST PASS cmdline$"
case_def debug-exit pc $B/debug-exit.elf 85 "" "^exiting with 42$;!SKIFF-TEST"
case_def debug-exit-7 pc $B/debug-exit.elf 15 "-append code=7" "^exiting with 7$;!SKIFF-TEST"
case_def longmode pc $B/longmode.elf 33 "" \
    "^long mode ok cr0=0x80000011 cr4=0x20 efer=0x500$;^high mapping 0xffff800000000000 -> 0x[0-9a-f]+ ok$;^long mode interrupt ok$;^SKIFF-TEST PASS longmode$"
case_def user-mode pc $B/user-mode.elf 33 "" \
    "^user-mode: entering ring 3$;^user-mode syscall ok$;^user-mode sysret ok$;^user-mode exception ok$;^SKIFF-TEST PASS user-mode$"
case_def rtc pc $B/rtc.elf 33 "-rtc base=2031-12-31T13:59:30" "^rtc regB 0x02 bcd 24h$;^rtc 2031-12-31 13:59:[3-5][0-9]$;^SKIFF-TEST PASS rtc$"
case_def rtc-binary-12h pc $B/rtc.elf 33 "-rtc base=2031-12-31T13:59:30 -append regb=0x04" \
    "^rtc regB 0x04 binary 12h$;^rtc 2031-12-31 13:59:[3-5][0-9]$;^SKIFF-TEST PASS rtc$"
case_def uart-echo pc $B/uart-echo.elf 33 "" "^ready$;^got: skiff$;^SKIFF-TEST PASS uart-echo$" "skiff"
case_def poweroff pc $B/poweroff.elf 0 "" "^acpi poweroff slp_typ [0-7]$;^acpi poweroff via pm1a_cnt io 0x604$;!SKIFF-TEST"
case_def poweroff-q35 q35 $B/poweroff.elf 0 "" "^acpi poweroff slp_typ [0-7]$;!SKIFF-TEST"
case_def bzimage-mini-32 pc $B/bzimage-mini 33 "-append 'console=ttyS0 bz=1' -initrd $work/module.txt" \
    "^bzimage entry 32$;^boot_params version 0x20f ;^cmdline \"console=ttyS0 bz=1\"$;^BIOS-e820: \[mem 0x0000000000100000-0x[0-9a-f]{16}\] usable$;^initrd 0x[0-9a-f]+ 0x10 data \"kit-module-data.\"$;^SKIFF-TEST PASS bzimage-mini$"
case_def bzimage-mini-64 pc $B/bzboot64.elf 33 "-initrd '$B/bzimage-mini console=ttyS0 bz=64,$work/module.txt'" \
    "^bzimage entry 64$;^bzimage entry state cr0 0x80000011 ;^cmdline \"console=ttyS0 bz=64\"$;^BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable$;^initrd 0x[0-9a-f]+ 0x10 data ;^acpi_rsdp_addr 0x[1-9a-f];^SKIFF-TEST PASS bzimage-mini$"
case_def hostile pc $B/hostile.elf 33 "-append widths=124" "^io ports reading 0xff [0-9]+$;^io writes [0-9]+ skipped [0-9]+$;^mmio writes ;^SKIFF-TEST PASS hostile$"
case_def virtio-rng pc $B/virtio-rng.elf 33 "-device virtio-rng-pci,disable-legacy=on" "^virtio-rng 00:[0-9a-f]{2}.0 features 0x120000000$;^rng bytes [0-9a-f]{32}$;^rng msix interrupts 2$;^SKIFF-TEST PASS virtio-rng$"
case_def virtio-blk pc $B/virtio-blk.elf 33 "-append end=pass -drive file=$work/disk.img,if=none,id=d0,format=raw $VBLK" \
    "^virtio-blk 00:[0-9a-f]{2}.0 capacity 2048 ro 0 ;^serial \"qemu-disk.*\"$;^sector 0 \"SKIFF-BLK-HOST-DATA;^readback ok$;^write-zeroes ok$;^flushed$;^SKIFF-TEST PASS virtio-blk$"
case_def virtio-blk-ro pc $B/virtio-blk.elf 33 "-append mode=ro -drive file=$work/disk-ro.img,if=none,id=d0,format=raw,readonly=on $VBLK" \
    "^virtio-blk 00:[0-9a-f]{2}.0 capacity 2048 ro 1 ;^readonly writes refused$;^SKIFF-TEST PASS virtio-blk$"
case_def virtio-blk-hostile pc $B/virtio-blk-hostile.elf 33 "-drive file=$work/disk-hostile.img,if=none,id=d0,format=raw $VBLK" \
    "^bad read-at-capacity -> status 1$;^chain loop -> needs-reset$;^hostile requests [0-9]+ chains 19$;^SKIFF-TEST PASS virtio-blk-hostile$"
case_def virtio-rng-q35 q35 $B/virtio-rng.elf 33 "-device virtio-rng-pci,disable-legacy=on" "^rng bytes [0-9a-f]{32}$;^SKIFF-TEST PASS virtio-rng$"

if [ "$list" = 1 ]; then
    for c in "${cases[@]}"; do IFS=$'\x1f' read -r name machine kernel _ <<< "$c"; echo "$name ($machine, $kernel)"; done
    exit 0
fi

selected=("$@")
passed=0
failed=0
failed_names=()
for c in "${cases[@]}"; do
    IFS=$'\x1f' read -r name machine kernel status args patterns input <<< "$c"
    if [ ${#selected[@]} -gt 0 ]; then
        match=0
        for s in "${selected[@]}"; do [ "$s" = "$name" ] && match=1; done
        [ $match = 1 ] || continue
    fi
    log="$work/$name.log"
    cmd="qemu-system-x86_64 -accel $accel -M $machine -m 64 -nographic -serial stdio -display none -monitor none -net none -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel $kernel $args"
    start=$(date +%s.%N)
    if [ -n "$input" ]; then
        fifo="$work/$name.in"
        mkfifo "$fifo"
        eval "timeout $timeout_s $cmd" < "$fifo" > "$log" 2>&1 &
        qpid=$!
        exec 3> "$fifo"
        for _ in $(seq 1 $((timeout_s * 10))); do
            grep -qE '(^|\.\.)ready$' "$log" 2> /dev/null && break
            kill -0 $qpid 2> /dev/null || break
            sleep 0.1
        done
        (trap '' PIPE; printf '%s\n' "$input" >&3) 2> /dev/null
        wait $qpid
        rc=$?
        exec 3>&-
    else
        eval "timeout $timeout_s $cmd" < /dev/null > "$log" 2>&1
        rc=$?
    fi
    end=$(date +%s.%N)
    # QEMU's -serial stdio output: strip the firmware banner's escape sequences and CRs.
    tr -d '\r' < "$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/^.*Booting from ROM\.\.//' > "$log.out"
    why=""
    [ "$rc" = "$status" ] || why="exit status $rc, expected $status"
    IFS=';' read -r -a pats <<< "$patterns"
    for p in "${pats[@]}"; do
        if [ "${p:0:1}" = "!" ]; then
            grep -qE -- "${p:1}" "$log.out" && why="${why:+$why; }unexpected line matching /${p:1}/"
        else
            grep -qE -- "$p" "$log.out" || why="${why:+$why; }no line matching /$p/"
        fi
    done
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ -z "$why" ]; then
        printf 'PASS %-18s %-4s %5ss exit %s\n' "$name" "$machine" "$secs" "$rc"
        passed=$((passed + 1))
    else
        printf 'FAIL %-18s %-4s %5ss %s\n' "$name" "$machine" "$secs" "$why"
        sed 's/^/    | /' "$log.out" | grep -v '^    | Code=' | tail -15
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
done

echo "accel $accel: $passed passed, $failed failed${failed_names[*]:+ (${failed_names[*]})}"
if [ "$keep" = 1 ]; then echo "logs in $work"; else rm -rf "$work"; fi
[ "$failed" = 0 ]
