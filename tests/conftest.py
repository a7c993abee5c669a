import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asrbench.engines.chatllm import library_dir

PROJECT = Path(__file__).resolve().parent.parent
CHATLLM_DIR = Path(os.environ.get("CHATLLM_DIR") or PROJECT / "chatllm.cpp")
TINY_MODEL = PROJECT / "models" / "tiny-qwen3-asr.bin"
SEEDED_MODEL = PROJECT / "models" / "seeded-qwen3-asr-0.6b-q4_0.bin"
FIXED_DIR = library_dir("fixed", CHATLLM_DIR)  # honours CHATLLM_VARIANTS_DIR, as --library fixed does
SAMPLE = PROJECT / "samples" / "phoneNumber1-zh-TW.wav"


def run_tool(*args, env=None, timeout=300, script="run_comparison.py", **kwargs):
    """Run one of the project's scripts as a user would, in a fresh process."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, str(PROJECT / script), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=PROJECT, **kwargs)


def results_of(output: Path) -> dict:
    return json.loads((Path(output) / "comparison_results.json").read_text(encoding="utf-8"))


def synthetic(output, *args, iterations=5, settings="", **kwargs):
    return run_tool("--engine", "synthetic", "--iterations", iterations, "--output", output, "--synthetic", settings,
                    "--no-plot", "--quiet", *args, **kwargs)


@pytest.fixture
def chatllm_dir() -> Path:
    if not (CHATLLM_DIR / "bindings" / "libchatllm.so").is_file():
        pytest.skip(f"libchatllm is not built in {CHATLLM_DIR} (make setup, or make engine)")
    return CHATLLM_DIR


@pytest.fixture
def fixed_dir() -> Path:
    if not (FIXED_DIR / "bindings" / "libchatllm.so").is_file():
        pytest.skip(f"the fixed libchatllm is not built in {FIXED_DIR} (make engine-fixed)")
    return FIXED_DIR


@pytest.fixture
def tiny_model(chatllm_dir) -> Path:
    if not TINY_MODEL.is_file():
        pytest.skip(f"{TINY_MODEL.name} is missing (make tiny-model)")
    return TINY_MODEL


# Which tests ran on a real engine (libchatllm, faster-whisper, CrispASR) rather than the synthetic control: named at the
# end of the run, so a CI log shows that the mission's own engine path was exercised and not skipped.
REAL_ENGINE_FIXTURES = {"chatllm_dir", "tiny_model", "fixed_dir"}


def pytest_configure(config):
    config.addinivalue_line("markers", "real_engine: runs a real inference engine (named in the summary)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_engine)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    outcomes = {}
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "real_engine" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                outcomes.setdefault(outcome, []).append(report.nodeid)
    if outcomes:
        terminalreporter.section("tests on a real engine")
        for outcome, ids in outcomes.items():
            terminalreporter.write_line(f"{outcome}: {len(ids)}")
            for nodeid in ids:
                terminalreporter.write_line(f"  {nodeid}")
