#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/TARGET.

Run from the repository root after `make -C guests` (the loader seeds are the guest kit's
kernels) with qemu-img installed (qcow2 seeds beyond the hostile-image fixtures). The output is
committed; rerun only to change the seeds. Stream targets get deterministic pseudo-random bytes:
their harnesses decode any input into operations.
"""
import os
import random
import shutil
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
STREAM_TARGETS = ["split-queue", "virtio-blk", "virtio-net", "vsock", "balloon", "pci", "x86-emulator"]
MAX_LEN = 65536


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def stream_seeds():
    rng = random.Random(20260101)
    for target in STREAM_TARGETS:
        for i, length in enumerate([16, 64, 256, 700, 1500, 4000]):
            write(target, f"random-{i}", bytes(rng.getrandbits(8) for _ in range(length)))


def qcow2_ops(rng, count):
    """flags, then (offset le32, length le16, operation) tuples (see QCOW2Harness)."""
    ops = bytes([0])
    for _ in range(count):
        ops += struct.pack("<IHB", rng.randrange(0, 1 << 20), rng.randrange(0, 9000), rng.randrange(0, 8))
    return struct.pack("<H", len(ops)) + ops


def qcow2_seeds():
    rng = random.Random(7)
    fixtures = os.path.join(ROOT, "tests", "fixtures", "qcow2-hostile")
    images = []
    for name in sorted(os.listdir(fixtures)):
        path = os.path.join(fixtures, name)
        if name.endswith((".qcow2", ".raw")) and os.path.getsize(path) <= MAX_LEN - 512:
            images.append((name, open(path, "rb").read()))
    if shutil.which("qemu-img"):
        with tempfile.TemporaryDirectory() as tmp:
            base = os.path.join(tmp, "base.raw")
            with open(base, "wb") as f:
                f.write(bytes(range(256)) * 256)
            variants = [
                ("v3-4k", ["-o", "cluster_size=4096"]),
                ("v3-512-refcount1", ["-o", "cluster_size=512,refcount_bits=1"]),
                ("v3-4k-refcount64", ["-o", "cluster_size=4096,refcount_bits=64"]),
                ("v2-4k", ["-o", "cluster_size=4096,compat=0.10"]),
                ("v3-4k-lazy", ["-o", "cluster_size=4096,lazy_refcounts=on"]),
                ("backing-4k", ["-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw"]),
            ]
            for name, options in variants:
                path = os.path.join(tmp, name + ".qcow2")
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *options, path, "1M"], check=True, cwd=tmp)
                if shutil.which("qemu-io"):
                    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 4096 8192", "-c", "write -z 65536 4096", path],
                                   check=True, cwd=tmp, stdout=subprocess.DEVNULL)
                data = open(path, "rb").read()
                if len(data) <= MAX_LEN - 512:
                    images.append((name + ".qcow2", data))
    for name, data in images:
        write("qcow2", name.replace(".qcow2", "").replace(".raw", "-raw"), qcow2_ops(rng, rng.randrange(1, 12)) + data)


def loader_seeds():
    build = os.path.join(ROOT, "guests", "build")
    kernels = ["hello.elf", "hello-aout.bin", "hello-aout.elf", "hello-pvh.elf", "hello-pvh64.elf", "bzimage-mini", "longmode.elf", "bootinfo.elf"]
    for i, name in enumerate(kernels):
        path = os.path.join(build, name)
        if not os.path.exists(path):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            stripped = os.path.join(tmp, name)
            shutil.copy(path, stripped)
            if name.endswith(".elf") and shutil.which("strip"):
                subprocess.run(["strip", "-s", stripped], check=False)
            data = open(stripped, "rb").read()
        # choice (format automatic, RAM size index i % 5, initrd when odd), [initrd length], command line length, text.
        choice = ((i % 5) << 2) | (0x40 if i % 2 else 0)
        prefix = bytes([choice]) + (struct.pack("<I", 4096) if i % 2 else b"") + struct.pack("<I", 9) + b"a=1 b c=d"
        write("loader", name, prefix + data)


if __name__ == "__main__":
    stream_seeds()
    qcow2_seeds()
    loader_seeds()
