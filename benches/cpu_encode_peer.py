"""PyTorch reference for quarry's CPU encoder speed: all-MiniLM-L6-v2 over the
first N nfcorpus documents, as sentence-transformers runs it (length-sorted
batches of 32, mean pooling over real tokens, L2 normalisation), timed around
the forward passes only.

Writes the token ids it encoded (the Rust side encodes exactly these) and the
embeddings (the Rust side reports its cosine against them), then prints one
line `torch tokens/s <value>`.

    python benches/cpu_encode_peer.py MODEL_DIR CORPUS.jsonl N OUT_DIR
"""

import json
import os
import sys
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer


def main() -> None:
    model_dir, corpus_path, count, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_len = json.load(f)["max_seq_length"]

    texts = []
    with open(corpus_path) as f:
        for line in f:
            doc = json.loads(line)
            # MTEB's BEIR passage input: "title text" when there is a title.
            title = doc.get("title", "").strip()
            texts.append(f"{title} {doc['text']}".strip() if title else doc["text"])
            if len(texts) == count:
                break
    ids = [tokenizer(t, truncation=True, max_length=max_len)["input_ids"] for t in texts]
    tokens = sum(len(x) for x in ids)

    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    embeddings = [None] * len(ids)
    batch_size = 32
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            for r, i in enumerate(rows):
                embeddings[i] = pooled[r].numpy()
    seconds = time.perf_counter() - start

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "token_ids.json"), "w") as f:
        json.dump(ids, f)
    # Raw little-endian f32, row-major [docs, dim]: trivial to read from Rust.
    np.stack(embeddings).astype("<f4").tofile(os.path.join(out_dir, "torch_embeddings.f32"))
    print(f"torch: {len(ids)} docs, {tokens} tokens, {seconds:.2f} s, {threads} threads")
    print(f"torch tokens/s {tokens / seconds:.1f}")


if __name__ == "__main__":
    main()
