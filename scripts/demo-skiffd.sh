#!/usr/bin/env bash
# skiffd in a scratch directory: two VMs created from YAML specs, listed, one console
# attached (Ctrl-] detaches; without a terminal it is watched for five seconds), then both
# stopped and the daemon ended. Needs the release build (scripts/build-release.sh skiffd, which
# builds skiff-jailer too: run as root, the daemon confines each monitor in a jail of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SKIFF_BIN:-.build/release}"
dir="$(mktemp -d /tmp/skiff-demo-XXXXXX)"
export SKIFF_SOCKET="$dir/skiffd.sock"
"$bin/skiffd" --socket "$SKIFF_SOCKET" --data-dir "$dir/data" >"$dir/skiffd.log" 2>&1 &
daemon=$!
cleanup() {
    for vm in web1 batch1; do "$bin/skiff" delete "$vm" --force >/dev/null 2>&1 || true; done
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
[ -n "${SKIFF_DEMO_KEEP:-}" ] && trap - EXIT
for _ in $(seq 100); do [ -S "$SKIFF_SOCKET" ] && break; sleep 0.1; done

# Two specs: a heartbeat every 250 ms of guest time at high priority, restarted if it fails;
# an idle guest at low priority with its CPU time capped at a fifth of a CPU.
cat > "$dir/web1.yaml" <<YAML
name: web1
cpus: 1
memory: 64M
kernel: $PWD/guests/build/workload.elf
cmdline: dirty=0
qos: {class: high}
restart: on-failure
YAML
cat > "$dir/batch1.yaml" <<YAML
name: batch1
cpus: 1
memory: 32M
kernel: $PWD/guests/build/idle.elf
qos: {class: low, cpuLimit: 0.2}
restart: never
YAML
echo "== skiffd: skiff create -f web1.yaml --start; skiff create -f batch1.yaml --start"
"$bin/skiff" create -f "$dir/web1.yaml" --start
"$bin/skiff" create -f "$dir/batch1.yaml" --start
echo "== skiff list"
"$bin/skiff" list
echo "== skiff console web1 (Ctrl-] detaches; the VM keeps running)"
if [ -t 0 ]; then
    "$bin/skiff" console web1 || true
else
    timeout 5 "$bin/skiff" console web1 </dev/null || true
fi
echo
echo "== skiff stop web1 batch1 (ACPI power button, then a hard stop after the timeout)"
"$bin/skiff" stop web1 --timeout 1
"$bin/skiff" stop batch1 --timeout 1
"$bin/skiff" list
