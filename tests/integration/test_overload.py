"""Overload: with a queue bound of one request and more concurrent clients
than that, the excess gets 503 with a Retry-After header and an error body,
never a dropped connection; every request that is accepted still gets its
own correct result, and once the load is gone the daemon serves normally.
A request whose timeout parameter passes while it waits (for a batch, while
another request is on its way) gets 504."""
import json
import threading

import numpy as np
import pytest

import lib

CLIENTS = 16
# long enough that the queue is still full when the next clients arrive
T = 2048 if lib.BACKEND == "cuda" else 256 if lib.SLOW > 1 else 512


@pytest.fixture(scope="module")
def server():
    with lib.Chilld({"batching": {"enabled": False, "max_queue_requests": 1},
                     "devices": {"cpu_threads": 1}, "listen": {"threads": 4}}) as s:
        yield s


def test_overload_is_503_with_retry_after(server):
    rng = np.random.default_rng(5)
    q, k, v = lib.make_qkv(rng, 1, 4, 4, T, T, 64, "FP32")
    inputs = [("q", q, "FP32"), ("k", k, "FP32"), ("v", v, "FP32")]
    ref, _ = lib.reference(q, k, v, "full")
    results = []
    barrier = threading.Barrier(CLIENTS)

    def one():
        barrier.wait()
        try:
            results.append(lib.infer(server, "full", inputs, timeout=120))
        except Exception as e:  # noqa: BLE001 -- a dropped connection is a failure
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180 * lib.SLOW)
    assert len(results) == CLIENTS
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    ok = [r for r in results if r[0] == 200]
    busy = [r for r in results if r[0] == 503]
    assert len(ok) + len(busy) == CLIENTS, [r[0] for r in results]
    assert ok, "no request was served"
    assert busy, "no request was refused with 503 despite a queue bound of 1"
    for status, headers, body in busy:
        assert int(headers["retry-after"]) >= 0, headers
        assert json.loads(body)["error"]
    for status, headers, body in ok:
        out = lib.decode_infer_response(headers, body)[1]["out"]
        assert lib.rel_error(out, ref) <= lib.TOL["FP32"]

    series = lib.parse_metrics(server.metrics())
    assert lib.metric_sum(series, "chill_requests_total", code="503") >= len(busy)
    status, _, body = lib.infer(server, "full", inputs)
    assert status == 200, body[:200]


def test_timeout_passed_in_the_queue_is_504():
    with lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": 400_000}}) as server:
        rng = np.random.default_rng(6)
        q, k, v = lib.make_qkv(rng, 1, 2, 2, 8, 8, 16, "FP32")
        inputs = [("q", q, "FP32"), ("k", k, "FP32"), ("v", v, "FP32")]
        with lib.upload_on_its_way(server):
            status, _, body = lib.infer(server, "causal", inputs, {"timeout": 1000})
        assert status == 504, body[:300]
        assert "timeout" in json.loads(body)["error"]
        series = lib.parse_metrics(server.metrics())
        assert lib.metric_sum(series, "chill_requests_total", model="causal", code="504") == 1
        status, headers, body = lib.infer(server, "causal", inputs, {"timeout": 20_000_000})
        assert status == 200, body[:300]
        ref, _ = lib.reference(q, k, v, "causal")
        assert lib.rel_error(lib.decode_infer_response(headers, body)[1]["out"], ref) <= lib.TOL["FP32"]


if __name__ == "__main__":
    lib.run_tests(globals())
