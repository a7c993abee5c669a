#!/usr/bin/env python3
"""Write a GGUF for CrispASR from the Qwen3-ASR checkpoint that tools/make_model.py builds, with the same weights in
the same types as the chatllm.cpp file converted from that checkpoint.

    python tools/gguf_from_checkpoint.py --checkpoint DIR --out models/x.gguf --quant q4_0
    python tools/gguf_from_checkpoint.py --checkpoint DIR --out models/x.gguf --quant q4_0 --check models/x.bin

CrispASR's Qwen3-ASR loader reads `qwen3asr.*` metadata, a GPT-2 byte-level token list and tensors named `audio.*`,
`token_embd`, `blk.N.*`, `output_norm` and `output`, plus two tensors chatllm.cpp computes in code instead: the mel
filterbank and the STFT window. Each tensor gets the type chatllm.cpp's convert.py gives it for the same --quant
(tensor_quantization_type, tensor_type_fallback): 1-D tensors f32; 2-D and larger q8_0/q4_0 when their last
dimension is a multiple of 32, else f16 (the conv kernels); and f16 for -t f16 and -t f32 alike, because convert.py's
fallback has no f32 branch. Blocks are quantized with convert.py's arithmetic (quantize_q4_0, quantize_q8_0), so a
quantized tensor has the same bytes in both files; --check compares them tensor by tensor.
"""

import argparse
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from asrbench.checksum import sha256_of  # noqa: E402

ARCH = "qwen3asr"
QUANTS = ("f32", "f16", "q8_0", "q4_0")  # as tools/make_model.py and chatllm.cpp's convert.py -t name them
BLOCK = 32  # elements per q8_0 / q4_0 block

# ggml type ids, as chatllm.cpp's file and GGUF both number them
F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8
TYPE_NAMES = {F32: "f32", F16: "f16", Q4_0: "q4_0", Q8_0: "q8_0"}
BYTES_PER_BLOCK = {Q4_0: 2 + BLOCK // 2, Q8_0: 2 + BLOCK}


class CheckpointError(Exception):
    """The checkpoint is not one this tool can convert; the message says what is missing."""


# ---------------------------------------------------------------------------------------------------------------------
# names: Hugging Face (thinker.*) -> CrispASR GGUF, and -> chatllm.cpp (what convert.py's Qwen3ASRConverter writes)

def gguf_name(hf: str) -> str | None:
    """The GGUF tensor name CrispASR looks up for a checkpoint tensor; None for a tensor it has no use for."""
    name = hf.removeprefix("thinker.")
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")
    if name.startswith("model.layers."):
        layer, rest = parts[2], ".".join(parts[3:])
        text = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
                "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                "mlp.down_proj.weight": "ffn_down.weight"}
        return f"blk.{layer}.{text[rest]}" if rest in text else None
    if name.startswith("audio_tower.layers."):
        layer, module, leaf = parts[2], ".".join(parts[3:-1]), parts[-1]
        audio = {"self_attn_layer_norm": "attn_norm", "final_layer_norm": "ffn_norm", "self_attn.q_proj": "attn_q",
                 "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out",
                 "fc1": "ffn_up", "fc2": "ffn_down"}
        return f"audio.blk.{layer}.{audio[module]}.{leaf}" if module in audio else None
    if name.startswith("audio_tower."):
        module, leaf = ".".join(parts[1:-1]), parts[-1]
        if module.startswith("conv2d") and module[6:] in ("1", "2", "3"):
            return f"audio.conv.{module[6:]}.{leaf}"
        if module in ("conv_out", "ln_post", "proj1", "proj2"):
            return f"audio.{module}.{leaf}"
    return None


def chatllm_name(hf: str) -> str:
    """The name chatllm.cpp's convert.py (Qwen3ASRConverter.state_dict_pp) stores a checkpoint tensor under."""
    name = hf.removeprefix("thinker.")
    if name.startswith("audio_tower."):
        if ".proj1." in name or ".proj2." in name:
            return name.replace("audio_tower.", "multi_modal_projector.")
        name = name.replace("audio_tower.", "audio.")
        for old, new in ((".fc1.", ".mlp.fc0."), (".fc2.", ".mlp.fc1."),
                         (".final_layer_norm.", ".post_attention_layernorm."),
                         (".self_attn_layer_norm.", ".input_layernorm."), (".out_proj.", ".o_proj.")):
            name = name.replace(old, new)
    return name


# ---------------------------------------------------------------------------------------------------------------------
# types and blocks, as chatllm.cpp's convert.py makes them

def tensor_type(shape: tuple, quant: str) -> int:
    """convert.py's tensor_quantization_type without -tt patterns: 1-D f32; else q8_0/q4_0 where the last dimension
    (ggml's ne0) divides into blocks of 32, else f16; and f16 for 'f32' and 'f16' (tensor_type_fallback's default)."""
    if len(shape) <= 1:
        return F32
    if quant in ("q8_0", "q4_0") and shape[-1] % BLOCK == 0:
        return Q8_0 if quant == "q8_0" else Q4_0
    return F16


def _blocks(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).reshape(-1, BLOCK)


def _signed_absmax(blocks: np.ndarray) -> np.ndarray:
    """Per block, the element of largest magnitude with its sign (the first one on a tie, as torch.max gives)."""
    index = np.abs(blocks).argmax(axis=-1)[:, None]
    return np.take_along_axis(blocks, index, axis=-1)


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """ggml's block_q4_0 {f16 d; u8 qs[16]} per 32 values, with convert.py's arithmetic: d = absmax / -8,
    q = round(x / d + 8) clamped to 0..15 (round half to even). An all-zero block has d = -0.0 and q = 0."""
    blocks = _blocks(x)
    d = _signed_absmax(blocks) / np.float32(-8)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.round(blocks / d + np.float32(8)), 0, 15)
    q = np.where(d == 0, 0, q).astype(np.uint8)  # torch turns 0/0's NaN into 0 on the int8 cast
    packed = q[:, :BLOCK // 2] | (q[:, BLOCK // 2:] << np.uint8(4))
    return np.concatenate([d.astype(np.float16).view(np.uint8), packed], axis=-1)


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """ggml's block_q8_0 {f16 d; i8 qs[32]} per 32 values, with convert.py's arithmetic: d = max|x| / 127,
    q = round(x / d) clamped to -128..127."""
    blocks = _blocks(x)
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.round(blocks / d), -128, 127)
    q = np.where(d == 0, 0, q).astype(np.int8).view(np.uint8)
    return np.concatenate([d.astype(np.float16).view(np.uint8), q], axis=-1)


def encode(array: np.ndarray, ggml_type: int, rows_per_step: int = 1 << 15) -> np.ndarray:
    """The tensor's bytes in its type; quantized a slice of rows at a time, so a 150k-row embedding needs no more than
    a few hundred MB beside itself."""
    if ggml_type == F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if ggml_type == F16:
        return np.ascontiguousarray(array.astype(np.float32).astype(np.float16))
    quantize = quantize_q4_0 if ggml_type == Q4_0 else quantize_q8_0
    rows = array.reshape(-1, array.shape[-1])
    per_row = rows.shape[1] // BLOCK * BYTES_PER_BLOCK[ggml_type]
    out = np.empty((rows.shape[0], per_row), dtype=np.uint8)
    for start in range(0, rows.shape[0], rows_per_step):
        out[start:start + rows_per_step] = quantize(rows[start:start + rows_per_step]).reshape(-1, per_row)
    return out.reshape(*array.shape[:-1], per_row)


def data_bytes(shape: tuple, ggml_type: int) -> int:
    n = math.prod(shape)
    if ggml_type in BYTES_PER_BLOCK:
        return n // BLOCK * BYTES_PER_BLOCK[ggml_type]
    return n * (4 if ggml_type == F32 else 2)


# ---------------------------------------------------------------------------------------------------------------------
# the audio front end's constants, computed as chatllm.cpp computes them at run time (src/audio_process.cpp)

def _hz_to_mel(hz: float) -> float:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    if hz >= min_log_hz:
        return min_log_hz / f_sp + math.log(hz / min_log_hz) / (math.log(6.4) / 27.0)
    return hz / f_sp


def _mel_to_hz(mel: float) -> float:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    if mel >= min_log_mel:
        return min_log_hz * math.exp(math.log(6.4) / 27.0 * (mel - min_log_mel))
    return f_sp * mel


def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised triangular mel filters from 0 Hz to Nyquist, shape (n_fft/2 + 1, n_mels): computed in double
    and step by step as chatllm.cpp's build_mel_filter_bank does (band edges by accumulated steps), then stored f32."""
    fft_freqs = [i * sample_rate / n_fft for i in range(n_fft // 2 + 1)]
    low, high = _hz_to_mel(0.0), _hz_to_mel(sample_rate / 2)
    step = (high - low) / (n_mels + 1)
    edges, mel = [], low
    for _ in range(n_mels + 1):
        edges.append(_mel_to_hz(mel))
        mel += step
    edges.append(_mel_to_hz(high))
    bank = np.zeros((len(fft_freqs), n_mels), dtype=np.float32)
    for m in range(n_mels):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        enorm = 2.0 / (upper - lower)
        for j, f in enumerate(fft_freqs):
            if f <= lower:
                continue
            if f >= upper:
                break
            w = (f - lower) / (centre - lower) if f <= centre else 1.0 - (f - centre) / (upper - centre)
            bank[j, m] = np.float32(w * enorm)
    return bank


def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window chatllm.cpp's stft and torch.hann_window(length) use."""
    return np.array([0.5 * (1.0 - math.cos(2.0 * math.pi * i / length)) for i in range(length)], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# the checkpoint

def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: pass a checkpoint folder written by tools/make_model.py --checkpoint") from None


def vocabulary(tokenizer: dict, rows: int) -> tuple[list[str], list[str], dict]:
    """Token strings by id (GPT-2 byte-level form, special tokens by name, '[PAD<id>]' for unused embedding rows),
    the BPE merges in rank order, and the ids of the special tokens by name."""
    tokens = [""] * rows
    for text, i in tokenizer["model"]["vocab"].items():
        tokens[i] = text
    specials = {}
    for added in tokenizer.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        specials[added["content"]] = added["id"]
    tokens = [t or f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges", [])]
    return tokens, merges, specials


def load_weights(checkpoint: Path) -> dict:
    import torch  # the checkpoint is torch's format; torch is already what tools/make_model.py writes it with

    path = checkpoint / "pytorch_model.bin"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass a checkpoint folder written by tools/make_model.py --checkpoint")
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


def write(checkpoint: Path, out: Path, quant: str) -> list[tuple[str, tuple, str]]:
    """Write the GGUF; returns (name, numpy shape, type) per tensor, in file order."""
    import gguf

    checkpoint = Path(checkpoint)
    config = read_json(checkpoint / "config.json")
    pre = read_json(checkpoint / "preprocessor_config.json")
    tokenizer = read_json(checkpoint / "tokenizer.json")
    thinker = config.get("thinker_config") or {}
    audio, text = thinker.get("audio_config"), thinker.get("text_config")
    if config.get("model_type") != "qwen3_asr" or not audio or not text:
        raise CheckpointError(f"{checkpoint} is not a Qwen3-ASR checkpoint (config.json: model_type qwen3_asr with "
                              f"thinker_config.audio_config and text_config)")
    state = load_weights(checkpoint)
    tokens, merges, specials = vocabulary(tokenizer, text["vocab_size"])
    missing = [t for t in ("<|audio_start|>", "<|audio_end|>", "<|audio_pad|>", "<|im_end|>", "<|endoftext|>",
                           "<|im_start|>") if t not in specials]
    if missing:
        raise CheckpointError(f"tokenizer.json has no {', '.join(missing)}: not a Qwen3-ASR tokenizer")

    partial = out.with_name(out.name + ".partial")
    w = gguf.GGUFWriter(str(partial), arch=ARCH)
    seeded = config.get("asrbench_seeded")
    w.add_name(f"seeded-qwen3-asr-{seeded['size']}" if seeded else "qwen3-asr")
    w.add_file_type({"q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
                    .get(quant, gguf.LlamaFileType.MOSTLY_F16))
    if seeded:  # as chatllm.cpp's file carries it in its config.json
        w.add_string("asrbench.seeded", json.dumps(seeded, sort_keys=True))
    w.add_string("asrbench.source_sha256", sha256_of(checkpoint / "pytorch_model.bin"))
    w.add_string("asrbench.tensor_types", f"as chatllm.cpp convert.py -t {quant}")
    u32 = lambda key, value: w.add_uint32(f"{ARCH}.{key}", int(value))  # noqa: E731
    u32("sample_rate", pre.get("sampling_rate", 16000))
    u32("n_mels", pre["feature_size"])
    u32("n_fft", pre["n_fft"])
    u32("win_length", pre["n_fft"])
    u32("hop_length", pre["hop_length"])
    u32("n_window", audio["n_window"])
    u32("n_window_infer", audio["n_window_infer"])
    u32("audio.n_layers", audio["encoder_layers"])
    u32("audio.d_model", audio["d_model"])
    u32("audio.n_heads", audio["encoder_attention_heads"])
    u32("audio.head_dim", audio["d_model"] // audio["encoder_attention_heads"])
    u32("audio.ff_dim", audio["encoder_ffn_dim"])
    u32("audio.conv_channels", audio["downsample_hidden_size"])
    audio_out = audio.get("output_dim", text["hidden_size"])
    u32("audio.proj_dim", audio_out)
    u32("audio.output_dim", audio_out)
    u32("audio.max_source_pos", audio["max_source_positions"])
    u32("audio.attn_window_mode", 0)
    u32("llm.n_layers", text["num_hidden_layers"])
    u32("llm.d_model", text["hidden_size"])
    u32("llm.n_heads", text["num_attention_heads"])
    u32("llm.n_kv_heads", text["num_key_value_heads"])
    u32("llm.head_dim", text["head_dim"])
    u32("llm.ff_dim", text["intermediate_size"])
    w.add_float32(f"{ARCH}.llm.rope_theta", float(text["rope_theta"]))
    w.add_float32(f"{ARCH}.llm.rms_norm_eps", float(text["rms_norm_eps"]))
    u32("llm.vocab_size", text["vocab_size"])
    u32("llm.max_pos", text["max_position_embeddings"])
    u32("audio_start_token_id", specials["<|audio_start|>"])
    u32("audio_end_token_id", specials["<|audio_end|>"])
    u32("audio_pad_token_id", specials["<|audio_pad|>"])
    u32("eos_token_id", specials["<|im_end|>"])
    u32("pad_token_id", specials["<|endoftext|>"])
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    if merges:
        w.add_token_merges(merges)
    w.add_eos_token_id(specials["<|im_end|>"])
    w.add_pad_token_id(specials["<|endoftext|>"])

    table = []
    unused = []
    for hf, tensor in state.items():
        name = gguf_name(hf)
        if name is None:
            unused.append(hf)
            continue
        array = tensor.float().numpy()  # convert.py quantizes from float32 too
        kind = tensor_type(array.shape, quant)
        data = encode(array, kind)
        if kind in BYTES_PER_BLOCK:
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=gguf.GGMLQuantizationType(kind))
        else:
            w.add_tensor(name, data)
        table.append((name, tuple(array.shape), TYPE_NAMES[kind]))
    if unused:
        raise CheckpointError(f"checkpoint tensors with no place in CrispASR's layout: {', '.join(unused[:5])}")
    need = {"output.weight", "token_embd.weight", "audio.conv.1.weight"}
    if not need <= {name for name, _, _ in table}:
        raise CheckpointError(f"checkpoint lacks {', '.join(sorted(need - {n for n, _, _ in table}))} "
                              f"(CrispASR needs an untied lm_head as output.weight)")
    # computed in code by chatllm.cpp; CrispASR reads them from the file
    filters = mel_filters(int(pre.get("sampling_rate", 16000)), int(pre["n_fft"]), int(pre["feature_size"]))
    window = hann_window(int(pre["n_fft"]))
    w.add_tensor("audio.mel_filters", filters)
    w.add_tensor("audio.mel_window", window)
    table += [("audio.mel_filters", filters.shape, "f32"), ("audio.mel_window", window.shape, "f32")]

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    partial.replace(out)
    return table


# ---------------------------------------------------------------------------------------------------------------------
# the check: do both files hold the same bytes for every weight?

def chatllm_tensors(path: Path) -> dict:
    """Every tensor of a chatllm.cpp model file: name -> (shape in torch order, ggml type, offset, size).

    The file is b'ggmm', version and three int32 offsets (metadata end, config end, vocabulary end = first tensor),
    then per tensor: name length, name, ndim, shape, type, data aligned to 16 bytes (convert.py's dump_tensor)."""
    tensors = {}
    with open(path, "rb") as f:
        head = f.read(20)
        if head[:4] != b"ggmm":
            raise CheckpointError(f"{path} is not a chatllm.cpp model file (no ggmm header)")
        pos = struct.unpack("<i", head[16:20])[0]
        size = f.seek(0, 2)
        while pos < size:
            f.seek(pos)
            (length,) = struct.unpack("<i", f.read(4))
            name = f.read(length).decode()
            (ndim,) = struct.unpack("<i", f.read(4))
            shape = struct.unpack(f"<{ndim}i", f.read(4 * ndim))
            (kind,) = struct.unpack("<i", f.read(4))
            start = (f.tell() + 15) // 16 * 16
            nbytes = data_bytes(shape, kind)
            tensors[name] = (shape, kind, start, nbytes)
            pos = start + nbytes
    return tensors


def check(gguf_path: Path, chatllm_path: Path, checkpoint: Path) -> list[str]:
    """Differences between the GGUF and the chatllm.cpp file, tensor by tensor (type, shape and bytes); [] if none."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    ours = {t.name: t for t in reader.tensors}
    theirs = chatllm_tensors(chatllm_path)
    hf_names = list(load_weights(checkpoint))
    problems = []
    with open(chatllm_path, "rb") as f:
        for hf in hf_names:
            a, b = gguf_name(hf), chatllm_name(hf)
            if a not in ours or b not in theirs:
                problems.append(f"{hf}: {'missing in the GGUF' if a not in ours else 'missing in the chatllm.cpp file'}")
                continue
            shape, kind, start, nbytes = theirs[b]
            tensor = ours[a]
            if int(tensor.tensor_type) != kind or tuple(int(n) for n in reversed(tensor.shape)) != tuple(shape):
                problems.append(f"{a} ({b}): GGUF {tensor.tensor_type.name} {tuple(reversed(tensor.shape))}, "
                                f"chatllm.cpp {TYPE_NAMES.get(kind, kind)} {shape}")
                continue
            f.seek(start)
            if f.read(nbytes) != np.asarray(tensor.data).tobytes():
                problems.append(f"{a} ({b}): same type and shape, different bytes")
    return problems


def type_summary(table: list) -> dict:
    """How many tensors and parameters each type holds."""
    summary = {}
    for _name, shape, kind in table:
        entry = summary.setdefault(kind, {"tensors": 0, "parameters": 0})
        entry["tensors"] += 1
        entry["parameters"] += math.prod(shape)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="folder written by tools/make_model.py --checkpoint")
    parser.add_argument("--out", required=True, help="GGUF file to write")
    parser.add_argument("--quant", choices=QUANTS, default="q4_0", help="the -t given to chatllm.cpp's convert.py "
                                                                        "for the file to match (default q4_0)")
    parser.add_argument("--check", metavar="CHATLLM_FILE", help="afterwards, compare every weight with this "
                                                                "chatllm.cpp file converted from the same checkpoint")
    args = parser.parse_args(argv)
    try:
        import gguf  # noqa: F401
    except ImportError:
        print("gguf_from_checkpoint.py: error: the gguf package is not installed: pip install -e '.[crispasr]'", file=sys.stderr)
        return 2
    out = Path(args.out)
    started = time.monotonic()
    try:
        table = write(Path(args.checkpoint), out, args.quant)
    except CheckpointError as e:
        print(f"gguf_from_checkpoint.py: error: {e}", file=sys.stderr)
        return 2
    kinds = ", ".join(f"{k} {v['tensors']} tensors / {v['parameters']:,} parameters" for k, v in type_summary(table).items())
    print(f"wrote {out} ({out.stat().st_size:,} bytes; {kinds}) in {time.monotonic() - started:.0f} s")
    if args.check:
        problems = check(out, Path(args.check), Path(args.checkpoint))
        if problems:
            print(f"{len(problems)} tensors differ from {args.check}:", *problems[:20], sep="\n  ", file=sys.stderr)
            return 1
        print(f"every weight has the same type, shape and bytes as in {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
