"""chilld's results against a float64 numpy reference computed here from the
same inputs with DESIGN.md's mask predicates: every mask and every dtype,
through JSON tensors and the binary extension, with the relative-error
bounds of the numerics contract (1e-5 fp32, 2e-3 fp16, 1e-2 bf16). Then the
request parameters that change the result: seq_lens/kv_seq_lens (rows past
seq_lens: zeros and lse -inf), q_offset, sm_scale, return_lse (with empty
rows: zeros and -inf), the BTHD layout, grouped-query heads, presets and the
mask given as a spec string."""
import zlib

import numpy as np
import pytest

import lib

ARGS = {"full": (), "causal": (), "sliding_window": (5, 3), "chunkwise": (8, 1), "prefix_lm": (6,)}
DTYPES = ["FP32", "FP16", "BF16"]


@pytest.fixture(scope="module")
def server():
    with lib.Chilld({"presets": {"chunk-test": "chunkwise(8,1)"}}) as s:
        yield s


def params_of(mask, extra=None):
    p = dict(zip(lib.MASKS[mask], ARGS[mask]))
    p.update(extra or {})
    return p or None


def check(server, model, mask, dt, binary, shape=(2, 4, 2, 24, 40, 32), extra=None, seed=0,
          seq_lens=None, kv_seq_lens=None, send_mask_args=True, lse=False, layout="BHTD"):
    if dt == "BF16" and lib.BF16 is None:
        pytest.skip("ml_dtypes not installed: no bfloat16 in numpy")
    rng = np.random.default_rng(seed)
    B, Hq, Hkv, Tq, Tk, D = shape
    q, k, v = lib.make_qkv(rng, B, Hq, Hkv, Tq, Tk, D, dt)
    send = (q, k, v) if layout == "BHTD" else tuple(np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v))
    inputs = [("q", send[0], dt), ("k", send[1], dt), ("v", send[2], dt)]
    if seq_lens is not None:
        inputs.append(("seq_lens", np.asarray(seq_lens, np.int32), "INT32"))
    if kv_seq_lens is not None:
        inputs.append(("kv_seq_lens", np.asarray(kv_seq_lens, np.int32), "INT32"))
    params = dict(extra or {})
    if send_mask_args:
        params.update(params_of(mask) or {})
    if layout != "BHTD":
        params["layout"] = layout
    if lse:
        params["return_lse"] = True
    outputs = ("out", "lse") if lse else ("out",)
    status, headers, body = lib.infer(server, model, inputs, params or None, binary=binary, outputs=outputs)
    assert status == 200, body[:400]
    resp, outs = lib.decode_infer_response(headers, body)
    got = outs["out"]
    assert {o["name"]: o["datatype"] for o in resp["outputs"]}["out"] == dt
    if layout != "BHTD":
        assert list(got.shape) == [B, Tq, Hq, D]
        got = got.transpose(0, 2, 1, 3)
    assert list(got.shape) == [B, Hq, Tq, D]
    ref, ref_lse = lib.reference(q, k, v, mask, ARGS[mask], sm_scale=(extra or {}).get("sm_scale"),
                                 q_offset=(extra or {}).get("q_offset"), seq_lens=seq_lens, kv_seq_lens=kv_seq_lens)
    err = lib.rel_error(got, ref)
    assert err <= lib.TOL[dt], f"{model} {dt} {'binary' if binary else 'json'}: rel error {err:.3g} > {lib.TOL[dt]}"
    if lse:
        got_lse = np.asarray(outs["lse"], np.float64)
        assert list(got_lse.shape) == [B, Hq, Tq]
        defined = ~np.isnan(ref_lse)
        empty = defined & np.isneginf(ref_lse)
        assert np.all(np.isneginf(got_lse[empty])), "an empty row's lse must be -inf"
        full = defined & ~empty
        assert np.allclose(got_lse[full], ref_lse[full], rtol=0, atol=1e-3 if dt == "FP32" else 2e-2)
    if seq_lens is not None:  # rows past seq_lens: out zeros, lse -inf, on every backend
        past = np.broadcast_to((np.arange(Tq)[None, :] >= np.asarray(seq_lens)[:, None])[:, None, :], (B, Hq, Tq))
        assert np.all(np.asarray(got, np.float64)[past] == 0), "rows past seq_lens: out must be zeros"
        if lse:
            assert np.all(np.isneginf(got_lse[past])), "rows past seq_lens: lse must be -inf"
    return ref, got


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("mask", list(lib.MASKS))
def test_every_mask_and_dtype(server, mask, dt, binary):
    check(server, mask, mask, dt, binary, seed=zlib.crc32(f"{mask}{dt}{binary}".encode()))


@pytest.mark.parametrize("dt", DTYPES)
def test_seq_lens_and_kv_seq_lens(server, dt):
    check(server, "causal", "causal", dt, True, shape=(3, 2, 2, 16, 20, 16),
          seq_lens=[16, 5, 1], kv_seq_lens=[20, 9, 12], lse=True)
    check(server, "sliding_window", "sliding_window", dt, True, shape=(3, 2, 1, 16, 20, 16),
          seq_lens=[3, 16, 10], kv_seq_lens=[7, 20, 10])


def test_q_offset_sm_scale_and_lse(server):
    check(server, "causal", "causal", "FP32", True, extra={"q_offset": 4, "sm_scale": 0.3}, lse=True)
    check(server, "prefix_lm", "prefix_lm", "FP16", True, extra={"q_offset": 0}, lse=True)


def test_empty_rows_give_zeros_and_minus_inf(server):
    ref, got = check(server, "causal", "causal", "FP32", True, shape=(1, 2, 2, 8, 8, 16),
                     extra={"q_offset": -4}, lse=True)
    assert np.all(got[:, :, :4] == 0), "rows with no attended key must be exactly zero"


@pytest.mark.parametrize("dt", ["FP32", "FP16"])
def test_bthd_layout(server, dt):
    check(server, "chunkwise", "chunkwise", dt, True, layout="BTHD")
    check(server, "full", "full", dt, False, layout="BTHD", shape=(1, 2, 2, 5, 7, 16))


def test_grouped_query_heads(server):
    check(server, "sliding_window", "sliding_window", "FP16", True, shape=(1, 8, 2, 12, 12, 64))
    check(server, "causal", "causal", "BF16", True, shape=(2, 6, 1, 9, 17, 16))


def test_preset_fixes_the_mask(server):
    check(server, "chunk-test", "chunkwise", "FP32", True, send_mask_args=False)
    check(server, "chunk-test", "chunkwise", "FP16", False, send_mask_args=False)


def test_mask_spec_parameter(server):
    check(server, "sliding_window", "sliding_window", "FP32", True, send_mask_args=False,
          extra={"mask": "sliding_window(5,3)"})


def test_json_and_binary_agree(server):
    """JSON encodes every fp16 output exactly: on the CPU (deterministic) the
    two encodings of the same request agree bit for bit."""
    rng = np.random.default_rng(3)
    q, k, v = lib.make_qkv(rng, 1, 2, 2, 16, 16, 32, "FP16")
    inputs = [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")]
    outs = []
    for binary in (False, True):
        status, headers, body = lib.infer(server, "causal", inputs, binary=binary)
        assert status == 200, body[:300]
        outs.append(np.asarray(lib.decode_infer_response(headers, body)[1]["out"], np.float16))
    if lib.BACKEND == "cpu":
        assert np.array_equal(outs[0], outs[1])
    else:
        assert lib.rel_error(outs[0], outs[1].astype(np.float64)) <= lib.TOL["FP16"]


if __name__ == "__main__":
    lib.run_tests(globals())
