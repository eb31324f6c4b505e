#!/usr/bin/env python3
"""Writes the LoRA training fixtures of quarry (tests/fixtures/lora/) with PyTorch + PEFT.

  tiny_qwen2/          a tiny random Qwen2ForCausalLM (safetensors + config.json) with a
                       byte-level tokenizer (tokenizer.json: 256 byte symbols, no merges,
                       `<|endoftext|>` as EOS) -- small enough for `cargo test` on 2 cores
  initial_adapter/     a PEFT LoRA adapter (r=4, alpha=8, all seven projections) saved with
                       `save_pretrained`; lora_B is overwritten with random values (PEFT
                       initialises it to zero, which would make every lora_A gradient zero)
  parity.json          one contrastive batch (texts, the token ids transformers' tokenizer
                       gives with the supervised prompts `Query: ` / `Passage: ` + EOS), the
                       temperature, and the InfoNCE loss PyTorch computes: in float64 (the
                       reference) and in float32 (for information)
  gradients.safetensors
                       d loss / d lora_A and lora_B of every module (float64 computation,
                       stored as f32), under PEFT's tensor names
  train.jsonl          a small Tevatron-format training file (the loop tests' data)

The loss is Tevatron's (RepLLaMA): last-token (EOS) hidden state after the final norm,
L2-normalised, scores = q @ p.T / temperature over every passage of the batch, target of
query i = passage i * group_size, cross-entropy averaged over queries. Dropout 0.

Usage (venv made by scripts/make_peft_venv.sh):
  .venv-hf/bin/python scripts/make_lora_fixture.py
"""

import json
import random
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lora"
SEED = 20260126
EOS = "<|endoftext|>"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 4, 8
TEMPERATURE = 0.01
GROUP_SIZE = 3
INIT_RANGE = 0.2

WORDS = ("apple river stone cloud green light sound paper glass metal storm field "
         "heart blood cell gene brain sleep diet vitamin fiber sugar salt water").split()


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (byte-level BPE's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def make_tokenizer(folder):
    symbols = bytes_to_unicode()
    vocab = {symbols[b]: b for b in range(256)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([EOS])
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": EOS, "tokenizer_class": "PreTrainedTokenizerFast",
         "model_max_length": 128}, indent=1) + "\n")
    assert tokenizer.token_to_id(EOS) == 256
    return tokenizer


def make_model(folder):
    config = transformers.Qwen2Config(
        vocab_size=260, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        initializer_range=INIT_RANGE, eos_token_id=256, bos_token_id=None,
        use_sliding_window=False)
    torch.manual_seed(SEED)
    model = transformers.Qwen2ForCausalLM(config).float().eval()
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:  # biases 0 and norms 1 by default: make them matter
                noise = torch.randn(parameter.shape, generator=generator) * INIT_RANGE
                parameter.copy_(1.0 + noise if "norm" in name else noise)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def passage_text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_train_file(path, rng):
    lines = []
    doc = 0
    for q in range(16):
        def passage():
            nonlocal doc
            doc += 1
            return {"docid": f"d{doc}", "title": rng.choice(WORDS).title(),
                    "text": passage_text(rng, rng.randint(4, 14))}
        lines.append(json.dumps({
            "query_id": f"q{q}", "query": passage_text(rng, rng.randint(2, 5)),
            "positive_passages": [passage() for _ in range(1 + q % 2)],
            "negative_passages": [passage() for _ in range(2 + q % 5)],
        }))
    path.write_text("\n".join(lines) + "\n")


def embed(model, sequences):
    """L2-normalised last-token hidden states of right-padded sequences (with a mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    last = torch.tensor([len(s) - 1 for s in sequences])
    pooled = hidden[torch.arange(len(sequences)), last]
    return F.normalize(pooled, dim=-1)


def loss_and_grads(peft_model, queries, passages, dtype):
    peft_model = peft_model.to(dtype)
    peft_model.zero_grad(set_to_none=True)
    inner = peft_model.base_model.model.model  # the Qwen2Model under the LM head
    q = embed(inner, queries)
    p = embed(inner, passages)
    scores = q @ p.T / TEMPERATURE
    target = torch.arange(len(queries)) * GROUP_SIZE
    loss = F.cross_entropy(scores, target)
    loss.backward()
    grads = {}
    for name, parameter in peft_model.named_parameters():
        if parameter.requires_grad:
            peft_name = name.replace(".default.weight", ".weight")
            grads[peft_name] = parameter.grad.detach().to(torch.float32).clone()
    return float(loss), grads


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    model_dir = OUT / "tiny_qwen2"
    model_dir.mkdir(parents=True)
    tokenizer = make_tokenizer(model_dir)
    model = make_model(model_dir)
    for extra in ["generation_config.json"]:
        (model_dir / extra).unlink(missing_ok=True)

    lora = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS,
                      bias="none")
    peft_model = get_peft_model(model, lora)
    generator = torch.Generator().manual_seed(SEED + 2)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_A" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator)
                                / parameter.shape[1] ** 0.5)
            elif "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    peft_model.save_pretrained(OUT / "initial_adapter")
    (OUT / "initial_adapter" / "README.md").unlink()  # PEFT's model card template

    rng = random.Random(SEED)
    make_train_file(OUT / "train.jsonl", rng)
    query_texts = [passage_text(rng, rng.randint(2, 6)) for _ in range(3)]
    passage_items = [(rng.choice(WORDS).title(), passage_text(rng, rng.randint(5, 16)))
                     for _ in range(3 * GROUP_SIZE)]
    eos = tokenizer.token_to_id(EOS)
    queries = [tokenizer.encode(f"Query: {t}").ids + [eos] for t in query_texts]
    passages = [tokenizer.encode(f"Passage: {title} {text}").ids + [eos]
                for title, text in passage_items]

    loss64, grads64 = loss_and_grads(peft_model, queries, passages, torch.float64)
    loss32, grads32 = loss_and_grads(peft_model, queries, passages, torch.float32)
    worst = max(float((grads32[k] - grads64[k]).norm() / grads64[k].norm()) for k in grads64)
    save_file(grads64, OUT / "gradients.safetensors", metadata={"format": "pt"})
    (OUT / "parity.json").write_text(json.dumps({
        "temperature": TEMPERATURE,
        "group_size": GROUP_SIZE,
        "queries": query_texts,
        "passages": [{"title": t, "text": x} for t, x in passage_items],
        "query_ids": queries,
        "passage_ids": passages,
        "loss_float64": loss64,
        "loss_float32": loss32,
        "torch_float32_vs_float64_worst_gradient_relative_error": worst,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": __import__("peft").__version__},
    }, indent=1) + "\n")
    print(f"loss f64 {loss64:.9f}  f32 {loss32:.9f}  |diff| {abs(loss64 - loss32):.2e}  "
          f"torch f32 worst grad rel err {worst:.2e}")


if __name__ == "__main__":
    main()
