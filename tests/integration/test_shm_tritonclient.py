"""System shared memory against chilld with the stock tritonclient: regions
made and filled by tritonclient.utils.shared_memory, registered with
register_system_shared_memory, named by infer inputs and outputs, and the
results checked against the float64 reference; rows past seq_lens come back
in the region as over HTTP (out zeros, lse -inf). Then every failure: offsets
and sizes outside the region, an unknown region, double registration,
unregister of an unknown name, unregister while a request uses the region,
an object truncated by its owner (SIGBUS inside chilld), registration turned
off in the config; each gives its error and chilld keeps serving. Also the
chill Python package (client/python) over both its transports."""
import os
import sys
import threading

import numpy as np
import pytest

import lib

httpclient = pytest.importorskip("tritonclient.http")
shm = pytest.importorskip("tritonclient.utils.shared_memory")
from tritonclient.utils import InferenceServerException  # noqa: E402

sys.path.insert(0, os.path.join(lib.ROOT, "client", "python"))
import chill  # noqa: E402

PID = os.getpid()


@pytest.fixture(scope="module")
def server():
    with lib.Chilld() as s:
        yield s


@pytest.fixture()
def client(server):
    c = httpclient.InferenceServerClient(url=server.url(), network_timeout=60.0 * lib.SLOW)
    yield c
    c.unregister_system_shared_memory()
    c.close()


class Region:
    """A shm region holding q, k, v, out, lse back to back (64-byte aligned)."""

    def __init__(self, name, q, k, v, extra=0):
        self.name, self.key = name, f"/{name}.{PID}"
        self.q, self.k, self.v = q, k, v
        sizes = [q.nbytes, k.nbytes, v.nbytes, q.nbytes, q.nbytes // q.shape[3] // q.itemsize * 4]
        self.off, at = [], 0
        for s in sizes:
            self.off.append(at)
            at += (s + 63) // 64 * 64
        self.sizes, self.size = sizes, at + extra
        self.handle = shm.create_shared_memory_region(name, self.key, self.size)
        for a, o in zip((q, k, v), self.off):
            shm.set_shared_memory_region(self.handle, [a], offset=o)

    def inputs(self, dt, overrides=None):
        ins = []
        for i, (n, a) in enumerate(zip("qkv", (self.q, self.k, self.v))):
            x = httpclient.InferInput(n, list(a.shape), dt)
            size, off = (overrides or {}).get(n, (self.sizes[i], self.off[i]))
            x.set_shared_memory(self.name, size, offset=off)
            ins.append(x)
        return ins

    def outputs(self, lse=True):
        outs = [httpclient.InferRequestedOutput("out", binary_data=True)]
        outs[0].set_shared_memory(self.name, self.sizes[3], offset=self.off[3])
        if lse:
            outs.append(httpclient.InferRequestedOutput("lse", binary_data=True))
            outs[1].set_shared_memory(self.name, self.sizes[4], offset=self.off[4])
        return outs

    def out(self):
        return shm.get_contents_as_numpy(self.handle, self.q.dtype, list(self.q.shape), offset=self.off[3])

    def lse(self):
        return shm.get_contents_as_numpy(self.handle, np.float32, list(self.q.shape[:3]), offset=self.off[4])

    def destroy(self):
        shm.destroy_shared_memory_region(self.handle)


def make(rng, shape=(2, 4, 2, 40, 56, 32), dt="FP16"):
    B, H, Hkv, Tq, Tk, D = shape
    return lib.make_qkv(rng, B, H, Hkv, Tq, Tk, D, dt)


@pytest.mark.parametrize("mask,args,dt", [("causal", (), "FP16"), ("sliding_window", (7, 3), "FP32"),
                                          ("chunkwise", (16, 1), "FP16"), ("prefix_lm", (9,), "FP32")])
def test_infer_through_regions(client, mask, args, dt):
    q, k, v = make(np.random.default_rng(len(mask)), dt=dt)
    r = Region(f"io-{mask}", q, k, v)
    try:
        client.register_system_shared_memory(r.name, r.key, r.size)
        status = client.get_system_shared_memory_status(r.name)
        assert status[0]["name"] == r.name and int(status[0]["byte_size"]) == r.size
        params = dict(zip(lib.MASKS[mask], args))
        params["return_lse"] = True
        res = client.infer(mask, r.inputs(dt), outputs=r.outputs(), parameters=params)
        # an output in a region is described as Triton describes it, without "parameters"
        assert res.get_output("out") == {"name": "out", "datatype": dt, "shape": list(q.shape)}
        ref_out, ref_lse = lib.reference(q, k, v, mask, args)
        assert lib.rel_error(r.out(), ref_out) <= lib.TOL[dt]
        assert np.max(np.abs(r.lse() - ref_lse)) <= 1e-3
        client.unregister_system_shared_memory(r.name)
        assert client.get_system_shared_memory_status() == []
    finally:
        r.destroy()


def test_rows_past_seq_lens_in_regions(client):
    """Rows past seq_lens come back in a region as over HTTP: out zeros, lse
    -inf, written over the NaN the region held."""
    q, k, v = make(np.random.default_rng(5), dt="FP32")
    r = Region("io-padded", q, k, v)
    try:
        shm.set_shared_memory_region(r.handle, [np.full(q.shape, np.nan, np.float32)], offset=r.off[3])
        shm.set_shared_memory_region(r.handle, [np.full(q.shape[:3], np.nan, np.float32)], offset=r.off[4])
        client.register_system_shared_memory(r.name, r.key, r.size)
        seq_lens, kv_seq_lens = [25, 0], [30, 56]
        inputs = r.inputs("FP32")
        for name, lens in (("seq_lens", seq_lens), ("kv_seq_lens", kv_seq_lens)):
            inputs.append(httpclient.InferInput(name, [2], "INT32"))
            inputs[-1].set_data_from_numpy(np.asarray(lens, np.int32))
        client.infer("causal", inputs, outputs=r.outputs(), parameters={"return_lse": True})
        ref_out, ref_lse = lib.reference(q, k, v, "causal", (), seq_lens=seq_lens, kv_seq_lens=kv_seq_lens)
        out, lse = r.out(), r.lse()
        assert lib.rel_error(out, ref_out) <= lib.TOL["FP32"]
        for b, n in enumerate(seq_lens):
            assert np.all(out[b, :, n:] == 0) and np.all(np.isneginf(lse[b, :, n:])), f"sequence {b}"
            assert np.max(np.abs(lse[b, :, :n] - ref_lse[b, :, :n]), initial=0) <= 1e-3
    finally:
        r.destroy()


def expect_error(fn, status, *words):
    with pytest.raises(InferenceServerException) as e:
        fn()
    assert e.value.status() == str(status) or e.value.status() == status, (e.value.status(), e.value.message())
    for w in words:
        assert w in e.value.message(), (w, e.value.message())


def test_out_of_range_and_unknown(client, server):
    q, k, v = make(np.random.default_rng(1))
    r = Region("range", q, k, v)
    try:
        client.register_system_shared_memory(r.name, r.key, r.size)
        infer = lambda ins, outs: client.infer("causal", ins, outputs=outs)  # noqa: E731
        expect_error(lambda: infer(r.inputs("FP16", {"q": (r.sizes[0], r.size - 64)}), r.outputs()), 400,
                     "outside region")
        expect_error(lambda: infer(r.inputs("FP16", {"k": (r.size + 2, 0)}), r.outputs()), 400, "outside region")
        expect_error(lambda: infer(r.inputs("FP16", {"v": (r.sizes[2] - 2, r.off[2])}), r.outputs()), 400, "v")
        bad = httpclient.InferRequestedOutput("out", binary_data=True)
        bad.set_shared_memory(r.name, r.sizes[3], offset=r.size - 2)
        expect_error(lambda: infer(r.inputs("FP16"), [bad]), 400, "out")
        ghost = r.inputs("FP16")
        ghost[0].set_shared_memory("no-such-region", r.sizes[0], offset=0)
        expect_error(lambda: infer(ghost, r.outputs()), 400, "no-such-region", "not registered")
        expect_error(lambda: client.register_system_shared_memory(r.name, r.key, r.size), 400, "already registered")
        expect_error(lambda: client.register_system_shared_memory("big", r.key, r.size + 1), 400, "does not fit")
        expect_error(lambda: client.register_system_shared_memory("nokey", "/chill-no-such-key", 64), 400,
                     "cannot open")
        expect_error(lambda: client.unregister_system_shared_memory("never-registered"), 404, "never-registered")
        infer(r.inputs("FP16"), r.outputs(lse=False))  # still serving, region still good
        assert lib.rel_error(r.out(), lib.reference(q, k, v, "causal")[0]) <= lib.TOL["FP16"]
    finally:
        r.destroy()


def test_unregister_while_in_use(client, server):
    q, k, v = make(np.random.default_rng(2), shape=(1, 8, 8, 512, 512, 64))
    r = Region("busy", q, k, v)
    try:
        client.register_system_shared_memory(r.name, r.key, r.size)
        result = {}

        def run():
            try:
                c2 = httpclient.InferenceServerClient(url=server.url(), network_timeout=60.0 * lib.SLOW)
                c2.infer("full", r.inputs("FP16"), outputs=r.outputs(lse=False))
                result["ok"] = True
            except InferenceServerException as e:
                result["error"] = e.message()

        t = threading.Thread(target=run)
        t.start()
        client.unregister_system_shared_memory(r.name)
        t.join(120 * lib.SLOW)
        assert not t.is_alive()
        # Either the request took its views before the unregister (then it ran
        # to the end on the still-mapped region) or it came after it and was
        # told the region is unknown; never a crash, never a wrong answer.
        if result.get("ok"):
            assert lib.rel_error(r.out(), lib.reference(q, k, v, "full")[0]) <= lib.TOL["FP16"]
        else:
            assert "not registered" in result["error"], result
        assert client.is_server_ready()
    finally:
        r.destroy()


def test_truncated_region_fails_the_request(client, server):
    q, k, v = make(np.random.default_rng(3))
    r = Region("trunc", q, k, v)
    try:
        client.register_system_shared_memory(r.name, r.key, r.size)
        os.truncate("/dev/shm" + r.key, 0)
        expect_error(lambda: client.infer("causal", r.inputs("FP16"), outputs=r.outputs()), 400, "truncated")
        assert server.proc.poll() is None
        assert client.is_server_ready()
        os.truncate("/dev/shm" + r.key, r.size)
        for a, o in zip((q, k, v), r.off):
            shm.set_shared_memory_region(r.handle, [a], offset=o)
        client.infer("causal", r.inputs("FP16"), outputs=r.outputs(lse=False))
        assert lib.rel_error(r.out(), lib.reference(q, k, v, "causal")[0]) <= lib.TOL["FP16"]
    finally:
        r.destroy()


def test_registration_off_in_config():
    with lib.Chilld({"shared_memory": {"system": False}}) as s:
        assert "system_shared_memory" not in s.get_json("/v2")["extensions"]
        c = httpclient.InferenceServerClient(url=s.url())
        h = shm.create_shared_memory_region("off", f"/off.{PID}", 4096)
        try:
            expect_error(lambda: c.register_system_shared_memory("off", f"/off.{PID}", 4096), 403,
                         "shared_memory.system")
        finally:
            shm.destroy_shared_memory_region(h)
            c.close()


@pytest.mark.parametrize("transport", ["http", "shm"])
def test_python_package(server, transport):
    q, k, v = make(np.random.default_rng(4), dt="FP32")
    with chill.Client(server.url(), transport=transport) as c:
        assert c.is_ready()
        assert "causal" in c.models()
        out, lse = c.attention(q, k, v, mask="sliding_window(5,1)", return_lse=True)
        ref_out, ref_lse = lib.reference(q, k, v, "sliding_window", (5, 1))
        assert lib.rel_error(out, ref_out) <= lib.TOL["FP32"]
        assert np.max(np.abs(lse - ref_lse)) <= 1e-3
        out = c.attention(q, k, v, mask="chunkwise", context_size=8, back_contexts=0, sm_scale=0.3)
        assert lib.rel_error(out, lib.reference(q, k, v, "chunkwise", (8, 0), sm_scale=0.3)[0]) <= lib.TOL["FP32"]
        with pytest.raises(chill.ChillError) as e:
            c.attention(q, k, v, mask="sliding_window", left_context=-1, right_context=0)
        assert e.value.status is not None and "left_context" in str(e.value)


if __name__ == "__main__":
    lib.run_tests(globals())
