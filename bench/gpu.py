"""GPU benchmark: libchill's CUDA kernel against PyTorch's, in one process, on the same inputs.

For each cell of the matrix (mask x shape x T x dtype) it times, with CUDA
events (triton.testing.do_bench, median): libchill through the ctypes binding;
FlexAttention (torch.compile, block mask built once per cell); SDPA's flash
(FlashAttention-2) and cuDNN backends for full and causal (prefix_lm is held
against causal's figures). It reports the median ms, effective TFLOP/s
(4 * D * attended pairs), the physical floor max(FLOPs / matmul peak,
bytes / copy bandwidth) with both peaks measured here first, the floor over
our time, and our speed-up over the fastest peer. Every libchill output is
checked against FlexAttention's (or SDPA's) before it is timed.

    python3 bench/gpu.py [--only D64|chunkwise] [--out bench/results/gpu-DATE.md]
"""

import argparse
import datetime
import importlib.util
import math
import sys
from pathlib import Path

import torch
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

_spec = importlib.util.spec_from_file_location(
    "chill_binding", Path(__file__).resolve().parents[1] / "client" / "python" / "chill" / "binding.py")
binding = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(binding)

MASKS = ["sliding_window(16,16)", "causal", "chunkwise(16,8)", "prefix_lm(128)", "full"]
SHAPES = [  # (B, H, D, T, dtype)
    *[(8, 12, 64, t, torch.float16) for t in (2085, 6000)],
    *[(8, 4, 128, t, torch.float16) for t in (2085, 6000, 16384)],
    (8, 4, 128, 6000, torch.bfloat16),
]


def mask_mod_of(spec):
    """The mask as a FlexAttention mask_mod, from the definitions in masks/ (q_offset 0: Tq == Tk)."""
    name, _, rest = spec.partition("(")
    a = [int(x) for x in rest.rstrip(")").split(",") if x.strip()]
    if name == "full":
        return lambda b, h, q, k: k >= 0
    if name == "causal":
        return lambda b, h, q, k: k <= q
    if name == "sliding_window":
        return lambda b, h, q, k: (q - a[0] <= k) & (k <= q + a[1])
    if name == "chunkwise":
        return lambda b, h, q, k: ((q // a[0]) - (k // a[0]) >= 0) & ((q // a[0]) - (k // a[0]) <= a[1])
    if name == "prefix_lm":
        return lambda b, h, q, k: (k < a[0]) | (k <= q)
    raise ValueError(spec)


def bench(fn):
    return triton.testing.do_bench(fn, warmup=50, rep=200, return_mode="median")


def measure_peaks():
    """(matmul TFLOP/s in fp16, copy bandwidth in bytes/s counting read + write), measured here."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    ms = bench(lambda: a @ b)
    tflops = 2 * n ** 3 / ms / 1e9
    src = torch.randn(1 << 29, device="cuda", dtype=torch.float16)  # 1 GiB
    dst = torch.empty_like(src)
    ms_copy = bench(lambda: dst.copy_(src))
    bw = 2 * src.numel() * 2 / (ms_copy / 1e3)
    del a, b, src, dst
    return tflops, bw


def rel(x, ref):
    return (torch.linalg.norm((x.float() - ref.float()).flatten()) / torch.linalg.norm(ref.float().flatten())).item()


def run_cell(spec, B, H, D, T, dtype, peaks, flex):
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype) for _ in range(3))
    out = torch.empty_like(q)
    pairs = binding.attended_pairs(spec, B, H, T, T, D)
    flops = 4 * D * pairs
    bytes_moved = 4 * q.numel() * q.element_size()
    floor_ms = max(flops / (peaks[0] * 1e12), bytes_moved / peaks[1]) * 1e3

    chill = lambda: binding.attention(q, k, v, mask=spec, out=out)  # noqa: E731
    chill()
    block_mask = create_block_mask(mask_mod_of(spec), None, None, T, T, device="cuda")
    fx = lambda: flex(q, k, v, block_mask=block_mask)  # noqa: E731
    ref = fx()
    err = rel(out, ref)
    assert err < 1e-2, f"{spec} B{B} H{H} D{D} T{T}: libchill differs from FlexAttention by {err:.3g}"
    res = {"libchill": bench(chill), "flex": bench(fx)}
    sdpa_mask = {"full": False, "causal": True, "prefix_lm": True}.get(spec.partition("(")[0])
    if sdpa_mask is not None:
        for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            def f(backend=backend):
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=sdpa_mask)
            try:
                if spec.startswith(("full", "causal")):
                    e = rel(out, f())
                    assert e < 1e-2, f"{spec}: libchill differs from {name} by {e:.3g}"
                res[name] = bench(f)
            except RuntimeError as e:  # a backend that is not available here
                print(f"  {name} unavailable: {e}", file=sys.stderr)
    return {"mask": spec, "B": B, "H": H, "D": D, "T": T, "dtype": str(dtype)[6:], "ms": res,
            "tflops": flops / (res["libchill"] * 1e9), "floor_ms": floor_ms, "err_vs_flex": err}


def table(rows):
    head = ("| mask | B | H | D | T | dtype | libchill ms | TFLOP/s | floor ms | floor/ours | flex ms | "
            "sdpa flash ms | sdpa cuDNN ms | vs fastest peer | vs flex | vs flash |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        m = r["ms"]
        peers = {k: v for k, v in m.items() if k != "libchill"}
        best = min(peers.values())
        flash = m.get("sdpa_flash")
        vs_flash = "-" if flash is None else f"{flash / m['libchill']:.2f}x"
        fmt = lambda x: "-" if x is None or math.isnan(x) else f"{x:.4f}"  # noqa: E731
        lines.append(f"| {r['mask']} | {r['B']} | {r['H']} | {r['D']} | {r['T']} | {r['dtype']} | "
                     f"{m['libchill']:.4f} | {r['tflops']:.1f} | {r['floor_ms']:.4f} | "
                     f"{r['floor_ms'] / m['libchill']:.3f} | {fmt(m.get('flex'))} | {fmt(m.get('sdpa_flash'))} | "
                     f"{fmt(m.get('sdpa_cudnn'))} | {best / m['libchill']:.2f}x | {m['flex'] / m['libchill']:.2f}x | "
                     f"{vs_flash} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="",
                    help="run the cells whose label contains this, or one of several split by '|' (e.g. D64, "
                         "'sliding_window|chunkwise')")
    ap.add_argument("--out", default="", help="also write the report (markdown) here")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch._dynamo.config.cache_size_limit = 256  # one compiled FlexAttention per cell
    torch._dynamo.config.accumulated_cache_size_limit = 1024
    flex = torch.compile(flex_attention, dynamic=False)
    peaks = measure_peaks()
    dev = torch.cuda.get_device_name()
    print(f"device {dev}; fp16 matmul {peaks[0]:.0f} TFLOP/s; copy {peaks[1] / 1e12:.2f} TB/s (read + write)",
          flush=True)
    rows = []
    for B, H, D, T, dtype in SHAPES:
        for spec in MASKS:
            label = f"{spec} B{B} H{H} D{D} T{T} {str(dtype)[6:]}"
            if args.only and not any(x in label for x in args.only.split("|")):
                continue
            r = run_cell(spec, B, H, D, T, dtype, peaks, flex)
            m = r["ms"]
            # prefix_lm is held against SDPA's causal figures, as the issue asks
            if spec.startswith("prefix_lm"):
                causal = next((x for x in rows if x["mask"] == "causal" and (x["D"], x["T"], x["dtype"]) ==
                               (D, T, r["dtype"])), None)
                for name in ("sdpa_flash", "sdpa_cudnn"):
                    if causal is not None and name in causal["ms"]:
                        m[name] = causal["ms"][name]
            rows.append(r)
            print(f"{label}: " + ", ".join(f"{k} {v:.4f} ms" for k, v in m.items()), flush=True)
    report = (f"GPU: {dev}\nDate: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
              f"Command: python3 bench/gpu.py {' '.join(sys.argv[1:])}\n"
              f"Measured peaks: fp16 matmul {peaks[0]:.0f} TFLOP/s, copy {peaks[1] / 1e12:.2f} TB/s "
              f"(bytes read + written)\nFloor = max(4*D*pairs / matmul peak, (q+k+v+out bytes) / copy bandwidth); "
              f"'vs X' = X's ms / libchill's ms (above 1: libchill faster); prefix_lm's SDPA columns are causal's.\n\n"
              + table(rows) + "\n")
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
