#!/usr/bin/env python3
"""Writes a small GGUF tokenizer and transformers' ids for it, so the GGUF tokenizer path is
tested without the 0.5 GB model (encoder/tests/weights_tokenizer.rs):

  encoder/fixtures/gguf/tiny_qwen2_tokenizer.gguf        qwen2 metadata + a byte-level BPE
      vocabulary: the 256 byte symbols, the first 3000 usable merges of the real
      Qwen2.5-Coder GGUF, and special tokens of each llama.cpp token type
  encoder/fixtures/gguf/tiny_qwen2_tokenizer_reference.json
      ids transformers gives (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`)

Usage (needs the real GGUF from scripts/fetch_models.sh and .venv-hf from make_venv.sh: torch,
transformers, gguf):
  .venv-hf/bin/python encoder/scripts/gguf_make_tokenizer_fixture.py [MODELS_DIR]
"""
import json
import os
import sys
from pathlib import Path

import gguf
from transformers import AutoTokenizer

from fixture_helpers import add_tiny_qwen2_metadata, write_gguf

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "gguf"
MODELS = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QUARRY_MODELS", HERE.parent.parent / "models"))
OUT = FIXTURES / "tiny_qwen2_tokenizer.gguf"
N_MERGES = 3000

TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "<|im_start|>user\nWhat is BM25?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after<tool_call>{}</tool_call>",
    "[PAD9] stays text",
    "def add(a, b):\n    return a + b\n",
    "I'm sure they'll say it's fine; we've DONE it.",
    "中文字符与日本語、한국어",
    "emoji 🚀 and 👍🏽",
    "  two  spaces\t\ttabs\n\n\nnewlines  ",
    "numbers 1234567 and 3.14",
    "",
]


def main():
    real = gguf.GGUFReader(str(MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    real_tokens = real.fields["tokenizer.ggml.tokens"].contents()
    real_merges = real.fields["tokenizer.ggml.merges"].contents()
    tokens = list(real_tokens[:256])  # Qwen2's first 256 tokens are the byte-level symbols
    index = set(tokens)
    merges = []
    for merge in real_merges:
        a, b = merge.split(" ")
        if a in index and b in index and a + b not in index:
            merges.append(merge)
            tokens.append(a + b)
            index.add(a + b)
            if len(merges) == N_MERGES:
                break
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for special, token_type in [
        ("<|endoftext|>", gguf.TokenType.CONTROL),
        ("<|im_start|>", gguf.TokenType.CONTROL),
        ("<|im_end|>", gguf.TokenType.CONTROL),
        ("<tool_call>", gguf.TokenType.USER_DEFINED),
        ("</tool_call>", gguf.TokenType.USER_DEFINED),
        ("[PAD9]", gguf.TokenType.UNUSED),
    ]:
        tokens.append(special)
        types.append(token_type)

    w = gguf.GGUFWriter(str(OUT), "qwen2")
    add_tiny_qwen2_metadata(w)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    write_gguf(w)

    tok = AutoTokenizer.from_pretrained(str(FIXTURES), gguf_file=OUT.name)
    reference = {
        "gguf_file": OUT.name,
        "vocab_size": len(tokens),
        "eos_token_id": tok.eos_token_id,
        "cases": [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS],
    }
    (FIXTURES / "tiny_qwen2_tokenizer_reference.json").write_text(
        json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    print(OUT, OUT.stat().st_size, "bytes;", len(tokens), "tokens,", len(merges), "merges")


if __name__ == "__main__":
    main()
