"""The physical floors under one request's overhead, measured on this machine:
what any transport must spend moving the request's bytes, before chilld does
anything of its own.

- loopback: a TCP round trip over 127.0.0.1 carrying the request's input
  bytes (q, k, v) one way and its output bytes (out) back, between two
  threads of this process with plain sockets (no HTTP): the floor under the
  binary HTTP path's overhead.
- loopback_rps (--concurrency N): the same round trips on N connections at
  once, one process per connection and a serving thread beside it: how many
  such requests per second this host's loopback carries at all, the ceiling
  over any HTTP server's requests/s at that concurrency.
- pcie (--device cuda): cudaMemcpyAsync of the input bytes from pinned host
  memory to the GPU and of the output bytes back, then a synchronize: the
  floor under every path whose tensors are in host memory (HTTP, system
  shared memory, the native socket), since the bare call's tensors are
  already on the device. pcie64 is the same for 64 requests' bytes in one
  copy each way, per request: what a batch of 64 pays.

  floors.py --shape 1,8,256,64 --dtype FP16 [--device cpu|cuda] [--seconds 2] [--concurrency N]
prints one JSON line: {"bytes_in", "bytes_out", "loopback_p50_us", with --concurrency
"loopback_rps", and with cuda "pcie_p50_us", "pcie64_per_request_us"}.
"""
import argparse
import ctypes
import json
import multiprocessing
import socket
import sys
import threading
import time

import numpy as np

from bare_call import load_cudart

ESIZE = {"FP32": 4, "FP16": 2, "BF16": 2}


def median_us(fn, seconds):
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(np.asarray(times[5:]) * 1e6, 50))


def recv_exactly(sock, buf):
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("the peer closed the connection")
        got += n


class Loopback:
    """A client socket and, on a thread, a server that answers every n_in
    bytes with n_out bytes, over 127.0.0.1 with plain sockets."""

    def __init__(self, n_in, n_out):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.cli = socket.create_connection(self.srv.getsockname())
        self.peer, _ = self.srv.accept()
        for s in (self.cli, self.peer):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inp, self.back = bytearray(n_in), bytearray(n_out)
        self.thread = threading.Thread(target=self._serve, args=(n_in, n_out), daemon=True)
        self.thread.start()

    def _serve(self, n_in, n_out):
        got, out = bytearray(n_in), bytearray(n_out)
        while True:
            try:
                recv_exactly(self.peer, got)
                self.peer.sendall(out)
            except OSError:
                return

    def round_trip(self):
        self.cli.sendall(self.inp)
        recv_exactly(self.cli, self.back)

    def close(self):
        self.cli.shutdown(socket.SHUT_RDWR)
        self.cli.close()
        self.thread.join(1)
        for s in (self.peer, self.srv):
            s.close()


def loopback_us(n_in, n_out, seconds):
    lo = Loopback(n_in, n_out)
    us = median_us(lo.round_trip, seconds)
    lo.close()
    return us


def count_round_trips(n_in, n_out, start, seconds, counts):
    lo = Loopback(n_in, n_out)
    start.wait()
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        lo.round_trip()
        n += 1
    lo.close()
    counts.put(n)


def loopback_rps(n_in, n_out, concurrency, seconds):
    ctx = multiprocessing.get_context("fork")
    start, counts = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=count_round_trips, args=(n_in, n_out, start, seconds, counts))
             for _ in range(concurrency)]
    for p in procs:
        p.start()
    start.set()
    total = sum(counts.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def pcie_us(n_in, n_out, seconds):
    rt = load_cudart()
    host_in, host_out, dev_in, dev_out = (ctypes.c_void_p() for _ in range(4))
    for p, n in ((host_in, n_in), (host_out, n_out)):
        if rt.cudaHostAlloc(ctypes.byref(p), ctypes.c_size_t(n), 0) != 0:
            raise RuntimeError("cudaHostAlloc failed")
    for p, n in ((dev_in, n_in), (dev_out, n_out)):
        if rt.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)) != 0:
            raise RuntimeError("cudaMalloc failed")

    def copies():
        rt.cudaMemcpyAsync(dev_in, host_in, ctypes.c_size_t(n_in), 1, None)
        rt.cudaMemcpyAsync(host_out, dev_out, ctypes.c_size_t(n_out), 2, None)
        if rt.cudaStreamSynchronize(None) != 0:
            raise RuntimeError("cudaStreamSynchronize failed")

    return median_us(copies, seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="1,8,256,64")
    ap.add_argument("--dtype", default="FP16", choices=sorted(ESIZE))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--concurrency", type=int, default=0)
    a = ap.parse_args()
    B, H, T, D = (int(x) for x in a.shape.split(","))
    n_out = B * H * T * D * ESIZE[a.dtype]
    n_in = 3 * n_out
    r = {"bytes_in": n_in, "bytes_out": n_out, "loopback_p50_us": loopback_us(n_in, n_out, a.seconds)}
    if a.concurrency > 0:
        r["loopback_rps"] = loopback_rps(n_in, n_out, a.concurrency, a.seconds)
    if a.device == "cuda":
        r["pcie_p50_us"] = pcie_us(n_in, n_out, a.seconds)
        r["pcie64_per_request_us"] = pcie_us(64 * n_in, 64 * n_out, a.seconds) / 64
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
