#!/usr/bin/env python3
"""Write a Qwen3-ASR model for chatllm.cpp from seeded random weights: toy size, or Qwen3-ASR-0.6B's real size.

It builds a checkpoint in Hugging Face layout (config, preprocessor config, byte-level BPE tokenizer with Qwen3-ASR's
special tokens, weights) and converts it with chatllm.cpp's own convert.py, so the file is exactly what chatllm.cpp's
loader expects. The transcripts are gibberish; load, audio decode, encoder, decoder, streaming, restart and destroy
run the same C++ code as the real model's, and at --size 0.6b every tensor, the vocabulary and the file have the
real model's sizes, so memory and latency are the real model's too.

    python tools/make_model.py                       # tiny, f32: models/tiny-qwen3-asr.bin (about 0.5 MB)
    python tools/make_model.py --size 0.6b           # q4_0: models/seeded-qwen3-asr-0.6b-q4_0.bin (about 540 MB)
    python tools/make_model.py --size 0.6b --quant q8_0 --checkpoint models/seeded-0.6b-hf
    python tools/make_model.py --gguf                # also models/tiny-qwen3-asr.gguf for CrispASR, same weights

With --gguf, tools/gguf_from_checkpoint.py writes a GGUF for CrispASR from the same checkpoint, each tensor in the type
convert.py gives it (so the q4_0 blocks are the same bytes), and checks it against the chatllm.cpp file.

The config carries an "asrbench_seeded" entry, which chatllm.cpp's converter keeps in the file's metadata, so the
benchmark can tell a seeded model from a trained one (it then bounds generation and does not score accuracy).
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "matrix"))
from _shared import byte_level_alphabet, is_text  # noqa: E402  (Qwen's byte-level BPE, as the matrix's Qwen models use)

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Dimensions. 0.6b: Qwen3-ASR-0.6B's published config.json (see models/README.md for where each value was checked).
SIZES = {
    "tiny": {
        "text": dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                     num_hidden_layers=2, max_position_embeddings=4096, rope_scaling_section=[4, 2, 2]),
        "audio": dict(d_model=64, encoder_attention_heads=2, encoder_ffn_dim=128, encoder_layers=2, num_mel_bins=128,
                      downsample_hidden_size=32, max_source_positions=1500, n_window=50, n_window_infer=800,
                      conv_chunksize=500),
        "bpe_tokens": 256,       # the byte alphabet only
        "vocab_size": None,      # the tokenizer's size
        "quant": "f32",
        "scale": 0.05,
        "out": "tiny-qwen3-asr.bin",
    },
    "0.6b": {
        "text": dict(hidden_size=1024, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                     intermediate_size=3072, num_hidden_layers=28, max_position_embeddings=65536,
                     rope_scaling_section=[24, 20, 20]),
        "audio": dict(d_model=896, encoder_attention_heads=14, encoder_ffn_dim=3584, encoder_layers=18,
                      num_mel_bins=128, downsample_hidden_size=480, max_source_positions=1500, n_window=50,
                      n_window_infer=800, conv_chunksize=500, output_dim=1024),
        "bpe_tokens": 151643,    # Qwen2's byte-level BPE vocabulary; special tokens follow it
        "vocab_size": 151936,    # rows of the embedding and lm_head
        "quant": "q4_0",
        "scale": 0.02,
        "out": "seeded-qwen3-asr-0.6b-{quant}.bin",
    },
}
QUANTS = ("f32", "f16", "q8_0", "q4_0")
# Qwen3-ASR's special tokens. tiny: right after its byte alphabet. 0.6b: at the real ids, which follow Qwen2's 151,643
# BPE tokens; <|endoftext|>..<|im_end|> and the audio tokens are as published (config.json, Qwen's tokenizer),
# <asr_text> at 151704 is taken from others' test files (not verified); the ids between are placeholders.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_end|>",
                  "<|audio_pad|>", "<asr_text>", "<timestamp>"]
REAL_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|audio_start|>": 151669,
                    "<|audio_end|>": 151670, "<|audio_pad|>": 151676, "<asr_text>": 151704, "<timestamp>": 151705}
LANGUAGES = ["Chinese", "English", "Cantonese", "Japanese", "Korean"]


def bpe_vocabulary(size: int, seed: int) -> tuple[list[str], list[str]]:
    """A byte-level BPE vocabulary of `size` tokens and the merges that make it, drawn from a seeded generator.

    Shaped like Qwen's: 20,000 CJK characters (each built from its three bytes by two merges), 5,000 two-character
    CJK words, and ASCII word pieces of up to 10 characters (11 with a leading space, which about a third have). Its strings
    add up to about as many bytes as Qwen's own (the q8_0 file comes within 0.01 % of the published one), so the
    tokenizer's memory in chatllm.cpp (token strings, id maps, merge ranks) has the real model's size."""
    alphabet = byte_level_alphabet()
    tokens, merges = list(alphabet), []
    known = set(tokens)
    rng = random.Random(seed)

    def add(a: str, b: str) -> bool:
        joined = a + b
        if joined in known or len(tokens) >= size:
            return False
        known.add(joined)
        tokens.append(joined)
        merges.append(f"{a} {b}")
        return True

    if size <= 256:
        return tokens, merges
    cjk = []
    for code in rng.sample(range(0x4E00, 0xA000), min(20000, (size - 256) // 8)):
        b = [alphabet[x] for x in chr(code).encode("utf-8")]
        add(b[0], b[1])
        add(b[0] + b[1], b[2])
        cjk.append(b[0] + b[1] + b[2])
    for _ in range(min(5000, (size - 256) // 30)):
        add(rng.choice(cjk), rng.choice(cjk))
    letters = [alphabet[c] for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,-()"]
    space = alphabet[ord(" ")]
    pieces = list(letters)
    while len(tokens) < size:
        a = rng.choice(pieces)
        b = rng.choice(letters) if rng.random() < 0.6 else rng.choice(pieces)
        if rng.random() < 0.3 and not a.startswith(space):
            if add(space, a):  # a word start
                pieces.append(tokens[-1])
        elif len(a) + len(b) <= 11 and add(a, b):
            pieces.append(tokens[-1])
    return tokens, merges


def tokenizer_files(folder: Path, spec: dict, seed: int) -> tuple[int, list[int]]:
    """tokenizer.json and tokenizer_config.json; returns the number of tokens (special ones included) and the ids of
    the tokens that are whole text."""
    tokens, merges = bpe_vocabulary(spec["bpe_tokens"], seed)
    vocab = {t: i for i, t in enumerate(tokens)}
    ids = special_ids(spec)
    names = {i: t for t, i in ids.items()}
    added = [{"id": i, "content": names.get(i, f"<|asrbench_reserved_{i}|>"), "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in range(len(vocab), max(ids.values()) + 1)]
    tokenizer = {"version": "1.0", "added_tokens": added, "normalizer": None,
                 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
                 "decoder": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                           "byte_fallback": False, "vocab": vocab, "merges": merges}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = {"added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
              "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": spec["text"]["max_position_embeddings"],
              "tokenizer_class": "Qwen2Tokenizer", "audio_token": "<|audio_pad|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return len(vocab) + len(added), [i for i, t in enumerate(tokens) if is_text(t)]


def special_ids(spec: dict) -> dict:
    if spec["vocab_size"] is None:  # tiny: packed right after the byte alphabet
        return {t: spec["bpe_tokens"] + i for i, t in enumerate(SPECIAL_TOKENS)}
    return REAL_SPECIAL_IDS


def special_id(spec: dict, token: str) -> int:
    return special_ids(spec)[token]


def model_config(spec: dict, size: str, seed: int, n_tokens: int) -> dict:
    t = {k: v for k, v in spec["text"].items() if k != "rope_scaling_section"}
    text = dict(t, vocab_size=spec["vocab_size"] or n_tokens, hidden_act="silu", rope_theta=1000000.0,
                rms_norm_eps=1e-6, attention_bias=False, tie_word_embeddings=False, use_sliding_window=False,
                bos_token_id=special_id(spec, "<|endoftext|>"), eos_token_id=special_id(spec, "<|im_end|>"),
                rope_scaling={"mrope_section": spec["text"]["rope_scaling_section"], "mrope_interleaved": True,
                              "interleaved": True, "rope_type": "default"})
    audio = dict(spec["audio"], activation_function="gelu", num_hidden_layers=spec["audio"]["encoder_layers"])
    audio.setdefault("output_dim", spec["text"]["hidden_size"])
    return {"architectures": ["Qwen3ASRForConditionalGeneration"], "model_type": "qwen3_asr",
            "support_languages": LANGUAGES,
            "asrbench_seeded": {"size": size, "seed": seed, "tool": "tools/make_model.py"},
            "thinker_config": {"model_type": "qwen3_asr", "audio_config": audio, "text_config": text,
                               "audio_token_id": special_id(spec, "<|audio_pad|>")}}


def preprocessor_config() -> dict:
    return {"feature_extractor_type": "WhisperFeatureExtractor", "chunk_length": 30, "feature_size": 128,
            "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "sampling_rate": 16000}


def weights(spec: dict, vocab_size: int, text_ids: list[int], seed: int, dtype) -> dict:
    """Every tensor of the Hugging Face checkpoint, drawn in a fixed order from one seeded generator.

    The lm_head rows of tokens that are not whole text (byte fragments, special tokens, padding rows) are zero, so
    their logits are 0 while text tokens' are spread around it: greedy decoding then emits printable text, whose
    first chunk times the first token, and never the end token. The matrix keeps its size, so the work is the same."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    scale = spec["scale"]

    def add(name, *shape):
        state[name] = (torch.randn(*shape, generator=generator) * scale).to(dtype)

    def ones(name, n):
        state[name] = torch.ones(n, dtype=dtype)

    text, audio = spec["text"], spec["audio"]
    h, hd, heads, kv, ff = (text[k] for k in ("hidden_size", "head_dim", "num_attention_heads", "num_key_value_heads", "intermediate_size"))
    add("thinker.model.embed_tokens.weight", vocab_size, h)
    for i in range(text["num_hidden_layers"]):
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
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[text_ids] = True
    state["thinker.lm_head.weight"][~keep] = 0

    d, aff, ds, mel = audio["d_model"], audio["encoder_ffn_dim"], audio["downsample_hidden_size"], audio["num_mel_bins"]
    out_dim = audio.get("output_dim", h)
    a = "thinker.audio_tower."
    for i in range(audio["encoder_layers"]):
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
    add(a + "proj2.weight", out_dim, d)
    add(a + "proj2.bias", out_dim)
    return state


def build_checkpoint(folder: Path, size: str, seed: int) -> dict:
    """The Hugging Face checkpoint of one size; returns its config."""
    import torch

    spec = SIZES[size]
    n_tokens, text_ids = tokenizer_files(folder, spec, seed)
    config = model_config(spec, size, seed, n_tokens)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=1), encoding="utf-8")
    # tiny keeps f32 (its sha256 was taken so); 0.6b is stored in f16 to halve the memory needed to write it
    dtype = torch.float32 if size == "tiny" else torch.float16
    torch.save(weights(spec, config["thinker_config"]["text_config"]["vocab_size"], text_ids, seed, dtype), folder / "pytorch_model.bin")
    return config


def convert(checkpoint: Path, out: Path, quant: str, name: str, chatllm_dir: Path) -> None:
    partial = out.with_suffix(".partial")
    result = subprocess.run([sys.executable, str(chatllm_dir / "convert.py"), "-i", str(checkpoint), "-o", str(partial),
                             "-t", quant, "-n", name], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
        raise RuntimeError("chatllm.cpp's convert.py failed (output above)")
    os.replace(partial, out)


def peak_rss_mb() -> float:
    """Peak RSS of this process and of the converter it ran (Linux reports KB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, child) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny", help="tiny (toy) or 0.6b (Qwen3-ASR-0.6B's dimensions)")
    parser.add_argument("--quant", choices=QUANTS, help="weight type (default: f32 for tiny, q4_0 for 0.6b like the published file)")
    parser.add_argument("--out", help="model file to write (default models/tiny-qwen3-asr.bin or models/seeded-qwen3-asr-0.6b-<quant>.bin)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="also keep the Hugging Face checkpoint in this folder (for other runtimes)")
    parser.add_argument("--chatllm-dir", default=os.environ.get("CHATLLM_DIR") or str(PROJECT_DIR / "chatllm.cpp"))
    parser.add_argument("--gguf", nargs="?", const="", metavar="FILE",
                        help="also write a GGUF for CrispASR from the same checkpoint (default: the model file's name "
                             "with .gguf)")
    args = parser.parse_args(argv)
    spec = SIZES[args.size]
    quant = args.quant or spec["quant"]
    chatllm_dir = Path(args.chatllm_dir)
    if not (chatllm_dir / "convert.py").is_file():
        print(f"make_model.py: error: {chatllm_dir / 'convert.py'} not found: run make setup (or set CHATLLM_DIR to a "
              f"chatllm.cpp source folder)", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("make_model.py: error: torch is not installed: pip install -e '.[models]'", file=sys.stderr)
        return 2
    out = Path(args.out or PROJECT_DIR / "models" / spec["out"].format(quant=quant)).resolve()
    gguf_out = None if args.gguf is None else Path(args.gguf or out.with_suffix(".gguf")).resolve()
    if gguf_out:
        try:
            import gguf  # noqa: F401
        except ImportError:
            print("make_model.py: error: the gguf package is not installed (for --gguf): pip install -e "
                  "'.[crispasr]'", file=sys.stderr)
            return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".checkpoint-") as tmp:
        build_checkpoint(Path(tmp), args.size, args.seed)
        built = time.monotonic()
        name = "tiny-qwen3-asr" if args.size == "tiny" else f"seeded-qwen3-asr-{args.size}"
        try:
            convert(Path(tmp), out, quant, name, chatllm_dir)
        except RuntimeError as e:
            print(f"make_model.py: error: {e}", file=sys.stderr)
            return 1
        converted = time.monotonic()
        if gguf_out:
            import gguf_from_checkpoint as to_gguf  # tools/, beside this script

            to_gguf.write(Path(tmp), gguf_out, quant)
            differ = to_gguf.check(gguf_out, out, Path(tmp))
            if differ:
                print(f"make_model.py: error: {gguf_out} and {out} hold different weights:", *differ[:10],
                      sep="\n  ", file=sys.stderr)
                return 1
        if args.checkpoint:
            target = Path(args.checkpoint)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(tmp, target)
    took = time.monotonic() - started
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {quant}) in {took:.0f} s "
          f"(checkpoint {built - started:.0f} s, convert {converted - built:.0f} s); peak RSS {peak_rss_mb():,.0f} MB")
    if gguf_out:
        print(f"wrote {gguf_out} ({gguf_out.stat().st_size:,} bytes) in {time.monotonic() - converted:.0f} s: every "
              f"weight has the same type and bytes as in {out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
