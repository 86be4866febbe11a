#!/usr/bin/env bash
# Runs the whole test suite (slow tests included) once per Keras backend.
# Usage: bash tests/run_all_backends.sh [extra pytest args, e.g. -m "not slow"]
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for backend in tensorflow jax torch; do
    echo "== KERAS_BACKEND=$backend"
    # Two workers, one test file each at a time (module fixtures stay in one process).
    KERAS_BACKEND=$backend python -m pytest tests -p no:cacheprovider -n 2 --dist loadfile "$@" || status=1
done
exit $status
