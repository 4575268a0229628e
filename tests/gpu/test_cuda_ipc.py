"""CUDA shared memory (Triton's extension) against a real chilld on the GPU.

This process allocates one device buffer with cudaMalloc (through ctypes, so
the IPC handle names exactly that allocation), fills q, k, v in it, and
registers it with POST /v2/cudasharedmemory/region/NAME/register
({"raw_handle": {"b64": ...}, "device_id": 0, "byte_size": N}, as
tritonclient sends it). Infer requests then name the region for every input
and output; chilld runs on the tensors where they lie. out and lse are read
back from the device and checked against the float64 reference. Also: the
status route, an offset outside the region, double registration, a handle
that is not one, a byte_size larger than the allocation behind the handle,
mixing a device region with host tensors, and unregister; chilld keeps
serving through all of them. And dynamic batching of such requests: many
clients at once, each with its own region, lengths and layout, some sending
host tensors of the same batch key beside them; every result is checked, and
requests in regions must have shared launches.

Run by tests/gpu/run.sh (make test-gpu) with BUILD set; needs chilld built
with CUDA, a GPU, numpy and a CUDA runtime (PyTorch's will do)."""
import base64
import ctypes
import glob
import json
import os
import sys

os.environ.setdefault("CHILLD_TEST_BACKEND", "cuda")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import numpy as np  # noqa: E402

import lib  # noqa: E402


def load_cudart():
    try:
        import torch  # loads its CUDA runtime, which ctypes then finds by name
        torch.cuda.init()
        dirs = [os.path.join(os.path.dirname(torch.__file__), "lib")]
    except ImportError:
        dirs = []
    dirs += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cuda_runtime", "lib"))
    names = ["libcudart.so.12", "libcudart.so.11.0", "libcudart.so"]
    for n in names + [os.path.join(d, n) for d in dirs for n in names]:
        try:
            return ctypes.CDLL(n)
        except OSError:
            continue
    raise SystemExit("test_cuda_ipc: no CUDA runtime library found (libcudart)")


rt = load_cudart()
H2D, D2H = 1, 2


def check(rc, what):
    if rc != 0:
        rt.cudaGetErrorString.restype = ctypes.c_char_p
        raise RuntimeError(f"{what}: {rt.cudaGetErrorString(rc).decode()}")


class DeviceRegion:
    def __init__(self, size, device=0):
        self.device = device
        check(rt.cudaSetDevice(device), "cudaSetDevice")
        self.ptr = ctypes.c_void_p()
        check(rt.cudaMalloc(ctypes.byref(self.ptr), ctypes.c_size_t(size)), "cudaMalloc")
        check(rt.cudaMemset(self.ptr, 0xFF, ctypes.c_size_t(size)), "cudaMemset")  # NaN in fp16/fp32
        handle = (ctypes.c_char * 64)()
        check(rt.cudaIpcGetMemHandle(handle, self.ptr), "cudaIpcGetMemHandle")
        self.handle = bytes(handle)
        self.size = size

    def put(self, offset, a):
        check(rt.cudaSetDevice(self.device), "cudaSetDevice")
        a = np.ascontiguousarray(a)
        check(rt.cudaMemcpy(ctypes.c_void_p(self.ptr.value + offset), a.ctypes.data_as(ctypes.c_void_p),
                            ctypes.c_size_t(a.nbytes), H2D), "cudaMemcpy H2D")

    def get(self, offset, dtype, shape):
        a = np.empty(shape, dtype=dtype)
        check(rt.cudaSetDevice(self.device), "cudaSetDevice")
        check(rt.cudaDeviceSynchronize(), "cudaDeviceSynchronize")
        check(rt.cudaMemcpy(a.ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(self.ptr.value + offset),
                            ctypes.c_size_t(a.nbytes), D2H), "cudaMemcpy D2H")
        return a

    def free(self):
        rt.cudaSetDevice(self.device)
        rt.cudaFree(self.ptr)


def post(server, path, body):
    status, _, data = server.request("POST", path, body=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return status, json.loads(data) if data else {}


def register(server, name, region, size=None, handle=None, device=0):
    b64 = base64.b64encode(handle if handle is not None else region.handle).decode()
    return post(server, f"/v2/cudasharedmemory/region/{name}/register",
                {"raw_handle": {"b64": b64}, "device_id": device, "byte_size": size or region.size})


def shm_tensor(name, shape, dt, region, size, offset):
    return {"name": name, "shape": list(shape), "datatype": dt,
            "parameters": {"shared_memory_region": region, "shared_memory_byte_size": size,
                           "shared_memory_offset": offset}}


def layout(shape, dt):
    B, H, Hkv, Tq, Tk, D = shape
    e = lib.np_dtype(dt).itemsize
    sizes = [B * H * Tq * D * e, B * Hkv * Tk * D * e, B * Hkv * Tk * D * e, B * H * Tq * D * e, B * H * Tq * 4]
    offs, at = [], 0
    for s in sizes:
        offs.append(at)
        at += (s + 255) // 256 * 256
    return sizes, offs, at


def infer_body(shape, dt, sizes, offs, region, params, overrides=None):
    B, H, Hkv, Tq, Tk, D = shape
    shapes = [(B, H, Tq, D), (B, Hkv, Tk, D), (B, Hkv, Tk, D)]
    inputs = [shm_tensor(n, s, dt, region, sizes[i], offs[i]) for i, (n, s) in enumerate(zip("qkv", shapes))]
    for i, t in enumerate(inputs):
        t["parameters"].update((overrides or {}).get(t["name"], {}))
    outputs = [{"name": "out", "parameters": {"shared_memory_region": region, "shared_memory_byte_size": sizes[3],
                                              "shared_memory_offset": offs[3]}},
               {"name": "lse", "parameters": {"shared_memory_region": region, "shared_memory_byte_size": sizes[4],
                                              "shared_memory_offset": offs[4]}}]
    return {"inputs": inputs, "outputs": outputs, "parameters": dict(params, return_lse=True)}


def computed_on(server, device):
    """Launches chilld's worker for GPU device has run (its compute histogram)."""
    series = lib.parse_metrics(server.metrics())
    return lib.metric_sum(series, "chill_compute_duration_seconds_count", device=f"cuda:{device}")


def run_case(server, mask, args, dt, shape, seed, device=0):
    sizes, offs, total = layout(shape, dt)
    region = DeviceRegion(total, device)
    name = f"ipc-{mask}-{dt}-{device}"
    before = computed_on(server, device)
    try:
        st, body = register(server, name, region, device=device)
        assert st == 200, (st, body)
        B, H, Hkv, Tq, Tk, D = shape
        q, k, v = lib.make_qkv(np.random.default_rng(seed), B, H, Hkv, Tq, Tk, D, dt)
        for a, o in zip((q, k, v), offs):
            region.put(o, a)
        params = dict(zip(lib.MASKS[mask], args))
        st, body = post(server, f"/v2/models/{mask}/infer", infer_body(shape, dt, sizes, offs, name, params))
        assert st == 200, (st, body)
        out = region.get(offs[3], lib.np_dtype(dt), (B, H, Tq, D))
        lse = region.get(offs[4], np.float32, (B, H, Tq))
        ref_out, ref_lse = lib.reference(q, k, v, mask, args)
        err = lib.rel_error(out, ref_out)
        assert err <= lib.TOL[dt], f"{mask} {dt}: relative error {err}"
        assert np.max(np.abs(lse - ref_lse)) <= 1e-3, f"{mask} {dt}: lse"
        assert computed_on(server, device) == before + 1, f"not computed on cuda:{device}"
        print(f"ok: {mask}{args} {dt} {shape} on device {device}: relative error {err:.2e}")
        st, body = post(server, f"/v2/cudasharedmemory/region/{name}/unregister", {})
        assert st == 200, (st, body)
    finally:
        region.free()


def failures(server):
    shape, dt = (1, 4, 4, 64, 64, 64), "FP16"
    sizes, offs, total = layout(shape, dt)
    region = DeviceRegion(total)
    try:
        assert register(server, "f", region)[0] == 200
        st, body = server.request("GET", "/v2/cudasharedmemory/status")[0], server.get_json("/v2/cudasharedmemory/status")
        assert st == 200 and body[0]["name"] == "f" and int(body[0]["byte_size"]) == total, body
        st, body = register(server, "f", region)
        assert st == 400 and "already registered" in body["error"], body
        st, body = register(server, "g", region, handle=os.urandom(64))
        assert st == 400 and "cudaIpcOpenMemHandle" in body["error"], body
        st, body = register(server, "h", region, device=99)
        assert st == 400 and "device_id" in body["error"], body
        st, body = register(server, "big", region, size=total * 64)  # the kernels would run past the allocation
        assert st == 400 and "larger than the device allocation" in body["error"], body
        over = {"k": {"shared_memory_offset": total - 64}}
        st, body = post(server, "/v2/models/causal/infer", infer_body(shape, dt, sizes, offs, "f", {}, over))
        assert st == 400 and "outside region" in body["error"], body
        mixed = infer_body(shape, dt, sizes, offs, "f", {})
        q = np.zeros((1, 4, 64, 64), dtype=np.float16)
        mixed["inputs"][0] = lib.tensor_json("q", q, dt)
        st, body = post(server, "/v2/models/causal/infer", mixed)
        assert st == 400 and "CUDA shared" in body["error"], body
        st, body = post(server, "/v2/cudasharedmemory/region/f/unregister", {})
        assert st == 200, body
        st, body = post(server, "/v2/models/causal/infer", infer_body(shape, dt, sizes, offs, "f", {}))
        assert st == 400 and "not registered" in body["error"], body
        assert server.get("/v2/health/ready")[0] == 200
        print("ok: failures answered, chilld still serving")
    finally:
        region.free()


def region_client(server, idx, rounds, failures):
    """rounds requests whose q, k, v, out live in this client's own region:
    causal or sliding_window, BHTD or BTHD, a length of its own each round,
    and the client's id in q's values, so that any mix-up shows."""
    dt = "FP16"
    mask, args = (("causal", ()), ("sliding_window", (16, 0)))[idx % 2]
    bthd = idx % 4 >= 2
    rng = np.random.default_rng(500 + idx)
    region = DeviceRegion(layout((1, 4, 2, 256, 256, 64), dt)[2])
    name = f"ipc-batch-{idx}"
    try:
        st, body = register(server, name, region)
        assert st == 200, (st, body)
        for r in range(rounds):
            t = 16 + (idx * 37 + r * 11) % 240
            shape = (1, 4, 2, t, t, 64)
            sizes, offs, _ = layout(shape, dt)
            q, k, v = lib.make_qkv(rng, 1, 4, 2, t, t, 64, dt)
            q = (q + np.asarray(idx / 10, q.dtype)).astype(q.dtype)
            for a, o in zip((q, k, v), offs):
                region.put(o, a.transpose(0, 2, 1, 3) if bthd else a)
            req = infer_body(shape, dt, sizes, offs, name, dict(zip(lib.MASKS[mask], args)))
            if bthd:
                req["parameters"]["layout"] = "BTHD"
                for x in req["inputs"]:
                    x["shape"] = [x["shape"][0], x["shape"][2], x["shape"][1], x["shape"][3]]
            st, body = post(server, f"/v2/models/{mask}/infer", req)
            if st != 200:
                failures.append(f"region client {idx} round {r}: {st} {body}")
                continue
            out = region.get(offs[3], lib.np_dtype(dt), (1, t, 4, 64) if bthd else (1, 4, t, 64))
            err = lib.rel_error(out.transpose(0, 2, 1, 3) if bthd else out, lib.reference(q, k, v, mask, args)[0])
            if err > lib.TOL[dt]:
                failures.append(f"region client {idx} round {r} ({mask}, T {t}): relative error {err:.3g}")
        post(server, f"/v2/cudasharedmemory/region/{name}/unregister", {})
    except Exception as e:  # noqa: BLE001 -- any failure of any client fails the test
        failures.append(f"region client {idx}: {e!r}")
    finally:
        region.free()


def host_client(server, idx, rounds, failures):
    """The same batch key as the causal region clients, with host tensors."""
    rng = np.random.default_rng(900 + idx)
    for r in range(rounds):
        t = 32 + (idx * 29 + r * 13) % 200
        q, k, v = lib.make_qkv(rng, 1, 4, 2, t, t, 64, "FP16")
        q = (q - np.asarray(idx / 10, q.dtype)).astype(q.dtype)
        status, headers, body = lib.infer(server, "causal", [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")])
        if status != 200:
            failures.append(f"host client {idx} round {r}: {status} {body[:200]!r}")
            continue
        err = lib.rel_error(lib.decode_infer_response(headers, body)[1]["out"], lib.reference(q, k, v, "causal")[0])
        if err > lib.TOL["FP16"]:
            failures.append(f"host client {idx} round {r}: relative error {err:.3g}")


def batching():
    """Requests in CUDA shared memory share packed launches (their copies stay
    on the GPU), alone and beside host-memory requests of the same key."""
    cfg = {"batching": {"enabled": True, "max_queue_delay_us": 20000, "max_batch_requests": 64}}
    with lib.Chilld(cfg) as server:
        launches0, single0, _ = lib.batch_histogram(server)
        lib.run_clients([(region_client, (server, i, 4)) for i in range(16)])
        launches, single, _ = lib.batch_histogram(server)
        multi = (launches - launches0) - (single - single0)
        assert multi > 0, f"{launches - launches0} launches for 64 region requests, none with more than one"
        print(f"ok: 64 requests in CUDA regions from 16 clients, {launches - launches0} launches, {multi} shared")
        lib.run_clients([(region_client, (server, i, 4)) for i in range(12)] +
                        [(host_client, (server, i, 4)) for i in range(8)])
        print("ok: region and host-memory clients of one batch key at once, every result its own")


def main():
    batching()
    with lib.Chilld() as server:
        cases = [("causal", (), "FP16", (2, 8, 2, 256, 256, 64)), ("sliding_window", (64, 0), "BF16", (1, 4, 4, 300, 500, 128)),
                 ("chunkwise", (64, 1), "FP32", (1, 2, 1, 128, 128, 64)), ("prefix_lm", (32,), "FP16", (2, 4, 4, 96, 160, 64))]
        for i, (mask, args, dt, shape) in enumerate(cases):
            if dt == "BF16" and lib.BF16 is None:
                print("skip: BF16 (no ml_dtypes)")
                continue
            run_case(server, mask, args, dt, shape, i)
        n = ctypes.c_int()
        check(rt.cudaGetDeviceCount(ctypes.byref(n)), "cudaGetDeviceCount")
        if n.value >= 2:  # a region registered from device 1 is computed on device 1, where it lies
            run_case(server, "causal", (), "FP16", (2, 8, 2, 256, 256, 64), 7, device=1)
        failures(server)
    print("test_cuda_ipc: all passed")


if __name__ == "__main__":
    main()
