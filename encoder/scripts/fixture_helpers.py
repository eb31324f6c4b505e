"""Pieces the fixture and reference scripts share (standard library only, so every venv the
scripts run in can import it: they run as `python encoder/scripts/<script>.py`, which puts this
folder on the import path)."""

import contextlib
import json
import os
import subprocess

# The datasets the repository ships (BEIR layout, zstd-compressed): the default DATASETS_DIR.
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")


@contextlib.contextmanager
def _lines(path):
    """The lines of `path`, or of `path`.zst when only that exists (as in data/), decompressed
    by the `zstd` command (the standard library has no zstd)."""
    if os.path.exists(path) or not os.path.exists(path + ".zst"):
        with open(path) as f:
            yield f
        return
    proc = subprocess.Popen(["zstd", "-dcq", path + ".zst"], stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        yield proc.stdout
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def read_jsonl(path, count):
    """The first `count` rows of a JSON Lines file (or of its `.zst`)."""
    rows = []
    with _lines(path) as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == count:
                break
    return rows


def nfcorpus_texts(datasets, count):
    """`count` nfcorpus queries, then `count` documents (title + " " + text, as BEIR joins them)."""
    queries = [row["text"] for row in read_jsonl(os.path.join(datasets, "nfcorpus", "queries.jsonl"), count)]
    docs = [
        (row.get("title", "") + " " + row["text"]).strip()
        for row in read_jsonl(os.path.join(datasets, "nfcorpus", "corpus.jsonl"), count)
    ]
    return queries + docs


def add_tiny_qwen2_metadata(writer):
    """The `qwen2.*` hyper-parameters of the tiny GGUF fixtures (what config_from_gguf reads)."""
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(96)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(1000000.0)
    writer.add_layer_norm_rms_eps(1e-6)


def write_gguf(writer):
    """Writes header, key/values and tensors of a `gguf.GGUFWriter`, and closes it."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
