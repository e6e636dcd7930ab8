#!/bin/bash
# Run a command as on an AVX2-only x86 CPU (an AMD Zen 3, say): no AVX-512, no VNNI, no AMX,
# for edgesmith and for the runtimes, natively and at full speed.
#
#   tools/as_avx2.sh .venv/bin/edgesmith doctor
#   tools/as_avx2.sh make demo DATA=../shared/data/cifar10-jpeg
#
# - /proc/cpuinfo is replaced, in a private mount namespace (needs root), by a copy without
#   the avx512*, avx_vnni* and amx* flags, so doctor, --target auto and the bench see AVX2;
# - every Python process the command starts re-executes itself (sitecustomize) under gdb with
#   tools/avx2_gdb.py, which hides the same features from ONNX Runtime's and LiteRT's CPUID,
#   so their AVX2 kernels run.
# TensorFlow's kernels still use the real CPU; edgesmith's training precision, read from
# /proc/cpuinfo, follows the view (float32: no AVX512-BF16). The speeds are those of AVX2 code
# on this core, not of a real Zen 3's. Needs gdb, objdump, unshare and mount.
set -euo pipefail
tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--gdb" ]; then  # python ARGS..., from sitecustomize: run it under gdb
  shift
  export AVX2_UNDER_GDB=1 AVX2_ARGV_FILE="$AVX2_IN_NS/argv.$$"
  printf '%s\0' "$@" > "$AVX2_ARGV_FILE"
  exec 3>&1 4<&0
  exec gdb -nx -q -batch -iex "set auto-load off" -x "$tools/avx2_gdb.py" >&2 </dev/null
fi

[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
if [ -z "${AVX2_IN_NS:-}" ]; then
  work=$(mktemp -d /tmp/as-avx2.XXXXXX)
  sed -E '/^flags/ s/ (avx512[a-z0-9_]*|avx_vnni[a-z0-9_]*|amx[a-z0-9_]*)//g' /proc/cpuinfo > "$work/cpuinfo"
  cat > "$work/sitecustomize.py" <<EOF
import os, sys
if os.environ.pop("AVX2_UNDER_GDB", None) is None:  # popped: its children re-exec too
    os.execv("$tools/as_avx2.sh", ["$tools/as_avx2.sh", "--gdb", sys.executable, *sys.orig_argv[1:]])
EOF
  rc=0
  unshare -m --propagation private env AVX2_IN_NS="$work" "$0" "$@" || rc=$?
  rm -rf "$work"
  exit $rc
fi
mount --bind "$AVX2_IN_NS/cpuinfo" /proc/cpuinfo
export PYTHONPATH="$AVX2_IN_NS${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
