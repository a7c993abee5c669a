#!/usr/bin/env python3
"""A tiny Qwen3 (text only, Qwen3ForCausalLM) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout: config.json as Qwen3's (q/k norms, no bias; untied lm_head as Qwen3-8B's, so greedy output varies), a
byte-level BPE tokenizer with Qwen's special tokens (<|endoftext|>, <|im_start|>, <|im_end|> right after one another,
as chatllm.cpp's Qwen tokenizer takes <|endoftext|> to be the id before <|im_start|>) and model.safetensors. It is
converted with chatllm.cpp's own convert.py (-t f32; at this commit convert.py still stores every 2-D tensor
as F16, which chatllm.cpp widens to f32 on load); the file is about 0.27 MB.

    python qwen3.py OUT.bin [--seed N] [--chatllm-dir DIR]

Every tensor is drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. The rows
of lm_head that are not whole printable text (byte fragments, control bytes, special tokens) are zero:
their logits are then 0 while text tokens' spread around it, so greedy decoding prints text and never the end token.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

DEFAULT_CHATLLM_DIR = Path(__file__).resolve().parents[2] / "chatllm.cpp"


def byte_level_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, the base vocabulary of Qwen's byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def bpe_vocabulary() -> tuple[list[str], list[str]]:
    """The byte alphabet, then the merges that build WORDS (and " "+word) left to right."""
    alphabet = byte_level_alphabet()
    tokens, merges, known = list(alphabet), [], set(alphabet)
    space = alphabet[ord(" ")]
    for word in WORDS:
        for start in ("", space):
            chars = [alphabet[b] for b in word.encode("utf-8")]
            left = start + chars[0] if start else chars[0]
            if start and left not in known:
                known.add(left)
                tokens.append(left)
                merges.append(f"{start} {chars[0]}")
            for c in chars[1:]:
                joined = left + c
                if joined not in known:
                    known.add(joined)
                    tokens.append(joined)
                    merges.append(f"{left} {c}")
                left = joined
    return tokens, merges


_BYTE_OF = {c: b for b, c in enumerate(byte_level_alphabet())}


def is_text(token: str) -> bool:
    try:
        text = bytes(_BYTE_OF[c] for c in token).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return False
    return text.isprintable()


def write_tokenizer(folder: Path) -> tuple[dict, list[int]]:
    """tokenizer.json, tokenizer_config.json; returns {special token: id} and the ids of the whole-text tokens."""
    tokens, merges = bpe_vocabulary()
    vocab = {t: i for i, t in enumerate(tokens)}
    ids = {t: len(tokens) + i for i, t in enumerate(SPECIAL_TOKENS)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": t.startswith("<|")} for t, i in ids.items()]
    tokenizer = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": {"type": "NFC"},
                 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                     {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                      "behavior": "Isolated", "invert": False},
                     {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
                 "post_processor": None,
                 "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
                 "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                           "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                           "vocab": vocab, "merges": merges}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=1), encoding="utf-8")
    config = {"add_bos_token": False, "add_prefix_space": False,
              "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
              "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "errors": "replace",
              "model_max_length": TEXT["max_position_embeddings"], "split_special_tokens": False,
              "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
              "chat_template": "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return ids, [i for i, t in enumerate(tokens) if is_text(t)]


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

    generator = torch.Generator().manual_seed(seed)
    state = {}

    def add(name, *shape):
        state[name] = (torch.randn(*shape, generator=generator) * SCALE).contiguous()

    def ones(name, n):
        state[name] = torch.ones(n)

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


def convert(checkpoint: Path, out: Path, chatllm_dir: Path = DEFAULT_CHATLLM_DIR) -> None:
    partial = Path(str(out) + ".partial")
    cmd = [sys.executable, str(Path(chatllm_dir) / "convert.py"), "-i", str(checkpoint), "-o", str(partial),
           "-t", "f32", "-n", NAME, *CONVERT_ARGS]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
        raise RuntimeError("chatllm.cpp's convert.py failed (output above)")
    os.replace(partial, out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="model file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chatllm-dir", default=os.environ.get("CHATLLM_DIR") or str(DEFAULT_CHATLLM_DIR))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ckpt-qwen3-") as tmp:
        build_checkpoint(Path(tmp), args.seed)
        convert(Path(tmp), out, Path(args.chatllm_dir))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size:,} bytes) in {time.monotonic() - started:.1f} s")
    print(f"sha256 {digest}")
