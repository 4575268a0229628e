"""Graceful shutdown: SIGTERM, and SIGINT the same, while requests are in
flight. Every request sent before the signal is answered with its own
correct result, one sent after it is refused (connection refused, or 503),
and chilld exits with code 0 in bounded time. Clients that hang up while
their request waits in the queue do not disturb the daemon either.

To be sure the requests are still in flight when the signal lands, batching
waits up to two seconds for a batch to fill (max_queue_delay_us) and an
upload still on its way keeps them waiting in the queue: the drain must
flush that queue, not drop it."""
import signal
import socket
import threading
import time

import numpy as np
import pytest

import lib

CLIENTS = 6
T = 256 if lib.SLOW > 1 else 1024
DELAY_US = 2_000_000


def in_flight(server):
    series = lib.parse_metrics(server.metrics())
    return lib.metric_sum(series, "chill_requests_in_flight")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests(sig):
    server = lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": DELAY_US, "max_batch_requests": 64},
                         "devices": {"cpu_threads": 1}})
    try:
        rng = np.random.default_rng(int(sig))
        jobs = []
        for i in range(CLIENTS):
            q, k, v = lib.make_qkv(rng, 1, 4, 2, T, T, 64, "FP16")
            jobs.append({"inputs": [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")],
                         "ref": lib.reference(q, k, v, "causal")[0]})

        def one(job):
            try:
                job["result"] = lib.infer(server, "causal", job["inputs"], timeout=120)
            except Exception as e:  # noqa: BLE001 -- an unanswered request is a failure
                job["result"] = e

        threads = [threading.Thread(target=one, args=(j,)) for j in jobs]
        with lib.upload_on_its_way(server):
            for t in threads:
                t.start()
            end = time.monotonic() + 20 * lib.SLOW
            n = 0
            while n < CLIENTS and time.monotonic() < end:
                n = in_flight(server)
            assert n == CLIENTS, f"only {n} of {CLIENTS} requests got in flight"
            assert not any("result" in j for j in jobs), "a request was answered before its batch delay"
            sent = time.monotonic()
            server.send_signal(sig)
            time.sleep(0.2)
        try:
            late = lib.infer(server, "causal", jobs[0]["inputs"], timeout=30)[0]
        except OSError:
            late = "refused"
        assert late in ("refused", 503), f"a request sent after {sig.name} got {late}"
        for t in threads:
            t.join(120 * lib.SLOW)
        code = server.wait(60)
        assert time.monotonic() - sent < 30 * lib.SLOW
        assert code == 0, f"chilld exited with {code} after {sig.name}:\n{server.log_text()}"
        for i, job in enumerate(jobs):
            r = job.get("result")
            assert not isinstance(r, Exception) and r is not None, f"request {i} unanswered: {r!r}"
            status, headers, body = r
            assert status == 200, f"request {i}: {status} {body[:200]!r}"
            out = lib.decode_infer_response(headers, body)[1]["out"]
            assert lib.rel_error(out, job["ref"]) <= lib.TOL["FP16"]
    finally:
        server.kill()


def test_clients_gone_while_queued():
    with lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": 300_000}}) as server:
        rng = np.random.default_rng(3)
        q, k, v = lib.make_qkv(rng, 1, 2, 2, 64, 64, 32, "FP32")
        inputs = [("q", q, "FP32"), ("k", k, "FP32"), ("v", v, "FP32")]
        body, headers = lib.infer_binary_body(inputs)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        req = (f"POST /v2/models/causal/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
               f"{head}\r\n").encode() + body
        socks = []
        with lib.upload_on_its_way(server):
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=10 * lib.SLOW)
                s.sendall(req)
                socks.append(s)
            end = time.monotonic() + 10 * lib.SLOW
            while in_flight(server) < len(socks) and time.monotonic() < end:
                time.sleep(0.01)
            assert in_flight(server) == len(socks), "the requests never got in flight"
            for s in socks:
                s.close()
        while in_flight(server) > 0 and time.monotonic() < end:
            time.sleep(0.01)
        assert in_flight(server) == 0, "requests of closed connections stay in flight"
        status, rheaders, rbody = lib.infer(server, "causal", inputs)
        assert status == 200, rbody[:200]
        ref, _ = lib.reference(q, k, v, "causal")
        assert lib.rel_error(lib.decode_infer_response(rheaders, rbody)[1]["out"], ref) <= lib.TOL["FP32"]


if __name__ == "__main__":
    lib.run_tests(globals())
