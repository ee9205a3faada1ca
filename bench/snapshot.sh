#!/usr/bin/env bash
# Snapshot, restore, migration and fork benchmarks beside QEMU (see bench/snapshot.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --static-swift-stdlib --product skiff-vmm
swift build -c release --product skiff
sync
python3 bench/snapshot.py "$@"
