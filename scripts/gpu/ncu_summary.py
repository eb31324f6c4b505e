"""Sums Nsight Compute kernel durations of the last encode batch, per kind of kernel.

Usage: ncu_summary.py NCU_CSV [PLAIN_JSONL]. The CSV is `ncu --csv --page raw --metrics
gpu__time_duration.sum` over `quarry bench encode --rounds 1` (a warm-up batch and one timed
batch of one shape). Each batch runs 2 x layers + 1 fused RMSNorm kernels, so the last batch
is everything after the warm-up batch's final norm. PLAIN_JSONL (the same shape without the
profiler) gives the wall time per batch to compare with the kernel sum.
"""
import csv, json, re, sys
from collections import defaultdict

rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    name = r.get("Kernel Name") or r.get("Function Name") or ""
    try:
        ns = float(r.get("gpu__time_duration.sum", "").replace(",", ""))
    except ValueError:
        continue  # the units row
    rows.append((name, ns))
print(f"{len(rows)} kernels profiled")
norms = [i for i, (n, _) in enumerate(rows) if "rms_norm" in n]
layers = None
if norms and len(norms) % 2 == 0:
    per_batch = len(norms) // 2
    batch = rows[norms[per_batch - 1] + 1:]
    layers = (per_batch - 1) // 2
else:
    print(f"{len(norms)} fused norms: taking the second half of all kernels")
    batch = rows[len(rows) // 2:]


def kind(name):
    if name.startswith("quarry_"):
        return name.split("(")[0]
    low = name.lower()
    if "gemm" in low or "nvjet" in low or "xmma" in low or "cutlass" in low or "sm90" in low:
        return "cuBLAS GEMM"
    return "burn: " + re.sub(r"[<(].*", "", name)[:60]

total = defaultdict(float)
count = defaultdict(int)
for name, ns in batch:
    total[kind(name)] += ns
    count[kind(name)] += 1
all_ns = sum(total.values())
print(f"last batch: {len(batch)} kernels, {all_ns/1e6:.2f} ms of kernel time"
      + (f", {layers} layers" if layers else ""))
if len(sys.argv) > 2:
    for line in open(sys.argv[2]):
        if line.strip():
            r = json.loads(line)
            tps = r.get("tokens_per_s") or r.get("tokens_per_second")
            if tps:
                wall = r.get("batch", 32) * r.get("seq", 512) / tps * 1e3
                print(f"plain run: {tps:,.0f} tok/s = {wall:.2f} ms per B32xS512 batch; "
                      f"gap {wall - all_ns/1e6:.2f} ms")
print("| kernel | calls | ms | share |\n|---|---:|---:|---:|")
for k, ns in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {count[k]} | {ns/1e6:.3f} | {100*ns/all_ns:.1f}% |")
# cuBLAS GEMM detail: names and durations of one layer
print("\nGEMM kernel names seen:")
seen = defaultdict(list)
for name, ns in batch:
    if kind(name) == "cuBLAS GEMM":
        seen[name[:90]].append(ns)
for name, v in seen.items():
    print(f"  {len(v)} x {sum(v)/len(v)/1e3:.1f} us  {name}")
