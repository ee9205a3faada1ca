#!/usr/bin/env bash
# Fuzzes Skiff's parsers with libFuzzer (ASan + coverage), one harness per target.
#
#   scripts/fuzz.sh --list                      the targets
#   scripts/fuzz.sh TARGET SECONDS [ARGS...]    fuzz one target (extra libFuzzer ARGS, e.g. -jobs=2)
#   scripts/fuzz.sh --smoke SECONDS             every target for SECONDS each (what CI runs)
#   scripts/fuzz.sh --merge TARGET              minimize the working corpus into fuzz/corpus/TARGET
#
# Seeds come from fuzz/corpus/TARGET and inputs that once crashed from fuzz/regressions/TARGET;
# new inputs go to a working corpus under fuzz/.build/work/TARGET (not committed), crashes to
# fuzz/.build/artifacts/TARGET/. The last line of each run is a summary (executions, coverage).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fuzz=$root/fuzz
work=$fuzz/.build/work
artifacts=$fuzz/.build/artifacts
export SWIFT_BACKTRACE=enable=no   # libFuzzer prints the stack; the Swift backtracer would only slow crashes down

targets() {
    ls "$fuzz/corpus"
}

# Largest input per target: images need room, the others are streams of small operations.
max_len() {
    case "$1" in
        qcow2|loader) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

build() {
    local runtime
    # libFuzzer without its main(): SwiftPM gives the executable a main of its own, which hands
    # over to LLVMFuzzerRunDriver. The library ships with the Swift toolchain's clang.
    runtime=$(ls "$(dirname "$(readlink -f "$(command -v swiftc)")")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1)
    if [ -z "$runtime" ]; then
        echo "fuzz: libclang_rt.fuzzer_no_main-x86_64.a not found next to swiftc" >&2
        exit 1
    fi
    echo "fuzz: building the fuzzer (release, ASan, coverage)" >&2
    swift build --package-path "$fuzz" -c release \
        -Xswiftc -sanitize=address \
        -Xswiftc -sanitize-coverage=edge,indirect-calls,trace-cmp,inline-8bit-counters,pc-table \
        -Xlinker "$runtime" -Xlinker -lstdc++ 2>&1 | grep -v "Cannot export local symbol" >&2
    binary=$(swift build --package-path "$fuzz" -c release --show-bin-path)/skiff-fuzz
}

# run TARGET SECONDS [ARGS...]: fuzzes; prints the summary line; returns libFuzzer's status.
run() {
    local target=$1 seconds=$2
    shift 2
    [ -d "$fuzz/corpus/$target" ] || { echo "fuzz: unknown target '$target' (scripts/fuzz.sh --list)" >&2; return 2; }
    mkdir -p "$work/$target" "$artifacts/$target"
    local dirs=("$work/$target" "$fuzz/corpus/$target")
    [ -d "$fuzz/regressions/$target" ] && dirs+=("$fuzz/regressions/$target")
    local log=$artifacts/$target/last.log
    local status=0
    SKIFF_FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$target/" "$@" "${dirs[@]}" >"$log" 2>&1 || status=$?
    local execs cov ft corpus
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED after ${execs:-?} executions (status $status); log $log" >&2
        grep -E "ERROR|invariant violated|Fatal error|Test unit written" "$log" | head -5 >&2 || true
        return "$status"
    fi
    printf 'fuzz: %-13s %6ss %10s executions  cov %6s  ft %6s  corpus %5s  no crash\n' "$target" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}"
}

case "${1:-}" in
    --list)
        targets
        ;;
    --smoke)
        seconds=${2:?usage: scripts/fuzz.sh --smoke SECONDS}
        build
        failed=0
        for t in $(targets); do
            run "$t" "$seconds" || failed=1
        done
        exit $failed
        ;;
    --merge)
        target=${2:?usage: scripts/fuzz.sh --merge TARGET}
        build
        mkdir -p "$work/$target"
        SKIFF_FUZZ_TARGET=$target "$binary" -merge=1 -max_len="$(max_len "$target")" "$fuzz/corpus/$target" "$work/$target"
        ;;
    ""|-h|--help)
        sed -n '2,12p' "$0"
        ;;
    *)
        target=$1
        seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]}
        shift 2
        build
        run "$target" "$seconds" "$@"
        ;;
esac
