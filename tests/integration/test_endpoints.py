"""Every HTTP endpoint of the Open Inference Protocol that chilld serves:
health, server and model metadata, model readiness and config, infer (JSON
and binary), statistics, the repository index and /metrics, each checked for
its status and the fields clients rely on; /metrics also through
`promtool check metrics`, and its process families against /proc."""
import json
import os
import subprocess
import time

import numpy as np
import pytest

import lib

PRESET = "sw-test"


@pytest.fixture(scope="module")
def server():
    with lib.Chilld({"presets": {PRESET: "sliding_window(8,0)"}}) as s:
        yield s


def model_names(server):
    status, _, body = server.request("POST", "/v2/repository/index", b"{}", {"Content-Type": "application/json"})
    assert status == 200, body
    index = json.loads(body)
    assert isinstance(index, list)
    for m in index:
        assert m["state"] == "READY", m
    return [m["name"] for m in index]


def test_health(server):
    for path in ("/v2/health/live", "/v2/health/ready"):
        status, _, _ = server.get(path)
        assert status == 200, path


def test_server_metadata(server):
    meta = server.get_json("/v2")
    assert meta["name"] and meta["version"]
    ext = set(meta["extensions"])
    assert {"binary_tensor_data", "statistics", "model_repository"} <= ext, ext


def test_repository_index_lists_every_mask_and_preset(server):
    names = model_names(server)
    assert set(lib.MASKS) | {PRESET} <= set(names), names


@pytest.mark.parametrize("model", list(lib.MASKS) + [PRESET])
def test_model_metadata_ready_config(server, model):
    meta = server.get_json(f"/v2/models/{model}")
    assert meta["name"] == model
    assert isinstance(meta["platform"], str) and meta["platform"]
    for t in meta["inputs"] + meta["outputs"]:
        assert t["datatype"] in ("FP32", "FP16", "BF16", "INT32"), t
    inputs = {t["name"]: t for t in meta["inputs"]}
    outputs = {t["name"]: t for t in meta["outputs"]}
    assert {"q", "k", "v"} <= set(inputs), inputs
    assert "out" in outputs, outputs
    for t in ("q", "k", "v"):
        assert len(inputs[t]["shape"]) == 4
    assert server.get(f"/v2/models/{model}/ready")[0] == 200

    cfg = server.get_json(f"/v2/models/{model}/config")
    assert cfg["name"] == model
    assert cfg["max_batch_size"] == 0
    cin = {t["name"]: t for t in cfg["input"]}
    assert {"q", "k", "v"} <= set(cin)
    assert cin["q"]["data_type"].startswith("TYPE_")
    assert len(cin["q"]["dims"]) == 4
    assert "out" in {t["name"] for t in cfg["output"]}


def test_unknown_model_is_404(server):
    for path in ("/v2/models/nosuchmask", "/v2/models/nosuchmask/ready", "/v2/models/nosuchmask/config"):
        status, _, body = server.get(path)
        assert status == 404, (path, status)
        assert "nosuchmask" in json.loads(body)["error"]


def small_request(rng, dt="FP32"):
    q, k, v = lib.make_qkv(rng, 1, 2, 2, 8, 8, 16, dt)
    return q, k, v, [("q", q, dt), ("k", k, dt), ("v", v, dt)]


@pytest.mark.parametrize("binary", [False, True])
def test_infer_and_stats(server, binary):
    rng = np.random.default_rng(1 + binary)
    before = server.get_json("/v2/models/causal/stats")["model_stats"][0]
    n = 3
    for _ in range(n):
        q, k, v, inputs = small_request(rng)
        status, headers, body = lib.infer(server, "causal", inputs, binary=binary)
        assert status == 200, body[:300]
        resp, outs = lib.decode_infer_response(headers, body)
        assert resp["model_name"] == "causal"
        assert ("inference-header-content-length" in headers) == binary
        ref, _ = lib.reference(q, k, v, "causal")
        assert lib.rel_error(outs["out"], ref) <= lib.TOL["FP32"]
    after = server.get_json("/v2/models/causal/stats")["model_stats"][0]
    assert after["name"] == "causal"
    ok_before = before["inference_stats"]["success"]["count"]
    assert after["inference_stats"]["success"]["count"] == ok_before + n
    assert after["inference_stats"]["success"]["ns"] > before["inference_stats"]["success"]["ns"]
    assert after["inference_count"] == before["inference_count"] + n
    assert 1 <= after["execution_count"] - before["execution_count"] <= n
    for stage in ("queue", "compute_infer"):
        assert after["inference_stats"][stage]["count"] > before["inference_stats"][stage]["count"], stage
    assert after["last_inference"] > 0


def test_request_id_is_echoed_and_outputs_are_filtered(server):
    """KServe v2: the response carries the request's id, and only the outputs
    the request names (all of them when it names none)."""
    rng = np.random.default_rng(4)
    q, k, v, inputs = small_request(rng)
    req = json.loads(lib.infer_json_body(inputs, {"return_lse": True}))
    req["id"] = "req-42"
    for outputs, want in ((None, {"out", "lse"}), (["lse"], {"lse"}), (["out"], {"out"})):
        if outputs is None:
            req.pop("outputs", None)
        else:
            req["outputs"] = [{"name": o} for o in outputs]
        status, headers, body = server.request("POST", "/v2/models/causal/infer", json.dumps(req).encode(),
                                               {"Content-Type": "application/json"})
        assert status == 200, body[:300]
        resp, outs = lib.decode_infer_response(headers, body)
        assert resp["id"] == "req-42"
        assert set(outs) == want, (outputs, set(outs))
        ref, ref_lse = lib.reference(q, k, v, "causal")
        if "lse" in outs:
            assert np.allclose(outs["lse"], ref_lse, atol=1e-4)
        if "out" in outs:
            assert lib.rel_error(outs["out"], ref) <= lib.TOL["FP32"]


def test_binary_and_json_outputs_in_one_response(server):
    rng = np.random.default_rng(5)
    q, k, v, inputs = small_request(rng)
    body, headers = lib.infer_binary_body(inputs, {"return_lse": True})
    hlen = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:hlen])
    header["outputs"] = [{"name": "out", "parameters": {"binary_data": True}},
                         {"name": "lse", "parameters": {"binary_data": False}}]
    h = json.dumps(header).encode()
    headers["Inference-Header-Content-Length"] = str(len(h))
    status, rheaders, rbody = server.request("POST", "/v2/models/causal/infer", h + body[hlen:], headers)
    assert status == 200, rbody[:300]
    resp, outs = lib.decode_infer_response(rheaders, rbody)
    kinds = {o["name"]: "data" in o for o in resp["outputs"]}
    assert kinds == {"out": False, "lse": True}, resp["outputs"]
    ref, ref_lse = lib.reference(q, k, v, "causal")
    assert lib.rel_error(outs["out"], ref) <= lib.TOL["FP32"]
    assert np.allclose(outs["lse"], ref_lse, atol=1e-4)


def test_stats_of_every_model(server):
    stats = server.get_json("/v2/stats")["model_stats"]
    assert set(lib.MASKS) <= {m["name"] for m in stats}


def test_metrics_text(server):
    rng = np.random.default_rng(7)
    _, _, _, inputs = small_request(rng)
    assert lib.infer(server, "full", inputs)[0] == 200
    status, headers, body = server.get("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    series = lib.parse_metrics(body.decode())
    assert lib.metric_sum(series, "chill_requests_total", model="full") >= 1
    assert lib.metric_sum(series, "chill_attention_flops_total", model="full") > 0
    assert lib.metric_sum(series, "chill_request_duration_seconds_count", model="full") >= 1


def test_metrics_count_tokens_and_attended_flops(server):
    """The throughput counters move by exactly what one request did: its
    valid query and key tokens, and 4 * D * the (query, key) pairs its mask
    attends (counted here with DESIGN.md's predicate), summed over heads."""
    rng = np.random.default_rng(9)
    B, Hq, Hkv, Tq, Tk, D = 2, 4, 2, 12, 20, 32
    seq_lens, kv_seq_lens = [12, 5], [20, 9]
    left, right = 3, 2
    q, k, v = lib.make_qkv(rng, B, Hq, Hkv, Tq, Tk, D, "FP16")
    inputs = [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16"),
              ("seq_lens", np.array(seq_lens, np.int32), "INT32"),
              ("kv_seq_lens", np.array(kv_seq_lens, np.int32), "INT32")]
    pairs = 0
    for nq, nk in zip(seq_lens, kv_seq_lens):
        qp = (nk - nq + np.arange(nq))[:, None]
        pairs += Hq * int(lib.mask_allows("sliding_window", (left, right), qp, np.arange(nk)[None, :]).sum())

    def counters():
        series = lib.parse_metrics(server.metrics())
        m = {"model": "sliding_window", "dtype": "FP16"}
        return (lib.metric_sum(series, "chill_attention_flops_total", **m),
                lib.metric_sum(series, "chill_tokens_total", kind="query", **m),
                lib.metric_sum(series, "chill_tokens_total", kind="key", **m),
                lib.metric_sum(series, "chill_received_bytes_total", model="sliding_window"))

    before = counters()
    status, _, body = lib.infer(server, "sliding_window", inputs, {"left_context": left, "right_context": right})
    assert status == 200, body[:300]
    after = counters()
    assert after[0] - before[0] == 4 * D * pairs
    assert after[1] - before[1] == sum(seq_lens)
    assert after[2] - before[2] == sum(kv_seq_lens)
    assert after[3] - before[3] >= q.nbytes + k.nbytes + v.nbytes


def proc_stat(pid):
    """Fields 14 and 15 (utime, stime) and 22 (starttime) of /proc/PID/stat, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12]), int(fields[19])


def test_process_metrics(server):
    """The process families that every Prometheus client exports, each equal
    to what /proc says of chilld from outside."""
    pid = server.proc.pid
    one = lambda series, name: series[(name, frozenset())]  # noqa: E731
    # Open descriptors: chilld's own and the socket of the connection that
    # scrapes, open before the count. Connections of earlier requests may
    # still be closing meanwhile: compare a scrape whose count outside is the
    # same before and after it.
    conn = server.connection()
    conn.connect()
    for _ in range(50):
        before = server.open_fds()
        conn.request("GET", "/metrics")
        series = lib.parse_metrics(conn.getresponse().read().decode())
        if server.open_fds() == before == one(series, "process_open_fds"):
            break
        time.sleep(0.1)
    conn.close()
    assert one(series, "process_open_fds") == before
    with open(f"/proc/{pid}/limits") as f:
        soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
    assert one(series, "process_max_fds") == (-1 if soft == "unlimited" else int(soft))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    assert 0.8 * rss <= one(series, "process_resident_memory_bytes") <= 1.25 * rss
    assert one(series, "process_virtual_memory_bytes") >= one(series, "process_resident_memory_bytes")
    # Start time: boot time (from /proc/stat) plus the process's start in ticks since boot.
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    assert abs(one(series, "process_start_time_seconds") - (btime + proc_stat(pid)[2] / ticks)) <= 1.5
    # CPU time: what the kernel counted, and it grows while chilld computes.
    rng = np.random.default_rng(11)
    q, k, v = lib.make_qkv(rng, 1, 8, 8, 256, 256, 64, "FP32")
    cpu0 = one(series, "process_cpu_seconds_total")
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        assert lib.infer(server, "full", [("q", q, "FP32"), ("k", k, "FP32"), ("v", v, "FP32")])[0] == 200
    cpu_before = sum(proc_stat(pid)[:2]) / ticks
    cpu1 = one(lib.parse_metrics(server.metrics()), "process_cpu_seconds_total")
    cpu_after = sum(proc_stat(pid)[:2]) / ticks
    assert cpu0 < cpu_before <= cpu1 <= cpu_after


def test_promtool_check_metrics(server):
    promtool = lib.venv_tool("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (deploy/install-deps.sh installs it)")
    rng = np.random.default_rng(8)
    for m in lib.MASKS:
        _, _, _, inputs = small_request(rng, "FP16")
        params = {"left_context": 2, "right_context": 0} if m == "sliding_window" else \
            {"context_size": 4, "back_contexts": 1} if m == "chunkwise" else \
            {"prefix_size": 2} if m == "prefix_lm" else None
        assert lib.infer(server, m, inputs, params)[0] == 200
    lib.infer(server, "causal", [("q", np.zeros((1, 1, 1, 3), np.float32), "FP32")])
    text = server.metrics()
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


if __name__ == "__main__":
    lib.run_tests(globals())
