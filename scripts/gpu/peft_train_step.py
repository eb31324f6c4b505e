#!/usr/bin/env python3
"""Peer timing for `quarry train`: one RepLLaMA LoRA training step in PyTorch + PEFT on the
GPU, same model shape, batch and sequence lengths, bf16, and its tokens/s.

The weights are random (a Qwen2 of Qwen2.5-Coder-0.5B's shape: throughput does not depend on
their values, and the GPU machine has no GGUF reader for transformers). Batch: `--batch`
queries of `--query-len` tokens and `--batch * --group-size` passages of `--passage-len`
tokens, processed in micro-batches of `--micro-batch` queries with gradient accumulation,
loss = InfoNCE (temperature 0.01) on L2-normalised last-token states, AdamW.

Usage: python3 peft_train_step.py [--batch 32 --micro-batch 8 --group-size 8
         --query-len 32 --passage-len 192 --steps 3]
Prints one JSON line: {"peer": "pytorch+peft", "tokens_per_second": ..., ...}
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
import transformers

import peft_recipe as recipe


def main():
    parser = argparse.ArgumentParser()
    recipe.add_batch_shape_args(parser)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rank", type=int, default=32)
    args = parser.parse_args()

    config = transformers.Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.Qwen2Model(config).to(torch.bfloat16).cuda()
    model = recipe.with_lora(model, rank=args.rank, alpha=2 * args.rank, dropout=0.1)
    trainable = recipe.f32_adapters(model)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    def embed(ids):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            hidden = model(input_ids=ids).last_hidden_state
        return F.normalize(hidden[:, -1].float(), dim=-1)

    def step():
        tokens = 0
        for start in range(0, args.batch, args.micro_batch):
            n = min(args.micro_batch, args.batch - start)
            q = torch.randint(0, 150000, (n, args.query_len), device="cuda")
            p = torch.randint(0, 150000, (n * args.group_size, args.passage_len), device="cuda")
            scores = embed(q) @ embed(p).T / 0.01
            target = torch.arange(n, device="cuda") * args.group_size
            loss = F.cross_entropy(scores, target) * (n / args.batch)
            loss.backward()
            tokens += q.numel() + p.numel()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    step()  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    tokens = sum(step() for _ in range(args.steps))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(json.dumps({
        **recipe.peer_versions(),
        "steps": args.steps, "tokens": tokens, "seconds": seconds,
        "seconds_per_step": seconds / args.steps, "tokens_per_second": tokens / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "note": "fixed-length sequences (quarry's tokens count real tokens of variable-length texts)",
    }))


if __name__ == "__main__":
    main()
