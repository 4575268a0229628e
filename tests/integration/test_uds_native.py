"""chilld's native Unix socket, spoken from Python straight from
client/PROTOCOL.md (no libchillclient), so the documented frame format is
what is tested: a memfd arena sealed against shrinking handed over with
SCM_RIGHTS, several requests in flight on one connection, results checked
against the float64 reference. Then the failures: an unsealed arena, a
HELLO without a descriptor, tensors outside the arena, an unknown mask, a
bad frame, a client that disconnects mid-request, a peer not on the
allow-list; each gets its error and chilld keeps serving."""
import array
import fcntl
import mmap
import os
import socket
import stat
import struct

import numpy as np
import pytest

import lib

MAGIC, VERSION = 0x4C4C4843, 1
HELLO, WELCOME, REQUEST, RESULT = 1, 2, 3, 4
HEADER = struct.Struct("<IHHIIQ")
HELLO_FMT = struct.Struct("<IHHIIQQ")
REQUEST_FMT = struct.Struct("<IHHIIQII6qqfI5Q64s")
RESULT_FMT = struct.Struct("<IHHIIQiiII")
NONE = 2**64 - 1
DTYPES = {"FP32": 0, "FP16": 1, "BF16": 2}


def test_layout_matches_protocol_md():
    assert (HEADER.size, HELLO_FMT.size, REQUEST_FMT.size, RESULT_FMT.size) == (24, 32, 200, 40)


@pytest.fixture(scope="module")
def server():
    d = os.path.join("/tmp", f"chill-uds-test.{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "chilld.sock")
    # The queue holds every request test_every_request_answered_once keeps in
    # flight, so a slow (sanitizer) build answers them, not 503 for overload.
    with lib.Chilld({"unix_socket": {"path": path}, "batching": {"max_queue_requests": 8192}}) as s:
        s.sock_path = path
        yield s


class Conn:
    def __init__(self, path, arena_bytes=1 << 20, seal=True, send_fd=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60 * lib.SLOW)
        self.s.connect(path)
        self.fd = os.memfd_create("chill-test-arena", os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, arena_bytes)
        if seal:
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.arena = mmap.mmap(self.fd, arena_bytes)
        self.size = arena_bytes
        hello = HELLO_FMT.pack(MAGIC, HELLO, VERSION, HELLO_FMT.size, 0, 0, arena_bytes)
        try:
            if send_fd:
                self.s.sendmsg([hello], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [self.fd]))])
            else:
                self.s.sendall(hello)
        except BrokenPipeError:
            pass  # a refused peer may be closed before its HELLO is read: the WELCOME is still there
        self.welcome = self.read()

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("chilld closed the connection")
            buf += chunk
        return buf

    def read(self):
        f = RESULT_FMT.unpack(self.recv_exact(RESULT_FMT.size))
        magic, typ, _, length, _, rid, status, code, mlen, _ = f
        assert magic == MAGIC and length == RESULT_FMT.size + mlen
        return {"type": typ, "id": rid, "status": status, "code": code, "message": self.recv_exact(mlen).decode()}

    def put(self, offset, a):
        b = a.tobytes()
        self.arena[offset:offset + len(b)] = b

    def get(self, offset, dtype, shape):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(self.arena[offset:offset + n], dtype=dtype).reshape(shape).copy()

    def request(self, rid, dt, shape, offs, mask, q_offset=-(2**63), sm_scale=0.0):
        B, H, Hkv, Tq, Tk, D = shape
        frame = REQUEST_FMT.pack(MAGIC, REQUEST, VERSION, REQUEST_FMT.size, 0, rid, DTYPES[dt], 0, B, H, Hkv, Tq,
                                 Tk, D, q_offset, sm_scale, 0, *offs, mask.encode())
        self.s.sendall(frame)

    def close(self):
        self.s.close()
        self.arena.close()
        os.close(self.fd)


def layout(shape, dt, base=0):
    """Offsets of q, k, v, out, lse for one request placed from base."""
    B, H, Hkv, Tq, Tk, D = shape
    e = lib.np_dtype(dt).itemsize
    sizes = [B * H * Tq * D * e, B * Hkv * Tk * D * e, B * Hkv * Tk * D * e, B * H * Tq * D * e, B * H * Tq * 4]
    offs, at = [], base
    for s in sizes:
        offs.append(at)
        at += (s + 63) // 64 * 64
    return offs, at


def test_socket_mode(server):
    assert stat.S_IMODE(os.stat(server.sock_path).st_mode) == 0o660


def test_requests_in_flight(server):
    cases = [("causal", (), "FP16", (2, 4, 2, 37, 51, 32)), ("sliding_window", (6, 2), "FP32", (1, 2, 2, 64, 64, 64)),
             ("chunkwise", (16, 1), "FP16", (1, 4, 1, 40, 40, 16)), ("prefix_lm", (7,), "FP32", (3, 2, 2, 20, 31, 32))]
    c = Conn(server.sock_path)
    assert c.welcome["type"] == WELCOME and c.welcome["status"] == 0, c.welcome
    rng = np.random.default_rng(5)
    base, jobs = 0, {}
    for i, (mask, args, dt, shape) in enumerate(cases):
        B, H, Hkv, Tq, Tk, D = shape
        q, k, v = lib.make_qkv(rng, B, H, Hkv, Tq, Tk, D, dt)
        offs, base = layout(shape, dt, base)
        for a, o in zip((q, k, v), offs):
            c.put(o, a)
        c.put(offs[3], np.full(q.shape, np.nan, dtype=q.dtype))
        spec = f"{mask}({','.join(map(str, args))})" if args else mask
        jobs[100 + i] = (mask, args, dt, shape, offs, q, k, v)
        c.request(100 + i, dt, shape, offs, spec)  # all sent before any answer is read
    for _ in cases:
        r = c.read()
        assert r["type"] == RESULT and r["status"] == 0, r
        mask, args, dt, shape, offs, q, k, v = jobs.pop(r["id"])
        out = c.get(offs[3], lib.np_dtype(dt), q.shape)
        lse = c.get(offs[4], np.float32, q.shape[:3])
        ref_out, ref_lse = lib.reference(q, k, v, mask, args)
        assert lib.rel_error(out, ref_out) <= lib.TOL[dt], (mask, dt)
        assert np.max(np.abs(lse - ref_lse)) <= 1e-3
    assert not jobs
    c.close()


def test_arena_must_be_sealed(server):
    c = Conn(server.sock_path, seal=False)
    assert c.welcome["status"] != 0 and c.welcome["code"] == 400
    assert "F_SEAL_SHRINK" in c.welcome["message"]
    c.close()
    c = Conn(server.sock_path, send_fd=False)
    assert c.welcome["status"] != 0 and "SCM_RIGHTS" in c.welcome["message"]
    c.close()


def test_bad_requests_keep_the_connection(server):
    shape, dt = (1, 2, 2, 16, 16, 16), "FP16"
    c = Conn(server.sock_path, arena_bytes=1 << 16)
    offs, _ = layout(shape, dt)
    c.request(1, dt, shape, [offs[0], c.size - 8, offs[2], offs[3], NONE], "causal")
    r = c.read()
    assert (r["id"], r["code"]) == (1, 400) and "outside" in r["message"] and "k" in r["message"], r
    c.request(2, dt, shape, [offs[0], offs[1], 2**63, offs[3], NONE], "causal")
    assert c.read()["code"] == 400
    c.request(3, dt, shape, offs, "no_such_mask(3)")
    r = c.read()
    assert r["code"] == 400 and "no_such_mask" in r["message"], r
    c.request(4, dt, (1, 2, 2, 16, 16, 8), offs, "causal")
    r = c.read()
    assert r["code"] == 400 and "head_dim" in r["message"], r
    # dimensions each in range whose products pass 2^63: refused by the limits, not wrapped
    c.request(5, dt, (1 << 20, 1 << 16, 1 << 16, 1 << 30, 1, 256), offs, "causal")
    r = c.read()
    assert r["code"] == 400 and "limits.max_tokens" in r["message"], r
    c.request(6, dt, shape, offs, "causal")  # still usable
    assert c.read()["status"] == 0
    c.close()


def test_every_request_answered_once(server):
    # Far more frames than fit in the socket buffers, sent by one thread while
    # another reads: chilld pauses reading a peer with a backlog of unread
    # results, and still answers each request exactly once.
    import threading
    shape, dt, n = (1, 1, 1, 16, 16, 16), "FP16", 4000
    c = Conn(server.sock_path, arena_bytes=1 << 16)
    offs, _ = layout(shape, dt)
    bad = [offs[0], c.size, offs[2], offs[3], NONE]  # k outside the arena: answered at once, 400

    def send():
        for i in range(n):
            c.request(i + 1, dt, shape, bad if i % 2 else offs, "causal")

    t = threading.Thread(target=send)
    t.start()
    seen = {}
    for _ in range(n):
        r = c.read()
        seen[r["id"]] = r["code"]
    t.join(60 * lib.SLOW)
    assert sorted(seen) == list(range(1, n + 1))
    wrong = {i: code for i, code in seen.items() if code != (400 if (i - 1) % 2 else 200)}
    assert not wrong, f"{len(wrong)} unexpected codes, e.g. {sorted(wrong.items())[:5]}"
    c.close()


def test_bad_frame_closes_only_that_connection(server):
    c = Conn(server.sock_path)
    c.s.sendall(b"\x00" * REQUEST_FMT.size)
    r = c.read()
    assert r["code"] == 400 and "frame" in r["message"], r
    with pytest.raises((ConnectionError, OSError)):
        c.read()
    c.close()
    assert server.get("/v2/health/ready")[0] == 200


def test_disconnect_mid_request(server):
    shape, dt = (1, 8, 8, 512, 512, 64), "FP16"
    offs, size = layout(shape, dt)
    for _ in range(3):
        c = Conn(server.sock_path, arena_bytes=size)
        c.request(9, dt, shape, offs, "full")
        c.close()  # gone before the answer
    c = Conn(server.sock_path)
    small, _ = layout((1, 2, 2, 16, 16, 16), dt)
    c.request(10, dt, (1, 2, 2, 16, 16, 16), small, "causal")
    assert c.read()["status"] == 0
    c.close()
    assert server.proc.poll() is None


def test_peer_not_on_allow_list():
    path = os.path.join("/tmp", f"chill-uds-deny.{os.getpid()}.sock")
    other = (os.geteuid() + 4242) % 2**31
    with lib.Chilld({"unix_socket": {"path": path, "allow_uids": [other]}}) as s:
        c = Conn(path)
        assert c.welcome["code"] == 403 and "allow_uids" in c.welcome["message"], c.welcome
        c.close()
        assert s.wait_log(b"event=uds_refused"), s.log_text()
        assert f"uid={os.geteuid()}" in s.log_text()
        assert s.get("/v2/health/ready")[0] == 200


if __name__ == "__main__":
    lib.run_tests(globals())
