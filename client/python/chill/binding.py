"""A ctypes binding to libchill: exact sparse flash attention in-process.

Takes PyTorch tensors (CUDA: the kernels run on the current stream of the
tensors' device, without synchronizing) or numpy arrays (CPU), with no build
step: libchill.so is found through $CHILL_LIB, else build/lib/libchill.so of
this checkout ($BUILD/lib when BUILD is set). This file imports nothing else of
the package, so it can be copied or loaded on its own.

    from chill.binding import attention
    out, lse = attention(q, k, v, mask="sliding_window(64,0)", return_lse=True)

Layouts: "BHTD" (q [B, Hq, T, D]), "BTHD" (q [B, T, Hq, D]), or packed
variable-length sequences when cu_seqlens_q/cu_seqlens_k are given (q
[total_q, Hq, D], k and v [total_k, Hkv, D], int32 offsets [B+1]). seq_lens_q and
seq_lens_k (int32 [B]) shorten the sequences of a padded layout. Lengths and
offsets are read on the host (lists, numpy arrays or CPU tensors; a CUDA
tensor is copied back first, which synchronizes); q, k, v, out and lse of a
GPU call are all on the current device.
"""

import ctypes
import os
from pathlib import Path

CHILL_OK = 0
STATUS_NAMES = ["OK", "INVALID", "UNSUPPORTED", "NOMEM", "DEVICE"]
Q_OFFSET_AUTO = -(1 << 63)
MASK_MAX_ARGS = 4

DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2


class ChillError(RuntimeError):
    """A libchill call failed: status is one of STATUS_NAMES, message says why."""

    def __init__(self, status, message):
        self.status = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else str(status)
        super().__init__(f"{self.status}: {message}")


class Mask(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("arg", ctypes.c_int64 * MASK_MAX_ARGS)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("stride", ctypes.c_int64 * 3)]


class Params(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int),
        ("batch", ctypes.c_int64), ("heads_q", ctypes.c_int64), ("heads_kv", ctypes.c_int64),
        ("seq_q", ctypes.c_int64), ("seq_k", ctypes.c_int64), ("head_dim", ctypes.c_int64),
        ("q", Tensor), ("k", Tensor), ("v", Tensor), ("out", Tensor), ("lse", Tensor),
        ("seq_lens_q", ctypes.c_void_p), ("seq_lens_k", ctypes.c_void_p),
        ("cu_seqlens_q", ctypes.c_void_p), ("cu_seqlens_k", ctypes.c_void_p),
        ("q_offset", ctypes.c_int64),
        ("mask", Mask),
        ("sm_scale", ctypes.c_float),
        ("allow_tf32", ctypes.c_int),
        ("stream", ctypes.c_void_p),
    ]


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 512)]


def _find_library():
    env = os.environ.get("CHILL_LIB")
    if env:
        return env
    root = Path(__file__).resolve().parents[3]
    build = os.environ.get("BUILD", "build")
    return str((root / build / "lib" / "libchill.so") if not os.path.isabs(build) else Path(build) / "lib" / "libchill.so")


_lib = None


def library():
    """The loaded libchill, its functions typed."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(_find_library())
        lib.chill_params_init.argtypes = [ctypes.POINTER(Params)]
        lib.chill_params_init.restype = None
        lib.chill_forward.argtypes = [ctypes.POINTER(Params), ctypes.POINTER(Error)]
        lib.chill_forward.restype = ctypes.c_int
        lib.chill_mask_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(Mask), ctypes.POINTER(Error)]
        lib.chill_mask_parse.restype = ctypes.c_int
        lib.chill_mask_allows.argtypes = [ctypes.POINTER(Mask), ctypes.c_int64, ctypes.c_int64]
        lib.chill_mask_allows.restype = ctypes.c_int
        lib.chill_attended_pairs.argtypes = [ctypes.POINTER(Params)]
        lib.chill_attended_pairs.restype = ctypes.c_int64
        lib.chill_device_healthy.argtypes = []
        lib.chill_device_healthy.restype = ctypes.c_int
        _lib = lib
    return _lib


def parse_mask(spec):
    """A mask spec ("causal", "sliding_window(64,0)") as libchill's Mask."""
    m, err = Mask(), Error()
    if library().chill_mask_parse(spec.encode(), ctypes.byref(m), ctypes.byref(err)) != CHILL_OK:
        raise ChillError(err.status, err.message.decode())
    return m


def mask_allows(spec_or_mask, q, k):
    """The mask's predicate at (query position q, key position k), from libchill."""
    m = parse_mask(spec_or_mask) if isinstance(spec_or_mask, str) else spec_or_mask
    return bool(library().chill_mask_allows(ctypes.byref(m), q, k))


class _Array:
    """What libchill needs of a torch tensor or numpy array."""

    def __init__(self, x, name):
        self.x = x
        self.torch = type(x).__module__.startswith("torch")
        if self.torch:
            self.ptr = x.data_ptr()
            self.strides = tuple(x.stride())
            self.dtype = {"torch.float32": DTYPE_F32, "torch.float16": DTYPE_F16,
                          "torch.bfloat16": DTYPE_BF16, "torch.int32": -1}.get(str(x.dtype))
            self.cuda = x.is_cuda
        else:
            self.ptr = x.ctypes.data
            self.strides = tuple(s // x.itemsize for s in x.strides)
            self.dtype = {"float32": DTYPE_F32, "float16": DTYPE_F16, "int32": -1}.get(str(x.dtype))
            self.cuda = False
        if self.dtype is None:
            raise ChillError(1, f"{name} has dtype {x.dtype}; accepted: float32, float16, bfloat16 (torch)"
                             + (", int32" if name.startswith(("seq_lens", "cu_seqlens")) else ""))
        self.shape = tuple(x.shape)


def _empty_like_layout(ref, shape, dtype_of):
    if ref.torch:
        import torch
        return torch.empty(shape, dtype=dtype_of or ref.x.dtype, device=ref.x.device)
    import numpy as np
    return np.empty(shape, dtype=dtype_of or ref.x.dtype)


def attention(q, k, v, mask="full", *, layout="BHTD", sm_scale=None, q_offset=None,
              seq_lens_q=None, seq_lens_k=None, cu_seqlens_q=None, cu_seqlens_k=None,
              return_lse=False, allow_tf32=False,
              out=None, lse=None):
    """out = softmax(sm_scale q k^T over the mask) v; with return_lse, (out, lse).

    out (like q) and lse (float32: [B, Hq, T] padded, [Hq, total_q] packed) may
    be passed in; otherwise they are allocated, uninitialized. Rows past a
    sequence's length (seq_lens_q, or after the last packed sequence) are not
    written, as in libchill: they keep what out and lse held. sm_scale defaults
    to 1/sqrt(D), q_offset to each sequence's key count minus its query count."""
    lib = library()
    Q, K, V = _Array(q, "q"), _Array(k, "k"), _Array(v, "v")
    p = Params()
    lib.chill_params_init(ctypes.byref(p))
    packed = cu_seqlens_q is not None or cu_seqlens_k is not None
    if packed:
        if cu_seqlens_q is None or cu_seqlens_k is None:
            raise ChillError(1, "cu_seqlens_q and cu_seqlens_k go together")
        if len(Q.shape) != 3 or len(K.shape) != 3:
            raise ChillError(1, f"packed q, k, v are [total, heads, head_dim]; got q {Q.shape}, k {K.shape}")
        # seq_q and seq_k of a packed call are the row counts of the packed tensors.
        batch, hq, hk, d = len(cu_seqlens_q) - 1, Q.shape[1], K.shape[1], Q.shape[2]
        tq, tk = Q.shape[0], K.shape[0]
        dims = lambda a: (0, a.strides[1], a.strides[0])  # noqa: E731
        out_shape, lse_shape = Q.shape, (hq, Q.shape[0])
        lse_strides = lambda a: (0, a.strides[0], a.strides[1])  # noqa: E731
    elif layout in ("BHTD", "BTHD"):
        if len(Q.shape) != 4 or len(K.shape) != 4 or len(V.shape) != 4:
            raise ChillError(1, f"q, k, v are 4-d in layout {layout}; got q {Q.shape}, k {K.shape}, v {V.shape}")
        if layout == "BHTD":
            batch, hq, tq, d = Q.shape
            hk, tk = K.shape[1], K.shape[2]
            dims = lambda a: (a.strides[0], a.strides[1], a.strides[2])  # noqa: E731
        else:
            batch, tq, hq, d = Q.shape
            tk, hk = K.shape[1], K.shape[2]
            dims = lambda a: (a.strides[0], a.strides[2], a.strides[1])  # noqa: E731
        out_shape, lse_shape = Q.shape, (batch, hq, tq)
        lse_strides = lambda a: a.strides  # noqa: E731
    else:
        raise ChillError(1, f"layout {layout!r}; accepted: 'BHTD', 'BTHD' (or cu_seqlens for packed)")

    if out is None:
        out = _empty_like_layout(Q, out_shape, None)
    O = _Array(out, "out")
    if return_lse and lse is None:
        if Q.torch:
            import torch
            lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
        else:
            import numpy as np
            lse = np.empty(lse_shape, dtype=np.float32)
    L = _Array(lse, "lse") if lse is not None else None

    p.dtype = Q.dtype
    p.batch, p.heads_q, p.heads_kv = batch, hq, hk
    p.seq_q, p.seq_k, p.head_dim = tq, tk, d
    for field, a in (("q", Q), ("k", K), ("v", V), ("out", O)):
        t = getattr(p, field)
        t.data = a.ptr
        t.stride[:] = dims(a)
    if L is not None:
        p.lse.data = L.ptr
        p.lse.stride[:] = lse_strides(L)
    keep = []
    for field, arr in (("seq_lens_q", seq_lens_q), ("seq_lens_k", seq_lens_k),
                       ("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if arr is not None:
            if type(arr).__module__.startswith("torch") and arr.is_cuda:
                arr = arr.cpu()  # libchill validates lengths and offsets on the host
            elif isinstance(arr, (list, tuple)):
                import numpy as np
                arr = np.asarray(arr, dtype=np.int32)
            a = _Array(arr, field)
            if a.dtype != -1:
                raise ChillError(1, f"{field} must be int32")
            keep.append(a)
            setattr(p, field, a.ptr)
    p.q_offset = Q_OFFSET_AUTO if q_offset is None else int(q_offset)
    p.mask = parse_mask(mask) if isinstance(mask, str) else mask
    p.sm_scale = 0.0 if sm_scale is None else float(sm_scale)
    p.allow_tf32 = 1 if allow_tf32 else 0
    if Q.cuda:
        import torch
        p.stream = torch.cuda.current_stream(q.device).cuda_stream
    err = Error()
    status = lib.chill_forward(ctypes.byref(p), ctypes.byref(err))
    if status != CHILL_OK:
        raise ChillError(status, err.message.decode())
    return (out, lse) if return_lse else out


def attended_pairs(spec, batch, heads_q, seq_q, seq_k, head_dim=64, q_offset=None):
    """Attended (query, key) pairs of a padded call, from libchill: FLOPs = 4 * head_dim * this."""
    lib = library()
    p = Params()
    lib.chill_params_init(ctypes.byref(p))
    p.batch, p.heads_q, p.heads_kv, p.seq_q, p.seq_k, p.head_dim = batch, heads_q, heads_q, seq_q, seq_k, head_dim
    p.q_offset = Q_OFFSET_AUTO if q_offset is None else q_offset
    p.mask = parse_mask(spec)
    return lib.chill_attended_pairs(ctypes.byref(p))

