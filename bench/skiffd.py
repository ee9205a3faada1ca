#!/usr/bin/env python3
"""skiffd benchmarks, through the REST API on the daemon's unix socket.

  bench/skiffd.py launch [--vms N] [--memory 64M] [--jailer auto|on|off]   create -> first serial byte, VMs/s per core,
                                                     API p50/p99 under that load, monitor PSS beyond guest RAM
  bench/skiffd.py density [--ratio 2] [--memory 512M] [--max N]
                                                     idle VMs as admission allows at RAM ratio R;
                                                     host memory used with KSM off, then on

Starts its own skiffd on a scratch directory. Without --bin it builds the release binaries as
shipped (scripts/build-release.sh skiffd: static executables) and uses .build/release; --bin DIR
takes skiffd and skiff-vmm from DIR instead, --monitor PATH another skiff-vmm.
"""
import argparse, http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock, method, path, body=None):
    c = UnixHTTP(sock)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class Daemon:
    def __init__(self, bindir, extra, monitor=None):
        self.dir = tempfile.mkdtemp(prefix="skb-", dir="/tmp")
        self.sock = os.path.join(self.dir, "s.sock")
        self.log = open(os.path.join(self.dir, "skiffd.log"), "w")
        self.proc = subprocess.Popen([os.path.join(bindir, "skiffd"), "--socket", self.sock, "--data-dir", self.dir + "/data",
                                      "--run-dir", self.dir + "/run", "--monitor", monitor or os.path.join(bindir, "skiff-vmm"),
                                      "--no-auto-balloon"] + extra, stdout=self.log, stderr=self.log)
        for _ in range(300):
            try:
                if call(self.sock, "GET", "/vms")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("skiffd did not start: " + open(self.log.name).read()[-2000:])

    def stop(self):
        for vm in json.loads(call(self.sock, "GET", "/vms")[1]):
            if vm.get("pid"):
                try:
                    os.kill(vm["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.kill()
        self.proc.wait()
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def pss_beyond_guest(pid, guest_bytes):
    """PSS of the monitor less the PSS of its guest RAM mapping (the anonymous mapping of guest size)."""
    total = guest = 0
    size = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and "-" in parts[0] and not parts[0].endswith(":"):
                a, b = (int(x, 16) for x in parts[0].split("-"))
                size = b - a
            elif parts[0] == "Pss:":
                kb = int(parts[1]) * 1024
                total += kb
                if size is not None and size >= guest_bytes:
                    guest += kb
    return total - guest


def launch(args):
    d = Daemon(args.bin, ["--cpu-ratio", "64", "--memory-ratio", "4", "--jailer", args.jailer], args.monitor)
    kernel = os.path.join(ROOT, "guests/build/idle.elf")
    cores = os.cpu_count()
    try:
        # 1. Create -> first serial byte, one VM at a time.
        firsts = []
        for i in range(args.samples):
            name = f"first{i}"
            t0 = time.monotonic()
            s, body = call(d.sock, "POST", "/vms?start=true", {"name": name, "kernel": kernel, "memory": args.memory})
            assert s == 201, body
            while True:
                s, log = call(d.sock, "GET", f"/vms/{name}/console/log?bytes=64")
                if log:
                    break
                time.sleep(0.001)
            firsts.append((time.monotonic() - t0) * 1000)
            call(d.sock, "DELETE", f"/vms/{name}?force=true")
        # 2. N VMs launched concurrently, while readers measure API latency.
        latencies = []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                t = time.monotonic()
                call(d.sock, "GET", "/vms/first0")  # a 404: the handler path without the VM list's size
                latencies.append((time.monotonic() - t) * 1000)

        readers = [threading.Thread(target=reader) for _ in range(4)]
        for r in readers:
            r.start()
        errors = []

        def start(i):
            s, body = call(d.sock, "POST", "/vms?start=true", {"name": f"vm{i}", "kernel": kernel, "memory": args.memory})
            if s != 201:
                errors.append(body)

        t0 = time.monotonic()
        workers = [threading.Thread(target=start, args=(i,)) for i in range(args.vms)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - t0
        stop.set()
        for r in readers:
            r.join()
        # 3. Monitor memory beyond guest RAM.
        guest = int(args.memory[:-1]) << {"K": 10, "M": 20, "G": 30}[args.memory[-1]]
        vms = json.loads(call(d.sock, "GET", "/vms")[1])
        pss = [pss_beyond_guest(v["pid"], guest) / 1048576 for v in vms if v.get("pid")]
        print(f"create -> first serial byte via the API: median {statistics.median(firsts):.1f} ms, "
              f"p90 {percentile(firsts, 90):.1f} ms (n={len(firsts)})")
        print(f"{args.vms} VMs launched concurrently in {elapsed:.2f} s: {args.vms / elapsed:.1f} VMs/s, "
              f"{args.vms / elapsed / cores:.1f} VMs/s per core ({cores} cores); errors {len(errors)}")
        print(f"API latency under that load: p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms (n={len(latencies)})")
        print(f"monitor PSS beyond guest RAM: median {statistics.median(pss):.2f} MiB, max {max(pss):.2f} MiB (n={len(pss)})")
    finally:
        d.stop()


def meminfo():
    m = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            m[k] = int(v.split()[0]) * 1024
    return m


def ksm(value):
    """Writes /sys/kernel/mm/ksm/run ("0" stop, "1" run, "2" unmerge); returns the old value."""
    try:
        with open("/sys/kernel/mm/ksm/run") as f:
            old = f.read().strip()
        with open("/sys/kernel/mm/ksm/run", "w") as f:
            f.write(value)
        return old
    except OSError as e:
        print("cannot set KSM:", e)
        return None


def monitors_pss(sock):
    """Sum of the monitors' PSS (/proc/PID/smaps_rollup): what the VMs cost the host, with pages
    KSM merged split between the processes that share them. Unlike MemAvailable it ignores
    what other programs on the host do meanwhile."""
    total = 0
    for vm in json.loads(call(sock, "GET", "/vms")[1]):
        if not vm.get("pid"):
            continue
        try:
            with open(f"/proc/{vm['pid']}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def density(args):
    d = Daemon(args.bin, ["--memory-ratio", str(args.ratio), "--cpu-ratio", "1000", "--reserved-memory", "1024", "--jailer", args.jailer], args.monitor)
    original = None
    kernel = os.path.join(ROOT, "guests/build", args.guest)
    tuning = {"/sys/kernel/mm/ksm/pages_to_scan": "2000", "/sys/kernel/mm/ksm/sleep_millisecs": "20"}
    saved = {}
    try:
        original = ksm("2")
        saved = {f: open(f).read().strip() for f in tuning}
        base = meminfo()["MemAvailable"]
        n = 0
        while n < args.max:
            s, body = call(d.sock, "POST", "/vms?start=true", {"name": f"d{n}", "kernel": kernel, "memory": args.memory,
                                                               "qos": {"class": ["low", "normal", "high"][n % 3]}})
            if s != 201:
                print("admission stopped at", n, "VMs:", json.loads(body).get("message"))
                break
            n += 1
        time.sleep(args.settle)
        used_off = base - meminfo()["MemAvailable"]
        pss_off = monitors_pss(d.sock)
        for f, v in tuning.items():
            with open(f, "w") as out:
                out.write(v)
        ksm("1")
        time.sleep(args.ksm_wait)
        used_on = base - meminfo()["MemAvailable"]
        pss_on = monitors_pss(d.sock)
        shared = int(open("/sys/kernel/mm/ksm/pages_sharing").read()) * 4096
        s, host = call(d.sock, "GET", "/host")
        host = json.loads(host)
        print(f"host: {host['memoryBytes'] / 1048576:.0f} MiB RAM, {host['allocatedMemoryBytes'] / 1048576:.0f} MiB allocated to VMs "
              f"(ratio {host['memoryAllocationRatio']}), KSM saved {host['ksm']['savedBytes'] / 1048576:.0f} MiB by its own reckoning")
        print(f"{n} VMs ({args.guest}) of {args.memory} at RAM ratio {args.ratio}: host memory used {used_off / 1048576:.0f} MiB with KSM off "
              f"({used_off / max(n, 1) / 1048576:.1f} MiB per VM), {used_on / 1048576:.0f} MiB after {args.ksm_wait} s of KSM "
              f"(pages_sharing {shared / 1048576:.0f} MiB; MemAvailable moves with everything else on the host too)")
        print(f"monitors' PSS: {pss_off / 1048576:.0f} MiB with KSM off ({pss_off / max(n, 1) / 1048576:.1f} MiB per VM), "
              f"{pss_on / 1048576:.0f} MiB after {args.ksm_wait} s of KSM ({pss_on / max(n, 1) / 1048576:.1f} MiB per VM)")
    finally:
        ksm("2")
        for f, v in saved.items():
            try:
                with open(f, "w") as out:
                    out.write(v)
            except OSError:
                pass
        if original is not None:
            ksm(original)
        d.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["launch", "density"])
    p.add_argument("--bin", help="directory with skiffd and skiff-vmm (default: build the release binaries)")
    p.add_argument("--monitor", help="the skiff-vmm to run (default: the one in --bin)")
    p.add_argument("--vms", type=int, default=20)
    p.add_argument("--jailer", choices=["auto", "on", "off"], default="auto",
                   help="skiffd's --jailer: auto (the default) confines each monitor when run as root")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--memory", default="64M")
    p.add_argument("--ratio", type=float, default=2)
    p.add_argument("--max", type=int, default=200)
    p.add_argument("--ksm-wait", type=int, default=30)
    p.add_argument("--settle", type=int, default=5, help="seconds between the last create and the first reading")
    p.add_argument("--guest", default="idle.elf", help="guest-kit program for density (virtio-balloon.elf touches 16 MiB)")
    args = p.parse_args()
    if args.bin is None:
        subprocess.run([os.path.join(ROOT, "scripts/build-release.sh"), "skiffd"], check=True)
        args.bin = os.path.join(ROOT, ".build/release")
    (launch if args.mode == "launch" else density)(args)


if __name__ == "__main__":
    main()
