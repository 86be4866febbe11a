#!/usr/bin/env bash
# GPU recipe: JAX and torch Keras backends (TensorFlow is not installed on the GPU
# machine) plus the PyTorch reference, bfloat16 mixed precision, full-size settings.
#
#   bash benchmarks/gpu.sh [OUT_DIR]
#
# Writes OUT_DIR/gpu_results.json and OUT_DIR/gpu_results.md (default OUT_DIR=.).
# Needs: keras, jax[cuda12], torch (CUDA build). TensorFlow is not needed: the
# SavedModel rows of the inference suite are skipped (--no-savedmodel).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-.}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
# Let XLA grow GPU memory on demand so the JAX peak reflects the model, not a
# preallocated 75% pool.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" "$HERE/run_all.py" \
  --backends jax,torch \
  --suites train,inference,build,remat \
  --workdir "$OUT/gpu_runs" \
  --output "$OUT/gpu_results.json" \
  --markdown "$OUT/gpu_results.md" \
  --train-args "--precisions float32,mixed --mixed-policy mixed_bfloat16 --torch-amp-dtype bfloat16 --jit both --cifar-batch 128 --imagenet-batch 64 --warmup 5 --steps 20 --timeout 1800 ${TRAIN_EXTRA:-}" \
  --inference-args "--no-savedmodel --batch 64 --warmup 5 --steps 50" \
  --build-args "--depths 20,56,110,164,1001" \
  --remat-args "--depths 164,1001 --batches 128,128 --jit auto --precision mixed --timeout 1800"
