#!/usr/bin/env python3
"""Peer for `quarry train` (issue #7): the same RepLLaMA LoRA recipe in PyTorch + PEFT on the
same training file (quarry-mined Tevatron JSONL) and the same real model (GGUF, read by
transformers through the gguf package), on the GPU. It prints its loss curve and training
throughput (real tokens/s, as quarry counts them) and saves a PEFT adapter, which
`quarry build --lora` encodes with: so the peer's adapter is evaluated by the same
build + eval as quarry's.

Recipe, as `quarry train`'s defaults: LoRA r 32 / alpha 64 / dropout 0.1 on all seven
projections, adapters f32 on a bf16 base (PEFT's autocast_adapter_dtype), prompts
`Query: {q}` and `Passage: {title} {text}` with EOS (<|im_end|>) appended after truncation
to 32 / 192 tokens, L2-normalised EOS states, InfoNCE at temperature 0.01 over in-batch and
7 hard negatives, global batch 32 in micro-batches of 8, AdamW (0.9, 0.999, 1e-8, no decay),
linear warm-up 10% then linear decay, global-norm clip 1.0, one epoch. Sampling follows
Tevatron (per epoch shuffle; a random positive and random hard negatives per group): the
same distribution as quarry's, not the same draws. Sequences are padded to the longest of
their micro-batch (as Tevatron's collator), not to the maximum as quarry does on a GPU.

  python3 peft_train_nfcorpus.py MODEL.gguf TRAIN.jsonl OUT_DIR [--lr 1e-4 --max-steps N]
"""
import argparse
import json
import math
import random
import sys
import time

import peft_recipe as recipe


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("train")
    p.add_argument("out")
    p.add_argument("--lr", type=float, default=1e-4)
    recipe.add_batch_shape_args(p)
    p.add_argument("--temperature", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    import torch
    import torch.nn.functional as F
    import transformers
    # Imported here, before the load timer starts, so that load_seconds counts loading the
    # model alone (peft_recipe imports them where it uses them).
    import peft  # noqa: F401
    from transformers import AutoModel, AutoTokenizer  # noqa: F401

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    loading = time.perf_counter()
    tokenizer, model, eos = recipe.load_gguf(args.model, torch.bfloat16)
    model = recipe.with_lora(model.cuda(), rank=32, alpha=64, dropout=args.dropout)
    trainable = recipe.f32_adapters(model)
    model.train()
    load_seconds = time.perf_counter() - loading

    groups = [json.loads(line) for line in open(args.train)]

    def ids(text, limit):
        return recipe.prompt_ids(tokenizer, eos, text, limit)

    def embed(seqs):
        # No attention mask: with right padding under causal attention the last real token
        # never sees the padding (quarry relies on the same), and transformers' padded-row
        # mask gave NaN from the second step on (docs/gpu-runs/2026-11-26-s5-h100).
        input_ids, _ = recipe.right_padded(seqs)
        return recipe.eos_states(model(input_ids=input_ids.cuda()).last_hidden_state, seqs)

    steps_per_epoch = len(groups) // args.batch
    total = min(steps_per_epoch, args.max_steps or steps_per_epoch)
    warmup = math.ceil(total * args.warmup_ratio)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
    order = list(range(len(groups)))
    random.shuffle(order)
    losses, step_seconds, step_tokens = [], [], []
    for step in range(total):
        started = time.perf_counter()
        batch = [groups[i] for i in order[step * args.batch:(step + 1) * args.batch]]
        loss_sum, tokens = 0.0, 0
        for m in range(0, len(batch), args.micro_batch):
            chunk = batch[m:m + args.micro_batch]
            queries = [ids(recipe.query_prompt(g["query"]), args.query_len) for g in chunk]
            passages = []
            for g in chunk:
                negatives = g["negative_passages"]
                wanted = args.group_size - 1
                picked = (random.sample(negatives, wanted) if len(negatives) >= wanted
                          else [random.choice(negatives) for _ in range(wanted)])
                for passage in [random.choice(g["positive_passages"])] + picked:
                    passages.append(ids(recipe.passage_prompt(passage), args.passage_len))
            tokens += sum(map(len, queries)) + sum(map(len, passages))
            # No autocast: the base is bf16 and PEFT runs the f32 adapters on f32 inputs (as
            # scripts/peft_real_model_steps.py, whose bf16 steps match quarry's).
            q, d = embed(queries), embed(passages)
            targets = torch.arange(len(chunk), device="cuda") * args.group_size
            loss = F.cross_entropy(q @ d.T / args.temperature, targets) * (len(chunk) / args.batch)
            loss.backward()
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        step_seconds.append(time.perf_counter() - started)
        step_tokens.append(tokens)
        losses.append(loss_sum)
        if not math.isfinite(loss_sum):
            print(f"step {step + 1}: loss {loss_sum}, stopping", file=sys.stderr)
            sys.exit(1)
        print(f"step {step + 1}/{total}: loss {loss_sum:.4f} {step_seconds[-1]:.2f} s",
              file=sys.stderr, flush=True)
    model.save_pretrained(args.out)
    steady = slice(1, None) if total > 1 else slice(None)
    print(json.dumps({
        **recipe.peer_versions(),
        "steps": total, "lr": args.lr, "load_seconds": load_seconds,
        "tokens": sum(step_tokens), "seconds": sum(step_seconds),
        "steady_tokens_per_second": sum(step_tokens[steady]) / sum(step_seconds[steady]),
        "first_step_seconds": step_seconds[0],
        "mean_loss": sum(losses) / len(losses), "last_loss": losses[-1],
        "step_losses": losses, "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }))


if __name__ == "__main__":
    main()
