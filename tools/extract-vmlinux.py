#!/usr/bin/env python3
"""Extract the uncompressed ELF kernel (vmlinux) from a Linux x86 bzImage.

Usage: extract-vmlinux.py BZIMAGE OUTPUT

The payload is located with the setup header (Documentation/arch/x86/boot.rst):
the protected-mode code starts at (setup_sects + 1) * 512 (setup_sects 0 means 4),
payload_offset (0x248) is relative to it and payload_length (0x24C) is its size;
both exist from boot protocol 2.08. The compression is told by the payload's magic.
For every format but gzip the kernel build appends the uncompressed size as a
little-endian 32-bit value (scripts/Makefile.lib, size_append); it is stripped
before decompression and the output length is checked against it.

Needs only the Python 3 standard library, plus the `lz4` command (Debian package
lz4) for LZ4 kernels such as Debian's, and the `zstd` command (package zstd) for
zstd kernels. gzip, bzip2, xz and lzma use the standard library.

Exit status: 0 on success, 1 with a message on stderr otherwise.
"""

import bz2
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ELF_MAGIC = b"\x7fELF"


class ExtractError(Exception):
    pass


def payload_of(image: bytes) -> bytes:
    """The compressed payload of a bzImage, bounds-checked."""
    if len(image) < 0x250:
        raise ExtractError(f"file is {len(image)} bytes, too short for a bzImage setup header")
    if image[0x202:0x206] != b"HdrS":
        raise ExtractError("no 'HdrS' signature at offset 0x202: not a bzImage")
    (version,) = struct.unpack_from("<H", image, 0x206)
    if version < 0x0208:
        raise ExtractError(f"boot protocol {version >> 8}.{version & 0xff:02d} has no payload fields (needs 2.08)")
    setup_sects = image[0x1F1] or 4
    protected_mode = (setup_sects + 1) * 512
    payload_offset, payload_length = struct.unpack_from("<II", image, 0x248)
    start = protected_mode + payload_offset
    end = start + payload_length
    if payload_length == 0 or end > len(image):
        raise ExtractError(
            f"payload [{start:#x}, {end:#x}) is empty or runs past the end of the file ({len(image):#x} bytes)")
    return image[start:end]


def run_tool(tool: str, data: bytes) -> bytes:
    """Decompresses with an external command reading stdin and writing stdout."""
    path = shutil.which(tool)
    if path is None:
        raise ExtractError(f"the payload needs the `{tool}` command (Debian package {tool})")
    result = subprocess.run([path, "-dcq"], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise ExtractError(f"`{tool} -dcq` failed with status {result.returncode}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def split_size(payload: bytes) -> tuple[bytes, int]:
    """The compressed stream and the uncompressed size appended by size_append."""
    if len(payload) < 5:
        raise ExtractError("payload too short to carry the appended uncompressed size")
    (size,) = struct.unpack_from("<I", payload, len(payload) - 4)
    return payload[:-4], size


def decompress(payload: bytes) -> bytes:
    if payload.startswith(b"\x1f\x8b") or payload.startswith(b"\x1f\x9e"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(payload) + d.flush()
        (isize,) = struct.unpack_from("<I", payload, len(payload) - 4)
        if len(out) & 0xFFFFFFFF != isize:
            raise ExtractError(f"gzip produced {len(out)} bytes but its trailer says {isize}")
        return out
    if payload.startswith(b"\x02\x21\x4c\x18"):
        stream, size = split_size(payload)
        out, expected = run_tool("lz4", stream), size
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        stream, size = split_size(payload)
        out, expected = run_tool("zstd", stream), size
    elif payload.startswith(b"\xfd7zXZ\x00"):
        stream, size = split_size(payload)
        out, expected = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(stream), size
    elif payload.startswith(b"\x5d\x00"):
        stream, size = split_size(payload)
        out, expected = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(stream), size
    elif payload.startswith(b"BZh"):
        stream, size = split_size(payload)
        out, expected = bz2.BZ2Decompressor().decompress(stream), size
    else:
        raise ExtractError(f"unknown payload compression (magic {payload[:4].hex(' ')})")
    if len(out) != expected:
        raise ExtractError(f"decompressed {len(out)} bytes but the kernel build recorded {expected}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    source, target = argv[1], argv[2]
    try:
        with open(source, "rb") as f:
            image = f.read()
        if image.startswith(ELF_MAGIC):
            vmlinux = image
        else:
            vmlinux = decompress(payload_of(image))
        if not vmlinux.startswith(ELF_MAGIC):
            raise ExtractError("the decompressed payload is not an ELF file")
        directory = os.path.dirname(os.path.abspath(target))
        fd, temporary = tempfile.mkstemp(prefix=".vmlinux-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(vmlinux)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except (OSError, ExtractError, lzma.LZMAError, zlib.error, EOFError, ValueError) as error:
        print(f"extract-vmlinux: {source}: {error}", file=sys.stderr)
        return 1
    print(f"extract-vmlinux: wrote {len(vmlinux)} bytes to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
