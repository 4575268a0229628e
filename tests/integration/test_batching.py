"""Dynamic batching under concurrency: many clients at once, each with its own
distinct inputs (different lengths too, so packing is varlen; BHTD and BTHD
layouts; one or two sequences with seq_lens) and one of three masks (so
requests of different batch keys arrive together), each
checking its own result against the float64 reference. Batching must never
mix results, and the batch-size histogram must show that launches of more
than one request really happened. A batch waits for company only while some
could come: requests one at a time are not held for the queue delay."""
import time

import numpy as np
import pytest

import lib

CLIENTS = 24
ROUNDS = 3
MASKS = [("causal", {}, ()), ("sliding_window", {"left_context": 3, "right_context": 1}, (3, 1)),
         ("chunkwise", {"context_size": 4, "back_contexts": 1}, (4, 1))]


@pytest.fixture(scope="module")
def server():
    with lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": 20000, "max_batch_requests": 64},
                     "listen": {"threads": 4}}) as s:
        yield s


def client(server, idx, dt, failures):
    rng = np.random.default_rng(1000 + idx)
    mask, params, args = MASKS[idx % len(MASKS)]
    bthd = idx % 2 == 1  # BHTD and BTHD requests pack into one launch
    batch = 2 if idx % 4 == 3 else 1  # some requests hold two sequences, the second shorter
    for r in range(ROUNDS):
        tq = 1 + (idx * 7 + r) % 12
        tk = tq + (idx * 3 + r) % 9
        q, k, v = lib.make_qkv(rng, batch, 4, 2, tq, tk, 32, dt)
        # distinct per client: a client's own id in its values makes any mix-up visible
        q = (q + np.asarray(idx / 10, q.dtype)).astype(q.dtype)
        lens = {}
        if batch == 2:
            lens = {"seq_lens": [tq, (tq + 1) // 2], "kv_seq_lens": [tk, (tk + 1) // 2]}
        send = [(n, np.ascontiguousarray(a.transpose(0, 2, 1, 3)) if bthd else a, dt)
                for n, a in (("q", q), ("k", k), ("v", v))]
        send += [(n, np.asarray(x, np.int32), "INT32") for n, x in lens.items()]
        p = dict(params, layout="BTHD") if bthd else params
        try:
            status, headers, body = lib.infer(server, mask, send, p)
            if status != 200:
                failures.append(f"client {idx} round {r}: {status} {body[:200]!r}")
                continue
            out = lib.decode_infer_response(headers, body)[1]["out"]
            if bthd:
                out = out.transpose(0, 2, 1, 3)
            ref, _ = lib.reference(q, k, v, mask, args, **lens)
            err = lib.rel_error(out, ref)
            if out.shape != q.shape or err > lib.TOL[dt]:
                failures.append(f"client {idx} round {r} ({mask}): shape {out.shape}, rel error {err:.3g}")
        except Exception as e:  # noqa: BLE001 -- any failure of any client fails the test
            failures.append(f"client {idx} round {r}: {e!r}")


@pytest.mark.parametrize("dt", ["FP16", "FP32"])
def test_concurrent_clients_get_their_own_results(server, dt):
    count0, single0, total0 = lib.batch_histogram(server)
    lib.run_clients([(client, (server, i, dt)) for i in range(CLIENTS)])
    count, single, total = lib.batch_histogram(server)
    requests = total - total0
    assert requests == CLIENTS * ROUNDS, f"the batch histogram counted {requests} requests"
    launches = count - count0
    multi = launches - (single - single0)
    assert multi > 0, f"{launches} launches for {requests} requests, none with more than one request"


@pytest.fixture(scope="module")
def long_delay():
    with lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": 10000000}}) as s:
        yield s


def test_requests_one_at_a_time_do_not_wait_out_the_delay(long_delay):
    """With a 10 s queue delay, a request sent alone (nothing else on its way
    or in flight) is answered at once. Before each: an upload cut short and a
    request refused 400, which must stop counting as on their way."""
    assert "\nchill_requests_receiving 0\n" in long_delay.metrics(), "the gauge is there from the start"
    rng = np.random.default_rng(7)
    q, k, v = lib.make_qkv(rng, 1, 2, 2, 8, 8, 16, "FP16")
    inputs = [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")]
    ref, _ = lib.reference(q, k, v, "causal")
    for _ in range(3):
        with lib.upload_on_its_way(long_delay):
            pass
        assert lib.infer(long_delay, "causal", inputs[:1])[0] == 400
        t0 = time.monotonic()
        status, headers, body = lib.infer(long_delay, "causal", inputs)
        took = time.monotonic() - t0
        assert status == 200, body[:200]
        assert lib.rel_error(lib.decode_infer_response(headers, body)[1]["out"], ref) <= lib.TOL["FP16"]
        assert took < 5, f"a lone request took {took:.1f} s: it waited out the 10 s queue delay"
    assert lib.metric_sum(lib.parse_metrics(long_delay.metrics()), "chill_requests_receiving") == 0


if __name__ == "__main__":
    lib.run_tests(globals())
