#!/usr/bin/env bash
# Builds Skiff and its tests with ThreadSanitizer or AddressSanitizer (each in its own scratch
# path) and runs the suites that can run under it; see docs/sanitizers.md for what is left out
# and why. A sanitizer report from the test runner or from any skiff/skiff-vmm it starts fails
# the run; reports are collected under <scratch>/reports and printed at the end.
#
#   scripts/sanitize.sh thread|address [swift test arguments, e.g. --filter VirtioTests]
#
# Every suite runs (or those the arguments select) except the tests docs/sanitizers.md lists
# for the sanitizer. SKIFF_SANITIZE_SKIP_BUILD=1 reuses the last build.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/sanitize.sh thread|address [swift test arguments]" >&2; exit 64; }
[ "$#" -ge 1 ] || usage
kind="$1"
shift

# Tests that cannot run under each sanitizer (regular expressions for `swift test --skip`);
# the reasons are in docs/sanitizers.md. SKIFF_SANITIZE_NO_SKIP=1 runs them anyway.
# Both sanitizers: tests that read the monitor's memory layout or RSS (the sanitizer's shadow
# memory is the largest mapping and counts in RSS), boot a stock Linux kernel against a clock,
# or hold the monitor to rates within 10-20 % (an instrumented monitor is 2-15x slower).
common_skips=(
    'MonitorCLITests/ksmCoversGuestRAMUnlessTurnedOff'
    'BalloonCLITests/theControlSocketInflatesAndDeflatesARunningVM'
    'LinuxBootTests'
    'RateLimitGuestTests'
    'MonitorCLITests/theClientSetsRateLimitsAndReadsDeviceCounters'
    'NetRateLimitTests'
    # Jailed monitors: the jailer passes a monitor only SKIFF_* variables (no sanitizer options)
    # and its jail has no reports directory, so a report from inside would be lost. The daemon
    # suites run their monitors unjailed instead (SKIFF_TEST_JAILER=off below).
    'JailSystemTests'
    'SkiffdTests.JailTests'
)
case "$kind" in
thread)
    scratch=.build-tsan
    # halt_on_error: the first race fails the process (and so the test) instead of scrolling by.
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 log_path=$PWD/$scratch/reports/tsan ${TSAN_OPTIONS:-}"
    skips=(
        "${common_skips[@]}"
        # Counts SIGKILLs that land after a flush within a fixed time; TSan's writer is too slow.
        'CrashConsistencyTests/sigkillAtFiftyRandomPointsLeavesNoCorruption'
    )
    ;;
address)
    scratch=.build-asan
    export ASAN_OPTIONS="halt_on_error=1 detect_stack_use_after_return=1 strict_string_checks=1 exitcode=66 log_path=$PWD/$scratch/reports/asan ${ASAN_OPTIONS:-}"
    # Leaks are checked at every exit; the only exceptions are leaks inside toolchain libraries
    # and third-party packages (scripts/lsan-external.supp).
    export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-external.supp print_suppressions=0 ${LSAN_OPTIONS:-}"
    skips=("${common_skips[@]}")
    ;;
*) usage ;;
esac

# Test data: the guest kit, and the Debian kernel the loader and Linux tests use.
[ -f guests/Makefile ] && make -s -C guests
export SKIFF_TEST_BZIMAGE="${SKIFF_TEST_BZIMAGE:-$PWD/artifacts/kernel/vmlinuz}"
export SKIFF_TEST_VMLINUX="${SKIFF_TEST_VMLINUX:-$PWD/artifacts/kernel/vmlinux}"

if [ "${SKIFF_SANITIZE_SKIP_BUILD:-0}" != 1 ]; then
    swift build --build-tests --scratch-path "$scratch" --sanitize="$kind"
fi
# The CLI tests start the executables of this build, not .build/debug's.
export SKIFF_TEST_JAILER=off
# SeccompFilterTests checks that the sanitizer runtime's calls are allowed in this build only.
export SKIFF_SANITIZER="$kind"
export SKIFF_BIN_DIR
SKIFF_BIN_DIR="$(swift build --show-bin-path --scratch-path "$scratch" --sanitize="$kind")"

rm -rf "$scratch/reports"
mkdir -p "$scratch/reports"

args=("$@")
if [ "${SKIFF_SANITIZE_NO_SKIP:-0}" != 1 ]; then
    for s in "${skips[@]}"; do args+=(--skip "$s"); done
fi
status=0
swift test --skip-build --scratch-path "$scratch" --sanitize="$kind" ${args[@]+"${args[@]}"} || status=$?

reports=$(find "$scratch/reports" -type f | sort)
if [ -n "$reports" ]; then
    echo "sanitize: $kind sanitizer reports:" >&2
    for r in $reports; do
        echo "--- $r" >&2
        cat "$r" >&2
    done
    [ "$status" -ne 0 ] || status=66
fi
echo "sanitize: $kind: swift test exited $status, $(echo -n "$reports" | grep -c . || true) report file(s)" >&2
exit "$status"
