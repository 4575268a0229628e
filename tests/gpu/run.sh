#!/usr/bin/env bash
# `make test-gpu`: the GPU differential tests (test_gpu.py, every case), the
# CUDA shared-memory test and the daemon's integration suite on the CUDA
# backend, and compute-sanitizer memcheck and racecheck over a reduced set, against
# $BUILD/lib/libchill.so. Without a GPU (or without torch) it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export CHILL_LIB=${CHILL_LIB:-$PWD/$BUILD/lib/libchill.so}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "no GPU: skipping GPU tests"
    exit 0
fi
if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "no GPU visible to PyTorch (or no PyTorch): skipping GPU tests"
    exit 0
fi
if ! python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1]).chill_cuda_forward' "$CHILL_LIB" 2>/dev/null; then
    echo "$CHILL_LIB was built without CUDA (nvcc missing or CHILL_CUDA=0): rebuild with nvcc to run GPU tests" >&2
    exit 1
fi

export PYTHONUNBUFFERED=1
python3 tests/gpu/test_gpu.py
BUILD=$BUILD python3 tests/gpu/test_cuda_ipc.py  # CUDA shared-memory regions against a real chilld
CHILLD_TEST_BACKEND=cuda BUILD=$BUILD bash tests/integration/run.sh  # the daemon's whole suite on the CUDA backend
# Several devices: every GPU when there are two or more, else the one GPU
# listed twice, so the per-device workers and dispatch run either way.
n_gpus=$(nvidia-smi -L | grep -c GPU)
gpus=$(seq -s, 0 $((n_gpus - 1)))
[ "$n_gpus" -ge 2 ] || gpus=0,0
for t in test_devices test_batching test_numerics; do
    CHILLD_TEST_BACKEND=cuda CHILLD_TEST_GPUS=$gpus CHILLD_TEST_ONLY=$t BUILD=$BUILD bash tests/integration/run.sh
done
# One launch slot (the worker waits for each launch) and two (a completer
# answers them): the scheduler's two CUDA paths, whichever is the default.
for slots in 1 2; do
    for t in test_batching test_numerics; do
        CHILLD_TEST_BACKEND=cuda CHILLD_TEST_GPU_SLOTS=$slots CHILLD_TEST_ONLY=$t BUILD=$BUILD bash tests/integration/run.sh
    done
done
if command -v compute-sanitizer >/dev/null 2>&1; then
    for tool in memcheck racecheck; do
        echo "== compute-sanitizer --tool $tool (reduced set)"
        compute-sanitizer --tool "$tool" --kernel-name kns=chill_ --error-exitcode 1 \
            python3 tests/gpu/test_gpu.py --reduced
    done
else
    echo "compute-sanitizer not found: memcheck and racecheck not run" >&2
    exit 1
fi
