"""What the matrix's families share: Qwen's byte-level BPE tokenizer files, and a PNG written byte for byte the same."""

import json
import struct
import zlib
from pathlib import Path

CHAT_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
VISION_CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


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


def bpe_vocabulary(words: list[str]) -> tuple[list[str], list[str]]:
    """The byte alphabet, then the merges that build each word (and " "+word) left to right."""
    alphabet = byte_level_alphabet()
    tokens, merges, known = list(alphabet), [], set(alphabet)
    space = alphabet[ord(" ")]
    for word in words:
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


def write_tokenizer(folder: Path, special_tokens: list[str], words: list[str], max_length: int,
                    vision: bool = False) -> tuple[dict, list[int]]:
    """A Qwen-style byte-level BPE: tokenizer.json, tokenizer_config.json (with the vision tokens and a chat template
    that places images, for a VL model); returns {special token: id} and the ids of the whole-text tokens."""
    tokens, merges = bpe_vocabulary(words)
    vocab = {t: i for i, t in enumerate(tokens)}
    ids = {t: len(tokens) + i for i, t in enumerate(special_tokens)}
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
              "model_max_length": max_length, "split_special_tokens": False,
              "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    if vision:
        config.update({"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                       "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
                       "chat_template": VISION_CHAT_TEMPLATE})
    else:
        config["chat_template"] = CHAT_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return ids, [i for i, t in enumerate(tokens) if is_text(t)]


def write_square_png(path: Path, size: int, square: range, background) -> None:
    """A size x size PNG: a white square (rows and columns in `square`) on background(x, y), an (r, g, b) gradient."""
    pixels = bytearray()
    for y in range(size):
        for x in range(size):
            pixels += bytes((255, 255, 255) if x in square and y in square else background(x, y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png(size, size, bytes(pixels)))


def png(width: int, height: int, rgb: bytes) -> bytes:
    """A minimal RGB PNG (no timestamps or text chunks: the same bytes every time)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


class SeededTensors:
    """A checkpoint's tensors, drawn in the order they are added from one seeded generator: the same bytes every run."""

    def __init__(self, seed: int, scale: float):
        import torch

        self.torch, self.scale, self.state = torch, scale, {}
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, name: str, *shape: int, scale: float | None = None) -> None:
        scale = self.scale if scale is None else scale
        self.state[name] = (self.torch.randn(*shape, generator=self.generator) * scale).contiguous()

    def fill(self, name: str, n: int, value: float) -> None:
        self.state[name] = self.torch.full((n,), float(value))

    def ones(self, name: str, n: int) -> None:
        self.state[name] = self.torch.ones(n)

    def zeros(self, name: str, n: int) -> None:
        self.state[name] = self.torch.zeros(n)


def qwen_vision_blocks(tensors: SeededTensors, vision: dict, prefix: str) -> None:
    """Qwen3-VL's vision tower up to its mergers (Qwen3.5 has the same): patch and position embeddings, then blocks."""
    add, fill, v = tensors.add, tensors.fill, vision
    vh, vff, ps = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    add(prefix + "patch_embed.proj.weight", vh, v["in_channels"], v["temporal_patch_size"], ps, ps, scale=0.02)
    add(prefix + "patch_embed.proj.bias", vh)
    add(prefix + "pos_embed.weight", v["num_position_embeddings"], vh)
    for i in range(v["depth"]):
        p = f"{prefix}blocks.{i}."
        fill(p + "norm1.weight", vh, 1)
        fill(p + "norm1.bias", vh, 0)
        fill(p + "norm2.weight", vh, 1)
        fill(p + "norm2.bias", vh, 0)
        add(p + "attn.qkv.weight", 3 * vh, vh)
        add(p + "attn.qkv.bias", 3 * vh)
        add(p + "attn.proj.weight", vh, vh)
        add(p + "attn.proj.bias", vh)
        add(p + "mlp.linear_fc1.weight", vff, vh)
        add(p + "mlp.linear_fc1.bias", vff)
        add(p + "mlp.linear_fc2.weight", vh, vff)
        add(p + "mlp.linear_fc2.bias", vh)


def training_text(words: list[str], state: int) -> list[str]:
    """600 deterministic lines of the given words (a fixed linear congruential walk from state, no RNG), to train a
    tiny SentencePiece model on."""
    lines = []
    for _ in range(600):
        picked = []
        for _ in range(8):
            state = (state * 1103515245 + 12345) % (1 << 31)
            picked.append(words[state % len(words)])
        lines.append(" ".join(picked) + (", " if state % 3 == 0 else ". ") + str(state % 1000))
    return lines


def qwen_vl_config(arch: str, model_type: str, text: dict, vision: dict, ids: dict, family: str, seed: int) -> dict:
    """config.json around a Qwen3-VL-style text and vision config (Qwen3-VL, Qwen3.5): the image and vision tokens,
    and the seed that made the checkpoint."""
    return {"architectures": [arch], "model_type": model_type, "dtype": "float32",
            "text_config": text, "vision_config": vision, "tie_word_embeddings": False,
            "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
            "asrbench_seeded": {"family": family, "seed": seed, "tool": f"tools/matrix/{family}.py"}}


def qwen_preprocessor_config(vision: dict) -> dict:
    """preprocessor_config.json of Qwen3-VL (and Qwen3.5), for the given vision tower: chatllm.cpp needs its image
    mean and std to build the tower."""
    return {"image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
            "rescale_factor": 1 / 255, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "patch_size": vision["patch_size"], "temporal_patch_size": vision["temporal_patch_size"],
            "merge_size": vision["spatial_merge_size"],
            "size": {"shortest_edge": 64 * 64, "longest_edge": 256 * 256}}
