#!/usr/bin/env python3
"""A tiny Qwen3-VL (Qwen3VLForConditionalGeneration: Qwen3 text decoder with interleaved M-RoPE, a ViT with 2x2 patch
merge and DeepStack) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout, written as Qwen's published Qwen3-VL checkpoints are: config.json with the
text config's "rope_scaling" {"mrope_interleaved": true, "mrope_section": [...]} and "rope_theta" (the keys
chatllm.cpp's Qwen3VLConverter reads; transformers reads them too and turns them into rope_parameters),
preprocessor_config.json (image mean/std: chatllm.cpp builds the vision tower only if this file is in the model),
a byte-level BPE tokenizer with Qwen's special tokens (vision tokens included) and model.safetensors with
transformers' tensor names. It is converted with chatllm.cpp's own convert.py (f32); the file is about 0.6 MB.

    python tools/make_matrix.py qwen3_vl     # writes models/matrix/qwen3_vl.bin

Sizes: 2 text layers (hidden 64, 4 heads, 2 KV heads, head_dim 16, M-RoPE section [4, 2, 2] of the 8 rotary
frequencies); a 2-block vision tower (hidden 32, 16-pixel patches, temporal patch 2, 2x2 merge, an 8x8 learned
position table that is bicubically interpolated to the image's grid) with one DeepStack merger (vision block 0 ->
text layer 0).

The position helper this family exercises: chatllm.cpp's qwen::v3_vl::ConditionalGeneration is a
TensorPosHelperPrelude over a v2_5_vl::TensorPosHelper3D (models/qwen.cpp:2586 at the pinned commit), which sets the
static TensorPosHelperParam that every text layer's attention picks up while it is built; TensorPosHelperPrelude::done()
(models/qwen.cpp:2616) clears it at the end of the constructor.

write_media(folder) writes a 64x64 PNG for PROMPT (4x4 patches, 4 image tokens after the 2x2 merge); PROMPT_TEXT is
text only. chatllm.cpp reads images through ImageMagick's `identify` and `convert` commands
(src/vision_process.cpp: image_dimension, image_load); without them the image is silently dropped and only the text
is answered. RUN_ARGS_NO_VISION (`--max_proj_length 0`) skips the vision tower for text-only runs.

Every tensor is drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. The rows
of lm_head that are not whole printable text (byte fragments, control bytes, special tokens) are zero: their logits
are then 0 while text tokens' spread around it, so greedy decoding prints text and never the end token.
"""

import json
from pathlib import Path

from _shared import SeededTensors, qwen_preprocessor_config, qwen_vision_blocks, qwen_vl_config, write_square_png, write_tokenizer as qwen_bpe_tokenizer

FAMILY = "qwen3_vl"
PATH = "D"
ARCH = "Qwen3VLForConditionalGeneration"
NAME = "tiny-qwen3_vl"
CONVERT_ARGS: list[str] = []
RUN_ARGS: list[str] = []
RUN_ARGS_NO_VISION = ["--max_proj_length", "0"]      # text only: the vision tower is not built
MEDIA_FILE = "tiny-qwen3_vl.png"
PROMPT_TEXT = "hello"
# PROMPT names MEDIA_FILE relative to the working folder; write_media(folder) returns it with the absolute path
PROMPT = [{"type": "image", "file": MEDIA_FILE}, {"type": "text", "text": "What is in the image?"}]

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
            num_hidden_layers=2, max_position_embeddings=4096)
ROPE_THETA = 5000000.0
# head_dim 16 -> 8 rotary frequencies, split t/h/w as [4, 2, 2] and interleaved (Qwen3-VL: [24, 20, 20] of 64)
ROPE_SCALING = {"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True}
VISION = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64, patch_size=16, spatial_merge_size=2,
              temporal_patch_size=2, out_hidden_size=TEXT["hidden_size"], num_position_embeddings=64, in_channels=3,
              hidden_act="gelu_pytorch_tanh", initializer_range=0.02, deepstack_visual_indexes=[0])
SCALE = 0.05
# Qwen's special tokens in Qwen's order; <|endoftext|> must come right before <|im_start|> (chatllm.cpp's Qwen
# tokenizer takes the id before <|im_start|> as bos/eos/pad)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                  "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                  "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
WORDS = ["the", "and", "hello", "world", "model", "chat", "qwen", "image", "vision", "what", "token", "text",
         "memory", "bench", "tiny", "you", "are", "user", "system", "is", "of", "to", "in", "it", "on", "that", "with"]


def write_tokenizer(folder: Path) -> tuple[dict, list[int]]:
    return qwen_bpe_tokenizer(folder, SPECIAL_TOKENS, WORDS, TEXT["max_position_embeddings"], vision=True)


def model_config(vocab_size: int, ids: dict, seed: int) -> dict:
    """config.json as Qwen's Qwen3-VL checkpoints have it, at toy size."""
    text = dict(TEXT, model_type="qwen3_vl_text", vocab_size=vocab_size, hidden_act="silu", attention_bias=False,
                attention_dropout=0.0, initializer_range=0.02, rms_norm_eps=1e-6, rope_theta=ROPE_THETA,
                rope_scaling=dict(ROPE_SCALING), tie_word_embeddings=False, use_cache=True, dtype="float32",
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    return qwen_vl_config(ARCH, "qwen3_vl", text, dict(VISION, model_type="qwen3_vl"), ids, FAMILY, seed)


def preprocessor_config() -> dict:
    return qwen_preprocessor_config(VISION)


def weights(vocab_size: int, text_ids: list[int], seed: int) -> dict:
    """Every tensor of the checkpoint, with transformers' names, drawn in a fixed order from one generator."""
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add, fill = tensors.state, tensors.add, tensors.fill

    t = TEXT
    h, hd, heads, kv, ff = t["hidden_size"], t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"], t["intermediate_size"]
    lm = "model.language_model."
    add(lm + "embed_tokens.weight", vocab_size, h)
    for i in range(t["num_hidden_layers"]):
        p = f"{lm}layers.{i}."
        fill(p + "input_layernorm.weight", h, 1)          # Qwen3's RMSNorm scales by weight
        fill(p + "post_attention_layernorm.weight", h, 1)
        a = p + "self_attn."
        add(a + "q_proj.weight", heads * hd, h)
        add(a + "k_proj.weight", kv * hd, h)
        add(a + "v_proj.weight", kv * hd, h)
        add(a + "o_proj.weight", h, heads * hd)
        fill(a + "q_norm.weight", hd, 1)
        fill(a + "k_norm.weight", hd, 1)
        add(p + "mlp.gate_proj.weight", ff, h)
        add(p + "mlp.up_proj.weight", ff, h)
        add(p + "mlp.down_proj.weight", h, ff)
    fill(lm + "norm.weight", h, 1)
    add("lm_head.weight", vocab_size, h)
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[text_ids] = True
    state["lm_head.weight"][~keep] = 0

    v = VISION
    vh, merged = v["hidden_size"], v["hidden_size"] * v["spatial_merge_size"] ** 2
    vis = "model.visual."
    qwen_vision_blocks(tensors, v, vis)

    def merger(p, norm_dim):
        fill(p + "norm.weight", norm_dim, 1)
        fill(p + "norm.bias", norm_dim, 0)
        add(p + "linear_fc1.weight", merged, merged)
        add(p + "linear_fc1.bias", merged)
        add(p + "linear_fc2.weight", v["out_hidden_size"], merged)
        add(p + "linear_fc2.bias", v["out_hidden_size"])

    merger(vis + "merger.", vh)                                   # norm before the 2x2 shuffle
    for i in range(len(v["deepstack_visual_indexes"])):
        merger(f"{vis}deepstack_merger_list.{i}.", merged)        # DeepStack: norm after the shuffle
    return state


def build_checkpoint(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, text_ids = write_tokenizer(folder)
    vocab_size = max(ids.values()) + 1
    (folder / "config.json").write_text(json.dumps(model_config(vocab_size, ids, seed), indent=1), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=1), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
         "pad_token_id": ids["<|endoftext|>"], "do_sample": False}, indent=1), encoding="utf-8")
    save_file(weights(vocab_size, text_ids, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})


def write_media(folder: Path) -> None:
    """Writes MEDIA_FILE, a 64x64 gradient with a white square, into folder, for PROMPT."""
    write_square_png(Path(folder) / MEDIA_FILE, 64, range(20, 44), lambda x, y: (x * 4, y * 4, 128))


# The rows tests/test_matrix.py runs besides the default one (the image prompt)
EXTRA_ROWS = {"text": {"prompt": PROMPT_TEXT}}
