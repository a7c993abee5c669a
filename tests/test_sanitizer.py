"""chatllm.cpp's lifecycle under AddressSanitizer and LeakSanitizer: create, transcribe and destroy Qwen3-ASR several
times in one process. The fixed library must come out clean; the stock one must not (it frees a pointer it never
allocated in chatllm_destroy, and leaks what it never frees).

Needs the sanitizer builds (make engine-asan) and the tiny model; skipped with the reason elsewhere.
"""

import os
import subprocess
import sys

import pytest

from conftest import PROJECT, SAMPLE, TINY_MODEL

pytestmark = pytest.mark.real_engine

VARIANTS = PROJECT / "build" / "engines"
SUPPRESSIONS = PROJECT / "tests" / "sanitizer" / "lsan.supp"
CYCLE = PROJECT / "tests" / "sanitizer" / "cycle.py"


def libasan() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return os.path.realpath(path) if path and os.path.isabs(path) else ""


def run_cycles(variant: str, cycles: int = 3, asan_options: str = "") -> subprocess.CompletedProcess:
    chatllm_dir = VARIANTS / variant / "chatllm.cpp"
    if not (chatllm_dir / "bindings" / "libchatllm.so").is_file():
        pytest.skip(f"the {variant} sanitizer build is missing (make engine-asan)")
    if not TINY_MODEL.is_file():
        pytest.skip(f"{TINY_MODEL.name} is missing (make tiny-model)")
    runtime = libasan()
    if not runtime:
        pytest.skip("gcc's libasan is not installed")
    env = dict(os.environ, LD_PRELOAD=runtime,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86" + asan_options,
               LSAN_OPTIONS=f"suppressions={SUPPRESSIONS}:print_suppressions=0:exitcode=87")
    return subprocess.run([sys.executable, str(CYCLE), str(chatllm_dir), str(TINY_MODEL), str(SAMPLE), str(cycles)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=PROJECT)


def test_fixed_library_creates_transcribes_and_destroys_cleanly():
    proc = run_cycles("fixed-asan")
    report = proc.stdout + proc.stderr
    assert "ERROR: AddressSanitizer" not in report and "ERROR: LeakSanitizer" not in report, report[-6000:]
    assert proc.returncode == 0, report[-3000:]
    cycles = [line for line in proc.stdout.splitlines() if line.startswith("cycle ")]
    assert len(cycles) == 3 and all(line.endswith("destroy returned 0 via ChatLLM.destroy()") for line in cycles), cycles
    assert "binding objects kept: 0" in proc.stdout


def test_stock_library_fails_under_the_sanitizer():
    """Two faults, each stopping the process at its first report, so the second needs the first switched off."""
    proc = run_cycles("stock-asan", cycles=1)
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "destroy returned" not in proc.stdout
    # ModelLoader deletes its SimpleFile through DataReader, whose destructor is not virtual (patch 0004)
    assert "AddressSanitizer: new-delete-type-mismatch" in report, report[-4000:]
    assert "std::default_delete<tokenizer::DataReader>" in report and "chatllm_destroy" in report

    proc = run_cycles("stock-asan", cycles=1, asan_options=":new_delete_type_mismatch=0")
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "destroy returned" not in proc.stdout
    # CoreAttention frees its own member def_pos_helper through a unique_ptr (layers.h; patch 0001)
    assert "AddressSanitizer: attempting free on address which was not malloc()-ed" in report, report[-4000:]
    assert "CoreAttention::~CoreAttention" in report
