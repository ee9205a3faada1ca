#!/usr/bin/env python3
"""VMM start-up and memory overhead, Skiff beside QEMU.

For each VMM, boots the same small guest N times and reports:
  * start: time from exec() of the VMM to the first byte the guest writes on its serial port;
  * overhead: the monitor's resident memory outside the guest-RAM mapping, read from
    /proc/PID/smaps while the guest idles (a guest that prints and then halts forever).

Usage: bench/boot.py [--runs N] [--skiff PATH] [--qemu PATH]
Guests come from guests/build (run scripts/setup.sh first); the monitor is the release
skiff-vmm built with a static Swift runtime (bench/run.sh builds it).
"""
import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_MIB = 128


def first_byte_time(cmd, timeout=20.0):
    """Starts cmd and returns (seconds to first stdout byte, process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            proc.kill()
            raise RuntimeError(f"no serial output within {timeout}s from {' '.join(cmd)}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            if os.read(proc.stdout.fileno(), 1):
                return time.perf_counter() - start, proc
            proc.wait()
            raise RuntimeError(f"{cmd[0]} exited without output: {proc.stderr.read().decode(errors='replace')}")


def memory_outside_guest(pid, guest_bytes):
    """(RSS KiB, private KiB) in mappings other than the guest RAM mapping (the first one of
    at least guest size). Private memory is what each additional VM costs: shared library and
    binary text is shared between VMs."""
    rss = private = 0
    guest = None
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and "-" in parts[0] and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                current = parts[0]
                if guest is None and hi - lo >= guest_bytes:
                    guest = current
            elif current == guest:
                continue
            elif parts and parts[0] == "Rss:":
                rss += int(parts[1])
            elif parts and parts[0] in ("Private_Clean:", "Private_Dirty:"):
                private += int(parts[1])
    return rss, private


def stop(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def measure(name, cmd, runs):
    starts, overheads, privates = [], [], []
    for _ in range(runs):
        t, proc = first_byte_time(cmd)
        starts.append(t * 1000)
        time.sleep(0.3)  # let the guest reach its idle loop
        try:
            rss, private = memory_outside_guest(proc.pid, MEMORY_MIB << 20)
            overheads.append(rss / 1024)
            privates.append(private / 1024)
        finally:
            stop(proc)
    return {
        "name": name,
        "start_ms": statistics.median(starts),
        "start_min_ms": min(starts),
        "overhead_mib": statistics.median(overheads),
        "private_mib": statistics.median(privates),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--skiff", default=os.path.join(ROOT, ".build/release/skiff-vmm"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--guest", default=os.path.join(ROOT, "guests/build/idle.elf"))
    args = ap.parse_args()
    if not os.path.exists(args.skiff):
        sys.exit(f"{args.skiff} not found: run 'swift build -c release' first")
    if not os.path.exists(args.guest):
        sys.exit(f"{args.guest} not found: run scripts/setup.sh first")
    skiff_cmd = [args.skiff, "--kernel", args.guest, "--memory", f"{MEMORY_MIB}M"]
    qemu_cmd = [args.qemu, "-M", "microvm", "-enable-kvm", "-m", f"{MEMORY_MIB}M", "-nodefaults", "-no-user-config",
                "-nographic", "-display", "none", "-serial", "stdio", "-kernel", args.guest]
    results = [measure("skiff", skiff_cmd, args.runs), measure("qemu-microvm", qemu_cmd, args.runs)]
    print(f"guest: {os.path.relpath(args.guest, ROOT)}, {MEMORY_MIB} MiB, {args.runs} runs each (median)")
    print(f"{'vmm':<14}{'start→first byte (ms)':>24}{'min (ms)':>10}{'RSS beyond guest (MiB)':>25}{'private (MiB)':>15}")
    for r in results:
        print(f"{r['name']:<14}{r['start_ms']:>24.1f}{r['start_min_ms']:>10.1f}{r['overhead_mib']:>25.2f}{r['private_mib']:>15.2f}")
    s, q = results
    print(f"skiff/qemu: start {s['start_ms'] / q['start_ms']:.2f}x (goal <= 0.25x), "
          f"RSS beyond guest {s['overhead_mib'] / q['overhead_mib']:.2f}x (goal <= 5 MiB: {s['overhead_mib']:.2f} MiB), "
          f"private {s['private_mib'] / q['private_mib']:.2f}x")


if __name__ == "__main__":
    main()
