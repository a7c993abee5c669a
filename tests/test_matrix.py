"""The patches on every way chatllm.cpp's models own their position helpers: one tiny model per way (the model matrix,
tools/make_matrix.py), each run on the released library and the fixed one, and under AddressSanitizer
(FINDINGS.md section 12). Needs the libraries (make engines) and the matrix models (make matrix-models).
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHATLLM_DIR, FIXED_DIR, PROJECT
from test_sanitizer import asan_options, runtime

MATRIX = PROJECT / "models" / "matrix"
DRIVER = PROJECT / "tests" / "sanitizer" / "matrix.py"
ASAN = {"fixed": PROJECT / "build" / "engines" / "fixed-asan" / "chatllm.cpp",
        "stock": PROJECT / "build" / "engines" / "stock-asan" / "chatllm.cpp"}
# sha256 of the files tools/make_matrix.py writes for seed 0 with torch 2.13.0, transformers 5.24.0 and chatllm.cpp
# 4a4310e's convert.py
SHA256 = json.loads((PROJECT / "tools" / "matrix" / "sha256.json").read_text())
ROW_A = "qwen3"  # a plain LLM (path A): the model created after another row, to catch what that row left behind


def rows() -> dict:
    path = MATRIX / "rows.json"
    if not path.is_file():
        pytest.skip("the model matrix is not built (make matrix-models)")
    return {row["row"]: row for row in json.loads(path.read_text())}


def run(library: Path, *args, sanitizer: bool = False, asan: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GGML_NO_BACKTRACE="1")  # ggml would attach gdb on a crash
    if sanitizer:
        if not runtime("libasan.so"):
            pytest.skip("gcc's libasan is not installed")
        # libstdc++ preloaded too: ASan's __cxa_throw interceptor needs it loaded first, or a C++ exception thrown in
        # libchatllm (the mismatched file's) stops the process in ASan's own CHECK
        env.update(LD_PRELOAD=f"{runtime('libasan.so')} {runtime('libstdc++.so.6')}", **asan_options(asan))
    return subprocess.run([sys.executable, str(DRIVER), str(library), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=PROJECT)


def outputs(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("output ")]


def need(library: Path) -> Path:
    if not (library / "bindings" / "libchatllm.so").is_file():
        pytest.skip(f"{library} is not built (make engines)")
    return library


# Every row but the mismatched file, in an order that puts each ownership path after another: A, D, C, E, A, B's
# neighbours (Qwen3-ASR, path B, has its own tests: tests/test_sanitizer.py)
ROWS = ["qwen3", "qwen3_vl", "qwen3_vl-text", "gemma4", "gemma4-text", "qwen3_5", "qwen3_5-noproj", "gemma3",
        "xlmr_embedding"]


def test_every_family_file_is_the_one_make_matrix_models_writes():
    table = rows()
    for name in sorted({row["file"] for row in table.values()}):
        digest = hashlib.sha256((MATRIX / name).read_bytes()).hexdigest()
        assert digest == SHA256[name], f"{name}: {digest}"
    assert set(ROWS) <= set(table), f"rows.json lacks {set(ROWS) - set(table)}: make matrix-models"


@pytest.mark.parametrize("row", ROWS)
def test_stock_and_fixed_give_the_same_greedy_output(row):
    rows()
    stock, fixed = run(need(CHATLLM_DIR), "output", row), run(need(FIXED_DIR), "output", row)
    assert stock.returncode == 0 and fixed.returncode == 0, stock.stderr[-2000:] + fixed.stderr[-2000:]
    assert outputs(stock) == outputs(fixed) and len(outputs(fixed)) == 1, (stock.stdout, fixed.stdout)
    assert outputs(fixed)[0] != f"output {row}: ''", "the row printed nothing: the comparison would prove nothing"


def test_every_row_three_times_after_every_other_is_clean_under_asan_on_fixed():
    """Create, answer, destroy, three times per row, every row after the one before in one process: no memory error,
    no leak at exit, every destroy returns 0, and each row answers the same every time (nothing an instance left
    behind changed the next, and its output is the release build's)."""
    rows()
    proc = run(need(ASAN["fixed"]), "chain", *ROWS, sanitizer=True)
    assert "ERROR: AddressSanitizer" not in proc.stderr and "ERROR: LeakSanitizer" not in proc.stderr, proc.stderr[-6000:]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    for row in ROWS:
        assert proc.stdout.count(f"destroy {row} returned 0") == 3, (row, proc.stdout)
        answers = {line for line in outputs(proc) if line.startswith(f"output {row}: ")}
        assert len(answers) == 1, answers
        assert answers == set(outputs(run(FIXED_DIR, "output", row))), (row, answers)


def test_a_row_a_model_after_qwen3_5_without_its_vision_tower_is_clean_under_asan():
    """With --max_proj_length 0 Qwen3.5 builds no ViT, whose prelude would clear the global position helper: without
    patch 0001 it keeps pointing into the destroyed Qwen3.5 model, and the next model's layers take it."""
    rows()
    proc = run(need(ASAN["fixed"]), "lifecycle", "qwen3_5-noproj", ROW_A, sanitizer=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in proc.stderr


def test_a_model_whose_constructor_throws_leaves_nothing_for_the_next_under_asan():
    """A mismatched Qwen3.5 file (its config asks for an MoE layout the constructor refuses) throws after the prelude
    handed out its helper and before done(); the next model must not be given that freed helper (patch 0002)."""
    table = rows()
    proc = run(need(ASAN["fixed"]), "after-failure", "qwen3_5-mismatched", ROW_A, sanitizer=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "create qwen3_5-mismatched failed" in proc.stdout and "unsupported MoE param" in proc.stderr + proc.stdout
    assert "ERROR: AddressSanitizer" not in proc.stderr
    assert f"destroy {ROW_A} returned 0" in proc.stdout
    assert table[ROW_A]


def test_on_stock_a_plain_model_is_destroyed_through_the_c_api_and_leaks_its_transformer():
    """The released binding has no destroy(): the driver calls chatllm_destroy, as its users must. A plain LLM (path A)
    is destroyed without an abort (only towers on the layer default abort), and LeakSanitizer finds its transformer,
    which stock never frees (patch 0003)."""
    rows()
    # ASan's type-mismatch check off: on stock its first report is always DataReader's delete (patch 0005)
    proc = run(need(ASAN["stock"]), "lifecycle", ROW_A, ROW_A, sanitizer=True, asan=":new_delete_type_mismatch=0")
    report = proc.stdout + proc.stderr
    assert proc.stdout.count(f"destroy {ROW_A} returned 0") == 4, report[-3000:]
    assert "ERROR: LeakSanitizer" in proc.stderr and "qwen::v3::ConditionalGeneration::ConditionalGeneration" in report
