#!/usr/bin/env bash
# Storage benchmarks, Skiff beside QEMU on the same files:
#   4 KiB reads and writes at queue depth 1 and 32 (qemu-img bench access pattern), raw->qcow2 convert,
#   FastCDC chunking + SHA-256 throughput per core.
# Usage: bench/storage/run.sh [WORKDIR]    (default: a fresh directory under /var/tmp)
# Env: SIZE_MIB (image size, default 1024), COUNT (requests per run, default 100000).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /var/tmp/skiff-storage-bench.XXXXXX)}
size_mib=${SIZE_MIB:-1024}
count=${COUNT:-100000}
step=$((4096 * 7919))   # scatters requests over the whole image (gcd with the size is 4 KiB)
command -v qemu-img >/dev/null || { echo "qemu-img missing: apt-get install qemu-utils" >&2; exit 1; }

(cd "$root" && swift build -c release --product skiff-storage-stress >/dev/null)
tool="$root/.build/release/skiff-storage-stress"
mkdir -p "$work"
echo "work dir: $work ($(df -h "$work" | awk 'NR==2 {print $1}'))"

seconds() { # runs a command, prints elapsed seconds
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
row() { # name qemu_seconds skiff_seconds unit_count unit
    printf '%-34s %10.0f %10.0f %7.2fx\n' "$1" "$(echo "$4 / $2" | bc -l)" "$(echo "$4 / $3" | bc -l)" "$(echo "$2 / $3" | bc -l)"
}

# Source data: half random, half zeros, in 1 MiB stripes.
python3 - "$work/src.raw" "$size_mib" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, 'wb') as f:
    for i in range(mib):
        f.write(os.urandom(1 << 20) if i % 2 == 0 else bytes(1 << 20))
PY
qemu-img convert -f raw -O qcow2 "$work/src.raw" "$work/data.qcow2"   # fully written image for reads
qemu-img convert -f raw -O qcow2 -S 0 "$work/src.raw" "$work/full.qcow2"  # every cluster allocated
cat "$work/full.qcow2" > /dev/null

printf '\n%-34s %10s %10s %8s\n' "benchmark" "QEMU" "Skiff" "Skiff/QEMU"
printf '%-34s %10s %10s %8s\n' "" "(IOPS)" "(IOPS)" "(speed)"
for depth in 1 32; do
    q=$(seconds qemu-img bench -f qcow2 -t writeback -c "$count" -d "$depth" -s 4096 -S "$step" "$work/full.qcow2")
    s=$(seconds "$tool" bench -f qcow2 -c "$count" -d "$depth" -s 4096 -S "$step" "$work/full.qcow2")
    row "4K read, QD$depth (allocated)" "$q" "$s" "$count"
done
for depth in 1 32; do
    cp "$work/full.qcow2" "$work/w1.qcow2"; cp "$work/full.qcow2" "$work/w2.qcow2"
    q=$(seconds qemu-img bench -w -f qcow2 -t writeback -c "$count" -d "$depth" -s 4096 -S "$step" "$work/w1.qcow2")
    s=$(seconds "$tool" bench -w -f qcow2 -c "$count" -d "$depth" -s 4096 -S "$step" "$work/w2.qcow2")
    row "4K write, QD$depth (overwrite)" "$q" "$s" "$count"
done
for depth in 1 32; do
    qemu-img create -q -f qcow2 "$work/e1.qcow2" "${size_mib}M"; qemu-img create -q -f qcow2 "$work/e2.qcow2" "${size_mib}M"
    q=$(seconds qemu-img bench -w -f qcow2 -t writeback -c "$count" -d "$depth" -s 4096 -S "$step" "$work/e1.qcow2")
    s=$(seconds "$tool" bench -w -f qcow2 -c "$count" -d "$depth" -s 4096 -S "$step" "$work/e2.qcow2")
    row "4K write, QD$depth (allocating)" "$q" "$s" "$count"
    qemu-img check -q "$work/e2.qcow2" || echo "  (qemu-img check reported problems on Skiff's image)"
done
rm -f "$work/q.qcow2" "$work/s.qcow2"
q=$(seconds qemu-img convert -f raw -O qcow2 "$work/src.raw" "$work/q.qcow2")
s=$(seconds "$tool" image convert -f raw -O qcow2 "$work/src.raw" "$work/s.qcow2")
printf '%-34s %9.0fM %9.0fM %7.2fx   (MB/s of source)\n' "convert raw->qcow2 (${size_mib} MiB)" \
    "$(echo "$size_mib * 1.048576 / $q" | bc -l)" "$(echo "$size_mib * 1.048576 / $s" | bc -l)" "$(echo "$q / $s" | bc -l)"
qemu-img compare -q "$work/s.qcow2" "$work/src.raw" && qemu-img check -q "$work/s.qcow2" && echo "  Skiff's converted image: qemu-img compare identical, check clean"
echo
"$tool" chunk-bench 512
[ -n "${KEEP:-}" ] || rm -rf "$work"
