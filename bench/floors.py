"""The physical floors under one request's overhead, measured on this machine:
what any transport must spend moving the request's bytes, before chilld does
anything of its own.

- loopback: a TCP round trip over 127.0.0.1 carrying the request's input
  bytes (q, k, v) one way and its output bytes (out) back, between two
  threads of this process with plain sockets (no HTTP): the floor under the
  binary HTTP path's overhead.
- pcie (--device cuda): cudaMemcpyAsync of the input bytes from pinned host
  memory to the GPU and of the output bytes back, then a synchronize: the
  floor under every path whose tensors are in host memory (HTTP, system
  shared memory, the native socket), since the bare call's tensors are
  already on the device. pcie64 is the same for 64 requests' bytes in one
  copy each way, per request: what a batch of 64 pays.

  floors.py --shape 1,8,256,64 --dtype FP16 [--device cpu|cuda] [--seconds 2]
prints one JSON line: {"bytes_in", "bytes_out", "loopback_p50_us", and with cuda "pcie_p50_us",
"pcie64_per_request_us"}.
"""
import argparse
import ctypes
import json
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
        got += sock.recv_into(view[got:])


def loopback_us(n_in, n_out, seconds):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    peer, _ = srv.accept()
    for s in (cli, peer):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inp, out = bytearray(n_in), bytearray(n_out)
    stop = threading.Event()

    def server():
        got = bytearray(n_in)
        while True:
            try:
                recv_exactly(peer, got)
            except OSError:
                return
            if stop.is_set():
                return
            peer.sendall(out)

    t = threading.Thread(target=server, daemon=True)
    t.start()
    back = bytearray(n_out)

    def round_trip():
        cli.sendall(inp)
        recv_exactly(cli, back)

    us = median_us(round_trip, seconds)
    stop.set()
    cli.sendall(inp)
    cli.close()
    t.join(1)
    peer.close()
    srv.close()
    return us


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
    a = ap.parse_args()
    B, H, T, D = (int(x) for x in a.shape.split(","))
    n_out = B * H * T * D * ESIZE[a.dtype]
    n_in = 3 * n_out
    r = {"bytes_in": n_in, "bytes_out": n_out, "loopback_p50_us": loopback_us(n_in, n_out, a.seconds)}
    if a.device == "cuda":
        r["pcie_p50_us"] = pcie_us(n_in, n_out, a.seconds)
        r["pcie64_per_request_us"] = pcie_us(64 * n_in, 64 * n_out, a.seconds) / 64
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
