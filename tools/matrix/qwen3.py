#!/usr/bin/env python3
"""A tiny Qwen3 (text only, Qwen3ForCausalLM) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout: config.json as Qwen3's (q/k norms, no bias; untied lm_head as Qwen3-8B's, so greedy output varies), a
byte-level BPE tokenizer with Qwen's special tokens (<|endoftext|>, <|im_start|>, <|im_end|> right after one another,
as chatllm.cpp's Qwen tokenizer takes <|endoftext|> to be the id before <|im_start|>) and model.safetensors. It is
converted with chatllm.cpp's own convert.py (-t f32; at this commit convert.py still stores every 2-D tensor
as F16, which chatllm.cpp widens to f32 on load); the file is about 0.27 MB.

    python tools/make_matrix.py qwen3     # writes models/matrix/qwen3.bin

Every tensor is drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. The rows
of lm_head that are not whole printable text (byte fragments, control bytes, special tokens) are zero:
their logits are then 0 while text tokens' spread around it, so greedy decoding prints text and never the end token.
"""

import json
from pathlib import Path

from _shared import SeededTensors, write_tokenizer as qwen_bpe_tokenizer

FAMILY = "qwen3"
PATH = "A"
ARCH = "Qwen3ForCausalLM"
NAME = "tiny-qwen3"
CONVERT_ARGS: list[str] = []
RUN_ARGS: list[str] = []
PROMPT = "hello"

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
            num_hidden_layers=2, max_position_embeddings=4096)
SCALE = 0.05
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# word pieces for the BPE merges: each word is merged left to right, with and without a leading space
WORDS = ["the", "and", "hello", "world", "model", "chat", "qwen", "token", "text", "memory", "bench", "tiny",
         "you", "are", "helpful", "assistant", "user", "system", "is", "of", "to", "in", "it", "on", "that", "with"]


def write_tokenizer(folder: Path) -> tuple[dict, list[int]]:
    return qwen_bpe_tokenizer(folder, SPECIAL_TOKENS, WORDS, TEXT["max_position_embeddings"], vision=False)


def model_config(vocab_size: int, ids: dict, seed: int) -> dict:
    """Qwen3's config.json keys, at toy size; rope_theta both flat (convert.py reads it) and in rope_parameters."""
    return dict(TEXT, architectures=[ARCH], model_type="qwen3", vocab_size=vocab_size, hidden_act="silu",
                attention_bias=False, attention_dropout=0.0, initializer_range=0.02, rms_norm_eps=1e-6,
                rope_theta=1000000.0, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                rope_scaling=None, use_sliding_window=False, sliding_window=None, max_window_layers=TEXT["num_hidden_layers"],
                tie_word_embeddings=False, use_cache=True, torch_dtype="float32",
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                asrbench_seeded={"family": FAMILY, "seed": seed, "tool": "tools/matrix/qwen3.py"})


def weights(vocab_size: int, text_ids: list[int], seed: int) -> dict:
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add, ones = tensors.state, tensors.add, tensors.ones

    h, hd, heads, kv, ff = (TEXT[k] for k in ("hidden_size", "head_dim", "num_attention_heads", "num_key_value_heads", "intermediate_size"))
    add("model.embed_tokens.weight", vocab_size, h)
    for i in range(TEXT["num_hidden_layers"]):
        p = f"model.layers.{i}."
        ones(p + "input_layernorm.weight", h)
        ones(p + "post_attention_layernorm.weight", h)
        add(p + "self_attn.q_proj.weight", heads * hd, h)
        add(p + "self_attn.k_proj.weight", kv * hd, h)
        add(p + "self_attn.v_proj.weight", kv * hd, h)
        add(p + "self_attn.o_proj.weight", h, heads * hd)
        ones(p + "self_attn.q_norm.weight", hd)
        ones(p + "self_attn.k_norm.weight", hd)
        add(p + "mlp.gate_proj.weight", ff, h)
        add(p + "mlp.up_proj.weight", ff, h)
        add(p + "mlp.down_proj.weight", h, ff)
    ones("model.norm.weight", h)
    add("lm_head.weight", vocab_size, h)
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[text_ids] = True
    state["lm_head.weight"][~keep] = 0
    return state


def build_checkpoint(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, text_ids = write_tokenizer(folder)
    vocab_size = max(ids.values()) + 1
    config = model_config(vocab_size, ids, seed)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
         "pad_token_id": ids["<|endoftext|>"], "do_sample": False}, indent=1), encoding="utf-8")
    save_file(weights(vocab_size, text_ids, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})
