#!/usr/bin/env bash
# CPU recipe: all three Keras backends plus the PyTorch reference, small batches
# (a CPU step of PreActResNet50 takes about a second per 4 images).
#
#   bash benchmarks/cpu.sh [OUT_DIR]
#
# Writes OUT_DIR/cpu_results.json, OUT_DIR/cpu_results.md and
# OUT_DIR/input_pipeline.json (default OUT_DIR=.).
# Training runs 3 interleaved rounds and keeps each config's median round, so a
# slow spell on a shared machine hits keras_preact and its alternatives alike.
# Compile settings per backend: TensorFlow with and without XLA; JAX jitted only
# (unjitted JAX runs op by op); torch eager only (torch.compile of a ResNet-50
# took over 8 minutes on 2 cores, and ran slower than eager: 2.57 vs 3.4 images/s;
# compiling PreActResNet164 for inference had not finished after 4 minutes).
# Remat on JAX stops at depth 164: XLA compiling the depth-1001 training step
# needed more than 20 GB of host memory here.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-.}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
status=0
"$PY" "$HERE/run_all.py" \
  --backends tensorflow,jax,torch \
  --suites train,inference,build,remat \
  --quick \
  --workdir "$OUT/cpu_runs" \
  --output "$OUT/cpu_results.json" \
  --markdown "$OUT/cpu_results.md" \
  --train-args "--rounds 3 --precisions float32,mixed --mixed-policy mixed_bfloat16 --torch-amp-dtype bfloat16 --torch-impl reference --warmup 2 --steps 5 ${TRAIN_EXTRA:-}" \
  --backend-args "tensorflow:train:--jit both" \
  --backend-args "jax:train:--jit on" \
  --backend-args "torch:train:--jit off" \
  --backend-args "torch:inference:--jit off" \
  --inference-args "--batch 64 --warmup 2 --steps 5" \
  --build-args "--depths 20,56,110,164,1001 --repeats 1" \
  --remat-args "--depths 164,1001 --batches 16,4 --jit auto" \
  --backend-args "jax:remat:--depths 164 --batches 16" || status=$?
# The tf.data pipelines on their own (needs ../shared/data or --data-dir).
"$PY" "$HERE/input_pipeline.py" --output "$OUT/input_pipeline.json"
exit "$status"
