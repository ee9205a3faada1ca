#!/usr/bin/env python3
"""Validates the Linux boot-protocol header of a bzImage (made for bzimage-mini).

Checks the fields a direct-boot VMM relies on (boot_flag, "HdrS", version >= 2.12,
setup_sects, syssize against the file size, LOADED_HIGH, XLF_KERNEL_64, code32_start,
pref_address, init_size, the setup jump, kernel_info) and prints them.
Usage: check_bzimage.py IMAGE   (exit status 0 if valid, 1 otherwise)
"""
import struct
import sys


def field(data, offset, fmt):
    return struct.unpack_from("<" + fmt, data, offset)[0]


def main(path):
    data = open(path, "rb").read()
    errors = []

    def check(cond, msg):
        if not cond:
            errors.append(msg)

    if len(data) < 0x400:
        print(f"{path}: too small for a setup header ({len(data)} bytes)")
        return 1
    setup_sects = field(data, 0x1F1, "B") or 4
    setup_size = (setup_sects + 1) * 512
    hdr = {
        "setup_sects": setup_sects,
        "syssize": field(data, 0x1F4, "I"),
        "boot_flag": field(data, 0x1FE, "H"),
        "jump": field(data, 0x200, "H"),
        "header": data[0x202:0x206],
        "version": field(data, 0x206, "H"),
        "kernel_version": field(data, 0x20E, "H"),
        "loadflags": field(data, 0x211, "B"),
        "code32_start": field(data, 0x214, "I"),
        "initrd_addr_max": field(data, 0x22C, "I"),
        "kernel_alignment": field(data, 0x230, "I"),
        "relocatable_kernel": field(data, 0x234, "B"),
        "xloadflags": field(data, 0x236, "H"),
        "cmdline_size": field(data, 0x238, "I"),
        "pref_address": field(data, 0x258, "Q"),
        "init_size": field(data, 0x260, "I"),
        "kernel_info_offset": field(data, 0x268, "I"),
    }
    pm = data[setup_size:] if setup_size <= len(data) else b""

    check(hdr["boot_flag"] == 0xAA55, f"boot_flag is {hdr['boot_flag']:#x}, not 0xaa55")
    check(hdr["header"] == b"HdrS", f"header magic is {hdr['header']!r}, not b'HdrS'")
    check(hdr["version"] >= 0x020C, f"protocol version {hdr['version']:#x} < 0x20c (no xloadflags)")
    check(setup_size <= len(data), f"setup ({setup_size} bytes) larger than the file ({len(data)})")
    check(
        hdr["syssize"] * 16 >= len(pm) and hdr["syssize"] * 16 - len(pm) < 16,
        f"syssize {hdr['syssize']:#x} paragraphs does not match the {len(pm)}-byte protected-mode part",
    )
    check(hdr["loadflags"] & 0x01, "loadflags lacks LOADED_HIGH")
    check(hdr["xloadflags"] & 0x01, "xloadflags lacks XLF_KERNEL_64")
    check(hdr["code32_start"] == 0x100000, f"code32_start is {hdr['code32_start']:#x}")
    check(hdr["pref_address"] == 0x100000, f"pref_address is {hdr['pref_address']:#x}")
    check(hdr["init_size"] >= len(pm), f"init_size {hdr['init_size']:#x} < protected-mode size {len(pm):#x}")
    check(hdr["cmdline_size"] > 0, "cmdline_size is 0")
    check(hdr["initrd_addr_max"] >= 0x100000, f"initrd_addr_max {hdr['initrd_addr_max']:#x} is too low")
    align = hdr["kernel_alignment"]
    check(align and align & (align - 1) == 0, f"kernel_alignment {align:#x} is not a power of two")
    jump_op, jump_rel = hdr["jump"] & 0xFF, hdr["jump"] >> 8
    target = 0x202 + (jump_rel - 256 if jump_rel >= 128 else jump_rel)
    check(jump_op == 0xEB and 0x202 < target < setup_size, f"setup jump {hdr['jump']:#06x} is not a short jmp into setup")
    if hdr["kernel_version"]:
        kv = hdr["kernel_version"] + 0x200
        check(kv < setup_size and b"\0" in data[kv:setup_size], "kernel_version does not point at a string in setup")
        hdr["kernel_version_string"] = data[kv : data.index(b"\0", kv)].decode("ascii", "replace") if kv < setup_size else "?"
    if hdr["version"] >= 0x020F:
        ki = hdr["kernel_info_offset"]
        ok = ki + 16 <= len(pm) and pm[ki : ki + 4] == b"LToP"
        check(ok, f"kernel_info_offset {ki:#x} does not point at a 'LToP' kernel_info")
        if ok:
            size, size_total = struct.unpack_from("<II", pm, ki + 4)
            check(16 <= size <= size_total, f"kernel_info size {size} / size_total {size_total} are inconsistent")
    check(len(pm) > 0x200 and pm[0] == 0xFA, "32-bit entry (protected-mode offset 0) does not start with cli")
    check(len(pm) > 0x200 and pm[0x200] == 0xFA, "64-bit entry (protected-mode offset 0x200) does not start with cli")

    for k, v in hdr.items():
        print(f"{k:20} {v:#x}" if isinstance(v, int) else f"{k:20} {v}")
    print(f"{'file_size':20} {len(data):#x} (setup {setup_size:#x}, protected mode {len(pm):#x})")
    for e in errors:
        print(f"{path}: error: {e}")
    if not errors:
        print(f"{path}: valid bzImage (protocol {hdr['version'] >> 8}.{hdr['version'] & 0xff:02d}, 64-bit entry at +0x200)")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip())
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
