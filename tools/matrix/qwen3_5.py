#!/usr/bin/env python3
"""A tiny Qwen3.5 (Qwen3_5ForConditionalGeneration: hybrid Gated DeltaNet + gated full attention, with its vision
tower) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout: config.json with Qwen3.5's keys at toy size (2 text layers: one
"linear_attention" (Gated DeltaNet) and one "full_attention", as Qwen3.5's pattern ends every group with a full
attention layer; interleaved M-RoPE on a quarter of the head; a 1-block vision tower with 16-pixel patches, 2x2
merge), preprocessor_config.json (image mean/std, which chatllm.cpp needs to build the vision tower), a byte-level
BPE tokenizer with Qwen's special tokens (vision tokens included) and model.safetensors. It is converted with
chatllm.cpp's own convert.py (f16, see CONVERT_ARGS); the file is about 0.5 MB.

    python tools/make_matrix.py qwen3_5     # writes models/matrix/qwen3_5.bin

Text runs with or without the vision tower: chatllm.cpp's `--max_proj_length 0` (RUN_ARGS_NO_VISION) drops
vision_config before the model is built, so the tower is skipped. write_media(folder) writes a 64x64 PNG for
PROMPT_IMAGE (4x4 patches, 4 image tokens after the 2x2 merge). chatllm.cpp reads images through ImageMagick's
`identify` and `convert` commands (src/vision_process.cpp: image_dimension, image_load); without them the image is
silently dropped (the text is still answered), and with --max_proj_length 0 an image prompt throws "Vision model
not loaded".

convert.py is given "-t f16" (CONVERT_ARGS, after the usual "-t f32"): see the note at CONVERT_ARGS.

Every tensor is drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. The rows
of lm_head that are not whole printable text (byte fragments, control bytes, special tokens) are zero: their logits
are then 0 while text tokens' spread around it, so greedy decoding prints text and never the end token.
"""

import json
import struct
from pathlib import Path

from _shared import SeededTensors, qwen_preprocessor_config, qwen_vision_blocks, qwen_vl_config, write_square_png, write_tokenizer as qwen_bpe_tokenizer

FAMILY = "qwen3_5"
PATH = "E"
ARCH = "Qwen3_5ForConditionalGeneration"
NAME = "tiny-qwen3_5"
# f16, not f32: the Gated DeltaNet's depthwise conv1d goes through ggml_conv_1d_dw, whose im2col is F16 and asserts
# an F16 kernel (ggml.c ggml_conv_1d_dw; ggml-cpu/ops.cpp:6200 in the built library); chatllm.cpp types that kernel after the file (config.dtype), so an f32 file
# aborts on the first token. Given after convert.py's "-t f32", argparse keeps this last value. The tensors are the
# same bytes either way: at this commit convert.py stores every 2-D+ tensor as F16 even for "-t f32"
# (tensor_type_fallback's default case, convert.py:828-829); only the file's dtype, hence the C++ tensor types, differ.
CONVERT_ARGS: list[str] = ["-t", "f16"]
RUN_ARGS: list[str] = []
PROMPT = "hello"
RUN_ARGS_NO_VISION = ["--max_proj_length", "0"]      # text only: the vision tower is not built
MEDIA_FILE = "tiny-qwen3_5.png"
PROMPT_IMAGE = [{"type": "image", "file": MEDIA_FILE}, {"type": "text", "text": "What is in the image?"}]

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32, intermediate_size=128,
            num_hidden_layers=2, max_position_embeddings=4096,
            layer_types=["linear_attention", "full_attention"],
            linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
            linear_num_key_heads=2, linear_num_value_heads=4)
# partial_rotary_factor 0.25 of head_dim 32: 8 rotary dims = 4 frequencies, split t/h/w as [2, 1, 1] (interleaved)
ROPE = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
        "mrope_section": [2, 1, 1], "mrope_interleaved": True}
VISION = dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, patch_size=16, spatial_merge_size=2,
              temporal_patch_size=2, out_hidden_size=TEXT["hidden_size"], num_position_embeddings=64, in_channels=3,
              hidden_act="gelu_pytorch_tanh", initializer_range=0.02)
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
    """config.json as transformers writes Qwen3.5's, at toy size. mtp_num_hidden_layers is 0: transformers has no
    multi-token-prediction weights, and convert.py would want mtp.* tensors for any other value."""
    text = dict(TEXT, model_type="qwen3_5_text", vocab_size=vocab_size, hidden_act="silu", attention_bias=False,
                attention_dropout=0.0, attn_output_gate=True, initializer_range=0.02, rms_norm_eps=1e-6,
                rope_parameters=dict(ROPE), mtp_num_hidden_layers=0, mtp_use_dedicated_embeddings=False,
                tie_word_embeddings=False, use_cache=True, dtype="float32",
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=None)
    return qwen_vl_config(ARCH, "qwen3_5", text, dict(VISION, model_type="qwen3_5_vision"), ids, FAMILY, seed)


def preprocessor_config() -> dict:
    return qwen_preprocessor_config(VISION)


def weights(vocab_size: int, text_ids: list[int], seed: int) -> dict:
    """Every tensor of the checkpoint, with transformers' names, drawn in a fixed order from one generator."""
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add, fill = tensors.state, tensors.add, tensors.fill

    t = TEXT
    h, hd, heads, kv, ff = t["hidden_size"], t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"], t["intermediate_size"]
    key_dim = t["linear_key_head_dim"] * t["linear_num_key_heads"]
    value_dim = t["linear_value_head_dim"] * t["linear_num_value_heads"]
    conv_dim = 2 * key_dim + value_dim
    nv = t["linear_num_value_heads"]

    lm = "model.language_model."
    add(lm + "embed_tokens.weight", vocab_size, h)
    for i, kind in enumerate(t["layer_types"]):
        p = f"{lm}layers.{i}."
        # Qwen3.5's RMSNorms scale by (1 + weight): zeros are the identity (transformers initialises them so)
        fill(p + "input_layernorm.weight", h, 0)
        fill(p + "post_attention_layernorm.weight", h, 0)
        if kind == "linear_attention":
            a = p + "linear_attn."
            add(a + "in_proj_qkv.weight", conv_dim, h)
            add(a + "in_proj_z.weight", value_dim, h)
            add(a + "in_proj_b.weight", nv, h)
            add(a + "in_proj_a.weight", nv, h)
            add(a + "conv1d.weight", conv_dim, 1, t["linear_conv_kernel_dim"], scale=0.3)
            fill(a + "dt_bias", nv, 1)
            # A drawn from [1, 16) as transformers does (uniform(0, 16)), kept away from 0
            state[a + "A_log"] = torch.log(1 + 15 * torch.rand(nv, generator=tensors.generator))
            fill(a + "norm.weight", t["linear_value_head_dim"], 1)   # the gated norm scales by weight itself
            add(a + "out_proj.weight", h, value_dim)
        else:
            a = p + "self_attn."
            add(a + "q_proj.weight", heads * hd * 2, h)   # query and output gate, interleaved per head
            add(a + "k_proj.weight", kv * hd, h)
            add(a + "v_proj.weight", kv * hd, h)
            add(a + "o_proj.weight", h, heads * hd)
            fill(a + "q_norm.weight", hd, 0)
            fill(a + "k_norm.weight", hd, 0)
        add(p + "mlp.gate_proj.weight", ff, h)
        add(p + "mlp.up_proj.weight", ff, h)
        add(p + "mlp.down_proj.weight", h, ff)
    fill(lm + "norm.weight", h, 0)
    add("lm_head.weight", vocab_size, h)
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[text_ids] = True
    state["lm_head.weight"][~keep] = 0

    v = VISION
    vh, merged = v["hidden_size"], v["hidden_size"] * v["spatial_merge_size"] ** 2
    vis = "model.visual."
    qwen_vision_blocks(tensors, v, vis)
    fill(vis + "merger.norm.weight", vh, 1)
    fill(vis + "merger.norm.bias", vh, 0)
    add(vis + "merger.linear_fc1.weight", merged, merged)
    add(vis + "merger.linear_fc1.bias", merged)
    add(vis + "merger.linear_fc2.weight", v["out_hidden_size"], merged)
    add(vis + "merger.linear_fc2.bias", v["out_hidden_size"])
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
    """Writes MEDIA_FILE, a 64x64 gradient with a white square, into folder, for PROMPT_IMAGE."""
    write_square_png(Path(folder) / MEDIA_FILE, 64, range(20, 44), lambda x, y: (x * 4, y * 4, 128))


# The rows tests/test_matrix.py runs besides the default one (text, with the vision tower built)
EXTRA_ROWS = {
    "noproj": {"run_args": RUN_ARGS_NO_VISION, "prompt": PROMPT},   # no ViT: nothing else clears the global helper
    "mismatched": {"file": "qwen3_5-mismatched.bin", "prompt": PROMPT},
}


def _refused_moe_layout(data: bytearray) -> None:
    """Set num_experts_per_tok = 2 and num_experts = 4 in the file's config: the constructor refuses that MoE layout
    ("unsupported MoE param") while building its first layer, after its prelude has handed out the position helper
    and before done(): the exception path of FINDINGS.md section 12."""
    config = struct.unpack_from("<i", data, 8)[0] + 8     # after the metadata, the model type and the version
    qwen3_5_fields = config + 11 * 4                       # after the 11 values every llama-like config starts with
    struct.pack_into("<ii", data, qwen3_5_fields + 16 * 4, 2, 4)


MISMATCHED = {"qwen3_5-mismatched.bin": _refused_moe_layout}
