#!/usr/bin/env bash
# Builds the release binaries (static executables, as shipped) and runs the VMM benchmarks
# beside QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-release.sh
sync  # freshly written binaries count as dirty page cache in smaps otherwise
python3 bench/boot.py "$@"
