#!/usr/bin/env bash
# Builds the release binaries as shipped: fully static executables. A static, non-PIE binary
# starts without the dynamic loader and its ~46,000 relocations: exec -> main is ~0.7 ms
# instead of ~2.2 ms, which is most of a restore's budget (docs/snapshots.md).
set -euo pipefail
cd "$(dirname "$0")/.."
products=(skiff-vmm skiff "$@")
# skiffd runs its monitors through skiff-jailer when it finds one beside it (docs/skiffd.md):
# build the jailer with the daemon, or a release daemon would run its monitors unconfined.
for p in "$@"; do [ "$p" = skiffd ] && products+=(skiff-jailer); done
for product in "${products[@]}"; do
    swift build -c release -Xswiftc -static-executable --product "$product"
done
