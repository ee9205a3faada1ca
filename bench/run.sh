#!/usr/bin/env bash
# Builds the release monitor (static Swift runtime, as shipped) and runs the VMM benchmarks
# beside QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --static-swift-stdlib --product skiff-vmm
sync  # freshly written binaries count as dirty page cache in smaps otherwise
python3 bench/boot.py "$@"
