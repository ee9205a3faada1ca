#!/usr/bin/env bash
# Host-side virtio-blk benchmark: builds skiff-virtio-bench (release) and runs it.
# It drives the real device (VirtioBlock behind its virtio-pci transport and worker thread)
# with a mock driver in host memory and prints, for 4 KiB random reads and writes on a raw
# image in the page cache, requests/s and bytes/s beside the file's own pread/pwrite rate,
# then the notify -> completion round trip (queue eventfd -> worker -> used ring -> vector
# eventfd) for a request without disk I/O (GET_ID) and a 4 KiB read.
#   bench/virtio-blk.sh [--dir DIR] [--size-mib N] [--seconds S] [--round-trips N]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product skiff-virtio-bench
exec .build/release/skiff-virtio-bench "$@"
