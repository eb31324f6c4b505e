#!/usr/bin/env python3
"""Reference outputs of the real models for encoder/tests/weights_real_models.rs.

Writes encoder/fixtures/gguf/real_models_reference.json with
  * token ids of >= 20 texts by transformers' tokenizer converted from the
    Qwen2.5-Coder-0.5B-Instruct GGUF (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`);
  * token ids of the zero-shot prompts as transformers renders them from the GGUF's own chat
    template (`apply_chat_template(..., add_generation_prompt=True)` + 'The word is: "') and of
    the supervised (RepLLaMA) inputs (`tokenizer(text).input_ids + [eos]`);
  * for several tensors of every quant type in the GGUF: shape, f64 sum and sum of squares,
    and some values, as `gguf.quants.dequantize` (llama.cpp's Python reference) gives them;
  * all-MiniLM-L6-v2 token ids by its tokenizer.json through transformers, untruncated and
    truncated at 16 tokens (sentence-transformers truncates the same way).

Usage (needs torch, transformers, gguf: .venv-hf from make_venv.sh; models: scripts/fetch_models.sh):
  .venv-hf/bin/python encoder/scripts/gguf_reference_real.py [MODELS_DIR]
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "fixtures" / "gguf" / "real_models_reference.json"
MODELS = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QUARRY_MODELS", HERE.parent.parent / "models"))
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

TEXTS = [
    "Hello world!",
    "<|im_start|>user\n你好<|im_end|>\n",
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "fn main() {\n\tprintln!(\"{}\", 1_000_000u64.pow(2));\n}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "量子计算是一种利用量子力学原理进行计算的技术。",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다.",
    "Emoji: 🚀🔥👍🏽 and 👨‍👩‍👧‍👦 family",
    "Numbers 1234567890 3.14159 -42 1e-6 0x1F",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\n\r\nmixed",
    "I'm sure they'll say it's John's and we've done what we'd do. DON'T SHOUT",
    "Ünïcödé àccénts, ß, Æ, Ø, naïve café",
    "cafe\u0301 (decomposed accent)",
    "العربية من اليمين إلى اليسار",
    "Привет, мир! Как дела?",
    "<|endoftext|><|im_start|>system\nYou are Qwen.<|im_end|>",
    "<|fim_prefix|>def f(x):<|fim_suffix|>    return y<|fim_middle|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "[PAD151665] is not a special token",
    "https://example.com/path?query=1&b=%20#frag user@example.org",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "",
]

ZERO_SHOT_TEXTS = [
    "What is the role of vitamin D in bone health?",
    "Statins lower LDL cholesterol; 她说 \"yes\" 🚀.",
]


def instruction(kind, text):
    return (f'{kind.capitalize()}: "{text}". Use one word to represent the {kind} in a retrieval task. '
            f"Make sure your word is in lowercase.")


def tensor_summary(reader_tensor):
    values = gguf.quants.dequantize(reader_tensor.data, reader_tensor.tensor_type)
    flat = values.reshape(-1).astype(np.float32)
    n = flat.size
    picks = sorted({0, 1, 31, 32, 255, 256, n // 2, n - 1})
    return {
        "gguf_name": reader_tensor.name,
        "type": reader_tensor.tensor_type.name,
        "torch_shape": [int(d) for d in values.shape],
        "sum": float(flat.astype(np.float64).sum()),
        "sum_squares": float((flat.astype(np.float64) ** 2).sum()),
        "first": [float(v) for v in flat[:16]],
        "at": {str(i): float(flat[i]) for i in picks},
    }


def main():
    out = {"gguf_file": GGUF_NAME}
    tok = AutoTokenizer.from_pretrained(str(MODELS), gguf_file=GGUF_NAME)
    out["tokenizer"] = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    out["eos_token_id"] = tok.eos_token_id

    prompts = []
    for kind in ["query", "passage"]:
        for text in ZERO_SHOT_TEXTS:
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": instruction(kind, text)}], tokenize=False, add_generation_prompt=True
            ) + 'The word is: "'
            prompts.append({"mode": "zero-shot", "kind": kind, "text": text, "rendered": rendered,
                            "ids": tok.encode(rendered, add_special_tokens=False)})
            prefix = "Query: " if kind == "query" else "Passage: "
            prompts.append({"mode": "supervised", "kind": kind, "text": text,
                            "ids": tok(prefix + text, add_special_tokens=False).input_ids + [tok.eos_token_id]})
    out["prompts"] = prompts

    reader = gguf.GGUFReader(str(MODELS / GGUF_NAME))
    by_type = {}
    for t in reader.tensors:
        by_type.setdefault(t.tensor_type.name, []).append(t)
    wanted = {
        "F32": ["blk.0.attn_norm.weight", "blk.0.attn_q.bias", "output_norm.weight"],
        "Q5_0": ["blk.0.attn_q.weight", "blk.5.ffn_up.weight", "token_embd.weight"],
        "Q8_0": ["blk.0.attn_v.weight", "output.weight"],
        "Q4_K": [t.name for t in by_type["Q4_K"][:2]],
        "Q6_K": [t.name for t in by_type["Q6_K"][:2]],
    }
    names = {t.name: t for t in reader.tensors}
    out["tensors"] = [tensor_summary(names[n]) for ns in wanted.values() for n in ns]

    minilm = AutoTokenizer.from_pretrained(str(MODELS / "all-MiniLM-L6-v2"))
    out["minilm"] = [
        {"text": t,
         "ids": minilm(t).input_ids,
         "ids_max16": minilm(t, truncation=True, max_length=16).input_ids}
        for t in TEXTS[:22]
    ]
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
