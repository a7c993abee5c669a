#!/usr/bin/env python3
"""A tiny Gemma 3 (text only, Gemma3ForCausalLM) for chatllm.cpp, from seeded random weights.

The checkpoint is in Hugging Face layout: config.json as Gemma 3's text model (q/k norms, four norms per layer, tied
embeddings, gelu_pytorch_tanh), a SentencePiece BPE tokenizer.model trained here on a small fixed text, with Gemma's
ids for <pad> 0, <eos> 1, <bos> 2, <unk> 3 and its user-defined pieces (<mask>, [multimodal], <unused0>, <unused1>,
<start_of_turn>, <end_of_turn>, "\\n", </code>) and byte fallback, and model.safetensors. It is converted with
chatllm.cpp's own convert.py (Gemma3Converter; -t f32); the file is about 0.2 MB.

What chatllm.cpp's loader needs (models/gemma.cpp):
- the tokenizer looks up <unused0> and </code> by name and registers every id between them as an added token; a
  missing one gives id -1 and "AddAddedToken: ..., id = -1" aborts the load, so both are in the vocabulary;
- <start_of_turn>, <end_of_turn> and "\\n" are looked up by name (the chat template), <pad> too (optional);
- a model with sliding-window layers must have sliding_window 512 or 1024 ("unsupported SWA param"); here layer 0
  slides (window 512) and layer 1 is global (sliding_window_pattern 2, as layer_types says for transformers);
- rope_scaling must not be yarn, or convert.py takes the RNJ_1 branch: it is absent (rope_theta and
  rope_local_base_freq are given flat, which convert.py reads, and in rope_parameters for transformers).

    python tools/make_matrix.py gemma3     # writes models/matrix/gemma3.bin

The tokenizer is trained in memory from a generated text (one thread, no file paths in the model), every tensor is
drawn from one seeded torch.Generator in a fixed order, so two builds give the same bytes. Embeddings are tied, so the
rows of every token that is not whole printable text (control, user-defined, byte and unknown pieces) are scaled down
1000 times: their logits stay near 0 while text tokens' spread around it, so greedy decoding prints text and never
<end_of_turn>; as RMSNorm rescales each input row, those tokens still feed the model normally-sized inputs.
"""

import io
import json
from pathlib import Path

from _shared import SeededTensors, training_text as shared_training_text

FAMILY = "gemma3"
PATH = "A"
KIND = "chat"
ARCH = "Gemma3ForCausalLM"
NAME = "tiny-gemma3"
CONVERT_ARGS: list[str] = []
RUN_ARGS: list[str] = []
PROMPT = "hello"

TEXT = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
            num_hidden_layers=2, max_position_embeddings=4096, sliding_window=512, sliding_window_pattern=2)
SCALE = 0.05
SPECIAL_SCALE = 0.001
VOCAB_SIZE = 512
# sentencepiece control pieces at Gemma's ids, then Gemma's user-defined pieces (ids 4..) in Gemma's order
CONTROL = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
USER_DEFINED = ["<mask>", "[multimodal]", "<unused0>", "<unused1>", "<start_of_turn>", "<end_of_turn>", "\n", "</code>"]
END_OF_TURN_ID = len(CONTROL) + USER_DEFINED.index("<end_of_turn>")
WORDS = ["the", "and", "hello", "world", "model", "chat", "gemma", "token", "text", "memory", "bench", "tiny",
         "you", "are", "helpful", "assistant", "user", "system", "is", "of", "to", "in", "it", "on", "that", "with",
         "small", "random", "weights", "answer", "question", "please", "thanks", "good", "morning", "night", "day",
         "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "red", "green", "blue"]


def training_text() -> list[str]:
    return shared_training_text(WORDS, 12345)


def write_tokenizer(folder: Path) -> list[int]:
    """tokenizer.model (SentencePiece BPE), tokenizer_config.json, special_tokens_map.json; returns text-token ids."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()), model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
        character_coverage=1.0, byte_fallback=True, split_digits=True, add_dummy_prefix=False,
        remove_extra_whitespaces=False, normalization_rule_name="identity", allow_whitespace_only_pieces=True,
        pad_id=CONTROL["<pad>"], eos_id=CONTROL["<eos>"], bos_id=CONTROL["<bos>"], unk_id=CONTROL["<unk>"],
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=USER_DEFINED, num_threads=1, hard_vocab_limit=True, minloglevel=2)
    data = model.getvalue()
    (folder / "tokenizer.model").write_bytes(data)
    sp = spm.SentencePieceProcessor(model_proto=data)
    assert sp.get_piece_size() == VOCAB_SIZE, sp.get_piece_size()
    for piece, i in CONTROL.items():
        assert sp.piece_to_id(piece) == i, (piece, sp.piece_to_id(piece))
    for i, piece in enumerate(USER_DEFINED):
        assert sp.piece_to_id(piece) == len(CONTROL) + i, (piece, sp.piece_to_id(piece))
    text_ids = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i):
            continue
        piece = sp.id_to_piece(i)
        if piece in USER_DEFINED:
            continue
        if piece.replace("\u2581", " ").isprintable():
            text_ids.append(i)
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")
    config = dict(special, add_bos_token=True, add_eos_token=False, tokenizer_class="GemmaTokenizer",
                  model_max_length=TEXT["max_position_embeddings"], sp_model_kwargs={}, spaces_between_special_tokens=False,
                  chat_template="{{ bos_token }}{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n{{ message['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return text_ids


def model_config(seed: int) -> dict:
    layer_types = ["full_attention" if (i + 1) % TEXT["sliding_window_pattern"] == 0 else "sliding_attention"
                   for i in range(TEXT["num_hidden_layers"])]
    return dict(TEXT, architectures=[ARCH], model_type="gemma3_text", vocab_size=VOCAB_SIZE,
                hidden_activation="gelu_pytorch_tanh", attention_bias=False, attention_dropout=0.0,
                attn_logit_softcapping=None, final_logit_softcapping=None, initializer_range=0.02,
                query_pre_attn_scalar=TEXT["head_dim"], rms_norm_eps=1e-6, layer_types=layer_types,
                rope_theta=1000000.0, rope_local_base_freq=10000.0,
                rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                 "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                tie_word_embeddings=True, use_bidirectional_attention=False, use_cache=True, torch_dtype="float32",
                pad_token_id=CONTROL["<pad>"], bos_token_id=CONTROL["<bos>"], eos_token_id=[CONTROL["<eos>"], END_OF_TURN_ID],
                asrbench_seeded={"family": FAMILY, "seed": seed, "tool": "tools/matrix/gemma3.py"})


def weights(text_ids: list[int], seed: int) -> dict:
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add, zeros = tensors.state, tensors.add, tensors.zeros

    h, hd, heads, kv, ff = (TEXT[k] for k in ("hidden_size", "head_dim", "num_attention_heads", "num_key_value_heads", "intermediate_size"))
    add("model.embed_tokens.weight", VOCAB_SIZE, h)
    keep = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    keep[text_ids] = True
    state["model.embed_tokens.weight"][~keep] *= SPECIAL_SCALE
    for i in range(TEXT["num_hidden_layers"]):
        p = f"model.layers.{i}."
        zeros(p + "input_layernorm.weight", h)
        zeros(p + "post_attention_layernorm.weight", h)
        zeros(p + "pre_feedforward_layernorm.weight", h)
        zeros(p + "post_feedforward_layernorm.weight", h)
        add(p + "self_attn.q_proj.weight", heads * hd, h)
        add(p + "self_attn.k_proj.weight", kv * hd, h)
        add(p + "self_attn.v_proj.weight", kv * hd, h)
        add(p + "self_attn.o_proj.weight", h, heads * hd)
        zeros(p + "self_attn.q_norm.weight", hd)
        zeros(p + "self_attn.k_norm.weight", hd)
        add(p + "mlp.gate_proj.weight", ff, h)
        add(p + "mlp.up_proj.weight", ff, h)
        add(p + "mlp.down_proj.weight", h, ff)
    zeros("model.norm.weight", h)
    return state


def build_checkpoint(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_ids = write_tokenizer(folder)
    config = model_config(seed)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
         "pad_token_id": config["pad_token_id"], "do_sample": False}, indent=1), encoding="utf-8")
    save_file(weights(text_ids, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})
