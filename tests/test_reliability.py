"""Crashes, hangs, interrupts and memory caps lose nothing already measured and say what happened."""

import json
import signal
import subprocess
import sys
import time

from conftest import PROJECT, results_of, synthetic

FAST = "work_ms=1,load_ms=1"


def test_a_crashing_way_keeps_its_iterations_and_the_other_way_still_runs(tmp_path):
    proc = synthetic(tmp_path, iterations=5, settings=f"{FAST},crash_at=3")
    assert proc.returncode == 1
    doc = results_of(tmp_path)
    for way in ("recreate", "restart"):
        assert doc["ways"][way]["status"] == "crashed"
        assert doc["ways"][way]["message"] == "crashed at iteration 3 (SIGSEGV)"
        assert [r["iteration"] for r in doc["iterations"][way]] == [1, 2]
    assert doc["status"] == "failed"
    assert "crashed at iteration 3 (SIGSEGV)" in proc.stdout  # in the table


def test_a_hung_iteration_is_killed_and_reported(tmp_path):
    started = time.monotonic()
    proc = synthetic(tmp_path, "--ways", "restart", "--timeout", "2", iterations=4, settings=f"{FAST},hang_at=2")
    assert time.monotonic() - started < 30
    assert proc.returncode == 1
    way = results_of(tmp_path)["ways"]["restart"]
    assert way["status"] == "timed_out"
    assert way["message"].startswith("timed out at iteration 2")
    assert way["iterations_completed"] == 1


def test_generation_without_end_callback_is_an_error_not_a_short_transcript(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", iterations=3, settings=f"{FAST},no_end_at=2")
    assert proc.returncode == 1
    way = results_of(tmp_path)["ways"]["restart"]
    assert way["status"] == "error"
    assert "error at iteration 2" in way["message"] and "end callback" in way["message"]


def start_long_run(tmp_path):
    return subprocess.Popen([sys.executable, str(PROJECT / "run_comparison.py"), "--engine", "synthetic",
                             "--iterations", "100000", "--output", str(tmp_path), "--synthetic", "work_ms=5",
                             "--no-plot", "--quiet"], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_iterations(tmp_path, count=5, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journals = list(tmp_path.glob("runs/*/recreate.jsonl"))
        if journals and journals[0].read_text().count('"event": "iteration"') >= count:
            return
        time.sleep(0.1)
    raise AssertionError("the run did not get going")


def test_ctrl_c_writes_the_partial_results_marked_interrupted(tmp_path):
    proc = start_long_run(tmp_path)
    wait_for_iterations(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    doc = results_of(tmp_path)
    assert doc["status"] == "interrupted"
    assert doc["ways"]["recreate"]["status"] == "interrupted"
    assert doc["ways"]["restart"]["status"] == "not_run"
    assert len(doc["iterations"]["recreate"]) >= 5
    assert "recreate:" in out  # the table and verdicts are still printed


def test_sigterm_exits_143_with_partial_results(tmp_path):
    proc = start_long_run(tmp_path)
    wait_for_iterations(tmp_path)
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert results_of(tmp_path)["status"] == "interrupted"


def test_a_worker_killed_from_outside_is_reported_with_its_last_rss(tmp_path):
    proc = start_long_run(tmp_path)
    wait_for_iterations(tmp_path)
    journal = next(tmp_path.glob("runs/*/recreate.jsonl"))
    pid = json.loads(journal.read_text().splitlines()[0])["pid"]
    import os

    os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    way = results_of(tmp_path)["ways"]["recreate"]
    assert way["status"] == "crashed" and way["signal"] == "SIGKILL"
    assert "possibly out of memory, last RSS" in way["message"]
    assert way["last_rss_mb"] > 0


def test_max_rss_stops_a_leaking_way_before_the_machine_does(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--max-rss-mb", "150", iterations=200,
                     settings=f"{FAST},request_leak_mb=5")
    assert proc.returncode == 1
    way = results_of(tmp_path)["ways"]["restart"]
    assert way["status"] == "stopped"
    assert "above --max-rss-mb 150" in way["message"]
    assert 0 < way["iterations_completed"] < 200


def test_each_run_keeps_its_own_folder_and_the_latest_is_copied(tmp_path):
    for _ in range(2):
        assert synthetic(tmp_path, iterations=2, settings=FAST).returncode == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    assert all((run / "comparison_results.json").is_file() for run in runs)
    assert results_of(tmp_path)["run_dir"] == str(runs[-1])


def test_no_progress_line_when_output_is_not_a_terminal_and_nothing_but_the_table_when_quiet(tmp_path):
    from conftest import run_tool

    args = ["--engine", "synthetic", "--ways", "restart", "--iterations", 3, "--synthetic", FAST, "--no-plot"]
    proc = run_tool(*args, "--output", tmp_path / "a")
    assert proc.returncode == 0
    assert "\r" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == "restart: completed 3 iterations"
    quiet = run_tool(*args, "--output", tmp_path / "b", "--quiet")
    assert quiet.stderr == "" and "results:" not in quiet.stdout
    assert "restart: undecided, too few iterations for a verdict" in quiet.stdout  # 3 iterations say nothing yet
