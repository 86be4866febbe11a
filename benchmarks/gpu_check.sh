#!/usr/bin/env bash
# The GPU check on a machine without network, TensorFlow or Keras (see
# benchmarks/gpu_check.py and docs/benchmarks.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options...] OUT_DIR
#
# The last argument is the output folder; the others go to gpu_check.py, e.g.
#   bash benchmarks/gpu_check.sh --data-dir .gpu_data "$OUT"
#   bash benchmarks/gpu_check.sh --cpu-smoke /tmp/gpucheck
#
# 1. Installs the wheels in .whl/ (Keras 3.15.1, namex, optree: copied from
#    shared/device-wheels; pytorchcv, pure Python: `pip download pytorchcv==VERSION
#    --no-deps -d .whl`) into $GPU_CHECK_SITE (default /tmp/site), if .whl/ exists;
#    a wheel that does not fit this Python is reported and left to the environment.
# 2. Puts that folder and the checkout first on PYTHONPATH.
# 3. Lets XLA allocate GPU memory on demand (XLA_PYTHON_CLIENT_PREALLOCATE=false), so
#    JAX's peak memory is the model's, not a preallocated pool.
# 4. Runs benchmarks/gpu_check.py --output OUT_DIR, which never stops at a failed part.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
SITE="${GPU_CHECK_SITE:-/tmp/site}"
if [ "$#" -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: bash benchmarks/gpu_check.sh [gpu_check.py options...] OUT_DIR" >&2
  echo "(gpu_check.py options: python3 benchmarks/gpu_check.py --help)" >&2
  [ "$#" -ge 1 ] && exit 0
  exit 2
fi
OUT="${!#}"
ARGS=("${@:1:$#-1}")
case "$OUT" in
  -*) echo "gpu_check.sh: the last argument must be the output folder, got '$OUT'" >&2
      exit 2 ;;
esac
say() { echo "[$(date -u +%H:%M:%S) gpu_check.sh] $*"; }

shopt -s nullglob
wheels=("$REPO"/.whl/*.whl)
if [ "${#wheels[@]}" -gt 0 ]; then
  say "installing ${#wheels[@]} wheel(s) from .whl/ into $SITE"
  mkdir -p "$SITE"
  for whl in "${wheels[@]}"; do
    name="$(basename "$whl")"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade \
        --target "$SITE" "$whl" >/tmp/gpu_check_pip.$$ 2>&1; then
      say "  installed $name"
    elif [[ "$name" == *-none-any.whl ]]; then
      # A pure-Python wheel is a zip of the package: unpack it without pip.
      "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
        "$whl" "$SITE" && say "  unpacked $name (pip failed: $(tail -n 1 /tmp/gpu_check_pip.$$))"
    else
      say "  NOT installed $name: $(tail -n 1 /tmp/gpu_check_pip.$$) (using the environment's)"
    fi
  done
  rm -f /tmp/gpu_check_pip.$$
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  say "no .whl/ folder: using the installed Keras"
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Which Keras and pytorchcv the parts will import (without importing them: no backend
# is chosen here).
say "$("$PY" -c 'import sys, importlib.metadata as m, importlib.util as u
s, p = u.find_spec("keras"), u.find_spec("pytorchcv")
print("python", sys.version.split()[0] + ",", "keras", m.version("keras") if s else "MISSING", "from", s.origin if s else "-", "- pytorchcv", m.version("pytorchcv") if p else "MISSING (its parts skip)")' 2>&1 | tail -n 1)"
cd "$REPO"
"$PY" "$HERE/gpu_check.py" ${ARGS[@]+"${ARGS[@]}"} --output "$OUT"
