"""chill: attention on a chilld server from Python.

    import chill
    with chill.Client("127.0.0.1:8000", transport="shm") as c:
        out = c.attention(q, k, v, mask="sliding_window", left_context=64, right_context=0)

q, k, v are numpy arrays or torch tensors [B, H, T, D] (fp32, fp16, bf16
torch); the result has q's type (and device, for torch). See client.py.

The ctypes binding to libchill (in-process kernels, no server) is
chill.binding; it is imported only when asked for, so this package works
without libchill and the binding works without tritonclient.
"""
from .client import Client, ChillError, MASK_ARGS, parse_mask

__all__ = ["Client", "ChillError", "MASK_ARGS", "parse_mask"]
