"""CrispASR (the crispasr package from PyPI) as a second Qwen3-ASR runtime, on the GGUF that tools/make_model.py writes
from the same seeded checkpoint as chatllm.cpp's file: the same weights, byte for byte, and the same greedy tokens.

The tiny files come from make tiny-model (models/tiny-qwen3-asr.bin and .gguf); tests needing what is not there are
skipped with the reason.
"""

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from conftest import CHATLLM_DIR, PROJECT, SAMPLE, results_of, run_tool

TINY_GGUF = PROJECT / "models" / "tiny-qwen3-asr.gguf"
# sha256 of the GGUF tools/make_model.py --gguf writes for seed 0 with torch 2.13.0 and gguf 0.19.0
TINY_GGUF_SHA256 = "453d2b52cf64234c20e64d516d44787ca1c959022262258d073f18d3e47cd836"
SEEDED_TINY = {"seed": 0, "size": "tiny", "tool": "tools/make_model.py"}

has = {name: importlib.util.find_spec(name) is not None for name in ("crispasr", "gguf", "torch")}
needs_crispasr = pytest.mark.skipif(not has["crispasr"], reason="crispasr not installed (pip install -e '.[crispasr]')")
needs_writer = pytest.mark.skipif(not (has["gguf"] and has["torch"]),
                                  reason="gguf or torch not installed (pip install -e '.[crispasr,models]')")


@pytest.fixture
def tiny_gguf() -> str:
    if not TINY_GGUF.is_file():
        pytest.skip(f"{TINY_GGUF.name} is missing (make tiny-model)")
    return str(TINY_GGUF)


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def transcript(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("transcript:"))
    return line.removeprefix("transcript:").strip()


@needs_crispasr
def test_both_ways_on_crispasr_write_a_valid_results_file(tiny_gguf, tmp_path):
    proc = run_tool("--engine", "crispasr", "--model", tiny_gguf, "--iterations", 3, "--threads", 2, "--output", tmp_path,
                    "--quiet", "--no-plot", "--malloc-trim", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results_of(tmp_path)
    # a seeded GGUF is recognised by the key the writer puts in it, and bounded as chatllm.cpp's file is
    assert doc["config"]["seeded_model"] == SEEDED_TINY
    assert doc["config"]["max_new_tokens"] == 16 and doc["config"]["max_new_tokens_why"] == "default for seeded models"
    texts = set()
    for way in ("recreate", "restart"):
        assert doc["ways"][way]["status"] == "completed" and doc["ways"][way]["exit_code"] == 0
        records = doc["iterations"][way]
        for r in records:
            assert r["ttft_ms"] is None  # not measured: the transcript arrives whole
            assert 0 < r["request_s"] < 60 and r["rtf"] > 0
            assert 0 < r["chars"] <= 16  # 16 tokens of the tiny byte-level vocabulary, one character each
            assert r["rss_anon_trimmed_mb"] > 0
            texts.add(r["raw_transcript"])
        engine = doc["ways"][way]["worker"]["engine"]
        assert engine["openblas_num_threads"]["value"] == "2"
        assert engine["decoding"]["sampler"] == "greedy" and engine["max_new_tokens"] == 16
        audio = engine["audio"][doc["config"]["audio"]]
        assert audio["samples"] == round(doc["config"]["audio_seconds"] * 16000)
        assert audio["sha256"] == hashlib.sha256(decoded(SAMPLE)).hexdigest()
        assert engine["ttft"].startswith("not measured") and "kv_cache" in engine["state_between_calls"]
    assert len(texts) == 1  # greedy, and a Session carries nothing from one request into the next
    assert [r["load_s"] is not None for r in doc["iterations"]["recreate"]] == [True, True, True]
    assert [r["load_s"] is not None for r in doc["iterations"]["restart"]] == [True, False, False]
    assert [r["release_rc"] for r in doc["iterations"]["recreate"]] == [0, 0, 0]
    meta = doc["metadata"]
    assert meta["crispasr"]["version"] == "0.8.45" and len(meta["crispasr"]["library"]["sha256"]) == 64
    assert meta["model"]["sha256"] == hashlib.sha256(TINY_GGUF.read_bytes()).hexdigest()


def decoded(path) -> bytes:
    from asrbench import audio

    return audio.decode(path)


@needs_crispasr
def test_crispasr_and_chatllm_give_the_same_greedy_tokens_when_their_prompts_agree(tiny_gguf, tiny_model, chatllm_dir):
    """Same weights, same audio: with the same prompt both runtimes emit the same 16 greedy tokens.

    Their default prompts differ, and only there. chatllm.cpp 4a4310e writes no system turn (the Qwen3-ASR tokenizer's
    system prompt is "", models/qwen.cpp:3016-3020, and append_sys_prompt skips an empty one, models/qwen.cpp:96-105) and
    ends with "assistant\\nlanguage Chinese" (models/qwen.cpp:3200-3210). CrispASR always writes an empty system turn
    and, given a language, ends with "assistant\\nlanguage Chinese<asr_text>" (src/crispasr_c_api.cpp:5915-5947).
    Aligned: a system turn "Transcribe the speech in Chinese." in both (chatllm.cpp: -s, and an unknown language so no
    language prefix; CrispASR: CRISPASR_QWEN3_SYSPROMPT_LANG=1 turns the language into that system turn).
    What else differs does not change a token here: the first two mel frames (chatllm.cpp reflects the audio's start,
    CrispASR pads it with zeros) and the GELU in the audio encoder (ggml_gelu's tanh form vs ggml_gelu_erf)."""
    common = ("--threads", 1, "--max-new-tokens", 16)
    chatllm = transcript(run_tool("--model", tiny_model, "--chatllm-dir", chatllm_dir, "--language", "none",
                                  "--engine-args", "-s 'Transcribe the speech in Chinese.'", *common, script="run_asr.py"))
    crisp = transcript(run_tool("--engine", "crispasr", "--model", tiny_gguf, "--language", "Chinese", *common,
                                env={"CRISPASR_QWEN3_SYSPROMPT_LANG": "1"}, script="run_asr.py"))
    assert len(chatllm) == 16 and crisp == chatllm

    chatllm_default = transcript(run_tool("--model", tiny_model, "--chatllm-dir", chatllm_dir, *common, script="run_asr.py"))
    crisp_default = transcript(run_tool("--engine", "crispasr", "--model", tiny_gguf, *common, script="run_asr.py"))
    # the default prompts differ (above), so the tokens do: when this fails, one runtime has changed its prompt
    assert crisp_default != chatllm_default and chatllm_default != chatllm


@needs_writer
def test_the_gguf_holds_the_chatllm_files_weights_byte_for_byte(tmp_path):
    """q4_0 for both files: every quantized block is the same bytes, because the GGUF writer quantizes with
    convert.py's arithmetic; and the check that says so finds a single changed byte."""
    if not (CHATLLM_DIR / "convert.py").is_file():
        pytest.skip("chatllm.cpp source missing (make setup)")
    sys.path.insert(0, str(PROJECT / "tools"))
    import gguf
    import gguf_from_checkpoint as tool

    out, checkpoint = tmp_path / "tiny-q4_0.bin", tmp_path / "hf"
    proc = subprocess.run([sys.executable, str(PROJECT / "tools" / "make_model.py"), "--quant", "q4_0", "--out", str(out),
                           "--gguf", "--checkpoint", str(checkpoint), "--chatllm-dir", str(CHATLLM_DIR)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "every weight has the same type and bytes" in proc.stdout
    reader = gguf.GGUFReader(str(out.with_suffix(".gguf")))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_0" and types["token_embd.weight"] == "Q4_0"
    assert types["output.weight"] == "Q4_0" and types["audio.conv_out.weight"] == "Q4_0"
    assert types["audio.conv.2.weight"] == "F16"  # last dimension 3: convert.py falls back to f16
    assert types["blk.0.attn_norm.weight"] == "F32" and types["audio.mel_filters"] == "F32"

    tampered = tmp_path / "tampered.gguf"
    shutil.copyfile(out.with_suffix(".gguf"), tampered)
    target = next(t for t in reader.tensors if t.name == "blk.1.ffn_down.weight")
    with open(tampered, "r+b") as f:
        f.seek(int(target.data_offset) + 5)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    assert tool.check(tampered, out, checkpoint) == [
        "blk.1.ffn_down.weight (model.layers.1.mlp.down_proj.weight): same type and shape, different bytes"]


@needs_writer
def test_same_seed_writes_the_same_tiny_gguf(tmp_path):
    if not (CHATLLM_DIR / "convert.py").is_file():
        pytest.skip("chatllm.cpp source missing (make setup)")
    out = tmp_path / "tiny.bin"
    proc = subprocess.run([sys.executable, str(PROJECT / "tools" / "make_model.py"), "--out", str(out), "--gguf",
                           "--chatllm-dir", str(CHATLLM_DIR)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(out.with_suffix(".gguf").read_bytes()).hexdigest() == TINY_GGUF_SHA256


def test_the_header_reader_agrees_with_the_gguf_package(tiny_gguf, tmp_path):
    from asrbench.engines.crispasr import GGUFError, gguf_metadata, seeded_model

    meta = gguf_metadata(tiny_gguf)
    assert meta["general.architecture"] == "qwen3asr" and meta["general.name"] == "seeded-qwen3-asr-tiny"
    assert seeded_model(tiny_gguf) == SEEDED_TINY
    if has["gguf"]:
        import gguf

        field = gguf.GGUFReader(tiny_gguf).fields["asrbench.seeded"]
        assert json.loads(bytes(field.parts[field.data[0]]).decode()) == SEEDED_TINY
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(TINY_GGUF.read_bytes()[:200])
    with pytest.raises(GGUFError, match="ends inside its header"):
        gguf_metadata(cut, wanted=("no.such.key",))


def test_a_chatllm_file_is_refused_with_the_fix(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"ggmm" + bytes(64))
    proc = run_tool("--engine", "crispasr", "--model", model, "--output", tmp_path / "o")
    if not has["crispasr"]:
        one_line_error(proc, "crispasr is not installed", ".[crispasr]")
        return
    one_line_error(proc, "is not a GGUF file", "--engine chatllm", "tools/gguf_from_checkpoint.py")
    one_line_error(run_tool("--engine", "crispasr", "--model", tmp_path / "none.gguf"), "not found", "make tiny-model")
    one_line_error(run_tool("--engine", "crispasr", "--model", model, "--engine-args", "-t 0"), "--engine-args", "drop it")


@needs_writer
def test_a_gguf_of_another_model_is_refused(tmp_path):
    import gguf

    path = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    from asrbench.config import UsageError, check_gguf

    with pytest.raises(UsageError, match="is a GGUF for llama, not Qwen3-ASR"):
        check_gguf(str(path))


def test_a_missing_package_is_one_line_with_the_install_command(monkeypatch, tmp_path):
    from asrbench import config

    real = importlib.util.find_spec
    monkeypatch.setattr(config.importlib.util, "find_spec", lambda name, *a: None if name == "crispasr" else real(name, *a))
    with pytest.raises(config.UsageError, match=r"crispasr is not installed \(engine crispasr\): pip install -e "
                                                 r"'\.\[crispasr\]'"):
        config.validate(config.RunConfig(engine="crispasr", model=str(tmp_path / "x.gguf"), audio=str(SAMPLE)))
