#!/usr/bin/env python3
"""Writes encoder/fixtures/gguf/tiny_qwen2_quants.gguf with llama.cpp's own `gguf` package.

The file holds
  * for each ggml type quarry decodes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
    Q5_K, Q6_K): a tensor `quant.<type>` of 3 x 512 values made of random blocks (random
    quantised bytes, sane random f16 scales), and `quant.<type>.expected`, the F32 values
    `gguf.quants.dequantize` (the reference dequantiser) gives for it;
  * a tiny Qwen2 checkpoint layout (token_embd, blk.0.*, output_norm, output) with
    non-square shapes and `qwen2.*` metadata, to test name mapping, shape order and
    config_from_gguf.

Usage: .venv-gguf/bin/python encoder/scripts/gguf_make_fixtures.py
(venv: encoder/scripts/setup_weights_venv.sh).
"""
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

from fixture_helpers import add_tiny_qwen2_metadata, write_gguf

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "gguf" / "tiny_qwen2_quants.gguf"
rng = np.random.default_rng(20261125)

# Byte offsets of the f16 scale fields in each block (llama.cpp's block_* structs).
SCALE_OFFSETS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
ROWS, COLS = 3, 512


def random_blocks(qtype):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block_elems
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        scales = (rng.standard_normal(n_blocks) * 0.01).astype(np.float16)
        blocks[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(ROWS, COLS // block_elems * block_bytes)


def main():
    w = gguf.GGUFWriter(str(OUT), "qwen2")
    add_tiny_qwen2_metadata(w)
    w.add_eos_token_id(5)
    w.add_bos_token_id(4)
    tokens = ["a", "b", "c", "ab", "<|endoftext|>", "<|im_end|>"] + [f"t{i}" for i in range(26)]
    w.add_token_list(tokens)

    for qtype in [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]:
        name = f"quant.{qtype.name}"
        if qtype == T.F32:
            values = rng.standard_normal((ROWS, COLS)).astype(np.float32)
            w.add_tensor(name, values)
            expected = values
        elif qtype == T.F16:
            values = rng.standard_normal((ROWS, COLS)).astype(np.float16)
            w.add_tensor(name, values)
            expected = values.astype(np.float32)
        elif qtype == T.BF16:
            raw = gguf.quants.quantize(rng.standard_normal((ROWS, COLS)).astype(np.float32), T.BF16)
            w.add_tensor(name, raw, raw_dtype=T.BF16)
            expected = gguf.quants.dequantize(raw, T.BF16)
        else:
            raw = random_blocks(qtype)
            w.add_tensor(name, raw, raw_dtype=qtype)
            expected = gguf.quants.dequantize(raw, qtype)
        assert expected.shape == (ROWS, COLS) and np.isfinite(expected).all(), qtype
        w.add_tensor(name + ".expected", np.ascontiguousarray(expected, dtype=np.float32))

    # A tiny Qwen2 layout: HF shapes (out, in); GGUF stores them reversed.
    hidden, ffn, vocab, kv = 64, 96, 32, 32
    layout = {
        "token_embd.weight": ((vocab, hidden), T.F16),
        "blk.0.attn_norm.weight": ((hidden,), T.F32),
        "blk.0.attn_q.weight": ((hidden, hidden), T.Q8_0),
        "blk.0.attn_q.bias": ((hidden,), T.F32),
        "blk.0.attn_k.weight": ((kv, hidden), T.Q8_0),
        "blk.0.attn_k.bias": ((kv,), T.F32),
        "blk.0.attn_v.weight": ((kv, hidden), T.Q8_0),
        "blk.0.attn_v.bias": ((kv,), T.F32),
        "blk.0.attn_output.weight": ((hidden, hidden), T.Q8_0),
        "blk.0.ffn_norm.weight": ((hidden,), T.F32),
        "blk.0.ffn_gate.weight": ((ffn, hidden), T.Q8_0),
        "blk.0.ffn_up.weight": ((ffn, hidden), T.Q8_0),
        "blk.0.ffn_down.weight": ((hidden, ffn), T.Q8_0),
        "output_norm.weight": ((hidden,), T.F32),
        "output.weight": ((vocab, hidden), T.Q8_0),
    }
    for name, (shape, qtype) in layout.items():
        values = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if qtype == T.F32:
            w.add_tensor(name, values)
        elif qtype == T.F16:
            w.add_tensor(name, values.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)

    write_gguf(w)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
