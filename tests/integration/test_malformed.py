"""The malformed-request matrix: wrong shapes, dtypes, byte counts, mask and
other parameters, missing and unknown inputs, bodies over the limit, unknown
models, bad JSON, bad binary header lengths, truncated uploads. Each must get
the expected 4xx with {"error": ...} naming the field; after each the daemon
still answers; aborted connections leave no descriptor or request behind;
and after all of them a valid request still gets the right result."""
import json
import re
import socket
import time

import numpy as np
import pytest

import lib

MAX_BODY = 256 * 1024
MAX_ELEMENTS = 16384


# The limits and the preset the cases are written for (test_soak sends them too).
CONFIG = {"limits": {"max_body_bytes": MAX_BODY, "max_elements": MAX_ELEMENTS},
          "presets": {"sw-fixed": "sliding_window(4,0)"}}


@pytest.fixture(scope="module")
def server():
    with lib.Chilld(CONFIG) as s:
        yield s


def t(shape, dt="FP32", seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(lib.np_dtype(dt) if dt != "INT32" else np.int32)


Q, K, V = t((1, 2, 8, 16)), t((1, 2, 8, 16)), t((1, 2, 8, 16))
GOOD = [("q", Q, "FP32"), ("k", K, "FP32"), ("v", V, "FP32")]


def replace(name, arr, dt):
    return [(n, arr, dt) if n == name else (n, a, d) for n, a, d in GOOD]


def binary(inputs, params=None, outputs=("out",)):
    return lib.infer_binary_body(inputs, params, outputs)


def json_body(obj):
    return json.dumps(obj).encode(), {"Content-Type": "application/json"}


def binary_with_sizes(sizes, extra=b""):
    """A binary request whose declared binary_data_size values are given."""
    header = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": d,
                          "parameters": {"binary_data_size": s}} for (n, a, d), s in zip(GOOD, sizes)]}
    h = json.dumps(header).encode()
    body = h + b"".join(a.tobytes() for _, a, _ in GOOD) + extra
    return body, {"Inference-Header-Content-Length": str(len(h))}


def with_header_len(value):
    body, headers = binary(GOOD)
    headers["Inference-Header-Content-Length"] = value
    return body, headers


def sw(**p):
    base = {"left_context": 2, "right_context": 0}
    base.update(p)
    return {k: v for k, v in base.items() if v is not None}


# (id, model, (body, headers), accepted statuses, words of which the error must name one)
CASES = [
    ("q rank 3", "causal", binary(replace("q", t((1, 2, 8)), "FP32")), {400}, ["q"]),
    ("k head dim differs", "causal", binary(replace("k", t((1, 2, 8, 32)), "FP32")), {400}, ["k", "head_dim", "D"]),
    ("v shape differs from k", "causal", binary(replace("v", t((1, 2, 6, 16)), "FP32")), {400}, ["v"]),
    ("Hq not a multiple of Hkv", "causal",
     binary([("q", t((1, 3, 8, 16)), "FP32"), ("k", t((1, 2, 8, 16)), "FP32"), ("v", t((1, 2, 8, 16)), "FP32")]),
     {400}, ["heads", "Hkv", "Hq", "k", "q"]),
    ("batch differs", "causal", binary(replace("k", t((2, 2, 8, 16)), "FP32")), {400}, ["k", "batch", "B"]),
    ("head dim 8 below the minimum", "causal",
     binary([("q", t((1, 1, 4, 8)), "FP32"), ("k", t((1, 1, 4, 8)), "FP32"), ("v", t((1, 1, 4, 8)), "FP32")]),
     {400}, ["head_dim", "head dim", "D", "16"]),
    ("dtypes differ", "causal", binary(replace("k", t((1, 2, 8, 16), "FP16"), "FP16")), {400}, ["k", "datatype"]),
    ("INT8 dtype", "causal",
     binary([(n, np.zeros(a.shape, np.int8), "INT8") for n, a, _ in GOOD]), {400}, ["datatype", "INT8"]),
    ("unknown dtype name", "causal", binary(replace("q", Q, "FP33")), {400}, ["datatype", "FP33"]),
    ("binary_data_size too small", "causal", binary_with_sizes([Q.nbytes - 4, K.nbytes, V.nbytes], b"\0" * 4),
     {400}, ["q", "binary_data_size"]),
    ("binary sizes past the body", "causal",
     (lambda b, h: (b[:-8], h))(*binary(GOOD)), {400}, ["v", "binary", "body", "size"]),
    ("bytes left after the tensors", "causal", binary_with_sizes([Q.nbytes, K.nbytes, V.nbytes], b"\0" * 64),
     {400}, ["binary", "body", "bytes", "size"]),
    ("JSON data too short", "causal",
     json_body({"inputs": [dict(lib.tensor_json(n, a, d), data=[1.0] * (a.size - 1) if n == "q" else
                                lib.tensor_json(n, a, d)["data"]) for n, a, d in GOOD]}), {400}, ["q", "data"]),
    ("JSON data not numbers", "causal",
     json_body({"inputs": [dict(lib.tensor_json(n, a, d), data=["x"] * a.size if n == "v" else
                                lib.tensor_json(n, a, d)["data"]) for n, a, d in GOOD]}), {400}, ["v", "data"]),
    ("missing input v", "causal", binary(GOOD[:2]), {400}, ["v"]),
    ("unknown input", "causal", binary(GOOD + [("w", Q, "FP32")]), {400}, ["w"]),
    ("duplicate input", "causal", binary(GOOD + [("q", Q, "FP32")]), {400}, ["q", "duplicate", "twice"]),
    ("left_context negative", "sliding_window", binary(GOOD, sw(left_context=-1)), {400}, ["left_context"]),
    ("left_context a string", "sliding_window", binary(GOOD, sw(left_context="abc")), {400}, ["left_context"]),
    ("left_context past 2^30", "sliding_window", binary(GOOD, sw(left_context=(1 << 30) + 1)), {400},
     ["left_context"]),
    ("context_size zero", "chunkwise", binary(GOOD, {"context_size": 0, "back_contexts": 1}), {400},
     ["context_size"]),
    ("unknown parameter", "causal", binary(GOOD, {"left_contxt": 3}), {400}, ["left_contxt"]),
    ("mask arg on a preset", "sw-fixed", binary(GOOD, {"left_context": 3}), {400}, ["left_context"]),
    ("bad mask spec", "causal", binary(GOOD, {"mask": "sliding_window(1"}), {400}, ["mask"]),
    ("sm_scale a string", "causal", binary(GOOD, {"sm_scale": "big"}), {400}, ["sm_scale"]),
    ("q_offset a float", "causal", binary(GOOD, {"q_offset": 1.5}), {400}, ["q_offset"]),
    ("return_lse a number", "causal", binary(GOOD, {"return_lse": 3}), {400}, ["return_lse"]),
    ("layout unknown", "causal", binary(GOOD, {"layout": "HBTD"}), {400}, ["layout"]),
    ("timeout negative", "causal", binary(GOOD, {"timeout": -5}), {400}, ["timeout"]),
    ("seq_lens past Tq", "causal", binary(GOOD + [("seq_lens", np.array([9], np.int32), "INT32")]), {400},
     ["seq_lens"]),
    ("seq_lens negative", "causal", binary(GOOD + [("kv_seq_lens", np.array([-1], np.int32), "INT32")]), {400},
     ["kv_seq_lens"]),
    ("seq_lens FP32", "causal", binary(GOOD + [("seq_lens", np.array([8], np.float32), "FP32")]), {400},
     ["seq_lens"]),
    ("seq_lens wrong length", "causal", binary(GOOD + [("seq_lens", np.array([8, 8], np.int32), "INT32")]), {400},
     ["seq_lens"]),
    ("unknown output", "causal", binary(GOOD, outputs=("out", "attn")), {400}, ["attn"]),
    ("tensor over max_elements", "causal",
     binary([(n, t((1, 2, 600, 16)), "FP32") for n in ("q", "k", "v")]), {400, 413},
     ["max_elements", "elements", "q"]),
    ("body over the limit", "causal", binary([(n, t((1, 4, 1024, 32)), "FP32") for n in ("q", "k", "v")]),
     {413}, ["max_body_bytes", "body", "bytes", "limit"]),
    ("shape overflows int64", "causal", json_body({"inputs": [
        {"name": "q", "shape": [1 << 40, 1 << 40, 1 << 20, 16], "datatype": "FP32", "data": [0.0]},
        {"name": "k", "shape": [1, 2, 8, 16], "datatype": "FP32", "data": K.ravel().tolist()},
        {"name": "v", "shape": [1, 2, 8, 16], "datatype": "FP32", "data": V.ravel().tolist()}]}), {400, 413},
     ["q", "shape", "max_elements", "elements"]),
    ("negative dimension", "causal", json_body({"inputs": [
        dict(lib.tensor_json("q", Q, "FP32"), shape=[1, -2, 8, 16]),
        lib.tensor_json("k", K, "FP32"), lib.tensor_json("v", V, "FP32")]}), {400}, ["q", "shape"]),
    ("huge binary_data_size", "causal", binary_with_sizes([1 << 62, K.nbytes, V.nbytes]), {400},
     ["q", "binary_data_size"]),
    ("unknown model", "nosuchmodel", binary(GOOD), {404}, ["nosuchmodel"]),
    ("bad JSON", "causal", (b'{"inputs": [', {"Content-Type": "application/json"}), {400}, ["JSON", "json"]),
    ("JSON not an object", "causal", json_body([1, 2]), {400}, ["object", "JSON", "json"]),
    ("inputs not an array", "causal", json_body({"inputs": {"q": 1}}), {400}, ["inputs"]),
    ("shape not an array", "causal",
     json_body({"inputs": [{"name": "q", "shape": 4, "datatype": "FP32", "data": [1]}]}), {400}, ["shape"]),
    ("empty body", "causal", (b"", {}), {400}, ["body", "empty", "JSON", "json", "inputs"]),
    ("header length past the body", "causal", with_header_len("100000"), {400},
     ["Inference-Header-Content-Length"]),
    ("header length not a number", "causal", with_header_len("12abc"), {400}, ["Inference-Header-Content-Length"]),
    ("header length negative", "causal", with_header_len("-3"), {400}, ["Inference-Header-Content-Length"]),
    ("header length cuts the JSON", "causal", with_header_len("20"), {400}, ["JSON", "json", "header"]),
]


def word_in(words, message):
    return any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(w) + r"(?![A-Za-z0-9_])", message) for w in words)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed(server, case):
    _, model, (body, headers), statuses, words = case
    status, _, resp = server.request("POST", f"/v2/models/{model}/infer", body, headers)
    assert status in statuses, f"got {status} {resp[:300]!r}, expected {statuses}"
    err = json.loads(resp)["error"]
    assert isinstance(err, str) and word_in(words, err), f"error {err!r} names none of {words}"
    assert server.get("/v2/health/live")[0] == 200


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_zero_sized_dimension_is_answered(server, dim):
    shape = [1, 2, 8, 16]
    shape[dim] = 0
    empty = np.zeros(shape, np.float32)
    inputs = [("q", empty, "FP32"), ("k", empty if dim < 2 else K, "FP32"), ("v", empty if dim < 2 else V, "FP32")]
    status, headers, body = lib.infer(server, "causal", inputs)
    assert status in (200, 400), f"{status} {body[:300]!r}"
    if status == 200:
        out = lib.decode_infer_response(headers, body)[1]["out"]
        assert list(out.shape) == shape
    else:
        assert json.loads(body)["error"]
    assert server.get("/v2/health/live")[0] == 200


def test_wrong_method(server):
    status, _, _ = server.request("GET", "/v2/models/causal/infer")
    assert 400 <= status < 500
    status, _, _ = server.request("DELETE", "/v2/health/ready")
    assert 400 <= status < 500


def test_unknown_path(server):
    assert server.get("/v2/nothing/here")[0] == 404
    assert server.get("/v3")[0] == 404


def raw(server, data, read=True):
    """Sends raw bytes on a fresh connection, then closes it; returns the reply start."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10 * lib.SLOW)
    try:
        s.sendall(data)
        if read:
            s.shutdown(socket.SHUT_WR)
            return s.recv(4096)
        return b""
    finally:
        s.close()


def test_truncated_and_garbage_connections(server):
    body, _ = binary(GOOD)
    head = (f"POST /v2/models/causal/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Inference-Header-Content-Length: 40\r\n\r\n").encode()
    raw(server, head + body[:len(body) // 2], read=False)
    raw(server, head, read=False)
    raw(server, b"\x00\xff garbage \r\n\r\n")
    raw(server, b"POST /v2/models/causal/infer HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")
    assert server.get("/v2/health/live")[0] == 200


def test_aborted_connections_leave_nothing_behind(server):
    """Clients that cut their uploads, send garbage or go away without reading
    the answer leave no socket open in chilld and no request counted as
    arriving or in flight."""
    body, _ = binary(GOOD)
    head = (f"POST /v2/models/causal/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Inference-Header-Content-Length: 40\r\n\r\n").encode()
    before = server.open_fds()
    for _ in range(40):
        raw(server, head + body[:len(body) // 2], read=False)
        raw(server, head, read=False)
        raw(server, b"\x00\xff garbage \r\n\r\n")
        raw(server, head + body, read=False)
    def left():  # descriptors counted before the scrape, whose own connection is one more
        fds = server.open_fds() - before
        series = lib.parse_metrics(server.metrics())
        return (max(fds, 0), lib.metric_sum(series, "chill_requests_receiving"),
                lib.metric_sum(series, "chill_requests_in_flight"))
    deadline = time.monotonic() + 10 * lib.SLOW
    while (now := left()) != (0, 0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    fds, receiving, in_flight = now
    assert fds <= 0, f"{fds} more descriptors open than before"
    assert (receiving, in_flight) == (0, 0), f"still counted: {receiving} arriving, {in_flight} in flight"


def test_chunked_body_over_the_limit(server):
    """Without a Content-Length the limit still holds: a chunked upload past
    max_body_bytes gets 413 naming the limit."""
    body = b'{"inputs": [' + b" " * (MAX_BODY + 100) + b"]}"
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10 * lib.SLOW)
    try:
        s.sendall(b"POST /v2/models/causal/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/json\r\n\r\n")
        try:
            for i in range(0, len(body), 65536):
                part = body[i:i + 65536]
                s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:  # the server may answer and close before reading it all
            pass
        reply = s.recv(4096)
    finally:
        s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"max_body_bytes" in reply
    assert server.get("/v2/health/live")[0] == 200


def test_still_serves_correctly_afterwards(server):
    status, headers, body = lib.infer(server, "sliding_window", GOOD, sw())
    assert status == 200, body[:300]
    out = lib.decode_infer_response(headers, body)[1]["out"]
    ref, _ = lib.reference(Q, K, V, "sliding_window", (2, 0))
    assert lib.rel_error(out, ref) <= lib.TOL["FP32"]
    series = lib.parse_metrics(server.metrics())
    assert lib.metric_sum(series, "chill_requests_total", code="400") >= 1


if __name__ == "__main__":
    lib.run_tests(globals())
