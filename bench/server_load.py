"""Load for chilld's HTTP infer path, for bench/server.sh and the perf test.

Three drivers with the same shape of result ({"rps", "p50_us", "p99_us",
"errors", ...}), and drive(driver, ...) to pick one by name:

  perf_analyzer(...)  runs the stock Triton perf_analyzer (binary tensors over
                      HTTP, fixed concurrency) on input data written here;
                      its result also has "stages_us", the mean request's
                      time split into PA_STAGES. As "perf_analyzer:system" or
                      "perf_analyzer:cuda" the tensors go in shared memory of
                      that kind instead, registered by perf_analyzer;
  chillctl_load(...)  runs `chillctl bench --transport http` ($BUILD/bin), the
                      C client (libcurl);
  python_load(...)    the fallback where neither runs: N threads, each with a
                      persistent HTTP/1.1 connection, sending the same
                      binary-extension request back to back.

Run as a script it prints one JSON line:
  server_load.py --url 127.0.0.1:8000 --model causal --shape 1,8,256,64
                 --dtype FP16 --concurrency 16 --seconds 5 [--driver auto|perf_analyzer|chillctl|python|
                                                               perf_analyzer:system|perf_analyzer:cuda]
"""
import argparse
import base64
import csv
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

NP = {"FP32": np.float32, "FP16": np.float16}
DRIVERS = ["perf_analyzer", "perf_analyzer:system", "perf_analyzer:cuda", "chillctl", "python"]

# perf_analyzer's CSV columns that split a request's mean latency (µs): its own
# two ends, the time neither side accounts for, and the server's statistics.
PA_STAGES = ["Client Send", "Network+Server Send/Recv", "Server Queue", "Server Compute Input",
             "Server Compute Infer", "Server Compute Output", "Client Recv"]


def make_inputs(shape, dtype, seed=0):
    """q, k, v of shape [B, H, T, D] (same heads for k and v), random normal."""
    rng = np.random.default_rng(seed)
    return [(n, rng.standard_normal(shape).astype(NP[dtype])) for n in ("q", "k", "v")]


def build_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("BUILD", os.path.join(here, "..", "build"))


def find_perf_analyzer():
    cand = os.path.join(build_dir(), "venv", "bin", "perf_analyzer")
    if not os.access(cand, os.X_OK):
        cand = shutil.which("perf_analyzer")
    if cand is None:
        return None
    try:
        r = subprocess.run([cand, "--help"], capture_output=True, timeout=30)
    except OSError:
        return None
    return cand if b"concurrency-range" in r.stdout + r.stderr else None


def output_bytes(shape, dtype):
    """The larger of a request's two outputs: out [B, H, T, D] in dtype, lse [B, H, T] in FP32."""
    b, h, t, d = shape
    return b * h * t * max(d * np.dtype(NP[dtype]).itemsize, 4)


def perf_analyzer(url, model, shape, dtype, concurrency, seconds, pa=None, memory="none"):
    """memory: none (tensors in the HTTP body), system or cuda (shared memory)."""
    pa = pa or find_perf_analyzer()
    if pa is None:
        raise RuntimeError("perf_analyzer not found or not runnable")
    tmp = tempfile.mkdtemp(prefix="chilld-pa-")
    try:
        data = {"data": [{n: {"b64": base64.b64encode(a.tobytes()).decode(), "shape": list(a.shape)}
                          for n, a in make_inputs(shape, dtype)}]}
        data_path = os.path.join(tmp, "inputs.json")
        with open(data_path, "w") as f:
            json.dump(data, f)
        csv_path = os.path.join(tmp, "pa.csv")
        cmd = [pa, "-m", model, "-u", url, "-i", "http", "--input-data", data_path,
               "--concurrency-range", f"{concurrency}:{concurrency}",
               "--measurement-interval", str(int(seconds * 1000)), "--measurement-mode", "time_windows",
               "--stability-percentage", "999", "--max-trials", "3", "-f", csv_path,
               "--shared-memory", memory, "--output-shared-memory-size", str(output_bytes(shape, dtype))]
        r = subprocess.run(cmd, capture_output=True, timeout=120 + 10 * seconds)
        log = (r.stdout + r.stderr).decode(errors="replace")
        if r.returncode != 0:
            raise RuntimeError(f"perf_analyzer exited with {r.returncode}:\n{log[-3000:]}")
        with open(csv_path) as f:
            row = next(csv.DictReader(f))
        return {"driver": "perf_analyzer", "rps": float(row["Inferences/Second"]),
                "p50_us": float(row["p50 latency"]), "p99_us": float(row["p99 latency"]),
                "stages_us": {k: float(row[k]) for k in PA_STAGES}, "errors": 0, "log": log}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def binary_request(inputs):
    header = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": "FP16" if a.dtype == np.float16 else "FP32",
                          "parameters": {"binary_data_size": a.nbytes}} for n, a in inputs],
              "outputs": [{"name": "out", "parameters": {"binary_data": True}}]}
    h = json.dumps(header).encode()
    return h + b"".join(a.tobytes() for _, a in inputs), {
        "Inference-Header-Content-Length": str(len(h)), "Content-Type": "application/octet-stream"}


def python_load(url, model, shape, dtype, concurrency, seconds):
    host, port = url.rsplit(":", 1)
    body, headers = binary_request(make_inputs(shape, dtype))
    path = f"/v2/models/{model}/infer"
    lat, errors, lock = [], [0], threading.Lock()
    start = time.monotonic()
    stop = start + seconds

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        mine, bad = [], 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                bad += 1
        conn.close()
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    us = np.asarray(lat) * 1e6
    return {"driver": "python", "rps": len(lat) / elapsed, "requests": len(lat), "errors": errors[0],
            "p50_us": float(np.percentile(us, 50)) if len(us) else float("nan"),
            "p99_us": float(np.percentile(us, 99)) if len(us) else float("nan")}


def chillctl_load(url, model, shape, dtype, concurrency, seconds):
    r = subprocess.run([os.path.join(build_dir(), "bin", "chillctl"), "bench", "--url", f"http://{url}",
                        "--transport", "http", "--random", ",".join(str(x) for x in shape), "--mask", model,
                        "--dtype", dtype.lower(), "--concurrency", str(concurrency), "--duration", str(seconds),
                        "--json"], capture_output=True, text=True, timeout=120 + 10 * seconds)
    if r.returncode != 0:
        raise RuntimeError(f"chillctl bench exited with {r.returncode}:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]), driver="chillctl")


def drive(driver, url, model, shape, dtype, concurrency, seconds):
    """One run of the named driver, one of DRIVERS (perf_analyzer's log left out)."""
    name, _, memory = driver.partition(":")
    if name == "perf_analyzer":
        res = perf_analyzer(url, model, shape, dtype, concurrency, seconds, memory=memory or "none")
        res.pop("log")
        return res
    if driver == "chillctl":
        return chillctl_load(url, model, shape, dtype, concurrency, seconds)
    return python_load(url, model, shape, dtype, concurrency, seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="causal")
    ap.add_argument("--shape", default="1,8,256,64")
    ap.add_argument("--dtype", default="FP16", choices=sorted(NP))
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--driver", default="auto", choices=["auto"] + DRIVERS)
    a = ap.parse_args()
    shape = [int(x) for x in a.shape.split(",")]
    driver = a.driver
    if driver == "auto":
        driver = "perf_analyzer" if find_perf_analyzer() else "python"
    res = drive(driver, a.url, a.model, shape, a.dtype, a.concurrency, a.seconds)
    print(json.dumps(res))
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
