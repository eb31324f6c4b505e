#!/usr/bin/env python3
"""Side-by-side table of `quarry bench encode` and benches/encode_peer.py results.

Usage: encode_table.py PEER.jsonl QUARRY.jsonl [QUARRY2.jsonl ...]
Reads the RESULT JSON lines both wrote (--json) and prints one row per quarry
workload (one set per quarry file: e.g. with and without fused kernels) with
tokens/s, MFU and `ratio N.NNx` (quarry tokens/s over the peer's).
"""

import json
import sys


def load(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def pct(value):
    return "-" if value is None else f"{value * 100:.1f}%"


def main():
    peer = load(sys.argv[1])
    quarry = [row for path in sys.argv[2:] for row in load(path)]
    rates = [r for r in quarry + peer if r["kind"] == "matmul_rate"]
    for r in rates:
        rendered = ", ".join(f"{k} {v:.0f}" for k, v in r["tflops"].items())
        print(f"bf16 matmul rate 8192^3 ({r.get('engine', 'quarry')}): {rendered} TFLOP/s")
    rows = []
    for q in quarry:
        if q["kind"] == "fixed":
            p = next((p for p in peer if p["kind"] == "fixed" and p["shape"] == q["shape"]), None)
            rows.append((f"{q['shape']} B{q['batch']}xS{q['seq']} random", q, p))
        elif q["kind"] == "real":
            for batching in ["quarry-buckets", "tevatron"]:
                p = next((p for p in peer if p["kind"] == "real" and p["batching"] == batching), None)
                rows.append((f"real {q['docs']} docs, peer {batching}", q, p))
    print()
    print(f"| workload | quarry tok/s | quarry MFU | quarry warm-up s | peer tok/s | peer MFU | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, q, p in rows:
        warm = q.get("warmup_s", q.get("first_pass_s"))
        peer_tps = f"{p['tokens_per_s']:,.0f}" if p else "-"
        ratio = f"ratio {q['tokens_per_s'] / p['tokens_per_s']:.2f}x" if p else "-"
        config = f"{q.get('gemm')}, {q.get('attention')}" + (", fused" if q.get("fused") else "")
        print(f"| {label} ({config}) | {q['tokens_per_s']:,.0f} | {pct(q.get('mfu'))} "
              f"| {warm:.1f} | {peer_tps} | {pct(p.get('mfu')) if p else '-'} | {ratio} |")
    for q in quarry:
        if q["kind"] == "real" and "check_min_cosine" in q:
            print(f"\nembeddings: min cosine GPU bf16 vs CPU f32 over {q['check_docs']} docs: "
                  f"{q['check_min_cosine']:.6f}")
    probes = [q for q in quarry if q["kind"] == "attention_probe"]
    if probes:
        print("\nattention kernels (ms per call, B x H x S x D):")
        for q in probes:
            what = f"{q['ms']:.3f} ms" if q["ms"] is not None else "cannot run"
            print(f"  {q['kernel']:>10} B{q['batch']} H{q['heads']} S{q['seq']} D{q['head_dim']}: {what}")


if __name__ == "__main__":
    main()
