#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets into fuzz/seeds/TARGET/.

Python standard library only: each seed is a small, valid (or deliberately near-valid)
instance of its format, so libFuzzer starts from inputs that reach deep into the parser.
The repository's real fixture files (tiny GGUF and safetensors models, TREC runs,
datasets.toml) are added as seeds by scripts/fuzz.sh at run time rather than copied here.

usage: python3 fuzz/make_seeds.py
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- GGUF v3 -------------------------------------------------------------------------
def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, kind, value):
    out = gguf_str(key) + struct.pack("<I", kind)
    if kind == 4:
        out += struct.pack("<I", value)
    elif kind == 5:
        out += struct.pack("<i", value)
    elif kind == 6:
        out += struct.pack("<f", value)
    elif kind == 7:
        out += struct.pack("<?", value)
    elif kind == 8:
        out += gguf_str(value)
    elif kind == 10:
        out += struct.pack("<Q", value)
    elif kind == 12:
        out += struct.pack("<d", value)
    elif kind == 9:
        elem_kind, items = value
        out += struct.pack("<IQ", elem_kind, len(items))
        for item in items:
            if elem_kind == 8:
                out += gguf_str(item)
            elif elem_kind == 5:
                out += struct.pack("<i", item)
            elif elem_kind == 6:
                out += struct.pack("<f", item)
    return out


def f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


def gguf_file(kvs, tensors, alignment=32):
    """tensors: (name, dims innermost first, ggml type, raw bytes)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for kv in kvs:
        head += gguf_kv(*kv)
    data = b""
    infos = b""
    for name, dims, ggml_type, raw in tensors:
        pad = (-len(data)) % alignment
        data += b"\0" * pad
        infos += gguf_str(name) + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ggml_type, len(data))
        data += raw
    body = head + infos
    body += b"\0" * ((-len(body)) % alignment)
    return body + data


def byte_level_tokens():
    # GPT-2's printable stand-ins for the 256 bytes, as Qwen2's vocabulary stores them.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def gguf_seeds():
    tokens = byte_level_tokens() + ["Ġa", "de", "def", "<|endoftext|>"]
    kvs = [
        ("general.architecture", 8, "qwen2"),
        ("general.alignment", 4, 32),
        ("qwen2.block_count", 4, 1),
        ("qwen2.context_length", 4, 64),
        ("qwen2.embedding_length", 4, 8),
        ("qwen2.feed_forward_length", 4, 16),
        ("qwen2.attention.head_count", 4, 2),
        ("qwen2.attention.head_count_kv", 4, 1),
        ("qwen2.rope.freq_base", 6, 10000.0),
        ("qwen2.attention.layer_norm_rms_epsilon", 6, 1e-6),
        ("tokenizer.ggml.model", 8, "gpt2"),
        ("tokenizer.ggml.pre", 8, "qwen2"),
        ("tokenizer.ggml.tokens", 9, (8, tokens)),
        ("tokenizer.ggml.token_type", 9, (5, [1] * (len(tokens) - 1) + [3])),
        ("tokenizer.ggml.merges", 9, (8, ["Ġ a", "d e", "de f"])),
        ("tokenizer.ggml.eos_token_id", 4, len(tokens) - 1),
        ("tokenizer.ggml.bos_token_id", 4, len(tokens) - 1),
    ]
    f32 = struct.pack("<8f", *[0.5 * i for i in range(8)])
    f16 = struct.pack("<8H", *[f16_bits(0.25 * i) for i in range(8)])
    q8_0 = struct.pack("<H", f16_bits(0.01)) + bytes((i * 7) % 256 for i in range(32))
    q4_0 = struct.pack("<H", f16_bits(0.1)) + bytes((i * 13) % 256 for i in range(16))
    tensors = [
        ("output_norm.weight", [8], 0, f32),
        ("blk.0.attn_norm.weight", [8], 1, f16),
        ("blk.0.attn_q.weight", [32], 8, q8_0),
        ("blk.0.attn_k.weight", [32, 1], 2, q4_0),
    ]
    write("gguf", "qwen2_tiny.gguf", gguf_file(kvs, tensors))
    write("gguf", "header_only.gguf", gguf_file(kvs[:3], []))
    write("gguf", "one_tensor.gguf", gguf_file([("general.architecture", 8, "qwen2")], tensors[:1]))


# ---- safetensors ---------------------------------------------------------------------
def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<6f", *range(6))
    f16 = struct.pack("<4H", *[f16_bits(x) for x in (1.0, -2.0, 0.5, 3.0)])
    bf16 = struct.pack("<4H", *[struct.unpack("<I", struct.pack("<f", x))[0] >> 16 for x in (1.0, -2.0, 0.5, 3.0)])
    write("safetensors", "three_dtypes.safetensors", safetensors_file([
        ("model.norm.weight", "F32", [2, 3], f32),
        ("model.embed_tokens.weight", "F16", [2, 2], f16),
        ("lm_head.weight", "BF16", [4], bf16),
    ], {"format": "pt"}))
    write("safetensors", "empty.safetensors", safetensors_file([]))


# ---- npy -----------------------------------------------------------------------------
def npy_file(shape, values, descr="<f4", fortran=False, version=1):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    prefix_len = 10 if version == 1 else 12
    pad = (-(prefix_len + len(header) + 1)) % 64
    header = header + " " * pad + "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H" if version == 1 else "<I", len(header))
    return head + header.encode("latin1") + struct.pack("<%df" % len(values), *values)


def npy_seeds():
    write("npy", "two_by_three.npy", npy_file((2, 3), [0.1 * i for i in range(6)]))
    write("npy", "vector.npy", npy_file((4,), [1.0, 2.0, 3.0, 4.0]))
    write("npy", "version2.npy", npy_file((1, 2), [1.0, -1.0], version=2))
    write("npy", "fortran.npy", npy_file((2, 2), [1, 2, 3, 4], fortran=True))
    write("npy", "big_endian.npy", npy_file((1, 1), [0.0], descr=">f4"))


# ---- BEIR text files, TREC runs, registries, retriever specs -------------------------
def text_seeds():
    write("corpus", "beir.jsonl",
          '{"_id": "MED-10", "title": "Statin use", "text": "Recent studies...", "metadata": {}}\n'
          '{"_id": "MED-14", "title": "", "text": "Caf\\u00e9 \\"quoted\\" text"}\n'
          '\n{"_id": "d3", "text": null}\n')
    write("corpus", "numeric_id.jsonl", '{"_id": 7, "title": "t", "text": "x"}\n')
    write("queries", "beir.jsonl",
          '{"_id": "PLAIN-3", "text": "Breast Cancer Cells Feed on Cholesterol", "metadata": {}}\n'
          '{"_id": "q2", "text": "def add(a, b):\\n    return a + b"}\n')
    write("qrels", "beir.tsv", "query-id\tcorpus-id\tscore\nPLAIN-3\tMED-10\t2\nPLAIN-3\tMED-14\t1\nq2\td3\t0\n")
    write("qrels", "trec.txt", "PLAIN-3 0 MED-10 2\nPLAIN-3 Q0 MED-14 1\nq2 0 d3 -1\n")
    write("trec_run", "run.trec",
          "PLAIN-3 Q0 MED-10 1 12.500000 bm25\nPLAIN-3 Q0 MED-14 2 11.25 bm25\nq2 Q0 d3 1 -0.5 bm25\n")
    write("registry", "one_entry.toml",
          '[[dataset]]\nname = "tiny"\npath = "data/tiny"\nsplit = "test"\nremove_self = false\n'
          'kind = "text"\ncorpus_sha256 = "%s"\nurl = "http://127.0.0.1:1/tiny.zip"\n\n'
          '[[published]]\ndataset = "tiny"\nretriever = "bm25"\nmetric = "ndcg_cut_10"\nvalue = 0.325\n' % ("0" * 64))
    for i, spec in enumerate([
        "bm25",
        "dense:all-minilm-l6-v2",
        "bm25,dense:minilm@nfcorpus,run:runs/x.trec",
        "rrf(bm25,dense:minilm;k=60)",
        "rrf(bm25, rrf(dense:a, dense:b))",
        "dense:q05,mode=hnsw",
    ]):
        write("retriever_spec", "spec%d.txt" % i, spec)


if __name__ == "__main__":
    gguf_seeds()
    safetensors_seeds()
    npy_seeds()
    text_seeds()
    print("seeds written under", ROOT)
