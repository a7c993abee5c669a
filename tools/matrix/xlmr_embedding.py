#!/usr/bin/env python3
"""A tiny XLM-RoBERTa text-embedding model (XLMRobertaModel, chatllm.cpp's BCE-Embedding) from seeded random weights.

The checkpoint is in Hugging Face layout, as BCE's / XLM-R's: config.json (gelu, one token type, absolute positions
offset by 2), a Unigram tokenizer.json with XLM-R's ids (<s> 0, <pad> 1, </s> 2, <unk> 3, the pieces, <mask> last)
whose pieces and scores come from a SentencePiece Unigram model trained here on a small fixed text (fairseq layout,
<unk> 0 <s> 1 </s> 2, shifted by one as XLM-R's tokenizer does), and model.safetensors (with the pooler, which
convert.py skips). It is converted with chatllm.cpp's own convert.py (XLMRobertaConverter, model type BCE_Embedding;
-t f32); the file is about 0.15 MB.

What chatllm.cpp's loader needs (models/bce.cpp, convert.py):
- hidden_act "gelu" and type_vocab_size 1 (convert.py asserts both; the one token-type row is folded into the
  position embeddings);
- the Unigram tokenizer takes <unk> to be eos_token_id + 1, so </s> 2 and <unk> 3 as XLM-R has them;
- positions start at 2 (pad_token_id + 1) as in XLM-R, so max_position_embeddings = longest input + 2;
- no tokenizer.model in the folder, or convert.py would read it instead of tokenizer.json.
chatllm.cpp's embedding is the L2-normalised hidden state of the first token (<s>), as BCE's CLS pooling.

    python tools/make_matrix.py xlmr_embedding     # writes models/matrix/xlmr_embedding.bin

The tokenizer is trained in memory from a generated text (one thread), every tensor is drawn from one seeded
torch.Generator in a fixed order, so two builds give the same bytes.
"""

import io
import json
from pathlib import Path

from _shared import SeededTensors, training_text as shared_training_text

FAMILY = "xlmr_embedding"
PATH = "A"
KIND = "embedding"
ARCH = "XLMRobertaModel"
NAME = "tiny-xlmr-embedding"
CONVERT_ARGS: list[str] = []
RUN_ARGS: list[str] = []
PROMPT = "hello"

TEXT = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2,
            max_position_embeddings=130)
SCALE = 0.05
SPM_VOCAB_SIZE = 300
SPECIAL = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
WORDS = ["the", "and", "hello", "world", "model", "embedding", "vector", "token", "text", "memory", "bench", "tiny",
         "search", "query", "document", "passage", "similar", "meaning", "is", "of", "to", "in", "it", "on", "that",
         "with", "small", "random", "weights", "answer", "question", "please", "thanks", "good", "morning", "night",
         "day", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "red", "green", "blue"]


def training_text() -> list[str]:
    return shared_training_text(WORDS, 54321)


def unigram_vocabulary() -> list[tuple[str, float]]:
    """XLM-R's vocabulary: the four specials, the SentencePiece pieces (fairseq offset +1), <mask> last."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()), model_writer=model, model_type="unigram",
        vocab_size=SPM_VOCAB_SIZE, hard_vocab_limit=False, character_coverage=1.0, byte_fallback=False,
        split_digits=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, unk_piece="<unk>", bos_piece="<s>",
        eos_piece="</s>", num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(piece, 0.0) for piece in SPECIAL]
    for i in range(3, sp.get_piece_size()):
        vocab.append((sp.id_to_piece(i), float(sp.get_score(i))))
    vocab.append(("<mask>", 0.0))
    return vocab


def write_tokenizer(folder: Path) -> int:
    """tokenizer.json (Unigram, as XLM-R's), tokenizer_config.json, special_tokens_map.json; returns the vocab size."""
    vocab = unigram_vocabulary()
    mask_id = len(vocab) - 1
    ids = dict(SPECIAL, **{"<mask>": mask_id})
    added = [{"id": i, "content": t, "single_word": False, "lstrip": t == "<mask>", "rstrip": False,
              "normalized": False, "special": True} for t, i in ids.items()]
    tokenizer = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
                 "normalizer": {"type": "Sequence", "normalizers": [
                     {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
                 "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
                 "post_processor": {"type": "TemplateProcessing",
                                    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                               {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                                    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                             {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                             {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                                    "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("<s>", "</s>")}},
                 "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
                 "model": {"type": "Unigram", "unk_id": SPECIAL["<unk>"], "vocab": [[p, s] for p, s in vocab],
                           "byte_fallback": False}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=1), encoding="utf-8")
    special = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>",
               "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")
    config = dict(special, tokenizer_class="XLMRobertaTokenizer", model_max_length=TEXT["max_position_embeddings"] - 2,
                  added_tokens_decoder={str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added})
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(vocab)


def model_config(vocab_size: int, seed: int) -> dict:
    return dict(TEXT, architectures=[ARCH], model_type="xlm-roberta", vocab_size=vocab_size, hidden_act="gelu",
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, type_vocab_size=1, initializer_range=0.02,
                layer_norm_eps=1e-5, position_embedding_type="absolute", use_cache=True, classifier_dropout=None,
                torch_dtype="float32", bos_token_id=SPECIAL["<s>"], pad_token_id=SPECIAL["<pad>"],
                eos_token_id=SPECIAL["</s>"],
                asrbench_seeded={"family": FAMILY, "seed": seed, "tool": "tools/matrix/xlmr_embedding.py"})


def weights(vocab_size: int, seed: int) -> dict:
    import torch

    tensors = SeededTensors(seed, SCALE)
    state, add = tensors.state, tensors.add

    def layer_norm(prefix, n):
        state[prefix + ".weight"] = torch.ones(n)
        state[prefix + ".bias"] = torch.zeros(n)

    def linear(prefix, n_out, n_in):
        add(prefix + ".weight", n_out, n_in)
        add(prefix + ".bias", n_out)

    h, ff = TEXT["hidden_size"], TEXT["intermediate_size"]
    add("embeddings.word_embeddings.weight", vocab_size, h)
    add("embeddings.position_embeddings.weight", TEXT["max_position_embeddings"], h)
    add("embeddings.token_type_embeddings.weight", 1, h)
    layer_norm("embeddings.LayerNorm", h)
    for i in range(TEXT["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        linear(p + "attention.self.query", h, h)
        linear(p + "attention.self.key", h, h)
        linear(p + "attention.self.value", h, h)
        linear(p + "attention.output.dense", h, h)
        layer_norm(p + "attention.output.LayerNorm", h)
        linear(p + "intermediate.dense", ff, h)
        linear(p + "output.dense", h, ff)
        layer_norm(p + "output.LayerNorm", h)
    linear("pooler.dense", h, h)
    return state


def build_checkpoint(folder: Path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps(model_config(vocab_size, seed), indent=1), encoding="utf-8")
    save_file(weights(vocab_size, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})
