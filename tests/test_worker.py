"""The worker protocol: one JSON line per event, flushed as it happens, in a process of its own."""

import json
import os
import subprocess
import sys

from asrbench.config import RunConfig
from conftest import PROJECT


def run_worker(tmp_path, way, **config):
    cfg = RunConfig(engine="synthetic", iterations=4, reference_text="0900073331", uss_every=2, **config)
    cfg.save(tmp_path / "config.json")
    out = tmp_path / f"{way}.jsonl"
    proc = subprocess.run([sys.executable, "-m", "asrbench.worker", str(tmp_path / "config.json"), way, str(out)],
                          cwd=PROJECT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    return proc, [json.loads(line) for line in out.read_text().splitlines()]


def test_events_come_in_protocol_order(tmp_path):
    proc, events = run_worker(tmp_path, "restart")
    assert proc.returncode == 0
    kinds = [e["event"] for e in events]
    assert kinds == ["start"] + ["unfinished", "iteration"] * 4 + ["done"]
    assert events[0]["pid"] != os.getpid()
    assert events[0]["baseline"]["rss_mb"] > 0


def test_recreate_loads_every_iteration_and_restart_once(tmp_path):
    _, recreate = run_worker(tmp_path, "recreate")
    _, restart = run_worker(tmp_path, "restart")
    loads = lambda events: [e["load_s"] is not None for e in events if e["event"] == "iteration"]
    assert loads(recreate) == [True] * 4
    assert loads(restart) == [True, False, False, False]
    assert all(e["release_rc"] == 0 for e in recreate if e["event"] == "iteration")
    assert all(e["release_rc"] is None for e in restart if e["event"] == "iteration")


def test_every_iteration_record_has_the_measured_fields(tmp_path):
    _, events = run_worker(tmp_path, "recreate")
    records = [e for e in events if e["event"] == "iteration"]
    for r in records:
        for key in ("load_s", "ttft_ms", "request_s", "chars", "chars_per_s", "raw_transcript",
                    "rss_mb", "rss_anon_mb", "rss_file_mb", "py_blocks", "release_s"):
            assert r[key] is not None, key
        assert set(r["memory"]) == {"after_load", "after_transcribe", "after_release"}
        assert 0 < r["ttft_ms"] / 1000 < r["request_s"]
        assert r["raw_transcript"] == "零九零零零七三三三一"
        assert "wer" not in r  # scored by the parent, outside the measured process
    # USS is sampled at iteration 1 and every uss_every-th iteration only: it costs a page walk
    assert ["uss_mb" in r for r in records] == [True, True, False, True]


def test_the_worker_process_never_loads_the_text_pipeline(tmp_path):
    proc, _ = run_worker(tmp_path, "restart")
    code = ("import sys, runpy; sys.argv=['w', *sys.argv[1:]]; "
            "import asrbench.worker as w; w.main(sys.argv[1:]); print(sorted(m for m in sys.modules if m in ('jiwer','opencc','cn2an','scipy','pymannkendall','numba')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "config.json"), "restart", str(tmp_path / "x.jsonl")],
                         cwd=PROJECT, capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_failing_engine_step_is_an_error_event_and_a_non_zero_exit(tmp_path):
    proc, events = run_worker(tmp_path, "restart", synthetic="no_end_at=2")
    assert proc.returncode == 3
    assert events[-1]["event"] == "error" and events[-1]["iteration"] == 2
    assert "without its end callback" in events[-1]["message"]


def test_the_engine_gets_a_copy_of_the_audio_under_a_shell_safe_path(tmp_path):
    from asrbench.engines.chatllm import SAFE_PATH, safe_copy

    evil = tmp_path / 'a"b`c`$(d)\n e.wav'
    evil.write_bytes(b"RIFF")
    copy = safe_copy(evil)
    assert SAFE_PATH.match(str(copy)) and copy.read_bytes() == b"RIFF"
    assert copy.name == "audio.wav"
