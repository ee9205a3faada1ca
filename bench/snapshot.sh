#!/usr/bin/env bash
# Snapshot, restore, migration and fork benchmarks beside QEMU (see bench/snapshot.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-release.sh
sync
python3 bench/snapshot.py "$@"
