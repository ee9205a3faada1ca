#!/usr/bin/env python3
"""Snapshots, restore, live migration and fork density: Skiff beside QEMU, same guest, same run.

Every measurement runs the guest kit's multiboot workload (guests/src/workload.c), which
mutates pages of its working set and prints `WL seq=` progress lines:

  snapshot  a 256 MiB guest whose workload has touched its working set is written to disk
            (Skiff: `skiff snapshot create`, atomic and fsynced; QEMU: QMP `migrate` to
            "exec:cat > FILE", not fsynced) and restored (Skiff: `skiff-vmm --restore`;
            QEMU: `-incoming "exec:cat FILE"`). Reported: create time, file size, restore
            time from exec() to the first guest output line, and for Skiff exec() to the
            vCPUs running.
  migrate   the same guest moved over loopback TCP to a second process on this host at guest
            dirty rates 0, 10 and 100 MB/s (Skiff: `skiff migrate`; QEMU: QMP `migrate` with
            downtime-limit 50 ms). Reported: total time, downtime, bytes sent.
  fork      N VMs restored from one snapshot (`skiff fork`), memory measured as the sum of
            the monitors' PSS (shared pages counted once across them).
  forkmig   a VM restored from a snapshot, whose workload then changes part of a 13 MiB
            working set (about 5 % of its RAM), migrated to a target that holds the same
            snapshot (only pages that differ from it travel) and to one that does not.
            QEMU has no counterpart (it sends every non-zero page).

Usage: bench/snapshot.py [--runs N] [--only snapshot,migrate,fork,forkmig] [--forks 1,10,100]
Needs a release build (bench/snapshot.sh builds one), qemu-system-x86_64 and /dev/kvm.
Guest code runs at emulation speed on instruction-emulating hosts; the VMM-side times are
what this measures.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST = os.path.join(ROOT, "guests/build/workload.elf")
MEMORY_MIB = 256
WORKING_SET_MIB = 64


def skiff_bin(name):
    return os.path.join(ROOT, ".build/release", name)


def exec_stamp():
    """bench/tools/exec-stamp, built on first use: stamps the clock right before exec()."""
    tool = os.path.join(ROOT, ".build/exec-stamp")
    source = os.path.join(ROOT, "bench/tools/exec-stamp.c")
    if not os.path.exists(tool) or os.path.getmtime(tool) < os.path.getmtime(source):
        subprocess.run(["gcc", "-O2", "-o", tool, source], check=True)
    return tool


def wait_for(path, needle, timeout=120, start=0):
    """Waits until the file at `path` contains `needle` after byte `start`; returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if needle.encode() in f.read():
                    return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{needle!r} did not appear in {path} within {timeout}s")


def file_size(path):
    return os.stat(path).st_size


def disk_usage(path):
    return os.stat(path).st_blocks * 512


class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.file = self.sock.makefile("rw")
        self.events = []
        json.loads(self.file.readline())
        self.execute("qmp_capabilities")

    def execute(self, command, **arguments):
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def wait_migration(self, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            time.sleep(0.005)
        raise RuntimeError("QEMU migration did not finish")


def qemu_cmd(console, qmp_path, cmdline, incoming=None):
    cmd = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64", "-accel", "kvm", "-M", "pc", "-m", str(MEMORY_MIB), "-display", "none", "-monitor", "none",
           "-net", "none", "-serial", f"file:{console}", "-qmp", f"unix:{qmp_path},server=on,wait=off",
           "-kernel", GUEST, "-append", cmdline]
    if incoming:
        cmd += ["-incoming", incoming]
    return cmd


def workload_cmdline(dirty):
    return f"mib={WORKING_SET_MIB} report=2000 dirty={dirty} wait=hlt"


def start_skiff(work, name, args, env=None):
    console = os.path.join(work, f"{name}.out")
    err = os.path.join(work, f"{name}.err")
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=open(console, "wb"), stderr=open(err, "wb"), env=full_env)
    return proc, console, err


def stop(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def run_snapshot(work, runs):
    """(skiff, qemu) dicts of medians."""
    skiff = {"create_ms": [], "size": [], "allocated": [], "restore_vcpu_ms": [], "restore_line_ms": []}
    qemu = {"create_ms": [], "size": [], "allocated": [], "restore_line_ms": []}
    cmdline = workload_cmdline("max")
    for run in range(runs):
        d = os.path.join(work, f"snap{run}")
        os.makedirs(d)
        api = os.path.join(d, "api.sock")
        src, console, _ = start_skiff(d, "src", [skiff_bin("skiff-vmm"), "--kernel", GUEST, "--memory", f"{MEMORY_MIB}M",
                                                  "--cmdline", cmdline, "--api-socket", api])
        wait_for(console, "WL seq=20000 ")
        t0 = time.monotonic()
        out = subprocess.run([skiff_bin("skiff"), "snapshot", "create", "--api-socket", api, os.path.join(d, "s"), "--stop"],
                             capture_output=True, text=True)
        skiff["create_ms"].append((time.monotonic() - t0) * 1000)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        src.wait()
        skiff["size"].append(file_size(os.path.join(d, "s/memory")) + file_size(os.path.join(d, "s/state")))
        skiff["allocated"].append(disk_usage(os.path.join(d, "s/memory")) + disk_usage(os.path.join(d, "s/state")))
        os.system("sync")
        dst, console2, err2 = start_skiff(d, "dst", [exec_stamp(), skiff_bin("skiff-vmm"), "--restore", os.path.join(d, "s")],
                                          {"SKIFF_TRACE_START": "1"})
        line = wait_for(console2, "WL seq=")
        wait_for(err2, "vcpus-start")
        err_text = open(err2).read()
        t0 = int(err_text.split("exec-ns=")[1].split()[0])
        started = int(err_text.split("monotonic-ns=")[1].split()[0])
        skiff["restore_vcpu_ms"].append((started - t0) / 1e6)
        skiff["restore_line_ms"].append((line * 1e9 - t0) / 1e6)
        stop(dst)

        qconsole = os.path.join(d, "qemu-src.out")
        qmp_path = os.path.join(d, "qmp-src.sock")
        q = subprocess.Popen(qemu_cmd(qconsole, qmp_path, cmdline), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        qmp = QMP(qmp_path)
        wait_for(qconsole, "WL seq=20000 ")
        state = os.path.join(d, "qemu.state")
        t0 = time.monotonic()
        qmp.execute("migrate", uri=f"exec:cat > {state}")
        info = qmp.wait_migration()
        qemu["create_ms"].append((time.monotonic() - t0) * 1000)
        if info.get("status") != "completed":
            raise RuntimeError(f"QEMU save: {info}")
        stop(q)
        qemu["size"].append(file_size(state))
        qemu["allocated"].append(disk_usage(state))
        os.system("sync")
        qconsole2 = os.path.join(d, "qemu-dst.out")
        qerr = os.path.join(d, "qemu-dst.err")
        q2 = subprocess.Popen([exec_stamp()] + qemu_cmd(qconsole2, os.path.join(d, "qmp-dst.sock"), cmdline, incoming=f"exec:cat {state}"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(qerr, "wb"))
        line = wait_for(qconsole2, "WL seq=")
        t0 = int(open(qerr).read().split("exec-ns=")[1].split()[0])
        qemu["restore_line_ms"].append((line * 1e9 - t0) / 1e6)
        stop(q2)
        shutil.rmtree(d)
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    return {k: med(v) for k, v in skiff.items()}, {k: med(v) for k, v in qemu.items()}


def run_migration(work, dirty_kib, port):
    """One Skiff and one QEMU migration at a dirty rate; returns (skiff, qemu) dicts."""
    d = os.path.join(work, f"mig{dirty_kib}")
    os.makedirs(d)
    cmdline = workload_cmdline(dirty_kib if dirty_kib else 0)
    api = os.path.join(d, "api.sock")
    dst, dconsole, _ = start_skiff(d, "dst", [skiff_bin("skiff-vmm"), "--incoming", f"tcp://127.0.0.1:{port}"])
    src, console, _ = start_skiff(d, "src", [skiff_bin("skiff-vmm"), "--kernel", GUEST, "--memory", f"{MEMORY_MIB}M",
                                             "--cmdline", cmdline, "--api-socket", api])
    wait_for(console, "WL tsc-khz=")
    time.sleep(3)
    out = subprocess.run([skiff_bin("skiff"), "migrate", "--api-socket", api, f"tcp://127.0.0.1:{port}", "--max-downtime", "50",
                          "--output", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    p = json.loads(out.stdout)
    skiff = {"total_ms": p["totalMilliseconds"], "downtime_ms": p.get("downtimeMilliseconds", float("nan")),
             "bytes": p["bytesSent"], "rounds": p["rounds"], "throttle": p["throttlePercent"],
             "dirty_mbs": p.get("dirtyRate", 0) * 4096 / 1e6}
    src.wait(timeout=30)
    stop(dst)

    qport = port + 1
    qdst_console = os.path.join(d, "qemu-dst.out")
    qdst = subprocess.Popen(qemu_cmd(qdst_console, os.path.join(d, "qmp-dst.sock"), cmdline, incoming=f"tcp:127.0.0.1:{qport}"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qconsole = os.path.join(d, "qemu-src.out")
    qsrc = subprocess.Popen(qemu_cmd(qconsole, os.path.join(d, "qmp-src.sock"), cmdline),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qmp = QMP(os.path.join(d, "qmp-src.sock"))
    wait_for(qconsole, "WL tsc-khz=")
    time.sleep(3)
    qmp.execute("migrate-set-parameters", **{"downtime-limit": 50})
    qmp.execute("migrate-set-capabilities", capabilities=[{"capability": "auto-converge", "state": True}])
    qmp.execute("migrate", uri=f"tcp:127.0.0.1:{qport}")
    info = qmp.wait_migration()
    ram = info.get("ram", {})
    qemu = {"total_ms": info.get("total-time", float("nan")), "downtime_ms": info.get("downtime", float("nan")),
            "bytes": ram.get("transferred", 0), "rounds": ram.get("dirty-sync-count", 0), "status": info.get("status"),
            "dirty_mbs": ram.get("dirty-pages-rate", 0) * 4096 / 1e6}
    stop(qsrc)
    stop(qdst)
    shutil.rmtree(d)
    return skiff, qemu


def run_fork_migration(work, port):
    """Bytes a restored VM's migration sends with and without the base snapshot on the target."""
    d = os.path.join(work, "forkmig")
    os.makedirs(d)
    api = os.path.join(d, "api.sock")
    src, console, _ = start_skiff(d, "src", [skiff_bin("skiff-vmm"), "--kernel", GUEST, "--memory", f"{MEMORY_MIB}M",
                                             "--cmdline", "mib=13 report=200 wait=hlt", "--api-socket", api])
    wait_for(console, "WL seq=200 ")
    snap = os.path.join(d, "s")
    subprocess.run([skiff_bin("skiff"), "snapshot", "create", "--api-socket", api, snap, "--stop"], check=True, capture_output=True)
    src.wait()
    results = {}
    for with_base in (True, False):
        fapi = os.path.join(d, f"fork-{with_base}.sock")
        fork, fconsole, _ = start_skiff(d, f"fork-{with_base}", [skiff_bin("skiff-vmm"), "--restore", snap, "--api-socket", fapi])
        wait_for(fconsole, "WL seq=4000 ")
        extra = [] if with_base else ["--incoming-base", os.path.join(d, "nowhere")]
        dst, _, _ = start_skiff(d, f"dst-{with_base}", [skiff_bin("skiff-vmm"), "--incoming", f"tcp://127.0.0.1:{port}"] + extra)
        time.sleep(0.3)
        out = subprocess.run([skiff_bin("skiff"), "migrate", "--api-socket", fapi, f"tcp://127.0.0.1:{port}", "--output", "json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        results[with_base] = json.loads(out.stdout)
        fork.wait(timeout=30)
        stop(dst)
        port += 1
    shutil.rmtree(d)
    return results[True], results[False]


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def run_fork(work, counts):
    d = os.path.join(work, "fork")
    os.makedirs(d)
    api = os.path.join(d, "api.sock")
    src, console, _ = start_skiff(d, "src", [skiff_bin("skiff-vmm"), "--kernel", GUEST, "--memory", f"{MEMORY_MIB}M",
                                             "--cmdline", f"mib={WORKING_SET_MIB} report=2000 dirty=0 wait=hlt", "--api-socket", api])
    wait_for(console, "WL heartbeat n=2")
    subprocess.run([skiff_bin("skiff"), "snapshot", "create", "--api-socket", api, os.path.join(d, "s"), "--stop"], check=True,
                   capture_output=True)
    src.wait()
    results = []
    for n in counts:
        out = subprocess.run([skiff_bin("skiff"), "fork", os.path.join(d, "s"), "--count", str(n), "--dir", os.path.join(d, f"f{n}"),
                              "--monitor", skiff_bin("skiff-vmm")], capture_output=True, text=True, timeout=600)
        pids = [int(l.split()[3].rstrip(",")) for l in out.stdout.splitlines() if l.startswith("fork ")]
        if out.returncode != 0 or len(pids) != n:
            raise RuntimeError(f"fork {n}: {out.stderr}")
        time.sleep(2)
        total = sum(pss_kib(p) for p in pids)
        rss = 0
        for p in pids:
            with open(f"/proc/{p}/status") as f:
                rss += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        results.append((n, total / 1024, rss / 1024))
        for p in pids:
            os.kill(p, signal.SIGKILL)
        time.sleep(0.5)
    shutil.rmtree(d)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="snapshot,migrate,fork,forkmig")
    parser.add_argument("--forks", default="1,10,100")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="skiff-bench-")
    try:
        if "snapshot" in only:
            s, q = run_snapshot(work, args.runs)
            print(f"snapshot of a {MEMORY_MIB} MiB guest ({WORKING_SET_MIB} MiB working set), median of {args.runs}:")
            print(f"  create:  skiff {s['create_ms']:8.1f} ms (fsynced)   qemu {q['create_ms']:8.1f} ms (not fsynced)")
            print(f"  size:    skiff {s['size'] / 2**20:8.1f} MiB ({s['allocated'] / 2**20:.1f} MiB on disk, sparse)   qemu {q['size'] / 2**20:8.1f} MiB")
            print(f"  restore: skiff {s['restore_line_ms']:8.1f} ms to the first guest line ({s['restore_vcpu_ms']:.2f} ms exec -> vCPUs running)"
                  f"   qemu {q['restore_line_ms']:8.1f} ms to the first guest line")
        if "migrate" in only:
            print(f"live migration of a {MEMORY_MIB} MiB guest over loopback TCP, max downtime 50 ms:")
            for i, rate in enumerate([0, 10 * 1024, 100 * 1024]):
                s, q = run_migration(work, rate, 47000 + 10 * i)
                print(f"  dirty {rate // 1024:3d} MB/s asked: skiff total {s['total_ms']:7.1f} ms, downtime {s['downtime_ms']:5.1f} ms, "
                      f"{s['bytes'] / 2**20:5.1f} MiB, {s['rounds']} rounds, guest dirtied {s['dirty_mbs']:5.1f} MB/s, throttle {s['throttle']}%   |   "
                      f"qemu total {q['total_ms']:7.1f} ms, downtime {q['downtime_ms']:5.1f} ms, {q['bytes'] / 2**20:5.1f} MiB, "
                      f"{q['rounds']} syncs, guest dirtied {q['dirty_mbs']:5.1f} MB/s ({q['status']})")
        if "fork" in only:
            print(f"fork density: VMs restored from one {MEMORY_MIB} MiB snapshot ({WORKING_SET_MIB} MiB working set), idle:")
            for n, pss, rss in run_fork(work, [int(x) for x in args.forks.split(",")]):
                print(f"  {n:4d} forks: {pss:8.1f} MiB PSS total ({pss / n:6.2f} MiB per VM), RSS sum {rss:8.1f} MiB")
        if "forkmig" in only:
            b, n = run_fork_migration(work, 47100)
            pages = MEMORY_MIB * 256
            print(f"migration of a VM restored from a snapshot ({MEMORY_MIB} MiB; {100 * b['pagesSent'] / pages:.1f} % of its pages "
                  f"differ from the snapshot when it moves):")
            print(f"  target holds the snapshot: {b['bytesSent'] / 2**20:6.2f} MiB sent, {b['pagesSent']} pages, "
                  f"{b['pagesSkippedByBase']} skipped, downtime {b.get('downtimeMilliseconds', float('nan')):.1f} ms")
            print(f"  target does not:           {n['bytesSent'] / 2**20:6.2f} MiB sent, {n['pagesSent']} pages, "
                  f"downtime {n.get('downtimeMilliseconds', float('nan')):.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
