#!/usr/bin/env bash
# `make bench-gpu`: bench/gpu.py against $BUILD/lib/libchill.so, its report
# written to bench/results/gpu-<date>.md. Without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export CHILL_LIB=${CHILL_LIB:-$PWD/$BUILD/lib/libchill.so}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "no GPU: skipping the GPU benchmark"
    exit 0
fi
export PYTHONUNBUFFERED=1
python3 bench/gpu.py --out "bench/results/gpu-$(date -u +%Y-%m-%d).md" "$@"
