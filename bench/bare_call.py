"""Times the bare libchill call, chill_forward(), in-process through ctypes:
the floor that bench/server.sh and bench/colocated.sh measure chilld's
per-request overhead against. The first call's result is checked against a
float64 reference, so a wrong struct layout cannot time garbage. --device:

  cpu        numpy arrays in host memory; each timed call is chill_forward().
  cuda       q, k, v, out copied to the GPU once (libcudart from the CUDA
             toolkit, the nvidia-cuda-runtime wheel, or LD_LIBRARY_PATH); each
             timed call is chill_forward() plus a device synchronize: the
             kernel alone.
  cuda-host  q, k, v, out in pinned host memory (cudaHostAlloc), device
             buffers allocated once; each timed call, all on one non-blocking
             stream (passed to libchill in chill_params.stream), is
             cudaMemcpyAsync of q, k, v to the device, chill_forward() on the
             device buffers, cudaMemcpyAsync of out back, and one
             cudaStreamSynchronize. That is what chilld's CUDA backend does
             for a co-located request (server/backend_cuda.c: the tensors in
             a pinned shm region or memfd arena, copies on the device's
             stream around the same call), done in-process: the floor for the
             shm and native-socket transports, copies included.

  bare_call.py --lib build/lib/libchill.so --shape 1,8,256,64 --dtype FP16 --mask causal
               [--device cpu|cuda|cuda-host] [--seconds 3]
prints one JSON line: {"device", "calls", "mean_us", "p50_us", "p99_us"}, the
timed calls' wall time; with --device cuda and cuda-host also
"forward_host_p50_us": the median host time of the chill_forward() ctypes call
alone (time.perf_counter_ns() just before and after it: ctypes, validation,
the pointer queries and the launch; not the synchronize nor the copies).
"""
import argparse
import ctypes
import ctypes.util
import glob
import json
import math
import os
import sys
import time

import numpy as np


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("stride", ctypes.c_int64 * 3)]


class Mask(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("arg", ctypes.c_int64 * 4)]


class Params(ctypes.Structure):  # kernels/chill.h, struct chill_params
    _fields_ = [("dtype", ctypes.c_int),
                ("batch", ctypes.c_int64), ("heads_q", ctypes.c_int64), ("heads_kv", ctypes.c_int64),
                ("seq_q", ctypes.c_int64), ("seq_k", ctypes.c_int64), ("head_dim", ctypes.c_int64),
                ("q", Tensor), ("k", Tensor), ("v", Tensor), ("out", Tensor), ("lse", Tensor),
                ("seq_lens_q", ctypes.c_void_p), ("seq_lens_k", ctypes.c_void_p),
                ("cu_seqlens_q", ctypes.c_void_p), ("cu_seqlens_k", ctypes.c_void_p),
                ("q_offset", ctypes.c_int64), ("mask", Mask), ("sm_scale", ctypes.c_float),
                ("allow_tf32", ctypes.c_int), ("stream", ctypes.c_void_p)]


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 512)]


DTYPES = {"FP32": (0, np.float32), "FP16": (1, np.float16)}


def load_cudart():
    here = os.path.dirname(os.path.abspath(__file__))
    cands = glob.glob("/usr/local/cuda/lib64/libcudart.so*") + glob.glob(
        os.path.join(here, "..", "build", "venv", "lib", "python3*", "site-packages", "nvidia", "cuda_runtime",
                     "lib", "libcudart.so*"))
    name = ctypes.util.find_library("cudart")
    # the plain sonames last: dlopen finds them through LD_LIBRARY_PATH, where
    # find_library (ldconfig's cache, a compiler) may not look
    for c in ([name] if name else []) + cands + ["libcudart.so.12", "libcudart.so"]:
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    raise RuntimeError("libcudart not found (CUDA toolkit in /usr/local/cuda, or the nvidia-cuda-runtime wheel)")


H2D, D2H = 1, 2  # cudaMemcpyKind


class Cuda:
    def __init__(self):
        self.rt = load_cudart()
        self.ptrs = []
        rt = self.rt
        rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        rt.cudaHostAlloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_uint]
        rt.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                       ctypes.c_void_p]
        rt.cudaStreamCreateWithFlags.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
        rt.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]

    def check(self, e, what):
        if e != 0:
            raise RuntimeError(f"{what} failed: CUDA error {e}")

    def alloc(self, nbytes):
        p = ctypes.c_void_p()
        self.check(self.rt.cudaMalloc(ctypes.byref(p), nbytes), "cudaMalloc")
        self.ptrs.append(p)
        return p.value

    def pinned_copy(self, arr):
        """arr's contents in a new page-locked host buffer (cudaHostAlloc), as a numpy array."""
        p = ctypes.c_void_p()
        self.check(self.rt.cudaHostAlloc(ctypes.byref(p), arr.nbytes, 0), "cudaHostAlloc")
        pinned = np.frombuffer((ctypes.c_char * arr.nbytes).from_address(p.value), arr.dtype).reshape(arr.shape)
        pinned[...] = arr
        return pinned

    def stream(self):
        """A non-blocking stream, as chilld's CUDA backend makes one per device."""
        s = ctypes.c_void_p()
        self.check(self.rt.cudaStreamCreateWithFlags(ctypes.byref(s), 1), "cudaStreamCreateWithFlags")
        return s.value

    def copy_async(self, dst, src, nbytes, kind, stream):
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")

    def stream_sync(self, stream):
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def upload(self, arr):
        p = self.alloc(arr.nbytes)
        self.rt.cudaMemcpy(ctypes.c_void_p(p), arr.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(arr.nbytes), H2D)
        return p

    def download(self, ptr, arr):
        self.rt.cudaMemcpy(arr.ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(ptr), ctypes.c_size_t(arr.nbytes), D2H)

    def sync(self):
        self.rt.cudaDeviceSynchronize()


def reference(q, k, v, mask):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])
    tq, tk = q.shape[2], k.shape[2]
    if mask == "causal":
        allowed = np.arange(tk)[None, :] <= (tk - tq + np.arange(tq))[:, None]
        s = np.where(allowed, s, -np.inf)
    elif mask != "full":
        raise ValueError("bare_call.py checks full and causal only")
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--shape", default="1,8,256,64")
    ap.add_argument("--dtype", default="FP16", choices=sorted(DTYPES))
    ap.add_argument("--mask", default="causal", choices=["full", "causal"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "cuda-host"])
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    B, H, T, D = (int(x) for x in a.shape.split(","))
    lib = ctypes.CDLL(os.path.abspath(a.lib))
    lib.chill_forward.argtypes = [ctypes.POINTER(Params), ctypes.POINTER(Error)]
    lib.chill_mask_lookup.argtypes = [ctypes.c_char_p]
    code, npt = DTYPES[a.dtype]
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(npt) for _ in range(3))
    out = np.full((B, H, T, D), np.nan, npt)

    p = Params()
    lib.chill_params_init(ctypes.byref(p))
    p.dtype, p.batch, p.heads_q, p.heads_kv, p.seq_q, p.seq_k, p.head_dim = code, B, H, H, T, T, D
    p.mask.type = lib.chill_mask_lookup(a.mask.encode())
    cuda = Cuda() if a.device in ("cuda", "cuda-host") else None
    host = a.device == "cuda-host"
    if a.device == "cuda":
        p.q.data, p.k.data, p.v.data, p.out.data = (cuda.upload(x) for x in (q, k, v, out))
    elif host:
        q, k, v, out = (cuda.pinned_copy(x) for x in (q, k, v, out))
        p.q.data, p.k.data, p.v.data, p.out.data = (cuda.alloc(x.nbytes) for x in (q, k, v, out))
        p.stream = stream = cuda.stream()
    else:
        p.q.data, p.k.data, p.v.data, p.out.data = (x.ctypes.data for x in (q, k, v, out))
    err = Error()
    p_ref, err_ref = ctypes.byref(p), ctypes.byref(err)

    def call():
        """One timed call; returns the nanoseconds spent in chill_forward() itself."""
        if host:
            for x, d in ((q, p.q.data), (k, p.k.data), (v, p.v.data)):
                cuda.copy_async(d, x.ctypes.data, x.nbytes, H2D, stream)
        t0 = time.perf_counter_ns()
        status = lib.chill_forward(p_ref, err_ref)
        forward_ns = time.perf_counter_ns() - t0
        if status != 0:
            raise RuntimeError(err.message.decode())
        if host:
            cuda.copy_async(out.ctypes.data, p.out.data, out.nbytes, D2H, stream)
            cuda.stream_sync(stream)
        elif cuda:
            cuda.sync()
        return forward_ns

    call()
    if a.device == "cuda":
        cuda.download(p.out.data, out)
    ref = reference(q, k, v, a.mask)
    rel = np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref)
    if not rel <= (1e-5 if a.dtype == "FP32" else 2e-3):
        raise RuntimeError(f"the bare call's result is off the reference (relative error {rel:.3g})")
    times, forward_ns = [], []
    end = time.perf_counter() + a.seconds
    while time.perf_counter() < end or len(times) < 10:
        t0 = time.perf_counter()
        f = call()
        times.append(time.perf_counter() - t0)
        forward_ns.append(f)
    us = np.asarray(times) * 1e6
    result = {"device": a.device, "calls": len(us), "mean_us": float(us.mean()),
              "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}
    if cuda:
        result["forward_host_p50_us"] = float(np.percentile(np.asarray(forward_ns) / 1e3, 50))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
