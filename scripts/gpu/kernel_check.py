"""quarry's CUDA C kernels against PyTorch on the GPU machine (issue #6).

Compiles encoder/src/cuda/kernels.cu and flash_attention.cu with NVRTC through CuPy (the
compiler quarry itself uses at run time), runs each kernel on random inputs and compares it
with a PyTorch reference: the flash attention against f32 SDPA (and bf16 SDPA's own error
beside it), the elementwise kernels against the same rounding steps written in torch. Then
times each against its PyTorch counterpart. Prints one table; exits 1 when a check fails.

Usage (repository root, GPU machine): python3 scripts/gpu/kernel_check.py
"""
import math
import os
import sys

import cupy
import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "encoder", "src", "cuda")
F = torch.nn.functional
failures = []
rows = []


def module(name, options=()):
    source = open(os.path.join(ROOT, name)).read()
    return cupy.RawModule(code=source, options=tuple(options))


def ptr(t):
    return np.uint64(t.data_ptr())


def timed(fn, repeats=20):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def check(name, ok, detail):
    rows.append((name, "ok" if ok else "FAIL", detail))
    if not ok:
        failures.append(name)


elementwise = module("kernels.cu")
flash = module("flash_attention.cu", ("--gpu-architecture=compute_80",))

# Flash attention. (A variant with 32 query rows per warp, FlashAttention-2's sm80 layout, was
# measured on 2026-11-26 and was no faster: docs/perf-notes.md.)
VARIANTS = {"flash": ("quarry_flash_attention_d{}", 64, lambda d: 5 * 64 * (d + 8) * 2)}
for batch, heads, kv_heads, seq, dim in [
    (2, 4, 2, 16, 64), (3, 14, 2, 80, 64), (1, 2, 1, 200, 128), (2, 12, 2, 130, 128),
    (2, 4, 1, 300, 64), (32, 14, 2, 512, 64), (32, 12, 2, 512, 128), (32, 28, 4, 512, 128),
]:
    torch.manual_seed(seq + heads)
    q = torch.randn(batch, heads, seq, dim, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, kv_heads, seq, dim, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(batch, kv_heads, seq, dim, device="cuda", dtype=torch.bfloat16)
    group = heads // kv_heads
    kx = k.repeat_interleave(group, dim=1)
    vx = v.repeat_interleave(group, dim=1)
    reference = F.scaled_dot_product_attention(q.float(), kx.float(), vx.float(), is_causal=True)
    reference = reference.transpose(1, 2).reshape(batch, seq, heads * dim)
    torch_bf16 = F.scaled_dot_product_attention(q, kx, vx, is_causal=True)
    torch_bf16 = torch_bf16.transpose(1, 2).reshape(batch, seq, heads * dim)
    torch_error = (torch_bf16.float() - reference).abs().max().item()
    torch_ms = timed(lambda: F.scaled_dot_product_attention(q, kx, vx, is_causal=True))
    flops = 4 * batch * heads * seq * seq * dim / 2
    for variant, (name, rows_per_block, shared) in VARIANTS.items():
        out = torch.full((batch, seq, heads * dim), float("nan"), device="cuda",
                         dtype=torch.bfloat16)
        kernel = flash.get_function(name.format(dim))
        smem = shared(dim)
        kernel.max_dynamic_shared_size_bytes = smem
        grid = (heads, batch, (seq + rows_per_block - 1) // rows_per_block)
        args = (ptr(q), ptr(k), ptr(v), ptr(out), np.int32(seq), np.int32(heads),
                np.int32(kv_heads), np.float32(math.log2(math.e) / math.sqrt(dim)))

        def run():
            kernel(grid, (128,), args, shared_mem=smem)

        run()
        torch.cuda.synchronize()
        error = (out.float() - reference).abs().max().item()
        ok = math.isfinite(error) and error <= max(2 * torch_error, 1e-2)
        ms = timed(run)
        check(f"{variant} B{batch} H{heads}/{kv_heads} S{seq} D{dim}", ok,
              f"max err {error:.2e} (torch bf16 {torch_error:.2e}); {ms:.3f} ms "
              f"{flops / ms / 1e9:.0f} TFLOP/s vs SDPA {torch_ms:.3f} ms; "
              f"{kernel.num_regs} registers, {kernel.local_size_bytes} B local")


def bf(x):
    return x.to(torch.bfloat16).float()


# RoPE + head split.
rope = elementwise.get_function("quarry_rope_heads_bf16")
for batch, seq, heads, dim in [(3, 80, 2, 64), (32, 512, 14, 64), (32, 512, 28, 128)]:
    x = torch.randn(batch * seq, heads * dim, device="cuda", dtype=torch.bfloat16)
    bias = torch.randn(heads * dim, device="cuda", dtype=torch.bfloat16)
    inv = 1.0 / (1e6 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.arange(seq, dtype=torch.float32)[:, None] * inv[None, :]
    angles = torch.cat([angles, angles], dim=1)
    cos = angles.cos().to(torch.bfloat16).cuda()
    sin = angles.sin().to(torch.bfloat16).cuda()
    out = torch.empty(batch, heads, seq, dim, device="cuda", dtype=torch.bfloat16)
    half = dim // 2
    total = batch * seq * heads * dim // 16
    grid = (min((total + 255) // 256, 65535 * 8),)
    args = (ptr(x), ptr(bias), ptr(cos), ptr(sin), ptr(out), np.uint32(batch), np.uint32(seq),
            np.uint32(heads), np.uint32(dim), np.uint32(heads * dim), np.uint32(1), np.uint32(1))

    def run():
        rope(grid, (256,), args)

    run()
    torch.cuda.synchronize()
    val = bf(x.float() + bias.float()).view(batch, seq, heads, dim).transpose(1, 2)
    rotated = torch.cat([-val[..., half:], val[..., :half]], dim=-1)
    ref = bf(bf(val * cos.float()) + bf(rotated * sin.float())).to(torch.bfloat16)
    mismatched = (out != ref).sum().item()
    ms = timed(run)
    check(f"rope B{batch} S{seq} H{heads} D{dim}", mismatched == 0,
          f"{mismatched} of {out.numel()} differ; {ms:.3f} ms, "
          f"{2 * 2 * out.numel() / ms / 1e6:.0f} GB/s")

# Residual add + RMSNorm, and RMSNorm alone. (A warp-per-row variant was measured on
# 2026-11-26 and was no faster: docs/perf-notes.md.)
norms = {"block": elementwise.get_function("quarry_add_rms_norm_bf16")}
for rows_, cols in [(7, 64), (16384, 896), (16384, 1536), (16384, 3584)]:
    for has_delta in (1, 0):
        x = torch.randn(rows_, cols, device="cuda", dtype=torch.bfloat16)
        delta = torch.randn(rows_, cols, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(cols, device="cuda", dtype=torch.bfloat16)
        h = bf(x.float() + delta.float()) if has_delta else x.float()
        denominator = torch.sqrt((h * h).mean(-1, keepdim=True) + 1e-6)
        ref = bf(bf(h / denominator) * w.float()).to(torch.bfloat16)
        for kind, norm in norms.items():
            summed = torch.empty_like(x)
            out = torch.empty_like(x)
            buffers = (ptr(x), ptr(delta), ptr(w), ptr(summed), ptr(out))
            if kind == "block":
                args = buffers + (np.uint32(cols), np.float32(1e-6), np.uint32(has_delta))
                grid = (rows_,)
            else:
                args = buffers + (np.uint32(rows_), np.uint32(cols), np.float32(1e-6),
                                  np.uint32(has_delta))
                grid = ((rows_ + 3) // 4,)

            def run():
                norm(grid, (128,), args)

            run()
            torch.cuda.synchronize()
            # Sums in another order can move the normed value by one bf16 step, which the
            # weight's product can turn into two.
            ulps = (out.view(torch.int16).int() - ref.view(torch.int16).int()).abs().max().item()
            sum_ok = (not has_delta) or bool((summed == h.to(torch.bfloat16)).all())
            ms = timed(run)
            moved = (2 + has_delta * 2) * x.numel() * 2
            check(f"{kind} {'add+' if has_delta else ''}rms_norm {rows_}x{cols}",
                  ulps <= 2 and sum_ok, f"max {ulps} ulp; {ms:.3f} ms, {moved / ms / 1e6:.0f} GB/s")

# SwiGLU.
silu = elementwise.get_function("quarry_silu_mul_bf16")
for count in [1003, 16384 * 4864]:
    g = torch.randn(count, device="cuda", dtype=torch.bfloat16)
    u = torch.randn(count, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(g)
    grid = (min((count // 8 + 255) // 256 + 1, 65535 * 8),)
    args = (ptr(g), ptr(u), ptr(out), np.uint64(count))

    def run():
        silu(grid, (256,), args)

    run()
    torch.cuda.synchronize()
    ref = bf(bf(g.float() / (1 + torch.exp(-g.float()))) * u.float()).to(torch.bfloat16)
    ulps = (out.view(torch.int16).int() - ref.view(torch.int16).int()).abs().max().item()
    ms = timed(run)
    torch_ms = timed(lambda: F.silu(g) * u)
    check(f"silu_mul {count}", ulps <= 1, f"max {ulps} ulp; {ms:.3f} ms, "
          f"{3 * count * 2 / ms / 1e6:.0f} GB/s (torch silu*mul {torch_ms:.3f} ms)")

print("| check | result | detail |\n|---|---|---|")
for name, result, detail in rows:
    print(f"| {name} | {result} | {detail} |")
sys.exit(1 if failures else 0)
