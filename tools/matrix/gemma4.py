#!/usr/bin/env python3
"""A tiny Gemma 4 (Gemma4ForConditionalGeneration: sliding + full attention text decoder with per-layer embeddings,
and its vision tower; no audio tower) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout: config.json with Gemma 4's keys at toy size (written as Google's published
configs are, with "global_head_dim" and "num_global_key_value_heads" in the text config: chatllm.cpp's
Gemma4Converter reads them, and transformers 5.x, which itself writes "per_layer_config" instead, still reads them),
"audio_config": null (chatllm.cpp then skips the audio tower; convert.py lists no audio tensors), processor_config.json
(chatllm.cpp builds the vision tower only if it has a "video_processor" entry), a SentencePiece-style BPE
tokenizer.json (Gemma 4's special tokens, byte-fallback tokens <0x00>..<0xFF>, "▁" word pieces) and
model.safetensors with transformers' tensor names. It is converted with chatllm.cpp's own convert.py (f32); the
file is about 0.5 MB.

    python tools/make_matrix.py gemma4     # writes models/matrix/gemma4.bin

Sizes: text 2 layers ("sliding_attention" then "full_attention", as Gemma 4 ends on a full layer): hidden 64,
4 heads, 2 KV heads, head_dim 16 (sliding) / global_head_dim 32 (full, proportional RoPE on a quarter), per-layer
input 16 (Gemma 4 E2B/E4B's PLE), sliding window 512 (chatllm.cpp accepts only 512 or 1024), logit soft-cap 30;
tied embeddings (convert.py asserts it). Vision: 2 blocks, hidden 32, 2 heads, head_dim 16, 16-pixel patches,
3x3 pooling (Gemma 4's), a 64-entry 2-D position table. The vision config also carries "global_head_dim" (the
vision tower has no global layers; transformers ignores it): chatllm.cpp reads it with JSON ToInt, which throws
std::error_code on a missing key and aborts the load (models/gemma4.cpp VisualEmbeddingGeneration::load_more).

The position helper this family exercises is inside the ViT: every vision block's attention,
gemma::vit::VisionAttention, is a TensorPosHelperPrelude (models/gemma4.cpp:1105) that creates a TensorPosHelper2D
and sets the static TensorPosHelperParam (gemma4.cpp:1110) while its base attention is built, then clears it with
TensorPosHelperPrelude::done() in its constructor body (gemma4.cpp:1114). The model-level gemma::v4::Prelude
(gemma4.cpp:2417, BlockParams::PadEmbedding) is cleared by Prelude::done() at the end of
LLMConditionalGeneration's constructor (gemma4.cpp:2473).

write_media(folder) writes a 96x96 PNG for PROMPT (6x6 patches, 4 soft tokens after the 3x3 pooling: chatllm.cpp
pads images to a multiple of patch x pooling = 48 pixels, so 96 is taken as it is); PROMPT_TEXT is text only.
chatllm.cpp reads images through ImageMagick's `identify` and `convert` commands (src/vision_process.cpp:
image_dimension, image_load); without them the image is silently dropped and only the text is answered.
position_embedding_size must be at least the number of patches of an image: chatllm.cpp sizes each vision
attention's position tensor from it (TensorPosHelper2D(position_embedding_size) -> 4 x that many ints).

Every tensor is drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. The
embedding rows (which are also the output head: tied) of special tokens and byte-fallback tokens are zero: their
logits are then 0 while word pieces' spread around it, so greedy decoding prints text and never <turn|>.
"""

import json
from pathlib import Path

from _shared import SeededTensors, write_square_png

FAMILY = "gemma4"
PATH = "C"
ARCH = "Gemma4ForConditionalGeneration"
NAME = "tiny-gemma4"
CONVERT_ARGS: list[str] = []
RUN_ARGS: list[str] = []
MEDIA_FILE = "tiny-gemma4.png"
PROMPT_TEXT = "hello"
# PROMPT names MEDIA_FILE relative to the working folder; write_media(folder) returns it with the absolute path
PROMPT = [{"type": "image", "file": MEDIA_FILE}, {"type": "text", "text": "What is in the image?"}]
IMAGE_SIZE = 96

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=32,
            intermediate_size=128, num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"],
            sliding_window=512, hidden_size_per_layer_input=16, max_position_embeddings=4096,
            final_logit_softcapping=30.0)
ROPE = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0}}
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
              head_dim=16, global_head_dim=16, patch_size=16, pooling_kernel_size=3, position_embedding_size=64,
              rope_parameters={"rope_type": "default", "rope_theta": 100.0}, standardize=False,
              use_clipped_linears=False)
SCALE = 0.05
# Gemma 4's control tokens first (<pad> 0, <eos> 1, <bos> 2, <unk> 3 as in Gemma's vocabulary), then the turn,
# media, channel and tool markers chatllm.cpp looks up by name (models/gemma4.cpp Tokenizer::load)
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>", "<|image>", "<image|>",
                  "<|image|>", "<|audio>", "<audio|>", "<|audio|>", "<|video|>", "<|channel>", "<channel|>",
                  "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>", "<|tool>", "<tool|>",
                  "<|think|>"]
WORDS = ["the", "and", "hello", "world", "model", "chat", "gemma", "image", "vision", "what", "token", "text",
         "memory", "bench", "tiny", "you", "are", "user", "system", "is", "of", "to", "in", "it", "on", "that", "with"]
SPACE = "\u2581"


def bpe_vocabulary() -> tuple[list[str], list[str], list[int]]:
    """Special tokens, the 256 byte-fallback tokens, single characters, then the merges that build WORDS and
    "▁"+word left to right. Returns the tokens, the merges and the ids of the word pieces (the tokens greedy
    decoding may print)."""
    tokens = list(SPECIAL_TOKENS) + [f"<0x{b:02X}>" for b in range(256)]
    chars = sorted(set(SPACE + "".join(WORDS)))
    tokens += chars
    known, merges, pieces = set(tokens), [], []
    for word in WORDS:
        for start in ("", SPACE):
            seq = ([start] if start else []) + list(word)
            left = seq[0]
            for c in seq[1:]:
                joined = left + c
                if joined not in known:
                    known.add(joined)
                    tokens.append(joined)
                    merges.append(f"{left} {c}")
                left = joined
    text_ids = [i for i, t in enumerate(tokens) if i >= len(SPECIAL_TOKENS) + 256 and t != SPACE]
    return tokens, merges, text_ids


def write_tokenizer(folder: Path) -> tuple[dict, list[int], int]:
    """tokenizer.json, tokenizer_config.json; returns {special token: id}, the word-piece ids and the vocab size."""
    tokens, merges, text_ids = bpe_vocabulary()
    vocab = {t: i for i, t in enumerate(tokens)}
    ids = {t: vocab[t] for t in SPECIAL_TOKENS}
    added = [{"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    tokenizer = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
                 "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
                 "pre_tokenizer": None, "post_processor": None,
                 "decoder": {"type": "Sequence", "decoders": [
                     {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
                 "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                           "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                           "ignore_merges": False, "vocab": vocab, "merges": merges}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=1), encoding="utf-8")
    config = {"add_bos_token": True, "add_eos_token": False,
              "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
              "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
              "mask_token": "<mask>", "model_max_length": TEXT["max_position_embeddings"],
              "tokenizer_class": "GemmaTokenizer", "spaces_between_special_tokens": False,
              "boi_token": "<|image>", "eoi_token": "<image|>", "image_token": "<|image|>",
              "boa_token": "<|audio>", "eoa_token": "<audio|>", "audio_token": "<|audio|>",
              "chat_template": "{{ bos_token }}{% for message in messages %}<|turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}\n\n<|image|>\n\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<turn|>\n{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return ids, text_ids, len(tokens)


def model_config(vocab_size: int, ids: dict, seed: int) -> dict:
    """config.json as Google's Gemma 4 checkpoints have it, at toy size."""
    text = dict(TEXT, model_type="gemma4_text", vocab_size=vocab_size, vocab_size_per_layer_input=vocab_size,
                hidden_activation="gelu_pytorch_tanh", attention_bias=False, attention_dropout=0.0,
                attention_k_eq_v=False, num_global_key_value_heads=None, num_kv_shared_layers=0,
                enable_moe_block=False, use_double_wide_mlp=False, num_experts=None, top_k_experts=None,
                moe_intermediate_size=None, use_bidirectional_attention=None, initializer_range=0.02,
                rms_norm_eps=1e-6, rope_parameters=json.loads(json.dumps(ROPE)), tie_word_embeddings=True,
                use_cache=True, dtype="float32", bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"],
                pad_token_id=ids["<pad>"])
    vision = dict(json.loads(json.dumps(VISION)), model_type="gemma4_vision", hidden_activation="gelu_pytorch_tanh",
                  rms_norm_eps=1e-6, attention_bias=False, attention_dropout=0.0, initializer_range=0.02,
                  max_position_embeddings=131072, dtype="float32")
    return {"architectures": [ARCH], "model_type": "gemma4", "dtype": "float32",
            "text_config": text, "vision_config": vision, "audio_config": None, "tie_word_embeddings": True,
            "boi_token_id": ids["<|image>"], "eoi_token_id": ids["<image|>"], "image_token_id": ids["<|image|>"],
            "video_token_id": ids["<|video|>"], "boa_token_id": ids["<|audio>"], "eoa_token_index": ids["<audio|>"],
            "audio_token_id": ids["<|audio|>"], "initializer_range": 0.02,
            "asrbench_seeded": {"family": FAMILY, "seed": seed, "tool": "tools/matrix/gemma4.py"}}


def processor_config() -> dict:
    """processor_config.json: chatllm.cpp reads "video_processor" (mean, std, max_soft_tokens, num_frames)."""
    common = {"do_convert_rgb": True, "do_rescale": True, "do_resize": True, "rescale_factor": 1 / 255,
              "image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0], "patch_size": VISION["patch_size"],
              "pooling_kernel_size": VISION["pooling_kernel_size"], "resample": 3}
    return {"processor_class": "Gemma4Processor", "image_seq_length": 70,
            "image_processor": dict(common, image_processor_type="Gemma4ImageProcessor", do_normalize=False,
                                    max_soft_tokens=70),
            "video_processor": dict(common, video_processor_type="Gemma4VideoProcessor", do_normalize=True,
                                    max_soft_tokens=70, num_frames=32, do_sample_frames=True)}


def weights(vocab_size: int, text_ids: list[int], seed: int) -> dict:
    """Every tensor of the checkpoint, with transformers' names, drawn in a fixed order from one generator."""
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add, fill = tensors.state, tensors.add, tensors.fill

    t = TEXT
    h, heads, kv, ff, ple, layers = (t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"],
                                     t["intermediate_size"], t["hidden_size_per_layer_input"], t["num_hidden_layers"])
    lm = "model.language_model."
    add(lm + "embed_tokens.weight", vocab_size, h)
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[text_ids] = True
    state[lm + "embed_tokens.weight"][~keep] = 0      # tied output head: special and byte tokens get logit 0
    add(lm + "embed_tokens_per_layer.weight", vocab_size, layers * ple)
    add(lm + "per_layer_model_projection.weight", layers * ple, h)
    fill(lm + "per_layer_projection_norm.weight", ple, 1)
    for i, kind in enumerate(t["layer_types"]):
        p = f"{lm}layers.{i}."
        hd = t["head_dim"] if kind == "sliding_attention" else t["global_head_dim"]
        state[p + "layer_scalar"] = torch.ones(1)
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm", "post_per_layer_input_norm"):
            fill(f"{p}{norm}.weight", h, 1)          # Gemma 4's RMSNorm scales by weight
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
        add(p + "per_layer_input_gate.weight", ple, h)
        add(p + "per_layer_projection.weight", h, ple)
    fill(lm + "norm.weight", h, 1)

    v = VISION
    vh, vff, ps, vhd = v["hidden_size"], v["intermediate_size"], v["patch_size"], v["head_dim"]
    vis = "model.vision_tower."
    add(vis + "patch_embedder.input_proj.weight", vh, 3 * ps * ps, scale=0.02)
    add(vis + "patch_embedder.position_embedding_table", 2, v["position_embedding_size"], vh)
    for i in range(v["num_hidden_layers"]):
        p = f"{vis}encoder.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            fill(f"{p}{norm}.weight", vh, 1)
        a = p + "self_attn."
        add(a + "q_proj.linear.weight", v["num_attention_heads"] * vhd, vh)
        add(a + "k_proj.linear.weight", v["num_key_value_heads"] * vhd, vh)
        add(a + "v_proj.linear.weight", v["num_key_value_heads"] * vhd, vh)
        add(a + "o_proj.linear.weight", vh, v["num_attention_heads"] * vhd)
        fill(a + "q_norm.weight", vhd, 1)
        fill(a + "k_norm.weight", vhd, 1)
        add(p + "mlp.gate_proj.linear.weight", vff, vh)
        add(p + "mlp.up_proj.linear.weight", vff, vh)
        add(p + "mlp.down_proj.linear.weight", vh, vff)
    add("model.embed_vision.embedding_projection.weight", h, vh)
    return state


def build_checkpoint(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, text_ids, vocab_size = write_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps(model_config(vocab_size, ids, seed), indent=1), encoding="utf-8")
    (folder / "processor_config.json").write_text(json.dumps(processor_config(), indent=1), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": ids["<bos>"], "eos_token_id": [ids["<eos>"], ids["<turn|>"]], "pad_token_id": ids["<pad>"],
         "do_sample": False}, indent=1), encoding="utf-8")
    save_file(weights(vocab_size, text_ids, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})


def write_media(folder: Path) -> None:
    """Writes MEDIA_FILE, a 96x96 gradient with a white square, into folder, for PROMPT."""
    last = IMAGE_SIZE - 1
    write_square_png(Path(folder) / MEDIA_FILE, IMAGE_SIZE, range(30, 66),
                     lambda x, y: (x * 255 // last, y * 255 // last, 128))


# The rows tests/test_matrix.py runs besides the default one (the image prompt)
EXTRA_ROWS = {"text": {"prompt": PROMPT_TEXT}}
