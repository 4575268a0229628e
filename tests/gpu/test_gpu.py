"""GPU differential tests of libchill's CUDA kernels, through the ctypes binding.

Each case draws random inputs from its own seed, poisons the output (NaN)
before the call, and compares with a float64 reference computed in torch on the
GPU with the same mask (whose torch form is first checked against libchill's
own predicate). It asserts: every output element written; rows with no key
zero with lse = -inf; ||out - ref|| / ||ref|| within the numerics contract
(1e-5 fp32, 2e-3 fp16, 1e-2 bf16) and no worse than twice PyTorch SDPA's error
on the same inputs (for the rows that have a key); lse within tolerance. Also:
bad arguments come back as status codes with messages, and nothing
synchronizes or allocates per call (checked with a CUDA graph capture).

fp32 with allow_tf32 (cases marked tf32) runs the TF32 tensor-core kernel: its
bound is 2e-3 (TF32 keeps a 10-bit mantissa, as fp16) and twice the error of
SDPA's math backend with TF32 matmuls, or where cuBLAS ran that in full fp32,
twice the error of exact attention on inputs rounded to TF32. check_tf32 shows
that allow_tf32 really switches kernels and that TF32 falls back to true fp32
where it cannot run.

    python3 tests/gpu/test_gpu.py            every case
    python3 tests/gpu/test_gpu.py --reduced  a few small ones (compute-sanitizer)
"""

import importlib.util
import math
import os
import random
import sys
from pathlib import Path

import torch

# binding.py alone, not the chill package (which needs tritonclient).
_spec = importlib.util.spec_from_file_location(
    "chill_binding", Path(__file__).resolve().parents[2] / "client" / "python" / "chill" / "binding.py")
binding = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(binding)
ChillError, attention, mask_allows = binding.ChillError, binding.attention, binding.mask_allows

DEV = "cuda"
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
LSE_TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}
TF32_TOL, TF32_LSE_TOL = 2e-3, 2e-2  # fp32 with allow_tf32: a 10-bit mantissa, as fp16
MASKS = ["full", "causal", "sliding_window(16,16)", "sliding_window(100,0)", "sliding_window(0,0)",
         "chunkwise(16,8)", "chunkwise(64,0)", "chunkwise(7,2)", "prefix_lm(128)", "prefix_lm(0)", "prefix_lm(33)"]


def torch_mask(spec, qpos, kpos):
    """The mask as a [len(qpos), len(kpos)] bool tensor, from the definitions in masks/."""
    name, _, rest = spec.partition("(")
    a = [int(x) for x in rest.rstrip(")").split(",") if x.strip()]
    q, k = qpos[:, None], kpos[None, :]
    if name == "full":
        return torch.ones(q.shape[0], k.shape[1], dtype=torch.bool, device=q.device)
    if name == "causal":
        return k <= q
    if name == "sliding_window":
        return (q - a[0] <= k) & (k <= q + a[1])
    if name == "chunkwise":
        d = torch.div(q, a[0], rounding_mode="floor") - torch.div(k, a[0], rounding_mode="floor")
        return (d >= 0) & (d <= a[1])
    if name == "prefix_lm":
        return (k < a[0]) | (k <= q)
    raise ValueError(spec)


def check_torch_masks():
    """The torch forms above agree with libchill's predicate, negative positions included."""
    pos = torch.arange(-40, 90)
    for spec in MASKS:
        m = torch_mask(spec, pos, pos)
        for i in range(0, len(pos), 3):
            for j in range(0, len(pos), 2):
                assert bool(m[i, j]) == mask_allows(spec, int(pos[i]), int(pos[j])), (spec, int(pos[i]), int(pos[j]))


def reference(q, k, v, spec, q_off, scale):
    """float64 attention of one sequence: q [H, Tq, D], k, v [Hkv, Tk, D]; (out, lse, mask)."""
    h, tq, _ = q.shape
    tk = k.shape[1]
    g = h // k.shape[0]
    m = torch_mask(spec, torch.arange(tq, device=DEV) + q_off, torch.arange(tk, device=DEV))
    kk = k.double().repeat_interleave(g, 0)
    vv = v.double().repeat_interleave(g, 0)
    s = (q.double() @ kk.transpose(1, 2)) * scale
    s = s.masked_fill(~m, -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    return p @ vv, lse, m


def sdpa(q, k, v, m, scale):
    g = q.shape[0] // k.shape[0]
    return torch.nn.functional.scaled_dot_product_attention(
        q[None], k.repeat_interleave(g, 0)[None], v.repeat_interleave(g, 0)[None],
        attn_mask=m[None, None], scale=scale)[0]


def tf32_round(x):
    """x rounded to TF32 as cvt.rna.tf32.f32 does: 10-bit mantissa, nearest, ties away from zero."""
    i = x.float().contiguous().view(torch.int32)
    return ((i + 0x1000) & -0x2000).view(torch.float32).view(x.shape)


def sdpa_tf32(q, k, v, m, scale):
    """SDPA on fp32 with TF32 allowed: the math backend, whose matmuls may then run on TF32 tensor
    cores (the fused fp32 kernels keep fp32 accuracy whatever the flag)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa(q, k, v, m, scale)
    finally:
        torch.set_float32_matmul_precision(old)


def rel(x, ref):
    return (torch.linalg.norm((x.double() - ref).flatten()) / max(torch.linalg.norm(ref.flatten()), 1e-300)).item()


def run_case(c):
    """c: dict of dtype, D, B, Hq, Hkv, Tq (list per sequence), Tk (list), mask, layout, q_offset, lse, seed,
    and tf32 (fp32 with allow_tf32)."""
    gen = torch.Generator(device=DEV).manual_seed(c["seed"])
    dt, D, B, Hq, Hkv = c["dtype"], c["D"], c["B"], c["Hq"], c["Hkv"]
    tf32 = c.get("tf32", False)
    tol, lse_tol = (TF32_TOL, TF32_LSE_TOL) if tf32 else (TOL[dt], LSE_TOL[dt])
    lq, lk = c["Tq"], c["Tk"]
    scale = c.get("scale", 1.0 / math.sqrt(D))
    layout = c["layout"]
    rnd = lambda *s: torch.randn(*s, generator=gen, device=DEV, dtype=torch.float32).to(dt)  # noqa: E731
    kw = dict(mask=c["mask"], sm_scale=scale, q_offset=c.get("q_offset"), return_lse=c["lse"], allow_tf32=tf32)
    if layout == "packed":
        cq = torch.tensor([0] + list(torch.tensor(lq).cumsum(0)), dtype=torch.int32, device=DEV)
        ck = torch.tensor([0] + list(torch.tensor(lk).cumsum(0)), dtype=torch.int32, device=DEV)
        q, k, v = rnd(sum(lq), Hq, D), rnd(sum(lk), Hkv, D), rnd(sum(lk), Hkv, D)
        seqs = [(q[cq[b]:cq[b + 1]].transpose(0, 1), k[ck[b]:ck[b + 1]].transpose(0, 1),
                 v[ck[b]:ck[b + 1]].transpose(0, 1)) for b in range(B)]
        out = torch.full_like(q, float("nan"))
        kw.update(cu_seqlens_q=cq, cu_seqlens_k=ck)
        if c.get("host_seqs"):
            kw.update(cu_seqlens_q=cq.tolist(), cu_seqlens_k=ck.tolist())
        get = lambda o, b: o[cq[b]:cq[b + 1]].transpose(0, 1)  # noqa: E731
        get_lse = lambda l, b: l[:, cq[b]:cq[b + 1]]  # noqa: E731
    else:
        Tq, Tk = max(lq), max(lk)
        if layout == "BHTD":
            q, k, v = rnd(B, Hq, Tq, D), rnd(B, Hkv, Tk, D), rnd(B, Hkv, Tk, D)
            view = lambda x: x  # noqa: E731
        else:
            q, k, v = rnd(B, Tq, Hq, D), rnd(B, Tk, Hkv, D), rnd(B, Tk, Hkv, D)
            view = lambda x: x.transpose(1, 2)  # noqa: E731
        seqs = [(view(q)[b, :, :lq[b]], view(k)[b, :, :lk[b]], view(v)[b, :, :lk[b]]) for b in range(B)]
        out = torch.full_like(q, float("nan"))
        if lq != [Tq] * B:
            kw["seq_lens_q"] = torch.tensor(lq, dtype=torch.int32, device=DEV)
        if lk != [Tk] * B:
            kw["seq_lens_k"] = torch.tensor(lk, dtype=torch.int32, device=DEV)
        if c.get("host_seqs"):
            kw.update({n: kw[n].tolist() for n in ("seq_lens_q", "seq_lens_k") if n in kw})
        kw["layout"] = layout
        get = lambda o, b: view(o)[b, :, :lq[b]]  # noqa: E731
        get_lse = lambda l, b: l[b, :, :lq[b]]  # noqa: E731
    lse = None
    if c["lse"]:
        lse = torch.full((Hq, sum(lq)) if layout == "packed" else (B, Hq, max(lq)), float("nan"), device=DEV)
        kw["lse"] = lse
    os.environ["CHILL_CUDA_CONFIG"] = c.get("config", "")
    try:
        res = attention(q, k, v, out=out, **kw)
    finally:
        os.environ["CHILL_CUDA_CONFIG"] = ""
    torch.cuda.synchronize()
    assert (res[0] if c["lse"] else res) is out
    worst = 0.0
    for b in range(B):
        qb, kb, vb = seqs[b]
        q_off = c["q_offset"] if c.get("q_offset") is not None else lk[b] - lq[b]
        ref, ref_lse, m = reference(qb, kb, vb, c["mask"], q_off, scale)
        ob = get(out, b)
        assert not torch.isnan(ob).any(), f"sequence {b}: output not written everywhere"
        empty = ~m.any(dim=1)
        assert (ob[:, empty] == 0).all(), f"sequence {b}: a row with no key is not zero"
        err = rel(ob, ref)
        assert err <= tol, f"sequence {b}: rel error {err:.3g} > {tol}"
        rows = ~empty
        if rows.any() and lq[b] > 0:
            if tf32:
                e_sdpa = max(rel(sdpa_tf32(qb, kb, vb, m, scale)[:, rows], ref[:, rows]),
                             rel(reference(tf32_round(qb), tf32_round(kb), tf32_round(vb), c["mask"], q_off,
                                           scale)[0][:, rows], ref[:, rows]))
            else:
                e_sdpa = rel(sdpa(qb, kb, vb, m, scale)[:, rows], ref[:, rows])
            e_ours = rel(ob[:, rows], ref[:, rows])
            assert e_ours <= 2 * e_sdpa, f"sequence {b}: rel error {e_ours:.3g} > 2 x SDPA's {e_sdpa:.3g}"
        if lse is not None:
            lb = get_lse(lse, b)
            assert torch.equal(torch.isneginf(lb), empty[None].expand_as(lb)), f"sequence {b}: lse -inf rows"
            if rows.any():
                d = (lb[:, rows].double() - ref_lse[:, rows]).abs().max().item()
                assert d <= lse_tol, f"sequence {b}: lse off by {d:.3g}"
        worst = max(worst, err)
    if layout != "packed":  # rows past a sequence's length are not written (chill.h)
        for b in range(B):
            assert torch.isnan(view(out)[b, :, lq[b]:]).all(), f"sequence {b}: a row past its length was written"
            if lse is not None:
                assert torch.isnan(lse[b, :, lq[b]:]).all(), f"sequence {b}: an lse row past its length was written"
    return worst


def cases(reduced):
    rng = random.Random(1234)
    dtypes = [torch.float16, torch.bfloat16, torch.float32]
    out, seed = [], 0

    def add(**c):
        nonlocal seed
        seed += 1
        c.setdefault("B", 2)
        c.setdefault("Hq", 2)
        c.setdefault("Hkv", c["Hq"])
        c.setdefault("layout", "BHTD")
        c.setdefault("lse", True)
        c.setdefault("Tq", [c.pop("T", 100)] * c["B"])
        c.setdefault("Tk", list(c["Tq"]))
        c["seed"] = seed
        out.append(c)

    if reduced:
        for dt in dtypes:
            for spec in ["causal", "sliding_window(16,16)", "chunkwise(16,8)", "prefix_lm(33)", "full"]:
                add(dtype=dt, D=64, T=131, mask=spec)
        add(dtype=torch.float16, D=128, B=3, layout="packed", Tq=[70, 1, 129], Tk=[90, 5, 129], mask="causal",
            Hq=4, Hkv=2)
        for D in (64, 128):
            for name in compiled_configs(torch.float16, D):
                add(dtype=torch.float16, D=D, T=131, mask="sliding_window(40,3)", config=name)
        for spec in ["causal", "chunkwise(16,8)"]:
            add(dtype=torch.float32, tf32=True, D=64, T=131, mask=spec)
        add(dtype=torch.float32, tf32=True, D=128, B=3, layout="packed", Tq=[70, 1, 129], Tk=[90, 5, 129],
            mask="sliding_window(40,3)", Hq=4, Hkv=2)
        for name in compiled_configs(torch.float32, 256, tf32=True):
            add(dtype=torch.float32, tf32=True, D=256, Tq=[131, 40], Tk=[131, 77], mask="prefix_lm(33)", config=name)
        return out
    for dt in dtypes:
        for D in [32, 64, 96, 128, 256]:
            for spec in MASKS:
                add(dtype=dt, D=D, T=rng.choice([77, 128, 200, 333]), mask=spec)
        for spec in MASKS:
            D = rng.choice([64, 128])
            add(dtype=dt, D=D, layout="BTHD", T=257, mask=spec, Hq=4, Hkv=1)
            add(dtype=dt, D=D, Tq=[190, 64, 1], Tk=[300, 64, 17], B=3, mask=spec, Hq=6, Hkv=2)
            add(dtype=dt, D=D, layout="packed", B=4, Tq=[33, 250, 1, 128], Tk=[60, 250, 200, 0], mask=spec, Hq=4,
                Hkv=4)
            add(dtype=dt, D=D, Tq=[64] * 2, Tk=[500] * 2, mask=spec, q_offset=rng.choice([-70, 0, 10, 436, 600]))
            add(dtype=dt, D=D, Tq=[300] * 2, Tk=[40] * 2, mask=spec)
            add(dtype=dt, D=D, T=1, mask=spec, lse=False)
        add(dtype=dt, D=64, T=1000, B=1, mask="causal", scale=0.3)
    # more sequences than one launch carries in its parameters (host arrays, as the daemon passes them)
    lens = [rng.randint(0, 40) for _ in range(300)]
    add(dtype=torch.float16, D=64, layout="packed", B=300, Tq=lens, Tk=[n + 3 for n in lens], mask="causal",
        host_seqs=True)
    add(dtype=torch.bfloat16, D=64, B=300, Tq=lens, Tk=[40] * 300, mask="sliding_window(5,2)", host_seqs=True)
    config_cases(add)
    tf32_cases(add, rng, lens)
    return out


def compiled_configs(dtype, D, tf32=False):
    """The tile configurations compiled for (dtype, D), TF32's for fp32 with tf32, as libchill lists
    them for an unknown name."""
    q = torch.randn(1, 1, 16, D, device=DEV, dtype=dtype)
    os.environ["CHILL_CUDA_CONFIG"] = "?"
    try:
        attention(q, q, q, allow_tf32=tf32)
    except ChillError as e:
        family = "TF32" if tf32 else {torch.float32: "FP32", torch.float16: "FP16", torch.bfloat16: "BF16"}[dtype]
        assert f"compiled for {family}," in str(e), str(e)
        return str(e).rsplit(": ", 1)[1].split()
    finally:
        os.environ["CHILL_CUDA_CONFIG"] = ""
    raise AssertionError("CHILL_CUDA_CONFIG=? was accepted")


def config_cases(add):
    """Every compiled tile configuration on odd shapes, partial and full tiles, packed and GQA."""
    for dt in (torch.float16, torch.bfloat16):
        for D in (32, 64, 96, 128, 256):
            for name in compiled_configs(dt, D):
                for spec in ("causal", "chunkwise(7,2)", "sliding_window(40,3)", "prefix_lm(33)", "full"):
                    add(dtype=dt, D=D, T=333, mask=spec, config=name, Hq=4, Hkv=2)
                add(dtype=dt, D=D, layout="packed", B=3, Tq=[70, 1, 200], Tk=[90, 5, 200], mask="causal",
                    config=name)


def tf32_cases(add, rng, lens):
    """fp32 with allow_tf32, as the fp32 cases above: every mask and head dim, BTHD with MQA, per-sequence
    lengths with GQA, packed, q_offset, more queries than keys, decode, an explicit scale, 300 packed
    sequences, and every compiled TF32 tile configuration."""
    dt = torch.float32
    for D in [32, 64, 96, 128, 256]:
        for spec in MASKS:
            add(dtype=dt, tf32=True, D=D, T=rng.choice([77, 128, 200, 333]), mask=spec)
    for spec in MASKS:
        D = rng.choice([64, 128])
        add(dtype=dt, tf32=True, D=D, layout="BTHD", T=257, mask=spec, Hq=4, Hkv=1)
        add(dtype=dt, tf32=True, D=D, Tq=[190, 64, 1], Tk=[300, 64, 17], B=3, mask=spec, Hq=6, Hkv=2)
        add(dtype=dt, tf32=True, D=D, layout="packed", B=4, Tq=[33, 250, 1, 128], Tk=[60, 250, 200, 0], mask=spec,
            Hq=4, Hkv=4)
        add(dtype=dt, tf32=True, D=D, Tq=[64] * 2, Tk=[500] * 2, mask=spec, q_offset=rng.choice([-70, 0, 10, 436, 600]))
        add(dtype=dt, tf32=True, D=D, Tq=[300] * 2, Tk=[40] * 2, mask=spec)
        add(dtype=dt, tf32=True, D=D, T=1, mask=spec, lse=False)
    add(dtype=dt, tf32=True, D=64, T=1000, B=1, mask="causal", scale=0.3)
    add(dtype=dt, tf32=True, D=64, layout="packed", B=300, Tq=lens, Tk=[n + 3 for n in lens], mask="causal",
        host_seqs=True)
    for D in (32, 64, 96, 128, 256):
        for name in compiled_configs(dt, D, tf32=True):
            for spec in ("causal", "chunkwise(7,2)", "sliding_window(40,3)", "prefix_lm(33)", "full"):
                add(dtype=dt, tf32=True, D=D, T=333, mask=spec, config=name, Hq=4, Hkv=2)
            add(dtype=dt, tf32=True, D=D, layout="packed", B=3, Tq=[70, 1, 200], Tk=[90, 5, 200], mask="causal",
                config=name)


def check_tf32():
    """allow_tf32 switches fp32 to the TF32 kernel: on a dense case its error against float64 is
    TF32's (well above 1e-5), while without it fp32 meets 1e-5; where TF32 cannot run (a q that is
    not 16-byte aligned) the call falls back to true fp32."""
    gen = torch.Generator(device=DEV).manual_seed(7)
    q, k, v = (torch.randn(2, 4, 512, 64, generator=gen, device=DEV) for _ in range(3))
    ref = torch.stack([reference(q[b], k[b], v[b], "full", 0, 0.125)[0] for b in range(2)])
    e_tf32 = rel(attention(q, k, v, allow_tf32=True), ref)
    e_fp32 = rel(attention(q, k, v, allow_tf32=False), ref)
    e_sdpa = rel(torch.stack([sdpa_tf32(q[b], k[b], v[b], torch.ones(512, 512, dtype=torch.bool, device=DEV),
                                        0.125) for b in range(2)]), ref)
    print(f"     dense D64 T512: rel error TF32 {e_tf32:.2e} (SDPA math with TF32 {e_sdpa:.2e}), fp32 {e_fp32:.2e}")
    assert 2e-5 < e_tf32 <= TF32_TOL, f"allow_tf32: rel error {e_tf32:.3g}, not TF32's"
    assert e_fp32 <= TOL[torch.float32], f"fp32: rel error {e_fp32:.3g} > {TOL[torch.float32]}"
    buf = torch.empty(q.numel() + 4, device=DEV)
    q1 = buf[1:1 + q.numel()].view(q.shape)
    q1.copy_(q)
    e_fall = rel(attention(q1, k, v, allow_tf32=True), ref)
    assert e_fall <= TOL[torch.float32], f"misaligned q with allow_tf32: rel error {e_fall:.3g}, not true fp32's"


def check_errors():
    """Bad arguments on the GPU come back as statuses with messages."""
    q = torch.randn(1, 2, 64, 64, device=DEV, dtype=torch.float16)
    expect = [
        (dict(k=q.cpu()), "INVALID", "host memory"),
        (dict(q=torch.randn(1, 2, 64, 80, device=DEV, dtype=torch.float16)), None, "head_dim"),
        (dict(q=torch.empty(q.numel() + 8, device=DEV, dtype=q.dtype)[1:1 + q.numel()].view(q.shape)), None, "aligned"),
    ]
    for change, status, words in expect:
        args = dict(q=q, k=q, v=q)
        args.update(change)
        if "head_dim" == words:
            args["k"] = args["v"] = args["q"]
        try:
            attention(args["q"], args["k"], args["v"], mask="causal")
        except ChillError as e:
            assert status is None or e.status == status, (change.keys(), str(e))
            assert words in str(e), (words, str(e))
        else:
            raise AssertionError(f"no error for {list(change)}: expected {words}")


def check_numpy_cpu():
    """numpy arrays run on the CPU kernel and agree with the GPU on the same inputs."""
    q = torch.randn(2, 4, 77, 64, device=DEV, dtype=torch.float16)
    k = torch.randn(2, 2, 90, 64, device=DEV, dtype=torch.float16)
    gpu = attention(q, k, k, mask="chunkwise(7,2)").float().cpu().numpy()
    cpu = attention(q.cpu().numpy(), k.cpu().numpy(), k.cpu().numpy(), mask="chunkwise(7,2)")
    assert type(cpu).__module__ == "numpy" and str(cpu.dtype) == "float16", (type(cpu), cpu.dtype)
    d = float(abs(cpu.astype("float64") - gpu).max())
    assert d <= 4e-3, f"CPU and GPU differ by {d:.3g}"


def check_graph_capture():
    """The call captures into a CUDA graph: it neither synchronizes nor allocates."""
    q = torch.randn(2, 4, 256, 64, device=DEV, dtype=torch.float16)
    out = torch.empty_like(q)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        attention(q, q, q, mask="causal", out=out)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            attention(q, q, q, mask="causal", out=out)
    out.fill_(float("nan"))
    g.replay()
    torch.cuda.synchronize()
    assert not torch.isnan(out).any()


def main():
    reduced = "--reduced" in sys.argv
    if not reduced:
        check_torch_masks()
        print("ok torch masks match libchill's predicate")
    failed = 0
    all_cases = cases(reduced)
    for c in all_cases:
        name = (f"seed={c['seed']} {str(c['dtype'])[6:]}{' tf32' if c.get('tf32') else ''} D={c['D']} "
                f"{c.get('config', '')} {c['mask']} "
                f"{c['layout']} B={c['B']} "
                f"Hq={c['Hq']} Hkv={c['Hkv']} Tq={c['Tq']} Tk={c['Tk']} q_offset={c.get('q_offset')}")
        try:
            err = run_case(c)
            print(f"ok   {name} err={err:.2e}")
        except (AssertionError, ChillError) as e:
            failed += 1
            print(f"FAIL {name}: {e}")
    if not reduced:
        for check in (check_tf32, check_errors, check_numpy_cpu, check_graph_capture):
            try:
                check()
                print(f"ok   {check.__name__}")
            except (AssertionError, ChillError) as e:
                failed += 1
                print(f"FAIL {check.__name__}: {e}")
    print(f"{len(all_cases) - failed if failed <= len(all_cases) else 0} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
