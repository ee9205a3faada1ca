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
for d in disk disk-ro disk-hostile disk-seq; do
    { printf 'SKIFF-BLK-HOST-DATA'; head -c $((1048576 - 19)) /dev/zero; } > "$work/$d.img"
done
VBLK="-device virtio-blk-pci,drive=d0,disable-legacy=on,serial=qemu-disk"
# SSDT bodies for power-button.elf (QEMU's PC has no GED): Skiff's DSDT layout,
#   Device (\_SB.PWRB) { Name (_HID, EisaId ("PNP0C0C")), Name (_UID, 0) }
#   Device (\_SB.GED_) { Name (_HID, "ACPI0013"), Name (_UID, 0),
#       Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5, G } })
#       Method (_EVT, 1, Serialized) { If (LEqual (Arg0, 5)) { Notify (\_SB.VGEN, 0x80) }
#                                      If (LEqual (Arg0, G)) { Notify (\_SB.PWRB, 0x80) } } }
# with the button's GSI G given as two hex digits (a BytePrefix integer in the LEqual;
# `iasl -d` shows the table QEMU builds around a body).
pwrb_ssdt() {
    local g="\\x$2" f=""
    f+='\x5b\x82\x1b\x5c\x2e_SB_PWRB\x08_HID\x0c\x41\xd0\x0c\x0c\x08_UID\x00'
    f+='\x5b\x82\x46\x06\x5c\x2e_SB_GED_\x08_HID\x0dACPI0013\x00\x08_UID\x00'
    f+='\x08_CRS\x11\x12\x0a\x0f\x89\x0a\x00\x03\x02\x05\x00\x00\x00'"$g"'\x00\x00\x00\x79\x00'
    f+='\x14\x2c_EVT\x09\xa0\x12\x93\x68\x0a\x05\x86\x5c\x2e_SB_VGEN\x0a\x80'
    f+='\xa0\x12\x93\x68\x0a'"$g"'\x86\x5c\x2e_SB_PWRB\x0a\x80'
    printf "$f" > "$1"
}
pwrb_ssdt "$work/pwrb6.aml" 06
pwrb_ssdt "$work/pwrb20.aml" 14
ACPITABLE="-acpitable sig=SSDT,rev=2,oem_id=SKIFF,oem_table_id=PWRBTEST,data"
B=build

# case NAME MACHINE KERNEL EXPECTED_STATUS "QEMU ARGS" "REGEX;REGEX;..." [stdin-line]
# Regexes are grep -E patterns that must each match a line; a pattern starting with
# '!' must match no line. A stdin line is typed into the serial port after "ready" (or
# "<name> ready") is printed.
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
case_def virtio-rng-wait-key pc $B/virtio-rng.elf 33 "-append wait-key=1 -device virtio-rng-pci,disable-legacy=on" \
    "^virtio-rng ready$;^rng bytes [0-9a-f]{32}$;^SKIFF-TEST PASS virtio-rng$" "k"
case_def virtio-blk-seq pc $B/virtio-blk.elf 33 "-append 'mode=seq count=40 wait-key=1' -drive file=$work/disk-seq.img,if=none,id=d0,format=raw $VBLK" \
    "^virtio-blk ready$;^blk seq=16$;^blk seq=32$;!^blk seq=40$;^blk done count=40$;^SKIFF-TEST PASS virtio-blk$" "k"
# workload: the hashes are FNV-1a over (s, page) with splitmix64 page choice (src/workload.c).
case_def workload pc $B/workload.elf 33 "-append 'report=1000 stop=5000'" \
    "^WL tsc-khz=[1-9][0-9]* pages=2048 dirty=max$;^WL seq=1000 hash=af4cc0c335ed01c2$;^WL verify seq=4000 ok$;^WL seq=5000 hash=377188ae869a66d0$;^WL verify seq=5000 ok$;^SKIFF-TEST PASS workload$"
case_def workload-paced q35 $B/workload.elf 33 "-append 'mib=4 dirty=400 report=100 stop=200'" \
    "^WL tsc-khz=[1-9][0-9]* pages=1024 dirty=400$;^WL seq=100 hash=1cf3ae32abfd04fa$;^WL seq=200 hash=226bff7db4768c9a$;^WL verify seq=200 ok$;^SKIFF-TEST PASS workload$"
case_def workload-idle pc $B/workload.elf 33 "-append 'dirty=0 stop=4 wait=poll'" \
    "dirty=0$;^WL heartbeat n=1$;^WL heartbeat n=4$;!^WL heartbeat n=5$;^WL verify seq=0 ok$;!^WL seq=;^SKIFF-TEST PASS workload$"
case_def workload-too-big pc $B/workload.elf 35 "-append mib=64" "^SKIFF-TEST FAIL workload: region 0x1000000-0x5000000 does not fit"
case_def smp-ipi-1 pc $B/smp-ipi.elf 33 "-smp 1 -append 'report=50 stop=200'" "^IPI cpus=1 apic ids 0$;^IPI round=50 counts=50$;^IPI round=200 counts=200$;^SKIFF-TEST PASS smp-ipi$"
case_def smp-ipi-2 pc $B/smp-ipi.elf 33 "-smp 2 -append stop=300" "^IPI cpus=2 apic ids 0 1$;^IPI round=100 counts=100,100$;^IPI round=300 counts=300,300$;^SKIFF-TEST PASS smp-ipi$"
case_def smp-ipi-4 q35 $B/smp-ipi.elf 33 "-smp 4 -append stop=300" "^IPI cpus=4 apic ids 0( [1-3]){3}$;^IPI round=300 counts=300,300,300,300$;^SKIFF-TEST PASS smp-ipi$"
case_def smp-ipi-lost pc $B/smp-ipi.elf 35 "-smp 2 -append drop=120" "^IPI round=100 counts=100,100$;^SKIFF-TEST FAIL smp-ipi: token lost at round 120$"
case_def lapic-timer pc $B/lapic-timer.elf 33 "-append delay-ms=700" \
    "^TIMER tsc-khz=[1-9][0-9]* lapic-khz=[1-9][0-9]*$;^TIMER armed mode=oneshot delay-ms=700$;^TIMER fired$;^TIMER elapsed-ms=[0-9]+$;^SKIFF-TEST PASS lapic-timer$"
if [ "$accel" = kvm ]; then
    case_def lapic-timer-deadline q35 $B/lapic-timer.elf 33 "-cpu qemu64,+tsc-deadline -append mode=tsc-deadline" \
        "^TIMER armed mode=tsc-deadline delay-ms=1500$;^TIMER fired$;^SKIFF-TEST PASS lapic-timer$"
else # TCG has no TSC-deadline timer: the guest must say so
    case_def lapic-timer-deadline q35 $B/lapic-timer.elf 35 "-append mode=tsc-deadline" \
        "^SKIFF-TEST FAIL lapic-timer: mode=tsc-deadline but CPUID.01H:ECX\[24\] \(TSC-deadline timer\) is 0$"
fi
case_def vmgenid-none pc $B/vmgenid.elf 33 "" "^VMGENID none$;^SKIFF-TEST PASS vmgenid$"
case_def vmgenid-required pc $B/vmgenid.elf 35 "-append require=1" "^VMGENID none$;^SKIFF-TEST FAIL vmgenid: no VM_GEN_COUNTER device"
case_def vmgenid-qemu pc $B/vmgenid.elf 33 "-device vmgenid,guid=01234567-89ab-cdef-0123-456789abcdef -append stop=changes:0" \
    "^VMGENID table=SSDT form=qemu-vgia$;^VMGENID addr=0x[0-9a-f]+ guid=67452301ab89efcd0123456789abcdef$;^SKIFF-TEST PASS vmgenid$"
# power-button: no GED on QEMU's PC; with the SSDT above, GSI 6 is the floppy controller's
# IRQ, which press=fdc makes the guest raise itself (a stand-in for the host's button).
case_def power-button-none pc $B/power-button.elf 35 "" \
    "^SKIFF-TEST FAIL power-button: no ACPI0013 \(Generic Event Device\) in the DSDT or SSDTs$;!^PWRB"
case_def power-button-none-q35 q35 $B/power-button.elf 35 "-append timeout-ms=1000" \
    "^SKIFF-TEST FAIL power-button: no ACPI0013 \(Generic Event Device\) in the DSDT or SSDTs$;!^PWRB"
case_def power-button-fdc pc $B/power-button.elf 0 "$ACPITABLE=$work/pwrb6.aml -append press=fdc" \
    "^PWRB ged gsis=5,6 button=PWRB$;^PWRB gsi=6$;^PWRB waiting$;^PWRB pressed$;^acpi poweroff slp_typ [0-7]$;^acpi poweroff via pm1a_cnt io 0x604$;!SKIFF-TEST"
case_def power-button-timeout pc $B/power-button.elf 35 "$ACPITABLE=$work/pwrb6.aml -append timeout-ms=700" \
    "^PWRB gsi=6$;^PWRB waiting$;^SKIFF-TEST FAIL power-button: no power button press within 700 ms$;!^PWRB pressed"
case_def power-button-gsi20 pc $B/power-button.elf 35 "$ACPITABLE=$work/pwrb20.aml" \
    "^PWRB ged gsis=5,20 button=PWRB$;^PWRB gsi=20$;^SKIFF-TEST FAIL power-button: power button GSI 20 is not below 16 \(no 8259 IRQ\)$;!^PWRB waiting"

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
            grep -qE '(^|\.\.| )ready$' "$log" 2> /dev/null && break
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
