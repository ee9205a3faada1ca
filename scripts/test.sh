#!/usr/bin/env bash
# Runs Skiff's test suite: sets the machine up (packages, guest kit, Debian kernel), builds,
# and runs every test. KVM tests fail (not skip) when CI=true and /dev/kvm cannot be used.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The loader's real-kernel tests parse the kernel setup.sh downloaded.
export SKIFF_TEST_BZIMAGE="${SKIFF_TEST_BZIMAGE:-$PWD/artifacts/kernel/vmlinuz}"
export SKIFF_TEST_VMLINUX="${SKIFF_TEST_VMLINUX:-$PWD/artifacts/kernel/vmlinux}"
swift build --build-tests
swift test --skip-build "$@"
# Skipped when a filter or other swift-test arguments were given:
if [ "$#" -eq 0 ]; then
    # The generated API code matches the OpenAPI document, and a running skiffd's responses
    # conform to it (schemathesis: status codes, content types, bodies; docs/skiffd.md).
    scripts/check-api.sh
    scripts/check-api-conformance.sh
    # Every fuzz target for a few seconds from the committed seeds (docs/fuzzing.md).
    scripts/fuzz.sh --smoke "${SKIFF_FUZZ_SMOKE_SECONDS:-10}"
fi
