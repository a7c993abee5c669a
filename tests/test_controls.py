"""The instrument proves itself on an engine whose leak is known: native memory from malloc, sampled and
analysed through the same workers, files and statistics as chatllm.cpp."""

import pytest

from asrbench import results
from conftest import results_of, run_tool, synthetic

FAST = "work_ms=1,load_ms=1,noise_mb=2"


def run_control(tmp_path, settings, iterations=50, ways="restart"):
    proc = synthetic(tmp_path, "--ways", ways, iterations=iterations, settings=f"{FAST},{settings}")
    assert proc.returncode == 0, proc.stderr
    return results_of(tmp_path)


def test_half_a_megabyte_per_request_is_found_within_50_iterations(tmp_path):
    doc = run_control(tmp_path, "request_leak_mb=0.5", ways="recreate,restart")
    for way in ("recreate", "restart"):
        anon = doc["summary"][way]["memory"]["rss_anon_mb"]
        assert doc["summary"][way]["verdict"] == "LEAK", doc["verdicts"][way]
        assert anon["slope_low"] <= 0.5 <= anon["slope_high"]
        assert anon["slope_high"] - anon["slope_low"] < 0.1


@pytest.mark.parametrize("seed", range(10))
def test_an_engine_that_leaks_nothing_is_not_flagged(tmp_path, seed):
    doc = run_control(tmp_path, f"seed={seed}", iterations=40)
    assert doc["summary"]["restart"]["verdict"] == "no leak", doc["verdicts"]["restart"]


def test_growth_that_stops_is_not_called_linear(tmp_path):
    doc = run_control(tmp_path, "request_leak_mb=1,plateau_after=15", iterations=60)
    analysis = doc["summary"]["restart"]["memory"]["rss_anon_mb"]
    assert analysis["shape"] != "linear" and doc["summary"]["restart"]["verdict"] != "LEAK", doc["verdicts"]["restart"]


def test_leak_per_create_shows_in_recreate_only(tmp_path):
    doc = run_control(tmp_path, "create_leak_mb=0.5", iterations=40, ways="recreate,restart")
    assert doc["summary"]["recreate"]["verdict"] == "LEAK"
    assert doc["summary"]["restart"]["verdict"] == "no leak"


def test_leak_per_restart_shows_in_restart_only(tmp_path):
    doc = run_control(tmp_path, "restart_leak_mb=0.5", iterations=40, ways="recreate,restart")
    assert doc["summary"]["restart"]["verdict"] == "LEAK"
    assert doc["summary"]["recreate"]["verdict"] == "no leak"


def test_malloc_trim_option_reports_what_the_allocator_only_retained(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--malloc-trim", iterations=20, settings=f"{FAST},request_leak_mb=0.5")
    assert proc.returncode == 0, proc.stderr
    summary = results_of(tmp_path)["summary"]["restart"]
    assert "rss_anon_trimmed_mb" in summary["memory"]
    # a true leak does not disappear with malloc_trim: what the allocator merely retained is about zero
    assert abs(summary["attribution"]["allocator_retained_mb_per_iter"]) < 0.1
    assert summary["memory"]["rss_anon_trimmed_mb"]["verdict"] == "LEAK"


def test_tracemalloc_attributes_native_growth_to_native(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--tracemalloc", iterations=20, settings=f"{FAST},request_leak_mb=0.5")
    assert proc.returncode == 0, proc.stderr
    attribution = results_of(tmp_path)["summary"]["restart"]["attribution"]
    assert abs(attribution["python_mb_per_iter"]) < 0.05
    assert attribution["native_mb_per_iter"] == pytest.approx(0.5, abs=0.1)


def test_until_decided_stops_a_leaking_way_at_its_first_look(tmp_path):
    proc = synthetic(tmp_path, "--until-decided", iterations=100, settings=f"{FAST},request_leak_mb=0.5")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert doc["status"] == "completed" and doc["schema_version"] == results.SCHEMA_VERSION
    for way in ("recreate", "restart"):
        status = doc["ways"][way]
        assert (status["status"], status["iterations_completed"]) == ("decided", 20), status["message"]
        assert status["message"] == "decided at iteration 20 of at most 100 (LEAK)"
        looks = status["until_decided"]
        assert looks["checkpoints"] == [20, 30, 45, 68, 100] and (looks["decided_at"], looks["decision"]) == (20, "LEAK")
        assert looks["trend_alpha_per_look"] == pytest.approx(0.002) and looks["confidence_per_look"] == pytest.approx(0.99)
        assert len(doc["iterations"][way]) == 20  # only what the decision saw, though the worker may have run on
        line = doc["verdicts"][way]  # the slope, its shape, its projection over a million requests, then the look
        assert " linear = " in line and " per 1M requests " in line, line
        assert line.endswith("(decided at iteration 20 of at most 100)"), line
    again = results.summarise(results.load(tmp_path / "comparison_results.json"))
    assert again["verdicts"] == doc["verdicts"]


def test_until_decided_stops_a_clean_way_as_no_leak_before_the_maximum(tmp_path):
    proc = synthetic(tmp_path, "--until-decided", "--ways", "restart", iterations=100, settings=f"{FAST},seed=7")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    status = doc["ways"]["restart"]
    assert status["status"] == "decided" and status["until_decided"]["decision"] == "no leak"
    assert status["iterations_completed"] < 100
    assert doc["summary"]["restart"]["verdict"] == "no leak", doc["verdicts"]["restart"]


def test_until_decided_runs_to_the_maximum_when_nothing_is_decided(tmp_path):
    proc = synthetic(tmp_path, "--until-decided", "--min-iterations", "10", "--ways", "restart", iterations=12,
                     settings=f"{FAST},noise_mb=20")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    status = doc["ways"]["restart"]
    assert status["status"] == "completed" and status["message"].endswith("still undecided at the last look")
    assert [look["iteration"] for look in status["until_decided"]["looks"]] == [10, 12]
    assert status["until_decided"]["decided_at"] is None
    assert doc["summary"]["restart"]["verdict"] == "undecided"


def test_duration_runs_a_way_until_its_time_is_up(tmp_path):
    proc = run_tool("--engine", "synthetic", "--ways", "restart", "--duration", "2s", "--output", tmp_path,
                    "--synthetic", "work_ms=5,load_ms=1", "--no-plot", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    status = doc["ways"]["restart"]
    assert doc["config"]["duration_s"] == 2 and doc["config"]["iterations"] == 10_000_000  # the cap
    assert 20 < status["iterations_completed"] < 400, status
    assert status["message"].startswith(f"completed {status['iterations_completed']} iterations in its --duration of")


def test_duration_with_iterations_stops_at_whichever_comes_first(tmp_path):
    proc = run_tool("--engine", "synthetic", "--ways", "restart", "--duration", "1h", "--iterations", "12",
                    "--output", tmp_path, "--synthetic", "work_ms=1,load_ms=1", "--no-plot", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert results_of(tmp_path)["ways"]["restart"]["message"] == "completed 12 iterations"


def test_a_duration_that_is_not_a_time_is_refused_in_one_line(tmp_path):
    proc = run_tool("--engine", "synthetic", "--duration", "soon", "--output", tmp_path)
    assert proc.returncode == 2 and "--duration must be a length of time such as 90s, 30m, 2h" in proc.stderr


def test_progress_gives_the_rate_and_the_time_left():
    from asrbench.runner import Progress, clock
    progress = Progress(quiet=False)
    progress.recent = [(100.0, 10), (102.0, 30)]
    assert progress.pace(102.0, 30, 1030) == "  10.0/s, 1 min 40 s left"
    progress.duration_s, progress.started = 60.0, 90.0
    assert progress.pace(102.0, 30, 1030) == "  10.0/s, 48 s left"  # the duration ends first
    assert [clock(s) for s in (45, 200, 7500)] == ["45 s", "3 min 20 s", "2 h 05 min"]


def test_a_long_run_finds_a_kilobyte_per_request_within_its_budget_and_keeps_its_series_beside_the_json(tmp_path):
    """2,500 requests of a 1 ms engine leaking 1 KB each, against a budget of 256 MB per million requests (the
    100,000-iteration run of FINDINGS section 13 is benchmarks/long_run.py: minutes, too long for the suite)."""
    proc = run_tool("--engine", "synthetic", "--ways", "restart", "--iterations", "2500", "--budget", "256",
                    "--output", tmp_path, "--synthetic", "request_leak_mb=0.001,work_ms=1,load_ms=1", "--no-plot",
                    "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert doc["summary"]["restart"]["verdict"] == "LEAK", doc["verdicts"]["restart"]
    assert " per 1M requests " in doc["verdicts"]["restart"]
    assert len(doc["iterations"]["restart"]) == results.KEPT and doc["series"]["iterations"] == {"restart": 2500}
    assert (tmp_path / results.SERIES_FILE).is_file()  # the latest run's copy has its series beside it too
    report = run_tool("--report", tmp_path / "comparison_results.json", "--no-plot")
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip().splitlines()[-1] == doc["verdicts"]["restart"]
