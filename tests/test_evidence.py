"""One verdict from all the evidence (asrbench.evidence) and growth in an operator's terms (asrbench.projection)."""

import pytest

from asrbench import evidence, projection, results
from conftest import results_of, synthetic


def summary(verdict="no leak", slope=0.0, low=-0.001, high=0.001, trimmed=None) -> dict:
    memory = {"rss_anon_mb": {"n": 40, "n_steady": 40, "verdict": verdict, "slope_mb_per_iter": slope,
                              "slope_low": low, "slope_high": high, "shape": "flat", "threshold_mb_per_iter": 0.05,
                              "confidence": 0.95, "trend_alpha": 0.01, "trend_p": 0.5, "span_iterations": 40}}
    if trimmed:
        memory["rss_anon_trimmed_mb"] = {**memory["rss_anon_mb"], **trimmed}
    return {"memory": memory, "verdict_metric": "rss_anon_mb"}


def trace(rate_bytes: float, iterations: int = 11) -> dict:
    return {"status": "traced", "every_iteration_bytes_per_iter": rate_bytes, "rate_iterations": iterations,
            "iterations_traced": iterations + 1}


def test_the_series_after_malloc_trim_overrules_a_flat_rss_anon():
    d = evidence.decide(summary(trimmed={"verdict": "LEAK", "slope_mb_per_iter": 0.5, "slope_low": 0.49,
                                         "slope_high": 0.51, "shape": "linear"}), {}, 0.05)
    assert (d["verdict"], d["decided_by"]) == ("LEAK", "rss_anon_trimmed_mb")
    assert evidence.line("w", "w: no leak, +0 MB/iter [0, 0] flat", "= +0 MB per 1M", d).startswith(
        "w: LEAK, decided by RssAnon after")


def test_native_blocks_live_from_every_traced_iteration_make_a_leak_at_the_threshold_only():
    assert evidence.decide(summary(), {"native_trace": trace(512 * 1024)}, 0.05)["verdict"] == "LEAK"
    assert evidence.decide(summary(), {"native_trace": trace(10 * 1024)}, 0.05)["verdict"] == "no leak"
    assert evidence.decide(summary(), {"native_trace": trace(512 * 1024, iterations=2)}, 0.05)["verdict"] == "no leak"
    assert evidence.decide(summary(), {"native_trace": {"status": "not_traced"}}, 0.05)["verdict"] == "no leak"


def test_freed_heap_without_other_evidence_is_named_with_the_option_that_separates_it():
    d = evidence.decide(summary(), {"heap": {"free_mb": 20.6}}, 0.05)
    assert d["verdict"] == "no leak" and "20.6 MB of freed heap" in d["note"] and "--malloc-trim" in d["note"]
    assert evidence.decide(summary(), {"heap": {"free_mb": 0.001}}, 0.05)["note"] is None
    assert evidence.decide(summary(trimmed={"verdict": "no leak"}), {"heap": {"free_mb": 20.6}}, 0.05)["note"] is None


def test_a_traced_leak_that_rss_anon_does_not_show_ends_leak_and_says_what_decided_it(tmp_path):
    pytest.importorskip("memray", reason="memray not installed (pip install -e '.[trace]')")
    proc = synthetic(tmp_path, "--ways", "recreate", "--trace-native", iterations=15,
                     settings="request_leak_mb=0.5,work_ms=5,load_ms=5")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    s = doc["summary"]["recreate"]
    assert (s["verdict"], s["verdict_evidence"]) == ("LEAK", "native_trace"), doc["verdicts"]["recreate"]
    assert "decided by the native trace: 512.0 KB/iter" in doc["verdicts"]["recreate"]


def test_projection_arithmetic():
    a = {"n": 100, "n_steady": 100, "span_iterations": 100, "slope_mb_per_iter": 0.001, "slope_low": 0.0008,
         "slope_high": 0.0012, "confidence": 0.95, "trend_alpha": 0.01}
    t = projection.terms(a, 1_000_000, 36_000.0)
    assert t["over_horizon_mb"] == pytest.approx(1000) and t["over_horizon_low_mb"] == pytest.approx(800)
    assert t["over_horizon_high_mb"] == pytest.approx(1200) and t["mb_per_hour"] == pytest.approx(36)
    assert t["kb_per_request"] == pytest.approx(1.024)
    # (z of 0.005 + z of 0.2) x half-width / z of 0.025 = (2.5758 + 0.8416) x 0.0002 / 1.96
    assert t["detectable_mb_per_request"] == pytest.approx(0.0003487, rel=1e-3)
    assert projection.phrase(t, "LEAK") == ("= +1,000 MB per 1M requests [+800 MB, +1,200 MB], +36 MB/h at "
                                           "36,000 requests/h")
    flat = projection.terms({**a, "slope_mb_per_iter": 0.0, "slope_low": 0.0, "slope_high": 0.0}, 250_000, None)
    assert flat["detectable_mb_per_request"] == pytest.approx(2 * 4 / 1024 / 99)  # two pages over the span
    assert projection.phrase(flat, "no leak").endswith("the smallest growth this run could detect: +19.7 MB per 250k")
    assert [projection.count(n) for n in (1_000_000, 250_000, 1500, 1234, 2_000_000_000)] == ["1M", "250k", "1.5k", "1,234", "2G"]
    assert [projection.mb(v) for v in (0.0123, 123.4, 1234, 20480)] == ["+0.0123 MB", "+123 MB", "+1,234 MB",
                                                                         "+20.0 GB"]


def test_requests_per_hour_come_from_the_records_times():
    records = [{"time": 100.0 + 0.1 * i} for i in range(11)]
    assert projection.requests_per_hour(records) == pytest.approx(36_000)
    assert projection.requests_per_hour(records[:1]) is None


def test_a_budget_over_the_horizon_sets_the_threshold(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--budget", "256", "--horizon", "1000000", iterations=12,
                     settings="work_ms=1,load_ms=1")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert doc["config"]["leak_threshold_mb"] == pytest.approx(0.000256) and doc["config"]["budget_mb"] == 256
    assert doc["summary"]["restart"]["memory"]["rss_anon_mb"]["threshold_mb_per_iter"] == pytest.approx(0.000256)
    again = results.summarise(results.load(tmp_path / "comparison_results.json"))
    assert again["verdicts"] == doc["verdicts"]


def test_budget_and_leak_threshold_together_are_refused_in_one_line(tmp_path):
    proc = synthetic(tmp_path, "--budget", "256", "--leak-threshold", "0.01")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--budget and --leak-threshold both set the threshold" in proc.stderr
