"""Where the host's CPU goes while chilld serves binary HTTP load.

bench/server.sh says how fast; this says what stops it. For every chilld
configuration asked for (chilld binary, batching on/off,
listen.connection_memory_bytes, devices.idle_spin_us, devices.gpu_slots) it
starts a chilld, drives it with each load generator at each concurrency, and
prints one JSON line per run:

  rps, p50_us, p99_us          the load generator's own figures
  host_busy_cores              non-idle CPU over the run, in cores (/proc/stat)
  chilld_cpu_us                chilld's CPU time per request, by thread name
                               (MHD-worker: the HTTP threads, which also run lone
                               requests; chill-devN: device N's worker; chill-cpu:
                               the CPU kernel's pool; chill-doneN: device N's
                               completer, which waits for its packed launches;
                               chilld: main; CUDA's own threads keep their names)
  busiest_threads              the three busiest threads, as a fraction of the run
                               (1.0: a thread that never rested)
  mean_batch                   requests per launch (chill_batch_requests)
  compute_input, queue,        means in µs from the statistics extension
  compute_infer, compute_output

Usage (from the repository root; BUILD as for bench/server.sh):
  python3 bench/server_cpu.py [--chilld build/bin/chilld,/tmp/old/chilld]
                              [--batching off,on] [--connection-memory 32768,262144]
                              [--idle-spin-us 0,50,200] [--gpu-slots 1,2] [--drivers perf_analyzer,chillctl,python]
                              [--concurrency 1,64]
                              [--rounds 2] [--seconds 3]

Every round starts each configuration afresh, in the same order, so that two
builds of chilld named in --chilld are compared over interleaved runs (an A/B).
At the end, on stderr, a markdown table of each configuration's median over the
rounds with its range.
"""
import argparse
import collections
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import server_load

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_cpu():
    """(busy, total) jiffies of the whole host."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def thread_cpu(pid):
    """{tid: (name, CPU seconds)} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(f[11]) + int(f[12])) / CLK)
    return out


def get(port, path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()


def launches(port):
    """(requests, launches) so far, from the batch-size histogram."""
    text = get(port, "/metrics").decode()
    total = lambda part: sum(float(x) for x in re.findall(rf"^chill_batch_requests_{part}{{[^}}]*}} (\S+)", text, re.M))
    return total("sum"), total("count")


def stats(port, model):
    d = json.loads(get(port, f"/v2/models/{model}/stats"))["model_stats"][0]["inference_stats"]
    return {k: (v["count"], v["ns"]) for k, v in d.items()}


class Chilld:
    def __init__(self, binary, batching, memory, spin_us, slots, threads, delay_us):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chilld-cpu-")
        listen = {"address": "127.0.0.1", "port": self.port, "threads": threads}
        if memory:
            listen["connection_memory_bytes"] = memory
        devices = {"backend": "auto"}
        if spin_us is not None:
            devices["idle_spin_us"] = spin_us
        if slots is not None:
            devices["gpu_slots"] = slots
        cfg = os.path.join(self.dir, "chilld.json")
        with open(cfg, "w") as f:
            json.dump({"listen": listen, "devices": devices,
                       "batching": {"enabled": batching, "max_queue_delay_us": delay_us, "max_queue_requests": 4096},
                       "log": {"level": "warn"}}, f)
        self.log = os.path.join(self.dir, "chilld.log")
        self.proc = subprocess.Popen([binary, "--config", cfg],
                                     stderr=open(self.log, "w"))
        for _ in range(300):
            try:
                get(self.port, "/v2/health/ready")
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise SystemExit("server_cpu: chilld did not start:\n" + open(self.log).read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def measure(a, server, driver, c):
    pid, port = server.proc.pid, server.port
    s0, h0, t0, b0, w0 = stats(port, a.model), host_cpu(), thread_cpu(pid), launches(port), time.monotonic()
    r = server_load.drive(driver, f"127.0.0.1:{port}", a.model, [int(x) for x in a.shape.split(",")], a.dtype, c,
                          a.seconds)
    s1, h1, t1, b1, w1 = stats(port, a.model), host_cpu(), thread_cpu(pid), launches(port), time.monotonic()
    n = max(1, s1["success"][0] - s0["success"][0])
    used = {tid: cpu - t0.get(tid, (name, 0.0))[1] for tid, (name, cpu) in t1.items()}
    by_name = {}
    for tid, (name, _) in t1.items():
        by_name[name] = by_name.get(name, 0.0) + used[tid]
    busiest = sorted(used.items(), key=lambda kv: -kv[1])[:3]
    mean = lambda k: round((s1[k][1] - s0[k][1]) / max(1, s1[k][0] - s0[k][0]) / 1e3, 1)
    return {"driver": driver, "concurrency": c, "rps": round(r["rps"], 1), "p50_us": round(r["p50_us"], 1),
            "p99_us": round(r["p99_us"], 1), "requests": n,
            "host_busy_cores": round((h1[0] - h0[0]) / max(1, h1[1] - h0[1]) * os.cpu_count(), 2),
            "chilld_cpu_us": {k: round(v * 1e6 / n, 1) for k, v in sorted(by_name.items()) if v > 0},
            "busiest_threads": [[t1[tid][0], round(v / (w1 - w0), 2)] for tid, v in busiest],
            "mean_batch": round((b1[0] - b0[0]) / max(1, b1[1] - b0[1]), 2),
            **{k: mean(k) for k in ("compute_input", "queue", "compute_infer", "compute_output")}}


KEYS = ("chilld", "batching", "connection_memory", "idle_spin_us", "gpu_slots", "driver", "concurrency")


def summary(rows):
    """A markdown table: per configuration, the median over rounds and the range."""
    runs = collections.defaultdict(list)
    for r in rows:
        runs[tuple(r[k] for k in KEYS)].append(r)
    lines = ["| " + " | ".join(KEYS) + " | rounds | requests/s | p50 µs | p99 µs | mean batch |",
             "|" + "---|" * (len(KEYS) + 5)]
    for key, rs in runs.items():
        cell = lambda f: "%.1f (%.1f-%.1f)" % (statistics.median(r[f] for r in rs), min(r[f] for r in rs),
                                              max(r[f] for r in rs))
        lines.append("| " + " | ".join(str(k) for k in key) + f" | {len(rs)} | {cell('rps')} | {cell('p50_us')} | "
                     f"{cell('p99_us')} | {statistics.median(r['mean_batch'] for r in rs):.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--model", default="causal")
    ap.add_argument("--shape", default="1,8,256,64")
    ap.add_argument("--dtype", default="FP16", choices=sorted(server_load.NP))
    ap.add_argument("--chilld", default="", help="chilld binaries to compare, comma-separated; empty: BUILD's")
    ap.add_argument("--batching", default="off,on", help="off, on or both")
    ap.add_argument("--connection-memory", default="0", help="bytes per connection, comma-separated; 0: chilld's default")
    ap.add_argument("--idle-spin-us", default="", help="devices.idle_spin_us, comma-separated; empty: chilld's default")
    ap.add_argument("--gpu-slots", default="", help="devices.gpu_slots, comma-separated; empty: chilld's default")
    ap.add_argument("--drivers", default="perf_analyzer,chillctl")
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--threads", type=int, default=8, help="listen.threads")
    ap.add_argument("--max-queue-delay-us", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    os.environ["BUILD"] = a.build  # where server_load finds chillctl and perf_analyzer
    spins = [int(x) for x in a.idle_spin_us.split(",")] if a.idle_spin_us else [None]
    slots = [int(x) for x in a.gpu_slots.split(",")] if a.gpu_slots else [None]
    binaries = a.chilld.split(",") if a.chilld else [os.path.join(a.build, "bin", "chilld")]
    configs = [(exe, m, b, sp, sl) for exe in binaries for m in (int(x) for x in a.connection_memory.split(","))
               for b in a.batching.split(",") for sp in spins for sl in slots]
    rows = []
    for rnd in range(a.rounds):
        for exe, memory, batching, spin, slot in configs:
            server = Chilld(exe, batching == "on", memory, spin, slot, a.threads, a.max_queue_delay_us)
            try:
                for c in (int(x) for x in a.concurrency.split(",")):
                    for driver in a.drivers.split(","):
                        rows.append({"round": rnd, "chilld": exe, "batching": batching,
                                     "connection_memory": memory or "default",
                                     "idle_spin_us": "default" if spin is None else spin,
                                     "gpu_slots": "default" if slot is None else slot,
                                     **measure(a, server, driver, c)})
                        print(json.dumps(rows[-1]), flush=True)
            finally:
                server.stop()
    print(summary(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
