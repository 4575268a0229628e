"""The stock Python tritonclient[http] (from PyPI, unmodified) against
chilld: liveness, readiness, server and model metadata, model config,
repository index, infer with binary and JSON tensors and parameters, async
infer, and statistics. Results are checked against the float64 reference."""
import numpy as np
import pytest

import lib

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def server():
    with lib.Chilld() as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(url=server.url(), concurrency=4, network_timeout=60.0 * lib.SLOW)
    yield c
    c.close()


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    for m in lib.MASKS:
        assert client.is_model_ready(m)
        md = client.get_model_metadata(m)
        assert md["name"] == m
        assert {"q", "k", "v"} <= {t["name"] for t in md["inputs"]}
        cfg = client.get_model_config(m)
        assert cfg["name"] == m
    names = {m["name"] for m in client.get_model_repository_index()}
    assert set(lib.MASKS) <= names


def make_inputs(q, k, v, dt, binary):
    inputs = []
    for name, arr in (("q", q), ("k", k), ("v", v)):
        t = httpclient.InferInput(name, list(arr.shape), dt)
        t.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(t)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dt", ["FP32", "FP16"])
def test_infer(client, dt, binary):
    rng = np.random.default_rng(11)
    q, k, v = lib.make_qkv(rng, 2, 4, 2, 12, 20, 32, dt)
    outputs = [httpclient.InferRequestedOutput("out", binary_data=binary)]
    res = client.infer("sliding_window", make_inputs(q, k, v, dt, binary), outputs=outputs,
                       parameters={"left_context": 4, "right_context": 2})
    out = res.as_numpy("out")
    assert out.shape == q.shape
    ref, _ = lib.reference(q, k, v, "sliding_window", (4, 2))
    assert lib.rel_error(out, ref) <= lib.TOL[dt]


def test_infer_lse_and_async(client):
    rng = np.random.default_rng(12)
    jobs = []
    for i in range(6):
        q, k, v = lib.make_qkv(rng, 1, 2, 2, 8, 8 + i, 16, "FP32")
        outputs = [httpclient.InferRequestedOutput("out"), httpclient.InferRequestedOutput("lse")]
        jobs.append((q, k, v, client.async_infer("causal", make_inputs(q, k, v, "FP32", True),
                                                 outputs=outputs, parameters={"return_lse": True})))
    for q, k, v, job in jobs:
        res = job.get_result()
        ref, ref_lse = lib.reference(q, k, v, "causal")
        assert lib.rel_error(res.as_numpy("out"), ref) <= lib.TOL["FP32"]
        assert np.allclose(res.as_numpy("lse"), ref_lse, atol=1e-4)


def test_statistics(client):
    before = client.get_inference_statistics("full")["model_stats"][0]["inference_stats"]["success"]["count"]
    rng = np.random.default_rng(13)
    q, k, v = lib.make_qkv(rng, 1, 1, 1, 4, 4, 16, "FP32")
    for _ in range(2):
        client.infer("full", make_inputs(q, k, v, "FP32", True))
    stats = client.get_inference_statistics("full")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == before + 2


def test_error_surfaces_as_exception(client):
    from tritonclient.utils import InferenceServerException
    rng = np.random.default_rng(14)
    q, k, v = lib.make_qkv(rng, 1, 2, 2, 4, 4, 16, "FP32")
    with pytest.raises(InferenceServerException) as e:
        client.infer("chunkwise", make_inputs(q, k, v, "FP32", True), parameters={"context_size": 0, "back_contexts": 1})
    assert "context_size" in str(e.value)


if __name__ == "__main__":
    lib.run_tests(globals())
