"""Several devices: with two or more configured (CHILLD_TEST_GPUS "0,1", or
one GPU listed twice, "0,0", which runs the same per-device workers on one
card), concurrent requests are spread over every device's worker, each
result equals the float64 reference, and the compute metrics carry one
device label per worker. tests/gpu/run.sh runs it; with fewer than two
devices it is skipped."""

import numpy as np
import pytest

import lib

pytestmark = pytest.mark.skipif(len(lib.GPUS) < 2, reason="needs two or more devices in CHILLD_TEST_GPUS")

CLIENTS = 16
ROUNDS = 6


def client(server, idx, failures):
    rng = np.random.default_rng(500 + idx)
    for r in range(ROUNDS):
        q, k, v = lib.make_qkv(rng, 1, 4, 2, 96, 128, 64, "FP16")
        send = [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")]
        status, headers, body = lib.infer(server, "causal", send)
        if status != 200:
            failures.append(f"client {idx} round {r}: {status} {body[:200]!r}")
            continue
        out = lib.decode_infer_response(headers, body)[1]["out"]
        err = lib.rel_error(out, lib.reference(q, k, v, "causal")[0])
        if err > lib.TOL["FP16"]:
            failures.append(f"client {idx} round {r}: rel error {err:.3g}")


def test_work_spreads_over_every_device():
    with lib.Chilld({"batching": {"enabled": False}, "listen": {"threads": 8}}) as server:
        lib.run_clients([(client, (server, i)) for i in range(CLIENTS)])
        series = lib.parse_metrics(server.metrics())
        per_device = {dict(ls)["device"]: v for (n, ls), v in series.items()
                      if n == "chill_compute_duration_seconds_count"}
        assert len(per_device) == len(lib.GPUS), per_device
        assert all(v > 0 for v in per_device.values()), f"a device got no work: {per_device}"
        assert sum(per_device.values()) == CLIENTS * ROUNDS, per_device


if __name__ == "__main__":
    lib.run_tests(globals())
