"""What decides the transcripts: chatllm.cpp's decoding read from the options it is started with, and the drift of
transcripts over iterations that shows state left behind by restart()."""

import json
import re

import pytest

from asrbench import consistency, results
from asrbench.engines.chatllm import DECODING_OPTIONS, ENGINE_DEFAULT_DECODING, decoding_settings
from asrbench.report import decoding_label, table
from conftest import CHATLLM_DIR, synthetic

FIXED = ["-m", "model.bin", "-n", "2", "-c", "4096", "--format", "chat", "--set", "language", "Chinese",
         "--multimedia_file_tags", "{{", "}}"]


def test_chatllm_default_samples_with_a_new_random_seed_per_request():
    d = decoding_settings(FIXED + DECODING_OPTIONS["engine-default"], "engine-default")
    assert (d["sampler"], d["temperature"], d["top_k"], d["top_p"], d["seed"]) == ("top_p", 0.7, 20, 0.7, -1)
    assert d["deterministic"] is False
    assert decoding_label(d) == "top_p T=0.7 k=20 p=0.7 random seed (engine default)"


def test_greedy_is_temperature_zero():
    d = decoding_settings(FIXED + DECODING_OPTIONS["greedy"], "greedy")
    assert DECODING_OPTIONS["greedy"] == ["-t", "0"]
    assert (d["sampler"], d["temperature"], d["deterministic"]) == ("greedy", 0.0, True)
    assert decoding_label(d) == "greedy (-t 0)"


def test_engine_args_come_last_and_win_and_are_recorded():
    extra = ["--temp", "0.3"]
    d = decoding_settings(FIXED + DECODING_OPTIONS["greedy"] + extra, "greedy", extra)
    assert (d["sampler"], d["temperature"], d["deterministic"]) == ("top_p", 0.3, False)
    assert d["from_engine_args"] == ["--temp", "0.3"]
    assert decoding_label(d) == "top_p T=0.3 k=20 p=0.7 random seed (--engine-args --temp 0.3)"


@pytest.mark.parametrize("extra, sampler, deterministic", [
    (["--sampling", "greedy"], "greedy", True),          # sampling algorithm greedy at temperature 0.7
    (["--seed", "42"], "top_p", True),                   # a fixed seed repeats the same draws every request
    (["--seed", "0"], "top_p", False),                   # seed 0 means random (chat.h get_seed: only > 0 is kept)
    (["--top-k", "5", "-t", "-1"], "greedy", True),      # '-' and '_' alike in names; temperature <= 0 is greedy
])
def test_other_decoding_options_read_as_chatllm_reads_them(extra, sampler, deterministic):
    d = decoding_settings(FIXED + extra, "engine-default", extra)
    assert (d["sampler"], d["deterministic"]) == (sampler, deterministic)


def test_the_recorded_defaults_are_chatllm_cpps_own():
    main = CHATLLM_DIR / "src" / "main.cpp"
    if not main.is_file():
        pytest.skip(f"chatllm.cpp source not in {CHATLLM_DIR} (git submodule update --init)")
    source = main.read_text(encoding="utf-8", errors="replace")
    found = {key: re.search(rf"^\s*(?:int|float|std::string)\s+{name}\s*=\s*\"?([^\";]+?)f?\"?;", source, re.M).group(1)
             for key, name in [("sampling", "sampling"), ("temperature", "temp"), ("top_k", "top_k"),
                               ("top_p", "top_p"), ("seed", "seed")]}
    assert found["sampling"] == ENGINE_DEFAULT_DECODING["sampling"]
    assert float(found["temperature"]) == ENGINE_DEFAULT_DECODING["temperature"]
    assert int(found["top_k"]) == ENGINE_DEFAULT_DECODING["top_k"]
    assert float(found["top_p"]) == ENGINE_DEFAULT_DECODING["top_p"]
    assert int(found["seed"]) == ENGINE_DEFAULT_DECODING["seed"]
    assert "args.temp > 0" in source  # do_sample: temperature 0 is greedy


def chatllm_run(transcripts: dict, decoding: str = "greedy") -> dict:
    params = FIXED + DECODING_OPTIONS[decoding]
    return {"config": {"engine": "chatllm", "decoding": decoding, "leak_threshold_mb": 0.05},
            "ways": {way: {"status": "completed",
                           "worker": {"engine": {"engine": "chatllm", "params": params,
                                                 "decoding": decoding_settings(params, decoding)}}}
                     for way in transcripts},
            "iterations": {way: [{"iteration": i + 1, "rss_mb": 100.0, "raw_transcript": t} for i, t in enumerate(texts)]
                           for way, texts in transcripts.items()}}


def test_drift_counts_transcripts_that_differ_from_the_first_of_each_way():
    drift = consistency.transcript_drift(chatllm_run({"recreate": ["a", "a", "a"], "restart": ["a", "a", "b", "b"]})["iterations"])
    assert drift["recreate"] == {"transcripts": 3, "distinct": 1, "differ_from_first": 0, "first_differing_iteration": None,
                                 "differ_from_first_of": {"restart": 0}}
    assert drift["restart"] == {"transcripts": 4, "distinct": 2, "differ_from_first": 2, "first_differing_iteration": 3,
                                "differ_from_first_of": {"recreate": 2}}


def test_drift_under_greedy_decoding_is_in_the_verdict_line_and_the_table():
    doc = results.summarise(chatllm_run({"recreate": ["a", "a", "a"], "restart": ["b", "b", "c", "b"]}))
    assert doc["verdicts"]["restart"].endswith(
        "; transcript drift: 1 of 4 differ from the first (from iteration 3), 4 of 4 from recreate's first")
    assert doc["verdicts"]["recreate"].endswith("; transcript drift: 3 of 3 from restart's first")
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in table(doc).splitlines())}
    assert rows["decoding"] == ["greedy (-t 0)", "greedy (-t 0)"]
    assert rows["transcripts differing from own first"] == ["0/3", "1/4"]
    assert rows["... from the other ways' first"] == ["3/3", "4/4"]


def test_no_drift_or_sampled_drift_leaves_the_verdict_alone():
    steady = results.summarise(chatllm_run({"restart": ["a"] * 5}))
    assert "drift" not in steady["verdicts"]["restart"]
    sampled = results.summarise(chatllm_run({"restart": ["a", "b", "c"]}, decoding="engine-default"))
    assert "drift" not in sampled["verdicts"]["restart"]  # sampling noise, not state
    assert sampled["summary"]["restart"]["transcript_drift"]["differ_from_first"] == 2


def test_a_run_recorded_before_decoding_was_recorded_is_read_from_its_options():
    doc = chatllm_run({"restart": ["a", "b"]})
    doc["ways"]["restart"]["worker"]["engine"] = {"engine": "chatllm", "params": FIXED}  # no -t 0: it sampled
    doc["config"].pop("decoding")
    summary = results.summarise(doc)["summary"]["restart"]
    assert summary["decoding"]["sampler"] == "top_p" and "drift" not in results.summarise(doc)["verdicts"]["restart"]


def test_a_synthetic_run_records_its_decoding_and_no_drift(tmp_path):
    assert synthetic(tmp_path, "--decoding", "engine-default", iterations=3, settings="work_ms=1,load_ms=1").returncode == 0
    doc = json.loads((tmp_path / "comparison_results.json").read_text())
    assert doc["config"]["decoding"] == "engine-default"
    assert doc["summary"]["restart"]["decoding"] == {"sampler": "fixed text", "deterministic": True}
    assert doc["summary"]["restart"]["transcript_drift"]["differ_from_first"] == 0
    assert doc["summary"]["restart"]["transcript_drift"]["differ_from_first_of"] == {"recreate": 0}
