"""Writes the fuzz targets' seed inputs: valid requests, mask specs and
configurations for the mutations to start from, so that the fuzzer reaches
the parsers' deep paths in its first runs.

  python3 tests/fuzz/seeds.py DIR     writes DIR/fuzz_<target>/ for each target
"""
import json
import os
import struct
import sys

JSON_BODY = 0xFFFFFFFF  # no Inference-Header-Content-Length: the body is all JSON


def infer_seed(model, header, binary=b"", aligned=True):
    """fuzz_infer's input: model index and alignment flag, header length, body."""
    head = json.dumps(header, separators=(",", ":")).encode()
    header_len = len(head) if binary else JSON_BODY
    return bytes([model | (0x80 if aligned else 0)]) + struct.pack("<I", header_len) + head + binary


def tensor(name, shape, dtype, nbytes=None, data=None):
    t = {"name": name, "shape": shape, "datatype": dtype}
    if data is not None:
        t["data"] = data
    else:
        t["parameters"] = {"binary_data_size": nbytes}
    return t


def infer_seeds():
    shape, n = [1, 2, 4, 16], 2 * 4 * 16
    values = [((i % 13) - 6) / 8 for i in range(n)]
    yield infer_seed(1, {"id": "json", "inputs": [tensor(x, shape, "FP32", data=values) for x in "qkv"]})
    for dtype, size in (("FP16", 2), ("BF16", 2), ("FP32", 4)):
        yield infer_seed(2, {"id": dtype, "parameters": {"left_context": 2, "right_context": 1, "return_lse": True},
                             "inputs": [tensor(x, shape, dtype, n * size) for x in "qkv"],
                             "outputs": [{"name": "out", "parameters": {"binary_data": True}}, {"name": "lse"}]},
                         bytes(range(256)) * (3 * n * size // 256) + bytes(3 * n * size % 256))
    gqa_k = [1, 4, 1, 16]  # BTHD: [B, T, H, D], one key/value head for two query heads
    yield infer_seed(4, {"parameters": {"layout": "BTHD", "q_offset": 1, "sm_scale": 0.25, "timeout": 1000,
                                        "prefix_size": 2, "binary_data_output": True},
                         "inputs": [tensor("q", [1, 4, 2, 16], "FP16", 2 * n), tensor("k", gqa_k, "FP16", n),
                                    tensor("v", gqa_k, "FP16", n)]},
                     bytes(4 * n), aligned=False)
    lens = [tensor("seq_lens", [2], "INT32", data=[3, 1]), tensor("kv_seq_lens", [2], "INT32", data=[4, 2])]
    yield infer_seed(3, {"parameters": {"context_size": 2, "back_contexts": 1},
                         "inputs": [tensor(x, [2, 1, 4, 16], "FP32", data=[0.5] * 2 * 64) for x in "qkv"] + lens})
    yield infer_seed(0, {"inputs": [{"name": "q", "shape": [1, 1, 1, 16], "datatype": "FP32",
                                     "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 64,
                                                    "shared_memory_offset": 0}}]})


# client/PROTOCOL.md's REQUEST frame: header, dtype, flags, B, Hq, Hkv, Tq, Tk, D, q_offset, sm_scale,
# reserved, offsets of q, k, v, out, lse, mask spec
REQUEST = struct.Struct("<IHHIIQII6qqfI5Q64s")
NONE = 2**64 - 1


def wire_seed(dtype, dims, mask, lse=True, q_offset=-(2**63)):
    """A REQUEST frame whose tensors lie one after another from offset 0."""
    b, hq, hkv, tq, tk, d = dims
    e = 4 if dtype == 0 else 2
    sizes = [b * hq * tq * d * e, b * hkv * tk * d * e, b * hkv * tk * d * e, b * hq * tq * d * e, b * hq * tq * 4]
    offs, at = [], 0
    for n in sizes:
        offs.append(at)
        at += (n + 63) // 64 * 64
    if not lse:
        offs[4] = NONE
    return REQUEST.pack(0x4C4C4843, 3, 1, REQUEST.size, 0, 7, dtype, 0, *dims, q_offset, 0.0, 0, *offs,
                        mask.encode())


def wire_seeds():
    yield wire_seed(1, (1, 2, 2, 16, 16, 16), "causal")
    yield wire_seed(2, (2, 4, 1, 8, 24, 64), "sliding_window(3,1)", q_offset=5)
    yield wire_seed(0, (1, 1, 1, 32, 32, 32), "sw-4", lse=False)
    yield wire_seed(1, (3, 2, 2, 4, 4, 128), "prefix_lm(2)")


MASKS = ["full", "causal()", "sliding_window(64,32)", "chunkwise(16,8)", "prefix_lm(64)",
         "sliding_window(-1,0)", "chunkwise(9223372036854775807,1)"]
MASK_JSON = [{"type": "sliding_window", "left_context": 4, "right_context": 0}, {"type": "causal"},
             {"type": "chunkwise", "context_size": 3, "back_contexts": 2}, {"type": "prefix_lm", "prefix_size": 1}]

CONFIGS = [
    {"listen": {"address": "127.0.0.1", "port": 8000, "threads": 4, "connection_memory_bytes": 262144},
     "devices": {"backend": "auto", "gpus": [0, 1], "gpu_slots": 2, "idle_spin_us": 50},
     "batching": {"enabled": True, "max_queue_delay_us": 200, "max_batch_tokens": 8192, "max_queue_requests": 64},
     "presets": {"sw-128": "sliding_window(128,0)", "chunk": "chunkwise(512,1)"},
     "log": {"level": "debug"}, "shutdown": {"drain_timeout_s": 5}},
    {"limits": {"max_body_bytes": 1 << 20}, "shared_memory": {"system": True, "cuda": False},
     "unix_socket": {"path": "/tmp/chilld.sock"}},
]


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main(out):
    for i, s in enumerate(infer_seeds()):
        write(os.path.join(out, "fuzz_infer"), f"seed{i}", s)
    for i, s in enumerate(wire_seeds()):
        write(os.path.join(out, "fuzz_wire"), f"seed{i}", s)
    for i, s in enumerate(MASKS + [json.dumps(m) for m in MASK_JSON]):
        write(os.path.join(out, "fuzz_mask"), f"seed{i}", s)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../config/chilld.json")) as f:
        write(os.path.join(out, "fuzz_config"), "chilld.json", f.read())
    for i, c in enumerate(CONFIGS):
        write(os.path.join(out, "fuzz_config"), f"seed{i}", json.dumps(c, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
