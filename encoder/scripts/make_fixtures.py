#!/usr/bin/env python3
"""Generates the parity fixtures of quarry-encoder with transformers.

Tiny randomly initialised checkpoints (safetensors + config.json) and the
reference final hidden states transformers computes for them, for single
token sequences and for one right-padded batch with an attention mask:

  encoder/fixtures/qwen2_tied/      Qwen2ForCausalLM, GQA, q/k/v biases, tied lm_head
  encoder/fixtures/qwen2_untied/    Qwen2ForCausalLM, separate lm_head, other rope_theta
  encoder/fixtures/qwen2_5_vl/      Qwen2_5_VLForConditionalGeneration (text tower run
                                    through the VL model, vision tower present in the file;
                                    config as transformers >= 4.52 writes it, `text_config`
                                    nested. The flat layout of transformers 4.49-4.51, that of
                                    the published Qwen2.5-VL checkpoints, is qwen2_5_vl_flat/,
                                    made by make_qwen2_5_vl_flat_fixture.py in its own venv)
  encoder/fixtures/bert/            BertModel + sentence-transformers 1_Pooling (mean)
                                    and 2_Normalize references

Each folder holds `reference.json`:
  {"sequences": [[ids]...], "single": [[[hidden]...]...],
   "batch": {"input_ids": [[...]], "lengths": [...], "hidden": [[[...]]]},
   "pooled": [[...]] (BERT: sentence-transformers mean pooling + L2 normalise)}
"single[i]" / "batch.hidden[i]" hold the rows of the real tokens only.

Run with the venv made by make_venv.sh:
  .venv-hf/bin/python encoder/scripts/make_fixtures.py
"""

import json
import os
import shutil
import sys

import torch
import transformers

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
INIT_RANGE = 0.2  # larger than real checkpoints' 0.02 so activations are far from zero


def randomise_non_matmul_parameters(model, seed):
    """transformers initialises biases to 0 and norm weights to 1; make them random
    so the test sees whether they are applied (and applied to the right side)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() != 1:
                continue
            noise = torch.randn(parameter.shape, generator=generator) * INIT_RANGE
            if "norm" in name.lower():
                parameter.copy_(1.0 + noise)
            else:
                parameter.copy_(noise)


def sequences_for(vocab_size, seed, pad_id=None):
    generator = torch.Generator().manual_seed(seed)
    lengths = [5, 11, 1, 17, 3, 8]
    sequences = []
    for length in lengths:
        ids = torch.randint(0, vocab_size, (length,), generator=generator).tolist()
        if pad_id is not None:
            ids = [pad_id + 1 if token == pad_id else token for token in ids]
        sequences.append(ids)
    return sequences


def padded_batch(sequences, pad_id):
    width = max(len(ids) for ids in sequences)
    input_ids = [ids + [pad_id] * (width - len(ids)) for ids in sequences]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids in sequences]
    return torch.tensor(input_ids), torch.tensor(mask)


def rows(tensor):
    return [[float(value) for value in row] for row in tensor.tolist()]


def reference_hidden(run, sequences, pad_id):
    """The entries of reference.json for `sequences`: the hidden states of each alone and of all
    as one padded batch. `run(input_ids, attention_mask)` -> last hidden state [batch, seq, hidden]."""
    single = []
    for ids in sequences:
        input_ids = torch.tensor([ids])
        hidden = run(input_ids, torch.ones_like(input_ids))[0]
        single.append(rows(hidden))
    input_ids, mask = padded_batch(sequences, pad_id)
    hidden = run(input_ids, mask)
    batch_hidden = [rows(hidden[i, : len(ids)]) for i, ids in enumerate(sequences)]
    return {
        "sequences": sequences,
        "single": single,
        "batch": {
            "input_ids": input_ids.tolist(),
            "lengths": [len(ids) for ids in sequences],
            "hidden": batch_hidden,
        },
    }


def write_reference(folder, payload):
    with open(os.path.join(folder, "reference.json"), "w") as out:
        json.dump(payload, out)


def fresh_folder(name):
    folder = os.path.join(FIXTURES, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def save_random_model(model_class, config, name, seed, **model_kwargs):
    """Builds `model_class(config)` from `seed` (eager attention, f32, eval mode), randomises its
    biases and norms from `seed + 1`, and saves it as safetensors in a fresh fixture folder."""
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_class(config, **model_kwargs).eval().float()
    randomise_non_matmul_parameters(model, seed + 1)
    folder = fresh_folder(name)
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


def tiny_qwen2_text_settings(rope_theta):
    return dict(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=rope_theta,
        rms_norm_eps=1e-6,
        initializer_range=INIT_RANGE,
        hidden_act="silu",
        use_sliding_window=False,
    )


def make_qwen2(name, tie, rope_theta, seed):
    config = transformers.Qwen2Config(
        **tiny_qwen2_text_settings(rope_theta), tie_word_embeddings=tie
    )
    model, folder = save_random_model(transformers.Qwen2ForCausalLM, config, name, seed)

    def run(input_ids, mask):
        with torch.no_grad():
            return model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state

    sequences = sequences_for(config.vocab_size, seed + 2)
    write_reference(folder, reference_hidden(run, sequences, pad_id=0))


# The image/video marker tokens of the tiny Qwen2.5-VL (above the ids the text sequences use).
VL_MARKERS = dict(
    image_token_id=90,
    video_token_id=91,
    vision_start_token_id=92,
    vision_end_token_id=93,
)


def tiny_qwen2_5_vl_settings():
    """The tiny Qwen2.5-VL's text settings, with M-RoPE sections as in Qwen2.5-VL-7B-Instruct's
    config.json (head_dim 16 here: 2 + 3 + 3 = 16 / 2), and its one-block vision tower. Shared
    by this script (nested config) and make_qwen2_5_vl_flat_fixture.py (flat config)."""
    text = tiny_qwen2_text_settings(1_000_000.0)
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [2, 3, 3]}
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=48,
        num_heads=2,
        out_hidden_size=64,
        fullatt_block_indexes=[0],
        window_size=28,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_chans=3,
    )
    return text, vision


def make_qwen2_5_vl(seed):
    text, vision = tiny_qwen2_5_vl_settings()
    text["bos_token_id"] = 94
    text["eos_token_id"] = 95
    config = transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        **VL_MARKERS,
        tie_word_embeddings=False,
    )
    model, folder = save_random_model(
        transformers.Qwen2_5_VLForConditionalGeneration, config, "qwen2_5_vl", seed
    )

    def run(input_ids, mask):
        with torch.no_grad():
            # The full VL model: its get_rope_index computes the (multimodal)
            # positions from the attention mask, as for real text-only input.
            return model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state

    # Token ids below the image/video/vision markers: plain text.
    sequences = sequences_for(90, seed + 2)
    write_reference(folder, reference_hidden(run, sequences, pad_id=0))


def make_bert(seed):
    from sentence_transformers.sentence_transformer import modules as st_models

    config = transformers.BertConfig(
        vocab_size=80,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=40,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        initializer_range=INIT_RANGE,
        pad_token_id=0,
    )
    model, folder = save_random_model(
        transformers.BertModel, config, "bert", seed, add_pooling_layer=False
    )

    pooling = st_models.Pooling(config.hidden_size, pooling_mode="mean")
    normalize = st_models.Normalize()
    os.makedirs(os.path.join(folder, "1_Pooling"))
    pooling.save(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "modules.json"), "w") as out:
        json.dump(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            out,
            indent=2,
        )

    def run(input_ids, mask):
        with torch.no_grad():
            return model(
                input_ids=input_ids,
                attention_mask=mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state

    sequences = sequences_for(config.vocab_size, seed + 2, pad_id=0)
    reference = reference_hidden(run, sequences, pad_id=0)
    # sentence-transformers' own modules pool the padded batch.
    input_ids, mask = padded_batch(sequences, 0)
    with torch.no_grad():
        features = {"token_embeddings": run(input_ids, mask), "attention_mask": mask}
        features = normalize(pooling(features))
    reference["pooled"] = rows(features["sentence_embedding"])
    write_reference(folder, reference)


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)
    torch.set_num_threads(1)
    make_qwen2("qwen2_tied", tie=True, rope_theta=10_000.0, seed=11)
    make_qwen2("qwen2_untied", tie=False, rope_theta=1_000_000.0, seed=23)
    make_qwen2_5_vl(seed=37)
    make_bert(seed=51)
    for name in sorted(os.listdir(FIXTURES)):
        folder = os.path.join(FIXTURES, name)
        if os.path.isdir(folder):
            size = sum(
                os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(folder)
                for f in files
            )
            print(f"{name}: {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
