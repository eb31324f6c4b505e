#!/usr/bin/env python3
"""The peer of `quarry bench encode`: the same encoding work with HF transformers + PyTorch.

Runs on the GPU machine (PyTorch 2.11 + transformers 5 there), in bf16 with
attn_implementation="sdpa" under torch.inference_mode, last-token pooling and L2
normalisation, embeddings copied to the host once per batch (as quarry does).

- fixed shapes: B x S random token ids through Qwen2.5-0.5B/1.5B/7B-shaped
  Qwen2Model built with from_config directly on the GPU (random weights:
  throughput does not depend on weight values);
- real documents: the token ids quarry wrote with `quarry bench encode --dump`
  (nfcorpus under quarry's zero-shot prompt), batched two ways:
  * quarry-buckets: quarry's own batch plan (same padded shapes; right padding
    and a causal mask need no attention mask, so SDPA runs its causal kernel);
  * tevatron: corpus order, fixed batch size, right-padded to the longest
    sequence rounded up to a multiple of 16 (Tevatron's pad_to_multiple_of),
    with the attention mask passed, as Tevatron's encode loop runs.
  Real weights need the `gguf` package for transformers' GGUF loader; without
  it the 0.5B shape with random weights runs the same token ids.

Prints one `RESULT {json}` line per measurement (and appends them to --json).
MFU = tokens/s x (2 x non-embedding params + 4 x layers x seq x hidden) / the bf16
matmul rate measured in this process (8192^3 torch.matmul).
"""

import argparse
import importlib.util
import json
import math
import time

import torch

SHAPES = {
    # config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B}
    "0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                 num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 tie_word_embeddings=True),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                 num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 tie_word_embeddings=True),
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
               num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
               tie_word_embeddings=False),
}


def emit(result, sink):
    line = json.dumps(result)
    print("RESULT " + line, flush=True)
    if sink:
        with open(sink, "a") as f:
            f.write(line + "\n")


def non_embedding_params(shape):
    h = shape["hidden_size"]
    heads, kv = shape["num_attention_heads"], shape["num_key_value_heads"]
    d = h // heads
    q, kvw = heads * d, kv * d
    inter = shape["intermediate_size"]
    attention = h * q + q + 2 * (h * kvw + kvw) + q * h
    return shape["num_hidden_layers"] * (attention + 3 * h * inter + 2 * h) + h


def sequence_flops(shape, length):
    per_token = 2 * non_embedding_params(shape) + 4 * shape["num_hidden_layers"] * length * shape["hidden_size"]
    return per_token * length


def sync():
    torch.cuda.synchronize()


def matmul_tflops(n=8192, repeats=5):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    a @ b
    sync()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n ** 3 / best / 1e12


def build_model(shape):
    from transformers import AutoModel, Qwen2Config
    config = Qwen2Config(**shape, max_position_embeddings=32768, rope_theta=1e6,
                         rms_norm_eps=1e-6, use_cache=False)
    with torch.device("cuda"):
        try:
            model = AutoModel.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:  # transformers < 5 spells it torch_dtype
            model = AutoModel.from_config(config, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


def encode_batch(model, ids, lengths, mask):
    """Last-token embeddings of right-padded `ids` ([B, S] on the GPU), L2-normalised, on the host."""
    hidden = model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    rows = torch.arange(ids.shape[0], device=ids.device)
    pooled = hidden[rows, lengths - 1].float()
    return torch.nn.functional.normalize(pooled, dim=-1).cpu()


def fixed(name, args, rate, sink):
    shape = SHAPES[name]
    start = time.perf_counter()
    model = build_model(shape)
    sync()
    model_s = time.perf_counter() - start
    rows = torch.arange(args.batch).unsqueeze(1)
    cols = torch.arange(args.seq).unsqueeze(0)
    ids = ((rows * 7919 + cols * 104729) % 150000).to("cuda")
    lengths = torch.full((args.batch,), args.seq, device="cuda")
    with torch.inference_mode():
        start = time.perf_counter()
        encode_batch(model, ids, lengths, None)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.rounds):
            out = encode_batch(model, ids, lengths, None)
        steady_s = time.perf_counter() - start
    assert torch.isfinite(out).all()
    tokens_per_s = args.batch * args.seq * args.rounds / steady_s
    mfu = tokens_per_s * sequence_flops(shape, args.seq) / args.seq / (rate * 1e12)
    print(f"{name} B{args.batch}xS{args.seq}: model in {model_s:.1f} s, warm-up {warmup_s:.2f} s, "
          f"steady {tokens_per_s:.0f} tokens/s, MFU {mfu * 100:.1f}%", flush=True)
    emit(dict(kind="fixed", engine="transformers", shape=name, batch=args.batch, seq=args.seq,
              rounds=args.rounds, model_s=model_s, warmup_s=warmup_s,
              tokens_per_s=tokens_per_s, mfu=mfu), sink)
    del model
    torch.cuda.empty_cache()


def batches_quarry(dump):
    for batch in dump["quarry_batches"]:
        yield batch["indices"], batch["padded_length"], False


def batches_tevatron(dump, batch_size):
    sequences = dump["sequences"]
    for start in range(0, len(sequences), batch_size):
        indices = list(range(start, min(start + batch_size, len(sequences))))
        longest = max(len(sequences[i]) for i in indices)
        yield indices, min(-(-longest // 16) * 16, dump["max_length"]), True


def host_batches(dump, plan):
    """Padded host tensors of each batch, built before timing (a DataLoader's
    collator does this in worker processes, off the GPU's critical path)."""
    sequences = dump["sequences"]
    built = []
    for indices, padded, with_mask in plan:
        ids = torch.zeros((len(indices), padded), dtype=torch.long)
        mask = torch.zeros((len(indices), padded), dtype=torch.long)
        lengths = torch.tensor([len(sequences[i]) for i in indices])
        for row, i in enumerate(indices):
            ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
            mask[row, : len(sequences[i])] = 1
        built.append((ids.pin_memory(), lengths.pin_memory(), mask.pin_memory() if with_mask else None))
    return built


def run_pass(model, batches):
    for ids, lengths, mask in batches:
        ids, lengths = ids.to("cuda", non_blocking=True), lengths.to("cuda", non_blocking=True)
        encode_batch(model, ids, lengths, mask.to("cuda", non_blocking=True) if mask is not None else None)


def real(args, rate, sink):
    with open(args.dump) as f:
        dump = json.load(f)
    shape = SHAPES["0.5b"]
    weights = "random (0.5B shape)"
    model = None
    if args.gguf and importlib.util.find_spec("gguf") is not None:
        import os
        from transformers import AutoModel
        try:
            model = AutoModel.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                              gguf_file=os.path.basename(args.gguf),
                                              dtype=torch.bfloat16, attn_implementation="sdpa").to("cuda").eval()
            weights = "real (GGUF)"
        except Exception as err:  # report and fall back to the same shape with random weights
            print(f"loading {args.gguf} failed ({err}); random weights of the 0.5B shape instead")
    if model is None:
        if args.gguf:
            print("the gguf package is not installed: random weights of the 0.5B shape "
                  "(throughput does not depend on weight values)")
        model = build_model(shape)
    sequences = dump["sequences"]
    tokens = sum(len(s) for s in sequences)
    flops = sum(sequence_flops(shape, len(s)) for s in sequences)
    for batching in ["quarry-buckets", "tevatron"]:
        make_plan = (lambda: batches_quarry(dump)) if batching == "quarry-buckets" \
            else (lambda: batches_tevatron(dump, args.tevatron_batch))
        padded_tokens = sum(len(ix) * p for ix, p, _ in make_plan())
        batches = host_batches(dump, make_plan())
        with torch.inference_mode():
            start = time.perf_counter()
            run_pass(model, batches)
            sync()
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(args.passes):
                run_pass(model, batches)
            sync()
            steady_s = (time.perf_counter() - start) / args.passes
        tokens_per_s = tokens / steady_s
        mfu = flops / steady_s / (rate * 1e12)
        print(f"real {batching}: {len(sequences)} docs, {tokens} tokens ({padded_tokens} padded), "
              f"first pass {first_s:.1f} s, steady {tokens_per_s:.0f} tokens/s, MFU {mfu * 100:.1f}% "
              f"[{weights} weights]", flush=True)
        emit(dict(kind="real", engine="transformers", batching=batching, weights=weights,
                  docs=len(sequences), tokens=tokens, padded_tokens=padded_tokens,
                  batch_size=args.tevatron_batch if batching == "tevatron" else None,
                  first_pass_s=first_s, tokens_per_s=tokens_per_s, mfu=mfu), sink)
    del model
    torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="0.5b,1.5b,7b")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dump", help="token ids + batch plan from quarry bench encode --dump")
    parser.add_argument("--gguf", help="the real model, loaded through transformers' GGUF reader if possible")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--tevatron-batch", type=int, default=32)
    parser.add_argument("--json", help="append results here")
    args = parser.parse_args()

    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name()}", flush=True)
    rate = matmul_tflops()
    print(f"bf16 matmul 8192^3: {rate:.0f} TFLOP/s", flush=True)
    emit(dict(kind="matmul_rate", engine="transformers", tflops={"torch": rate},
              device=torch.cuda.get_device_name()), args.json)
    for name in [s for s in args.shapes.split(",") if s and s != "none"]:
        fixed(name.strip(), args, rate, args.json)
    if args.dump:
        real(args, rate, args.json)


if __name__ == "__main__":
    main()
