#!/usr/bin/env bash
# Downloads Debian's stock cloud kernel package (unsigned variant) and unpacks it into
# artifacts/kernel: vmlinuz (bzImage), vmlinux (the PVH ELF inside it) and the modules.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/kernel
if [ -s "$out/vmlinuz" ] && [ -s "$out/vmlinux" ]; then
    exit 0
fi
mkdir -p "$out"
meta=linux-image-cloud-amd64
image=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$image" ]; then
    apt-get update -qq
    image=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$image" ] || { echo "fetch-kernel: cannot resolve $meta to a kernel package" >&2; exit 1; }
pkg="${image}-unsigned"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-kernel: downloading $pkg"
(cd "$work" && apt-get download -qq "$pkg")
dpkg-deb -x "$work"/*.deb "$work/root"
cp "$work"/root/boot/vmlinuz-* "$out/vmlinuz"
version=$(basename "$work"/root/boot/vmlinuz-* | sed 's/^vmlinuz-//')
echo "$version" > "$out/version"
rm -rf "$out/modules"
mkdir -p "$out/modules"
cp -a "$work/root/lib/modules/$version/." "$out/modules/"
python3 tools/extract-vmlinux.py "$out/vmlinuz" "$out/vmlinux"
echo "fetch-kernel: $version in $out"
