#!/usr/bin/env python3
"""Reference for `quarry train` on the real Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M,
dequantised to f32): a few RepLLaMA LoRA steps in PyTorch + PEFT on one fixed batch, to compare
with quarry's loss curve on the same batch (CPU, f32).

Why: on nfcorpus train the GPU run's loss stayed at ln(64), the value of identical embeddings
(docs/results.md). This shows whether PyTorch + PEFT behaves the same from the same start:
  - step 1's loss does not depend on lora_A (lora_B starts at zero), so quarry's and PEFT's
    must agree to float precision: a check of prompts, EOS pooling and the forward pass on the
    real model;
  - the spread of the untrained EOS embeddings (cosine between different passages) says how
    collapsed the starting point is;
  - the later steps differ only through lora_A's random init.

  prepare: python3 peft_real_model_steps.py prepare MINED.jsonl OUT.jsonl [--groups 4
           --negatives 3]  (1 positive + N negatives a group, texts cut to <= 300 characters,
           so every step of a G-query batch with group size N+1 sees the same batch in quarry)
  run:     python3 peft_real_model_steps.py run MODEL.gguf BATCH.jsonl --lr 1e-3 --steps 8

Needs torch, transformers, peft and gguf (a venv with them: .venv-hf in the checkout, made by
scripts/make_peft_venv.sh).
Prints one JSON line: loss per step, the untrained cosine spread.
"""
import argparse
import json
import os
import sys

# The recipe's pieces shared with the GPU peers live beside them, in scripts/gpu.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu"))
import peft_recipe as recipe  # noqa: E402


def cut(text, limit=300):
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0]


def prepare(mined, out, count, negatives):
    groups = []
    for line in open(mined):
        g = json.loads(line)
        if len(g["negative_passages"]) < negatives:
            continue
        keep = [g["positive_passages"][0]] + g["negative_passages"][:negatives]
        groups.append({
            "query_id": g["query_id"], "query": g["query"],
            "positive_passages": [dict(p, text=cut(p["text"])) for p in keep[:1]],
            "negative_passages": [dict(p, text=cut(p["text"])) for p in keep[1:]],
        })
        if len(groups) == count:
            break
    with open(out, "w") as f:
        for g in groups:
            f.write(json.dumps(g) + "\n")


def run(args):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    if args.device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as on the CPU
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    # bf16: the base in bf16, the adapter in f32 (PEFT's default autocast_adapter_dtype), as
    # a bf16 GPU run of PEFT or quarry has it.
    tokenizer, model, eos = recipe.load_gguf(args.model, dtype)
    model = model.to(args.device)
    groups = [json.loads(line) for line in open(args.batch)]

    def ids(text):
        return recipe.prompt_ids(tokenizer, eos, text)

    queries = [ids(recipe.query_prompt(g["query"])) for g in groups]
    passages = []
    for g in groups:
        for p in g["positive_passages"] + g["negative_passages"]:
            passages.append(ids(recipe.passage_prompt(p)))
    group_size = len(passages) // len(queries)

    def embed(m, seqs):
        input_ids, mask = recipe.right_padded(seqs)
        hidden = m(input_ids=input_ids.to(args.device),
                   attention_mask=mask.to(args.device)).last_hidden_state
        return recipe.eos_states(hidden, seqs)

    with torch.no_grad():
        p = embed(model, passages)
        cos = p @ p.T
        off = cos[~torch.eye(len(passages), dtype=torch.bool, device=args.device)]
    spread = {"min": off.min().item(), "mean": off.mean().item(), "max": off.max().item()}

    model = recipe.with_lora(model, rank=args.rank, alpha=args.alpha, dropout=0.0)
    # Recompute activations in the backward pass: the same numbers, a fraction of the memory
    # (72 sequences of f32 activations do not fit 24 GiB otherwise).
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()  # transformers checkpoints only in training mode; no dropout is configured
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    # quarry's schedule without warm-up: linear decay to zero over the steps.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, (args.steps - step) / args.steps))
    targets = torch.arange(len(queries), device=args.device) * group_size
    losses = []
    for _ in range(args.steps):
        q = embed(model, queries)
        p = embed(model, passages)
        loss = F.cross_entropy(q @ p.T / args.temperature, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        print(f"step {len(losses)}: loss {losses[-1]:.6f}", file=sys.stderr, flush=True)
    print(json.dumps({"peer": "pytorch+peft", "dtype": args.dtype, "lr": args.lr,
                      "losses": losses,
                      "untrained_passage_cosine": spread,
                      "chance": float(torch.log(torch.tensor(float(len(passages)))))}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("mined")
    p.add_argument("out")
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--negatives", type=int, default=3)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("batch")
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--steps", type=int, default=8)
    r.add_argument("--rank", type=int, default=32)
    r.add_argument("--alpha", type=float, default=64.0)
    r.add_argument("--temperature", type=float, default=0.01)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    r.add_argument("--device", default="cpu", help="cpu, or cuda on the GPU machine")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.mined, args.out, args.groups, args.negatives)
    else:
        run(args)


if __name__ == "__main__":
    main()
