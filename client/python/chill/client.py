"""A small attention client for chilld over tritonclient's HTTP client.

A model is a mask type (or a preset from chilld's config); the mask's
arguments, sm_scale, q_offset and return_lse travel as request parameters.
Two transports:

  http  tensors in the request body (the binary tensor extension);
  shm   tensors in a POSIX shared-memory region registered with chilld
        (Triton's system shared-memory extension, through
        tritonclient.utils.shared_memory); only JSON crosses HTTP. The region
        is made on first use, grown when a request needs more, and
        unregistered and removed by close().
"""
import os
import re
import threading

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

# The mask types and their argument names, in order (masks/list.h).
MASK_ARGS = {
    "full": (),
    "causal": (),
    "sliding_window": ("left_context", "right_context"),
    "chunkwise": ("context_size", "back_contexts"),
    "prefix_lm": ("prefix_size",),
}

_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16"}
_counter = iter(range(1 << 62))
_counter_lock = threading.Lock()


class ChillError(RuntimeError):
    """chilld refused or failed a request; status is the HTTP status when known."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def parse_mask(spec):
    """'sliding_window(64,0)' -> ('sliding_window', {'left_context': 64, 'right_context': 0})."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*", spec)
    if not m:
        raise ValueError(f"mask spec {spec!r}: accepted is name or name(a, b, ...)")
    name, args = m.group(1), m.group(2)
    values = [a.strip() for a in args.split(",")] if args and args.strip() else []
    if not values:
        return name, {}
    if name not in MASK_ARGS:
        raise ValueError(f"mask {name!r}: positional arguments need a known mask ({', '.join(MASK_ARGS)}); "
                         "pass them as keyword arguments instead")
    names = MASK_ARGS[name]
    if len(values) != len(names):
        raise ValueError(f"mask {name} takes {len(names)} arguments ({', '.join(names) or 'none'}); got {len(values)}")
    try:
        return name, {n: int(v) for n, v in zip(names, values)}
    except ValueError:
        raise ValueError(f"mask spec {spec!r}: arguments must be integers") from None


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _to_numpy(x, name):
    """(array as sent, triton datatype). bf16 torch tensors go as float32 arrays
    with datatype BF16 (tritonclient rounds them)."""
    if _is_torch(x):
        import torch
        t = x.detach().contiguous()
        if t.dtype == torch.bfloat16:
            return t.float().cpu().numpy(), "BF16"
        x = t.cpu().numpy()
    a = np.ascontiguousarray(x)
    if a.dtype not in _DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; accepted are float32, float16 (and torch bfloat16)")
    if a.ndim != 4:
        raise ValueError(f"{name} has shape {a.shape}; accepted is [B, H, T, D]")
    return a, _DTYPES[a.dtype]


def _like(result, ref):
    if _is_torch(ref):
        import torch
        return torch.from_numpy(np.ascontiguousarray(result)).to(device=ref.device, dtype=ref.dtype)
    return result


class Client:
    """One connection to chilld. url is host:port (an http:// prefix is accepted)."""

    def __init__(self, url="127.0.0.1:8000", transport="http", timeout=60.0, concurrency=1):
        if transport not in ("http", "shm"):
            raise ValueError(f"transport {transport!r}: accepted are 'http' and 'shm'")
        url = re.sub(r"^https?://", "", url)
        self.transport = transport
        self._http = httpclient.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout,
                                                      concurrency=concurrency)
        self._region = None  # (name, key, handle, size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def is_ready(self):
        return self._http.is_server_live() and self._http.is_server_ready()

    def models(self):
        return [m["name"] for m in self._http.get_model_repository_index()]

    def attention(self, q, k, v, mask=None, model=None, sm_scale=None, q_offset=None, return_lse=False, **mask_args):
        """out = softmax(sm_scale q k^T over the attended keys) v on chilld.

        mask is a spec ('causal', 'sliding_window(64,0)') or a mask type whose
        arguments come as keyword arguments (left_context=64, ...); model names
        a preset instead (or as well). Returns out, or (out, lse) with
        return_lse."""
        if mask is None and model is None:
            raise ValueError("give a mask (spec or type) or a model")
        params = dict(mask_args)
        if mask is not None:
            name, args = parse_mask(mask)
            params = {**args, **params}
            model = model or name
        if sm_scale is not None:
            params["sm_scale"] = float(sm_scale)
        if q_offset is not None:
            params["q_offset"] = int(q_offset)
        if return_lse:
            params["return_lse"] = True
        arrays = [_to_numpy(x, n) for x, n in ((q, "q"), (k, "k"), (v, "v"))]
        if len({dt for _, dt in arrays}) != 1:
            raise TypeError("q, k and v must have one dtype")
        dt = arrays[0][1]
        B, H, T, D = arrays[0][0].shape
        out_shape, lse_shape = (B, H, T, D), (B, H, T)
        send = self._infer_shm if self.transport == "shm" else self._infer_http
        out, lse = send(model, arrays, dt, out_shape, lse_shape, return_lse, params)
        out = _like(out, q)
        return (out, _like(lse, q) if _is_torch(q) else lse) if return_lse else out

    def _call(self, model, inputs, outputs, params):
        try:
            return self._http.infer(model, inputs, outputs=outputs, parameters=params)
        except InferenceServerException as e:
            raise ChillError(f"chilld: {e.message()}", e.status()) from None

    def _infer_http(self, model, arrays, dt, out_shape, lse_shape, return_lse, params):
        inputs = []
        for (a, _), name in zip(arrays, ("q", "k", "v")):
            i = httpclient.InferInput(name, list(a.shape), dt)
            i.set_data_from_numpy(a, binary_data=True)
            inputs.append(i)
        outputs = [httpclient.InferRequestedOutput("out", binary_data=True)]
        if return_lse:
            outputs.append(httpclient.InferRequestedOutput("lse", binary_data=True))
        r = self._call(model, inputs, outputs, params)
        return r.as_numpy("out"), (r.as_numpy("lse") if return_lse else None)

    def _shm_region(self, size):
        import tritonclient.utils.shared_memory as shm
        if self._region and self._region[3] >= size:
            return self._region
        self._drop_region()
        with _counter_lock:
            n = next(_counter)
        name = f"chillpy.{os.getpid()}.{n}"
        handle = shm.create_shared_memory_region(name, "/" + name, size)
        try:
            self._http.register_system_shared_memory(name, "/" + name, size)
        except InferenceServerException as e:
            shm.destroy_shared_memory_region(handle)
            raise ChillError(f"chilld refused the shared-memory region: {e.message()}", e.status()) from None
        self._region = (name, "/" + name, handle, size)
        return self._region

    def _drop_region(self):
        if not self._region:
            return
        import tritonclient.utils.shared_memory as shm
        name, _, handle, _ = self._region
        self._region = None
        try:
            self._http.unregister_system_shared_memory(name)
        finally:
            shm.destroy_shared_memory_region(handle)

    def _infer_shm(self, model, arrays, dt, out_shape, lse_shape, return_lse, params):
        import tritonclient.utils.shared_memory as shm
        esize = 2 if dt in ("FP16", "BF16") else 4
        wire = [a.astype(np.float32) if dt == "BF16" else a for a, _ in arrays]
        if dt == "BF16":  # round to nearest even, as bf16 bytes (uint16)
            wire = [((w.view(np.uint32) + 0x7FFF + ((w.view(np.uint32) >> 16) & 1)) >> 16).astype(np.uint16)
                    for w in wire]
        sizes = [w.nbytes for w in wire] + [int(np.prod(out_shape)) * esize, int(np.prod(lse_shape)) * 4]
        offsets, at = [], 0
        for s in sizes:
            offsets.append(at)
            at += (s + 63) // 64 * 64
        name, _, handle, _ = self._shm_region(at)
        for w, off in zip(wire, offsets):
            shm.set_shared_memory_region(handle, [w], offset=off)
        inputs = []
        for w, iname, off in zip(wire, ("q", "k", "v"), offsets):
            i = httpclient.InferInput(iname, list(w.shape), dt)
            i.set_shared_memory(name, w.nbytes, offset=off)
            inputs.append(i)
        outputs = [httpclient.InferRequestedOutput("out", binary_data=True)]
        outputs[0].set_shared_memory(name, sizes[3], offset=offsets[3])
        if return_lse:
            outputs.append(httpclient.InferRequestedOutput("lse", binary_data=True))
            outputs[1].set_shared_memory(name, sizes[4], offset=offsets[4])
        self._call(model, inputs, outputs, params)
        raw = np.uint16 if dt == "BF16" else np.dtype(arrays[0][0].dtype)
        out = shm.get_contents_as_numpy(handle, raw, list(out_shape), offset=offsets[3]).copy()
        if dt == "BF16":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        lse = shm.get_contents_as_numpy(handle, np.float32, list(lse_shape), offset=offsets[4]).copy() if return_lse else None
        return out, lse

    def close(self):
        """Unregisters and removes the shared-memory region, closes the connection."""
        try:
            self._drop_region()
        finally:
            self._http.close()
