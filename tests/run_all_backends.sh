#!/usr/bin/env bash
# Runs the whole test suite (slow tests included) once per Keras backend.
# Usage: bash tests/run_all_backends.sh [extra pytest args, e.g. -m "not slow"]
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for backend in tensorflow jax torch; do
    echo "== KERAS_BACKEND=$backend"
    KERAS_BACKEND=$backend python -m pytest tests -p no:cacheprovider "$@" || status=1
done
exit $status
