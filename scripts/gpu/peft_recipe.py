"""quarry train's RepLLaMA LoRA recipe as its PyTorch + PEFT peers run it: the batch shape and
its defaults, the GGUF model, prompts and EOS, the adapter, padding and EOS pooling. Written once
so that the peers (peft_train_step.py and peft_train_nfcorpus.py beside this file,
../peft_real_model_steps.py) stay one recipe.

The peers import it from this folder: `python3 scripts/gpu/X.py` puts scripts/gpu on the import
path, and ../peft_real_model_steps.py adds it. torch, transformers and peft are imported only in
the functions that use them, so a script parses its arguments (or prepares data) without them.
"""
import os

# The token appended to every prompt, after truncation; its last hidden state is the embedding.
EOS = "<|im_end|>"
# LoRA on all seven projections of each decoder layer.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_batch_shape_args(parser):
    """quarry train's batch shape, with its defaults: `--batch` queries a step in micro-batches
    of `--micro-batch`, `--group-size` passages a query (one positive, the rest hard negatives),
    queries of at most `--query-len` tokens and passages of at most `--passage-len`."""
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--query-len", type=int, default=32)
    parser.add_argument("--passage-len", type=int, default=192)


def peer_versions():
    """The head of a peer's JSON result: who it is, and the versions it ran."""
    import peft
    import torch
    import transformers

    return {
        "peer": "pytorch+peft", "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
    }


def load_gguf(path, dtype):
    """(tokenizer, model, EOS id) of a GGUF file, as transformers reads it (through the gguf
    package), the model's weights in `dtype`, on the CPU."""
    from transformers import AutoModel, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(path))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModel.from_pretrained(folder, gguf_file=name, dtype=dtype)
    return tokenizer, model, tokenizer.convert_tokens_to_ids(EOS)


def query_prompt(query):
    return "Query: " + query


def passage_prompt(passage):
    """`Passage: {title} {text}`, without the space when the passage has no title."""
    title = (passage.get("title") or "").strip()
    return "Passage: " + (title + " " if title else "") + passage["text"]


def prompt_ids(tokenizer, eos_id, text, limit=None):
    """The token ids of `text` (no special tokens), cut so that with EOS appended they are at
    most `limit` (no cut without one)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return (ids if limit is None else ids[: limit - 1]) + [eos_id]


def right_padded(seqs):
    """(input_ids, attention_mask) of token id lists padded on the right (with 0) to the longest:
    long tensors on the CPU."""
    import torch

    width = max(map(len, seqs))
    input_ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return input_ids, mask


def eos_states(hidden, seqs):
    """The L2-normalised f32 embeddings of a right-padded batch: the hidden state [batch, seq,
    hidden] of each sequence's last real token (its EOS)."""
    import torch
    import torch.nn.functional as F

    last = torch.tensor([len(s) - 1 for s in seqs], device=hidden.device)
    rows = torch.arange(len(seqs), device=hidden.device)
    return F.normalize(hidden[rows, last].float(), dim=-1)


def with_lora(model, rank, alpha, dropout):
    """`model` with PEFT LoRA adapters (rank, alpha, dropout, no bias) on LORA_TARGETS."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none", target_modules=LORA_TARGETS))


def f32_adapters(model):
    """The trainable (adapter) parameters of `model`, made f32 as quarry trains them: PEFT keeps
    the adapters of a bf16 base in f32 already (autocast_adapter_dtype); this makes sure."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.data = p.data.float()
    return trainable
