#!/usr/bin/env python3
"""Generates encoder/fixtures/qwen2_5_vl_flat/: a tiny random Qwen2_5_VLForConditionalGeneration
saved by a transformers of the 4.49-4.51 line, the one Qwen2.5-VL-7B-Instruct's published
files come from. Its config.json is the *flat* layout (text settings at the top level,
`rope_scaling` with `mrope_section`, `vision_config` beside them) and its tensors are named
`model.layers.*` / `model.embed_tokens` / `model.norm` / `lm_head` / `visual.*`, like the real
checkpoint. make_fixtures.py's `qwen2_5_vl` fixture is the same architecture as a current
transformers writes it (text settings nested in `text_config`).

The reference hidden states are those of the language model inside the full VL model's forward
(`Qwen2_5_VLForConditionalGeneration(input_ids, attention_mask)`), which computes the
multimodal (3-stream) RoPE positions with `get_rope_index` from the attention mask, as for real
text-only input. reference.json has make_fixtures.py's layout plus the versions used.

Its own venv, since transformers 4.51 and 5.x cannot share one:
  python3 -m venv .venv-hf-legacy
  .venv-hf-legacy/bin/pip install torch==2.7.1 transformers==4.51.3 safetensors numpy
  .venv-hf-legacy/bin/python encoder/scripts/make_qwen2_5_vl_flat_fixture.py
"""

import os
import sys

import torch
import transformers

from make_fixtures import (
    INIT_RANGE,
    reference_hidden,
    save_random_model,
    sequences_for,
    tiny_qwen2_5_vl_settings,
    VL_MARKERS,
    write_reference,
)

NAME = "qwen2_5_vl_flat"


def main():
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    if (major, minor) >= (4, 52):
        sys.exit(
            f"transformers {transformers.__version__}: this fixture needs a 4.49-4.51 release, "
            "which writes the flat Qwen2.5-VL config (see the docstring)"
        )
    torch.set_num_threads(1)
    seed = 41
    text, vision = tiny_qwen2_5_vl_settings()
    vision["initializer_range"] = INIT_RANGE
    config = transformers.Qwen2_5_VLConfig(
        **text,
        vision_config=vision,
        **VL_MARKERS,
        bos_token_id=94,
        eos_token_id=95,
        tie_word_embeddings=False,
    )
    model, folder = save_random_model(
        transformers.Qwen2_5_VLForConditionalGeneration, config, NAME, seed
    )

    captured = []
    model.model.register_forward_hook(
        lambda module, args, output: captured.append(output.last_hidden_state)
    )

    def run(input_ids, mask):
        captured.clear()
        with torch.no_grad():
            out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        (hidden,) = captured
        assert torch.equal(hidden, out.hidden_states[-1])
        return hidden

    # Token ids below the image/video/vision markers: plain text.
    sequences = sequences_for(90, seed + 2)
    reference = reference_hidden(run, sequences, pad_id=0)
    reference["versions"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    write_reference(folder, reference)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(
        f"{NAME}: {size} bytes (torch {torch.__version__}, transformers {transformers.__version__})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
