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
import os
import random
import sys
import time

EOS = "<|im_end|>"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("train")
    p.add_argument("out")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--query-len", type=int, default=32)
    p.add_argument("--passage-len", type=int, default=192)
    p.add_argument("--temperature", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    import torch
    import torch.nn.functional as F
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    folder, name = os.path.split(os.path.abspath(args.model))
    loading = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModel.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16).cuda()
    eos = tokenizer.convert_tokens_to_ids(EOS)
    model = get_peft_model(model, LoraConfig(
        r=32, lora_alpha=64, lora_dropout=args.dropout, bias="none",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"]))
    trainable = [q for q in model.parameters() if q.requires_grad]
    # PEFT keeps the adapters of a bf16 base in f32 (autocast_adapter_dtype); make sure.
    for q in trainable:
        q.data = q.data.float()
    model.train()
    load_seconds = time.perf_counter() - loading

    groups = [json.loads(line) for line in open(args.train)]

    def ids(text, limit):
        return tokenizer(text, add_special_tokens=False)["input_ids"][: limit - 1] + [eos]

    def passage_text(passage):
        title = (passage.get("title") or "").strip()
        return "Passage: " + (title + " " if title else "") + passage["text"]

    def embed(seqs):
        width = max(map(len, seqs))
        input_ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        # No attention mask: with right padding under causal attention the last real token
        # never sees the padding (quarry relies on the same), and transformers' padded-row
        # mask gave NaN from the second step on (docs/gpu-runs/2026-11-26-s5-h100).
        del mask
        hidden = model(input_ids=input_ids.cuda()).last_hidden_state
        last = torch.tensor([len(s) - 1 for s in seqs], device="cuda")
        return F.normalize(hidden[torch.arange(len(seqs), device="cuda"), last].float(), dim=-1)

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
            queries = [ids("Query: " + g["query"], args.query_len) for g in chunk]
            passages = []
            for g in chunk:
                negatives = g["negative_passages"]
                wanted = args.group_size - 1
                picked = (random.sample(negatives, wanted) if len(negatives) >= wanted
                          else [random.choice(negatives) for _ in range(wanted)])
                for passage in [random.choice(g["positive_passages"])] + picked:
                    passages.append(ids(passage_text(passage), args.passage_len))
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
        "peer": "pytorch+peft", "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "steps": total, "lr": args.lr, "load_seconds": load_seconds,
        "tokens": sum(step_tokens), "seconds": sum(step_seconds),
        "steady_tokens_per_second": sum(step_tokens[steady]) / sum(step_seconds[steady]),
        "first_step_seconds": step_seconds[0],
        "mean_loss": sum(losses) / len(losses), "last_loss": losses[-1],
        "step_losses": losses, "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }))


if __name__ == "__main__":
    main()
