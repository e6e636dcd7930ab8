#!/bin/bash
# Run a command with edgesmith on an emulated 64-bit Arm CPU (a Raspberry Pi 4's Cortex-A72, a
# Pi 5's Cortex-A76, ...): aarch64 Python, ONNX Runtime and LiteRT wheels under qemu-user, so
# their Arm kernels (MLAS NEON/dotprod, XNNPACK) compute the results.
#
#   tools/as_arm64.sh edgesmith doctor
#   tools/as_arm64.sh --cpu a72 edgesmith bench runs/demo --preset quick --limit-test 1000
#   tools/as_arm64.sh --cpu a76 python my_check.py     # python/python3/edgesmith are the Arm ones
#
# --cpu: a53, a72 (Armv8.0: no dotprod), a55, a76, n1 (Armv8.2 with dotprod); default a76.
# QEMU_CPU selects the core, so the runtimes see its features in AT_HWCAP; /proc/cpuinfo is
# replaced in a private mount namespace by an Arm one with the same features, for doctor.
# Numerics are those of the Arm kernels; timings are of the emulator and mean nothing.
#
# First use builds ${EDGESMITH_ARM64:-~/.cache/edgesmith/arm64} (about 450 MB): Debian's arm64
# python3.11 (apt-get download), and edgesmith's [onnx] dependencies as aarch64 wheels from PyPI.
# The working tree's edgesmith is used live (a link farm), not a copy. Needs root, Debian
# bookworm's apt, qemu-user (qemu-aarch64), unshare and binfmt_misc. Changes the machine: adds
# dpkg's arm64 architecture (for apt-get download) and registers a qemu-aarch64 binfmt handler.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EDGESMITH_ARM64:-$HOME/.cache/edgesmith/arm64}
cpu=a76
if [ "${1:-}" = "--cpu" ]; then cpu=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--cpu a53|a55|a72|a76|n1] COMMAND [ARG...]" >&2; exit 2; }
case $cpu in
  a53) part=0xd03; feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid";;
  a72) part=0xd08; feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid";;
  a55) part=0xd05; feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp";;
  a76) part=0xd0b; feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp";;
  n1) part=0xd0c; feats="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs";;
  *) echo "error: --cpu $cpu: use a53, a55, a72, a76 or n1" >&2; exit 2;;
esac
qcpu=cortex-$cpu; [ "$cpu" = n1 ] && qcpu=neoverse-n1
for tool in qemu-aarch64 unshare apt-get dpkg-deb; do
  command -v $tool >/dev/null || { echo "error: $tool not found (qemu-user, util-linux, apt)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "error: needs root (binfmt_misc, mount namespace)" >&2; exit 2; }

# aarch64 ELF files run through qemu-aarch64 (children included)
bf=/proc/sys/fs/binfmt_misc
[ -e $bf/register ] || mount -t binfmt_misc binfmt_misc $bf
if [ ! -e $bf/qemu-aarch64 ]; then
  printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$(command -v qemu-aarch64)"':' > $bf/register
fi

if [ ! -e "$cache/ready" ]; then
  echo "as_arm64: building $cache (once)" >&2
  rm -rf "$cache" && mkdir -p "$cache/debs" "$cache/root"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq
  (cd "$cache/debs" && apt-get download -q python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
    libpython3.11-stdlib:arm64 libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 libgomp1:arm64 zlib1g:arm64 \
    libexpat1:arm64 libffi8:arm64 libssl3:arm64 libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 \
    libncursesw6:arm64 libtinfo6:arm64 libreadline8:arm64 libuuid1:arm64 libcrypt1:arm64 libdb5.3:arm64 \
    libnsl2:arm64 libtirpc3:arm64 2>/dev/null)
  for d in "$cache"/debs/*.deb; do dpkg-deb -x "$d" "$cache/root"; done
  export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  # edgesmith[onnx]'s requirements, read from pyproject.toml (the code itself is linked in below)
  mapfile -t reqs < <(python3 -c 'import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["onnx"]))' "$repo/pyproject.toml")
  python3 -m pip install -q --no-warn-conflicts --target "$cache/site" --only-binary=:all: --python-version 3.11 \
    --implementation cp --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 "${reqs[@]}" pytest
  touch "$cache/ready"
fi

work=$(mktemp -d /tmp/as-arm64.XXXXXX)
trap 'rm -rf "$work"' EXIT
# the working tree as the package edgesmith, laid out as pyproject's package-dir does
mkdir -p "$work/src/edgesmith" "$work/bin"
for f in "$repo"/edgesmith/*; do ln -s "$f" "$work/src/edgesmith/"; done
for stage in train importer export runtime benchmarks optimize; do ln -s "$repo/$stage" "$work/src/edgesmith/$stage"; done
ln -s "$cache/root/usr/bin/python3.11" "$work/bin/python"
ln -s "$cache/root/usr/bin/python3.11" "$work/bin/python3"
printf '#!/bin/sh\nexec "%s" -c "import sys; from edgesmith.cli import main; sys.argv[0] = \\"edgesmith\\"; main()" "$@"\n' \
  "$cache/root/usr/bin/python3.11" > "$work/bin/edgesmith"
chmod +x "$work/bin/edgesmith"
for i in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: %s\nCPU revision\t: 1\n\n' \
    $i "$feats" $part
done > "$work/cpuinfo"

# PYTHONSAFEPATH: the repository's own edgesmith/ (without the stages) must not shadow the link
# farm when a command runs from the repository root
export QEMU_CPU=$qcpu QEMU_LD_PREFIX="$cache/root" PATH="$work/bin:$PATH" \
  PYTHONPATH="$work/src:$cache/site" PYTHONNOUSERSITE=1 PYTHONSAFEPATH=1
unshare -m --propagation private bash -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$work/cpuinfo" "$@"
