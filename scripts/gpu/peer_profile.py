"""The peer's kernels on one fixed encode batch (issue #6): transformers + PyTorch, bf16,
sdpa, inference_mode, under torch.profiler. Prints the wall time per batch, the CUDA time
per kernel kind, and SDPA's own time on the shape's heads (the bar for a fused attention).

Usage (GPU machine, repository root): python3 scripts/gpu/peer_profile.py --shape 0.5b
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benches"))
from encode_peer import SHAPES, build_model  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--shape", default="0.5b")
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--seq", type=int, default=512)
args = parser.parse_args()
shape = SHAPES[args.shape]
model = build_model(shape)
ids = torch.randint(0, shape["vocab_size"], (args.batch, args.seq), device="cuda")


def run():
    with torch.inference_mode():
        return model(input_ids=ids).last_hidden_state[:, -1].float().cpu()


for _ in range(2):
    run()
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(5):
    run()
torch.cuda.synchronize()
wall = (time.perf_counter() - t) / 5
print(f"peer {args.shape} B{args.batch}xS{args.seq}: {wall*1e3:.2f} ms per batch, "
      f"{args.batch*args.seq/wall:,.0f} tok/s")
from torch.profiler import profile, ProfilerActivity  # noqa: E402
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    run()
    torch.cuda.synchronize()
events = prof.key_averages()
rows = sorted(((e.key, e.count, e.device_time_total) for e in events if e.device_time_total > 0),
              key=lambda r: -r[2])
total = sum(r[2] for r in rows)
print(f"CUDA kernel time in one batch: {total/1e3:.2f} ms (us units from the profiler)")
print("| kernel | calls | ms | share |\n|---|---:|---:|---:|")
for key, count, us in rows[:25]:
    print(f"| {key[:90]} | {count} | {us/1e3:.3f} | {100*us/total:.1f}% |")

# SDPA alone on the shape's heads, as transformers calls it (key/value heads repeated).
h, heads = shape["hidden_size"], shape["num_attention_heads"]
d = h // heads
q = torch.randn(args.batch, heads, args.seq, d, device="cuda", dtype=torch.bfloat16)
k = torch.randn_like(q)
v = torch.randn_like(q)
F = torch.nn.functional
for _ in range(3):
    F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(20):
    F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()
ms = (time.perf_counter() - t) / 20 * 1e3
flops = 4 * args.batch * heads * args.seq * args.seq * d / 2
print(f"SDPA causal B{args.batch} H{heads} S{args.seq} D{d}: {ms:.3f} ms, "
      f"{flops/ms/1e9:.0f} TFLOP/s (causal half)")
