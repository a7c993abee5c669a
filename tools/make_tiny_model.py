#!/usr/bin/env python3
"""Write models/tiny-qwen3-asr.bin: Qwen3-ASR's real architecture at toy size, with seeded random weights.

It builds a checkpoint in Hugging Face layout (config, preprocessor config, byte-level BPE tokenizer with
Qwen3-ASR's special tokens, weights) in a temporary folder and converts it with chatllm.cpp's own convert.py,
so the file is exactly what chatllm.cpp's loader expects. Its transcripts are gibberish; its load, audio
decode, encoder, decoder, streaming, restart and destroy run the same C++ code as the real model's.

    python tools/make_tiny_model.py [--out models/tiny-qwen3-asr.bin] [--seed 0] [--chatllm-dir chatllm.cpp]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
            num_hidden_layers=2)
AUDIO = dict(d_model=64, encoder_attention_heads=2, encoder_ffn_dim=128, encoder_layers=2, num_mel_bins=128,
             downsample_hidden_size=32, max_source_positions=1500, n_window=50, n_window_infer=800,
             conv_chunksize=500)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_end|>",
                  "<|audio_pad|>", "<asr_text>", "<timestamp>"]
LANGUAGES = ["Chinese", "English", "Cantonese", "Japanese", "Korean"]


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


def tokenizer_files(folder: Path) -> int:
    alphabet = byte_level_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    added = [{"id": len(vocab) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPECIAL_TOKENS)]
    tokenizer = {"version": "1.0", "added_tokens": added, "normalizer": None,
                 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
                 "decoder": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                           "byte_fallback": False, "vocab": vocab, "merges": []}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = {"added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
              "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 4096,
              "tokenizer_class": "Qwen2Tokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return len(vocab) + len(added)


def model_config(vocab_size: int) -> dict:
    text = dict(TEXT, vocab_size=vocab_size, hidden_act="silu", max_position_embeddings=4096, rope_theta=1000000.0,
                rms_norm_eps=1e-6, attention_bias=False, tie_word_embeddings=False, use_sliding_window=False,
                bos_token_id=SPECIAL_TOKENS.index("<|endoftext|>") + 256, eos_token_id=SPECIAL_TOKENS.index("<|im_end|>") + 256,
                rope_scaling={"mrope_section": [4, 2, 2], "mrope_interleaved": True, "interleaved": True, "rope_type": "default"})
    audio = dict(AUDIO, output_dim=TEXT["hidden_size"], activation_function="gelu", num_hidden_layers=AUDIO["encoder_layers"])
    return {"architectures": ["Qwen3ASRForConditionalGeneration"], "model_type": "qwen3_asr",
            "support_languages": LANGUAGES,
            "thinker_config": {"model_type": "qwen3_asr", "audio_config": audio, "text_config": text,
                               "audio_token_id": SPECIAL_TOKENS.index("<|audio_pad|>") + 256}}


def preprocessor_config() -> dict:
    return {"feature_extractor_type": "WhisperFeatureExtractor", "chunk_length": 30, "feature_size": 128,
            "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "sampling_rate": 16000}


def weights(vocab_size: int, seed: int) -> dict:
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}

    def add(name, *shape, scale=0.05):
        state[name] = (torch.randn(*shape, generator=generator) * scale).to(torch.float32)

    def ones(name, n):
        state[name] = torch.ones(n)

    h, hd, heads, kv, ff = (TEXT[k] for k in ("hidden_size", "head_dim", "num_attention_heads", "num_key_value_heads", "intermediate_size"))
    add("thinker.model.embed_tokens.weight", vocab_size, h)
    for i in range(TEXT["num_hidden_layers"]):
        p = f"thinker.model.layers.{i}."
        ones(p + "input_layernorm.weight", h)
        ones(p + "post_attention_layernorm.weight", h)
        add(p + "mlp.gate_proj.weight", ff, h)
        add(p + "mlp.up_proj.weight", ff, h)
        add(p + "mlp.down_proj.weight", h, ff)
        add(p + "self_attn.q_proj.weight", heads * hd, h)
        add(p + "self_attn.k_proj.weight", kv * hd, h)
        add(p + "self_attn.v_proj.weight", kv * hd, h)
        add(p + "self_attn.o_proj.weight", h, heads * hd)
        ones(p + "self_attn.q_norm.weight", hd)
        ones(p + "self_attn.k_norm.weight", hd)
    ones("thinker.model.norm.weight", h)
    add("thinker.lm_head.weight", vocab_size, h)

    d, aff, ds, mel = AUDIO["d_model"], AUDIO["encoder_ffn_dim"], AUDIO["downsample_hidden_size"], AUDIO["num_mel_bins"]
    a = "thinker.audio_tower."
    for i in range(AUDIO["encoder_layers"]):
        p = f"{a}layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            add(p + f"self_attn.{proj}.weight", d, d)
            add(p + f"self_attn.{proj}.bias", d)
        add(p + "fc1.weight", aff, d)
        add(p + "fc1.bias", aff)
        add(p + "fc2.weight", d, aff)
        add(p + "fc2.bias", d)
        ones(p + "self_attn_layer_norm.weight", d)
        add(p + "self_attn_layer_norm.bias", d)
        ones(p + "final_layer_norm.weight", d)
        add(p + "final_layer_norm.bias", d)
    add(a + "conv2d1.weight", ds, 1, 3, 3)
    add(a + "conv2d1.bias", ds)
    add(a + "conv2d2.weight", ds, ds, 3, 3)
    add(a + "conv2d2.bias", ds)
    add(a + "conv2d3.weight", ds, ds, 3, 3)
    add(a + "conv2d3.bias", ds)
    freq = (((mel + 1) // 2 + 1) // 2 + 1) // 2
    add(a + "conv_out.weight", d, ds * freq)
    ones(a + "ln_post.weight", d)
    add(a + "ln_post.bias", d)
    add(a + "proj1.weight", d, d)
    add(a + "proj1.bias", d)
    add(a + "proj2.weight", h, d)
    add(a + "proj2.bias", h)
    return state


def build_checkpoint(folder: Path, seed: int) -> None:
    import torch

    vocab_size = tokenizer_files(folder)
    (folder / "config.json").write_text(json.dumps(model_config(vocab_size), indent=1), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=1), encoding="utf-8")
    torch.save(weights(vocab_size, seed), folder / "pytorch_model.bin")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PROJECT_DIR / "models" / "tiny-qwen3-asr.bin"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chatllm-dir", default=os.environ.get("CHATLLM_DIR") or str(PROJECT_DIR / "chatllm.cpp"))
    args = parser.parse_args(argv)
    convert = Path(args.chatllm_dir) / "convert.py"
    if not convert.is_file():
        print(f"make_tiny_model.py: error: {convert} not found: run git submodule update --init (or set CHATLLM_DIR)",
              file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("make_tiny_model.py: error: torch is not installed: pip install -r requirements-fixture.txt", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_checkpoint(Path(tmp), args.seed)
        partial = out.with_suffix(".partial")
        result = subprocess.run([sys.executable, str(convert), "-i", tmp, "-o", str(partial), "-t", "f32",
                                 "-n", "tiny-qwen3-asr"], capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
            print("make_tiny_model.py: error: chatllm.cpp's convert.py failed (output above)", file=sys.stderr)
            return 1
        os.replace(partial, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
