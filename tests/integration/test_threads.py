"""chilld names its threads, so that top -H, perf, gdb and /proc tell them
apart (bench/server_cpu.py reads CPU time by thread name): a worker per
device (chill-dev0, chill-dev1, ...) and, on the CUDA backend with two or
more launch slots, the completer that answers its packed launches
(chill-done0, ...; with one slot the worker answers them itself), the
deadline reaper (chill-reaper), the unix socket's loop (chill-uds),
libmicrohttpd's HTTP pool (MHD-worker) and, once the CPU backend has run a
request on more than one thread, the CPU kernel's pool (chill-cpu)."""
import os
import tempfile

import numpy as np

import lib


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


def check_threads(slots):
    path = os.path.join(tempfile.mkdtemp(prefix="chilld-threads-"), "chilld.sock")
    config = {"unix_socket": {"path": path}, "listen": {"threads": 4},
              "devices": {"cpu_threads": 2, "gpu_slots": slots}}
    with lib.Chilld(config) as server:
        q, k, v = lib.make_qkv(np.random.default_rng(7), 1, 2, 2, 64, 64, 32, "FP32")
        status, _, body = lib.infer(server, "causal", [("q", q, "FP32"), ("k", k, "FP32"), ("v", v, "FP32")])
        assert status == 200, body
        names = thread_names(server.proc.pid)
    devices = max(1, len(lib.GPUS))
    assert sorted(n for n in names if n.startswith("chill-dev")) == [f"chill-dev{i}" for i in range(devices)], names
    completers = [f"chill-done{i}" for i in range(devices)] if lib.BACKEND == "cuda" and slots > 1 else []
    assert sorted(n for n in names if n.startswith("chill-done")) == completers, names
    assert names.count("chill-reaper") == 1, names
    assert names.count("chill-uds") == 1, names
    assert names.count("MHD-worker") == 4, names
    if lib.BACKEND == "cpu":
        assert names.count("chill-cpu") == 1, names


def test_threads_are_named_with_one_slot():
    check_threads(1)


def test_threads_are_named_with_two_slots():
    check_threads(2)


if __name__ == "__main__":
    lib.run_tests(globals())
