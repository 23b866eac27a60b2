#!/usr/bin/env python3
"""Forward-attention peers on the GPU: PyTorch FlexAttention (compiled, with the same block mask as
splash's schedule) and SDPA's flash kernel, on the problems native/tests/gpu_forward_test.cc times.

bf16, B=1, H=16, S=8192, D=128; masks: full, causal, local window 1024 (q - 1024 <= kv <= q) and
packed documents (causal within 8 documents of fixed lengths, as segment ids). Timing: CUDA events
around one call, median of --reps (>= 20) after --warmup calls. TFLOP/s count only the unmasked work:
4 * D flops per allowed (q, kv) pair, per head.

With --ours FILE (the harness's --json output) the summary table also shows splash's kernel and the
time ratios. Runs offline: everything it needs ships with PyTorch.
"""
import argparse
import json
import statistics
import sys
import time

S, H, D, B = 8192, 16, 128, 1
DOC_LENGTHS = [512, 1536, 1024, 2048, 256, 768, 1536, 512]  # the harness's kDocLengths
LOCAL_WINDOW = 1024


def log(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--ours", help="the harness's JSON (splash_gpu_tests --bench --json)")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-flex", action="store_true", help="skip FlexAttention (SDPA only)")
    args = ap.parse_args()
    if args.reps < 20:
        ap.error("--reps must be at least 20")

    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        log("flex_peer: no CUDA device visible to PyTorch")
        return 3
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    log(f"flex_peer: torch {torch.__version__}, {props.name}, {props.multi_processor_count} SMs")

    gen = torch.Generator(device=dev).manual_seed(0)
    q = (torch.randn(B, H, S, D, device=dev, generator=gen) / D ** 0.5).to(torch.bfloat16)
    k = torch.randn(B, H, S, D, device=dev, generator=gen).to(torch.bfloat16)
    v = torch.randn(B, H, S, D, device=dev, generator=gen).to(torch.bfloat16)

    doc = torch.repeat_interleave(torch.arange(len(DOC_LENGTHS), device=dev),
                                  torch.tensor(DOC_LENGTHS, device=dev))
    assert doc.numel() == S

    def full_mod(b, h, qi, ki):
        return qi >= 0

    def causal_mod(b, h, qi, ki):
        return qi >= ki

    def local_mod(b, h, qi, ki):
        return (qi >= ki) & (qi - ki <= LOCAL_WINDOW)

    def docs_mod(b, h, qi, ki):
        return (doc[qi] == doc[ki]) & (qi >= ki)

    masks = [("full", full_mod), ("causal", causal_mod), ("local 1024", local_mod), ("packed docs", docs_mod)]

    def allowed_pairs(mod):
        qi = torch.arange(S, device=dev).view(S, 1)
        ki = torch.arange(S, device=dev).view(1, S)
        return int(mod(0, 0, qi, ki).expand(S, S).sum().item())

    def timeit(fn):
        for _ in range(args.warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(args.reps):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times)

    results = []

    def record(mask, impl, ms, pairs, note=""):
        tflops = 4.0 * D * pairs * H * B / (ms * 1e-3) / 1e12
        results.append({"kind": "bench", "impl": impl, "mask": mask, "ms": ms, "tflops": tflops,
                        "allowedPairs": pairs, "note": note})
        log(f"  {mask:<12} {impl:<10} {ms:9.3f} ms {tflops:8.1f} TFLOP/s {note}")

    # SDPA (flash) for the masks it has: full and causal.
    from torch.nn.attention import SDPBackend, sdpa_kernel
    for mask, causal in (("full", False), ("causal", True)):
        pairs = S * S if not causal else S * (S + 1) // 2
        try:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                ms = timeit(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=1.0))
            record(mask, "sdpa-flash", ms, pairs)
        except Exception as e:  # noqa: BLE001 - report and go on
            log(f"  {mask:<12} sdpa-flash failed: {e}")

    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
        for mask, mod in masks:
            pairs = allowed_pairs(mod)
            t0 = time.time()
            try:
                bm = create_block_mask(mod, B=None, H=None, Q_LEN=S, KV_LEN=S, device=dev, BLOCK_SIZE=128)
                ms = timeit(lambda: flex(q, k, v, block_mask=bm, scale=1.0))
                record(mask, "flex", ms, pairs, f"(compile+bench {time.time() - t0:.0f} s, block sparsity {bm.sparsity():.1f}%)")
            except Exception as e:  # noqa: BLE001 - report and go on
                log(f"  {mask:<12} flex failed: {type(e).__name__}: {e}")

    ours = []
    if args.ours:
        try:
            with open(args.ours) as f:
                ours = [r for r in json.load(f)["results"] if r.get("kind") == "bench"]
        except (OSError, ValueError, KeyError) as e:
            log(f"flex_peer: could not read {args.ours}: {e}")

    # Summary: one row per mask, the time of each implementation and splash's ratio to the peers.
    log("")
    log(f"forward, bf16, B={B}, H={H}, S={S}, D={D}; TFLOP/s over unmasked work; median of {args.reps}")
    log(f"{'mask':<12} {'splash ms':>10} {'TFLOP/s':>8} {'flex ms':>10} {'TFLOP/s':>8} {'sdpa ms':>10} "
        f"{'TFLOP/s':>8} {'splash/flex':>12} {'splash/sdpa':>12}")

    def find(rows, mask, impl):
        return next((r for r in rows if r["mask"] == mask and r.get("impl", "splash") == impl), None)

    def cell(r):
        return f"{r['ms']:10.3f} {r['tflops']:8.1f}" if r else f"{'-':>10} {'-':>8}"

    def ratio(a, b):
        return f"{a['ms'] / b['ms']:12.2f}" if a and b else f"{'-':>12}"

    for mask, _ in masks:
        s_, fl, sd = find(ours, mask, "splash"), find(results, mask, "flex"), find(results, mask, "sdpa-flash")
        log(f"{mask:<12} {cell(s_)} {cell(fl)} {cell(sd)} {ratio(s_, fl)} {ratio(s_, sd)}")
    log("(ratios are time ratios: below 1.00 means splash is faster)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": props.name, "torch": torch.__version__, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
