#!/bin/bash
# Run a command as on an AVX2-only x86 CPU (an AMD Zen 3, say): no AVX-512, no VNNI, no AMX,
# for edgesmith and for the runtimes, natively and at full speed.
#
#   tools/as_avx2.sh .venv/bin/edgesmith doctor
#   tools/as_avx2.sh make demo DATA=../shared/data/cifar10-jpeg
#   tools/as_avx2.sh --check        # exit 0 where it can run, else print why not and exit 1
#
# - /proc/cpuinfo is replaced, in a private mount namespace (needs root), by a copy without
#   the avx512*, avx_vnni* and amx* flags, so doctor, --target auto and the bench see AVX2;
# - every Python process the command starts re-executes itself (sitecustomize) under gdb with
#   tools/avx2_gdb.py, which hides the same features from ONNX Runtime's and LiteRT's CPUID,
#   so their AVX2 kernels run.
# TensorFlow's kernels still use the real CPU; edgesmith's training precision, read from
# /proc/cpuinfo, follows the view (float32: no AVX512-BF16). The speeds are those of AVX2 code
# on this core, not of a real Zen 3's. Needs gdb, objdump, unshare and mount. gdb's own start-up
# lines are dropped from stderr unless AVX2_GDB_VERBOSE=1.
set -euo pipefail
tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--gdb" ]; then  # python ARGS..., from sitecustomize: run it under gdb
  shift
  export AVX2_UNDER_GDB=1 AVX2_ARGV_FILE="$AVX2_IN_NS/argv.$$"
  printf '%s\0' "$@" > "$AVX2_ARGV_FILE"
  exec 3>&1 4<&0
  if [ -z "${AVX2_GDB_VERBOSE:-}" ]; then  # drop gdb's own chatter from stderr (the command's lines pass)
    exec 2> >(grep --line-buffered -v -E '^\[Thread debugging using libthread_db enabled\]$|^Using host libthread_db library |^process [0-9]+ is executing new program: |^\[Inferior [0-9]+ \(process [0-9]+\) exited ' >&2)
  fi
  exec gdb -nx -q -batch -iex "set auto-load off" -x "$tools/avx2_gdb.py" >&2 </dev/null
fi

if [ "${1:-}" = "--check" ]; then  # can this machine run the tool? exit 0, or say why not and exit 1
  why=""
  [ "$(uname -m)" = x86_64 ] || why="not an x86_64 machine"
  for t in gdb objdump unshare mount; do
    [ -n "$why" ] || command -v "$t" >/dev/null || why="$t is not installed (apt-get install gdb binutils util-linux mount)"
  done
  [ -n "$why" ] || [ "$(id -u)" -eq 0 ] || why="needs root, for a private mount namespace"
  [ -n "$why" ] || unshare -m true 2>/dev/null || why="no private mount namespace can be made here (unshare -m)"
  [ -z "$why" ] || { echo "as_avx2.sh cannot run here: $why"; exit 1; }
  exit 0
fi
[ $# -gt 0 ] || { echo "usage: $0 [--check] COMMAND [ARG...]" >&2; exit 2; }
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
