"""The integration tests' harness: start a real chilld, talk to it, check it.

Chilld(...) starts $BUILD/bin/chilld on a free 127.0.0.1 port with a temporary
config (config/chilld.json with the test's overrides on top), waits until
/v2/health/ready answers 200, and stops it with a signal at the end, killing it
after a bounded wait; an atexit hook kills whatever is left. The backend comes
from CHILLD_TEST_BACKEND (cpu by default; tests/gpu/run.sh sets cuda) and the
GPU list from CHILLD_TEST_GPUS ("0,1"), so the same suite runs on either;
CHILLD_TEST_GPU_SLOTS sets devices.gpu_slots (else config/chilld.json's).

The rest builds infer requests (JSON tensors and the binary tensor extension),
decodes responses, and computes the float64 reference with the mask predicate
of DESIGN.md, independently of libchill.
"""
import atexit
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bf16 cases are skipped without it
    BF16 = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.path.join(ROOT, os.environ.get("BUILD", "build")))
CHILLD = os.path.join(BUILD, "bin", "chilld")
BACKEND = os.environ.get("CHILLD_TEST_BACKEND", "cpu")
GPUS = [int(g) for g in os.environ.get("CHILLD_TEST_GPUS", "").split(",") if g != ""]
GPU_SLOTS = os.environ.get("CHILLD_TEST_GPU_SLOTS")
# Sanitizer builds are several times slower: every wait scales with this.
SLOW = float(os.environ.get("CHILLD_TEST_SLOW", "3" if "asan" in BUILD or "tsan" in BUILD else "1"))

MASKS = {  # name: argument names, in registry order
    "full": [],
    "causal": [],
    "sliding_window": ["left_context", "right_context"],
    "chunkwise": ["context_size", "back_contexts"],
    "prefix_lm": ["prefix_size"],
}
TOL = {"FP32": 1e-5, "FP16": 2e-3, "BF16": 1e-2}

_running = []
_dirs = []


def _kill_leftovers():
    for p in _running:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _dirs:  # failures quote the log in their message
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_kill_leftovers)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


class Chilld:
    """A chilld process for one test module; use as a context manager."""

    def __init__(self, config=None, ready_timeout=30.0, env=None):
        self.dir = tempfile.mkdtemp(prefix="chilld-test-")
        _dirs.append(self.dir)
        self.config_path = os.path.join(self.dir, "chilld.json")
        self.log_path = os.path.join(self.dir, "chilld.log")
        # The free port may be taken by someone else before chilld binds it:
        # then chilld says it cannot listen, and we try another port.
        for attempt in range(3):
            self._start(config, env)
            try:
                self._wait_ready(ready_timeout * SLOW)
                return
            except RuntimeError:
                if attempt == 2 or self.proc.returncode is None or not self.log_contains(b"cannot listen"):
                    raise
                self.log.close()

    def _start(self, config, env):
        self.port = free_port()
        cfg = {}
        default = os.path.join(ROOT, "config", "chilld.json")
        if os.path.exists(default):
            with open(default) as f:
                cfg = json.load(f)
        devices = {"backend": BACKEND}
        if GPUS:
            devices["gpus"] = GPUS
        if GPU_SLOTS:
            devices["gpu_slots"] = int(GPU_SLOTS)
        _merge(cfg, {"listen": {"address": "127.0.0.1", "port": self.port},
                     "devices": devices, "log": {"level": "info"}})
        _merge(cfg, config or {})
        self.config = cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([CHILLD, "--config", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, **(env or {})})
        _running.append(self.proc)

    def _wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chilld exited with {self.proc.returncode} at start:\n{self.log_text()}")
            # Our chilld logs event=ready once it listens: a 200 before that
            # came from whoever else holds the port.
            try:
                if self.log_contains(b"event=ready") and self.get("/v2/health/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"chilld not ready after {timeout:.0f} s:\n{self.log_text()}")

    def open_fds(self):
        """The descriptors chilld has open, counted from outside (/proc)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log_contains(self, needle):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return needle in f.read()

    def wait_log(self, needle, timeout=10.0):
        """Whether needle shows up in chilld's log within timeout seconds: chilld
        may log an event just after it has answered the client."""
        end = time.monotonic() + timeout * SLOW
        while not self.log_contains(needle):
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def connection(self, timeout=60.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)

    def request(self, method, path, body=None, headers=None, timeout=60.0):
        """One request on a fresh connection: (status, headers dict, body bytes)."""
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path, timeout=60.0):
        return self.request("GET", path, timeout=timeout)

    def get_json(self, path):
        status, _, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body[:300]!r}"
        return json.loads(body)

    def metrics(self):
        status, _, body = self.get("/metrics")
        assert status == 200, f"GET /metrics: {status}"
        return body.decode()

    def url(self):
        return f"127.0.0.1:{self.port}"

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        """The exit code, or None when it did not exit in time (then it is killed)."""
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.wait(timeout)
        self.log.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None and code != 0:
            raise AssertionError(f"chilld exited with {code} on SIGTERM:\n{self.log_text()}")


# ---- tensors and requests ---------------------------------------------------

def np_dtype(dt):
    if dt == "FP32":
        return np.dtype(np.float32)
    if dt == "FP16":
        return np.dtype(np.float16)
    if dt == "BF16":
        return BF16
    raise ValueError(dt)


def make_qkv(rng, B, Hq, Hkv, Tq, Tk, D, dt):
    """Random q, k, v in dtype dt (values representable in it exactly)."""
    t = np_dtype(dt)
    q = rng.standard_normal((B, Hq, Tq, D)).astype(t)
    k = rng.standard_normal((B, Hkv, Tk, D)).astype(t)
    v = rng.standard_normal((B, Hkv, Tk, D)).astype(t)
    return q, k, v


def mask_allows(mask, args, qp, kp):
    """DESIGN.md's predicate on absolute positions (numpy arrays broadcast)."""
    if mask == "full":
        return np.ones(np.broadcast(qp, kp).shape, dtype=bool)
    if mask == "causal":
        return kp <= qp
    if mask == "sliding_window":
        left, right = args
        return (qp - left <= kp) & (kp <= qp + right)
    if mask == "chunkwise":
        c, back = args
        d = np.floor_divide(qp, c) - np.floor_divide(kp, c)
        return (0 <= d) & (d <= back)
    if mask == "prefix_lm":
        return (kp < args[0]) | (kp <= qp)
    raise ValueError(mask)


def reference(q, k, v, mask, args=(), sm_scale=None, q_offset=None, seq_lens=None, kv_seq_lens=None):
    """float64 attention: out [B,Hq,Tq,D] and lse [B,Hq,Tq]; rows past
    seq_lens are left NaN (undefined), rows with no attended key are 0 / -inf."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    B, Hq, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    out = np.full(q.shape, np.nan)
    lse = np.full((B, Hq, Tq), np.nan)
    for b in range(B):
        nq = Tq if seq_lens is None else int(seq_lens[b])
        nk = Tk if kv_seq_lens is None else int(kv_seq_lens[b])
        off = nk - nq if q_offset is None else q_offset
        qp = (off + np.arange(nq))[:, None]
        kp = np.arange(nk)[None, :]
        allowed = mask_allows(mask, args, qp, kp)
        for h in range(Hq):
            hk = h // (Hq // Hkv)
            s = scale * q[b, h, :nq] @ k[b, hk, :nk].T
            s = np.where(allowed, s, -np.inf)
            m = s.max(axis=1, initial=-np.inf)
            empty = ~np.isfinite(m)
            p = np.exp(s - np.where(empty, 0, m)[:, None])
            denom = p.sum(axis=1)
            o = (p @ v[b, hk, :nk]) / np.where(empty, 1, denom)[:, None]
            out[b, h, :nq] = np.where(empty[:, None], 0.0, o)
            lse[b, h, :nq] = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, denom)))
    return out, lse


def rel_error(got, ref):
    """||got - ref|| / ||ref|| over the rows ref defines (not NaN)."""
    got = np.asarray(got, dtype=np.float64)
    ok = ~np.isnan(ref)
    diff = np.linalg.norm((got - np.where(ok, ref, 0))[ok])
    norm = np.linalg.norm(ref[ok])
    if not np.all(np.isfinite(got[ok])):
        return math.inf
    return diff / norm if norm > 0 else diff


def tensor_json(name, arr, dt):
    return {"name": name, "shape": list(arr.shape), "datatype": dt,
            "data": np.asarray(arr, dtype=np.float64 if dt != "INT32" else np.int64).ravel().tolist()}


def infer_json_body(inputs, parameters=None, outputs=None):
    """inputs: [(name, array, datatype)]. A JSON-tensor infer request body."""
    req = {"inputs": [tensor_json(n, a, dt) for n, a, dt in inputs]}
    if parameters:
        req["parameters"] = parameters
    if outputs:
        req["outputs"] = [{"name": o} for o in outputs]
    return json.dumps(req).encode()


def infer_binary_body(inputs, parameters=None, outputs=("out",)):
    """The binary tensor extension: (body, headers)."""
    header = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": dt,
                          "parameters": {"binary_data_size": a.nbytes}} for n, a, dt in inputs],
              "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs]}
    if parameters:
        header["parameters"] = parameters
    h = json.dumps(header).encode()
    body = h + b"".join(np.ascontiguousarray(a).tobytes() for _, a, _ in inputs)
    return body, {"Inference-Header-Content-Length": str(len(h)),
                  "Content-Type": "application/octet-stream"}


def decode_infer_response(headers, body):
    """{output name: numpy array} from a JSON or binary infer response."""
    hlen = headers.get("inference-header-content-length")
    if hlen is None:
        resp = json.loads(body)
        rest = b""
    else:
        resp = json.loads(body[:int(hlen)])
        rest = body[int(hlen):]
    outs = {}
    pos = 0
    for o in resp["outputs"]:
        dt = o["datatype"]
        t = np.dtype(np.float32) if dt == "FP32" else np.dtype(np.int32) if dt == "INT32" else np_dtype(dt)
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arr = np.frombuffer(rest[pos:pos + size], dtype=t).reshape(o["shape"])
            pos += size
        else:
            arr = np.asarray(o["data"], dtype=np.float64).reshape(o["shape"])
        outs[o["name"]] = arr
    assert pos == len(rest), f"binary response: {len(rest) - pos} bytes past the last output"
    return resp, outs


def infer(server, model, inputs, parameters=None, binary=True, outputs=("out",), timeout=60.0):
    """(status, headers, body) of one infer request."""
    if binary:
        body, headers = infer_binary_body(inputs, parameters, outputs)
    else:
        body = infer_json_body(inputs, parameters, outputs)
        headers = {"Content-Type": "application/json"}
    return server.request("POST", f"/v2/models/{model}/infer", body, headers, timeout)


@contextlib.contextmanager
def upload_on_its_way(server, model="causal"):
    """An infer request still arriving: its headers and part of its body sent
    on a connection of its own, which is closed on exit. Once chilld counts it
    (chill_requests_receiving), its batches wait for it (up to
    max_queue_delay_us): it is how a test keeps requests queued."""
    def receiving():
        return metric_sum(parse_metrics(server.metrics()), "chill_requests_receiving")
    before = receiving()
    head = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10 * SLOW)
    try:
        s.sendall(head + b'{"inputs": [')
        end = time.monotonic() + 10 * SLOW
        while receiving() < before + 1:
            assert time.monotonic() < end, "chilld never counted the upload as on its way"
            time.sleep(0.005)
        yield s
    finally:
        s.close()


def parse_metrics(text):
    """{(name, frozenset(label items)): value} of a Prometheus text exposition."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            name, labels = head.split("{", 1)
            items = []
            for part in labels.rstrip("}").split('",'):
                if part:
                    k, v = part.split("=", 1)
                    items.append((k.strip(), v.strip('"')))
            key = (name, frozenset(items))
        else:
            key = (head, frozenset())
        series[key] = float(value)
    return series


def metric_sum(series, name, **labels):
    """Sum of every series of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and want <= ls)


def bucket_sum(series, name, le, **labels):
    """Sum of the name_bucket series with upper bound le (however it is
    written: "1", "1.0", "1e+00") whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items()
               if n == name + "_bucket" and want <= ls and float(dict(ls)["le"]) == le)


def batch_histogram(server):
    """(launches, launches of one request, requests) from chilld's batch-size histogram."""
    series = parse_metrics(server.metrics())
    return (metric_sum(series, "chill_batch_requests_count"), bucket_sum(series, "chill_batch_requests", 1.0),
            metric_sum(series, "chill_batch_requests_sum"))


def run_clients(calls, timeout=120.0):
    """Runs every (function, args) of calls on a thread of its own, all at once;
    each function is also given a list to append what went wrong to. Fails
    when a client is not done in time or anything went wrong."""
    failures = []
    threads = [threading.Thread(target=f, args=(*args, failures)) for f, args in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * SLOW)
    assert not any(t.is_alive() for t in threads), "a client got no answer in time"
    assert not failures, f"{len(failures)} failures, the first: " + "\n".join(failures[:5])


def venv_tool(name):
    """A tool from $BUILD/venv/bin or PATH, or None."""
    p = os.path.join(BUILD, "venv", "bin", name)
    if os.access(p, os.X_OK):
        return p
    return shutil.which(name)


def run_tests(module_globals):
    """Runs the module's test_* functions under pytest when the file is run."""
    import pytest
    sys.exit(pytest.main([module_globals["__file__"], "-q", "-rs", "-p", "no:cacheprovider"]))
