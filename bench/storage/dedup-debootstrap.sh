#!/usr/bin/env bash
# Opt-in: de-duplication ratio of the Skiff store on two Debian root file systems built with debootstrap
# (minbase, and minbase plus a few packages), against fixed 64 KiB blocks. Needs root, network access to
# a Debian mirror, and: apt-get install debootstrap e2fsprogs
# Usage: bench/storage/dedup-debootstrap.sh [WORKDIR] [SUITE] [MIRROR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/var/tmp/skiff-dedup}
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}
extra=${EXTRA_PACKAGES:-openssh-server,curl,less,vim-tiny,iproute2}
mkdir -p "$work"
(cd "$root" && swift build -c release --product skiff-storage-stress >/dev/null)
tool="$root/.build/release/skiff-storage-stress"

[ -d "$work/minbase" ] || debootstrap --variant=minbase "$suite" "$work/minbase" "$mirror"
[ -d "$work/plus" ] || debootstrap --variant=minbase --include="$extra" "$suite" "$work/plus" "$mirror"
for name in minbase plus; do
    rm -f "$work/$name.raw"
    mkfs.ext4 -q -F -d "$work/$name" -E root_owner=0:0 "$work/$name.raw" 2G
done
rm -rf "$work/store"
for avg in 16K 64K; do
    rm -rf "$work/store-$avg"
    for name in minbase plus; do
        "$tool" image import --store "$work/store-$avg" --chunk-size "$avg" -f raw "$work/$name.raw" "$name" >/dev/null
    done
    echo "Skiff store, FastCDC average $avg:"
    "$tool" image list --store "$work/store-$avg"
done
python3 - "$work/minbase.raw" "$work/plus.raw" <<'PY'
import hashlib, sys
block = 64 << 10
seen, logical, stored, zero = set(), 0, 0, bytes(block)
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        while (b := f.read(block)):
            logical += len(b)
            if b == zero[:len(b)]:
                continue
            h = hashlib.sha256(b).digest()
            if h not in seen:
                seen.add(h); stored += len(b)
print(f"fixed 64 KiB blocks: logical {logical/2**20:.0f} MiB, stored {stored/2**20:.1f} MiB, ratio {logical/stored:.2f}")
PY
