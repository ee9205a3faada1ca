#!/bin/sh
# Scans the executable sections of guest ELF files for instructions that an
# instruction-emulating KVM cannot run: SSE/MMX/x87/AVX, popcnt/lzcnt/tzcnt,
# cmpxchg16b, int3, xsave/xrstor, clac/stac, fences, rdrand/rdseed, movbe, crc32.
# Sections named .text16* are disassembled as 16-bit code, .text32* as 32-bit code,
# everything else by the ELF class. Exits 1 and prints the offending lines if any.
set -eu

forbidden='^(popcnt|lzcnt|tzcnt|cmpxchg16b|int3|xsave[a-z0-9]*|xrstor[a-z0-9]*|fxsave[a-z0-9]*|fxrstor[a-z0-9]*|clac|stac|wait|fwait|emms|ldmxcsr|stmxcsr|lfence|mfence|sfence|clflush[a-z]*|prefetch[a-z0-9]*|rdrand|rdseed|movbe|crc32[a-z]*|movnti|f[a-z0-9]+)$'
status=0
for elf in "$@"; do
    class=$(readelf -h "$elf" | awk '/Class:/ {print $2}')
    default_mode=i386
    [ "$class" = ELF64 ] && default_mode=x86-64
    sections=$(objdump -h "$elf" | awk '
        $1 ~ /^[0-9]+$/ { name = $2; next }
        name != "" && /CODE/ { print name }
        { name = "" }')
    for sec in $sections; do
        case "$sec" in
            .text16*) mode=i8086 ;;
            .text32*) mode=i386 ;;
            *) mode=$default_mode ;;
        esac
        bad=$(objdump -d --no-show-raw-insn -M "$mode" -j "$sec" "$elf" | awk -F'\t' -v re="$forbidden" -v where="$elf:$sec" '
            NF >= 2 && $1 ~ /^ *[0-9a-f]+:$/ {
                insn = $2
                n = split(insn, w, /[ ,]+/)
                m = 1
                while (m <= n && w[m] ~ /^(lock|rep|repz|repnz|repe|repne|data16|data32|addr16|addr32|rex[.a-zA-Z]*|cs|ds|es|ss|fs|gs|notrack|bnd)$/) m++
                mn = w[m]
                if (mn ~ re || insn ~ /%(x|y|z)mm[0-9]|%mm[0-7]|%st(\(|$|,)/ || insn ~ /^int +\$0x3$/)
                    print where ": " $1 " " insn
            }')
        if [ -n "$bad" ]; then
            echo "$bad"
            status=1
        fi
    done
    echo "checked $elf ($class): $(echo $sections | wc -w) executable section(s)"
done
exit $status
