#!/usr/bin/env python3
"""Reference hidden states of the real Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M) from transformers.

transformers dequantises the GGUF to f32 on load (gguf package) and runs Qwen2ForCausalLM;
we record, for 16 texts (nfcorpus queries and documents, truncated to 96 tokens), the token
ids of the GGUF's own tokenizer, the final hidden state (after the last RMSNorm) of the last
token, and the mean of the final hidden states over all tokens. Written to
encoder/fixtures/qwen2_gguf_reference.json; the Rust test `qwen2_gguf_matches_transformers`
runs when the GGUF is present ($QUARRY_MODELS or <repo>/models, see scripts/fetch_models.sh).

Usage: .venv-hf/bin/python encoder/scripts/make_qwen_gguf_reference.py MODELS_DIR [DATASETS_DIR]
(DATASETS_DIR holds nfcorpus/, default the repository's data/, read through `zstd -dc`.)
"""

import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixture_helpers import DATA, nfcorpus_texts

GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "qwen2_gguf_reference.json")
MAX_TOKENS = 96


def f32_list(values):
    return [float(np.float32(v)) for v in values]


def main():
    models = sys.argv[1]
    datasets = sys.argv[2] if len(sys.argv) > 2 else DATA
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32).eval()
    texts = nfcorpus_texts(datasets, 8)
    token_ids, last, mean = [], [], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_TOKENS]
        with torch.no_grad():
            hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        token_ids.append(ids)
        last.append(f32_list(hidden[-1].tolist()))
        mean.append(f32_list(hidden.mean(dim=0).tolist()))
    payload = {
        "model": GGUF,
        "texts": texts,
        "token_ids": token_ids,
        "last_token": last,
        "mean": mean,
    }
    with open(OUT, "w") as out:
        json.dump(payload, out)
    print(f"{len(texts)} texts -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
