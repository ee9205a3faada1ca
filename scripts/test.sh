#!/usr/bin/env bash
# Runs Skiff's test suite: sets the machine up (packages, guest kit, Debian kernel), builds,
# and runs every test. KVM tests fail (not skip) when CI=true and /dev/kvm cannot be used.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
