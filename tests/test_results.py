import json
import os
import stat

import pytest

from asrbench import results
from asrbench.report import compare, table


def record(i, rss, **extra):
    return {"iteration": i, "rss_mb": rss, "rss_anon_mb": rss - 20, "ttft_ms": 10.0 * i, "request_s": 0.1 * i,
            "wer": 0.0, "cer": 0.0, "exact_match": True, "load_s": 1.0, "release_rc": 0, **extra}


def document(ways):
    return {"schema_version": 1, "config": {"leak_threshold_mb": 0.05}, "ways": {},
            "iterations": {w: [record(i, start + slope * (i - 1)) for i in range(1, n + 1)] for w, (start, slope, n) in ways.items()}}


def test_summary_of_a_known_series():
    doc = results.summarise(document({"recreate": (100.0, 2.0, 11), "restart": (300.0, 0.0, 11)}))
    rss = doc["summary"]["recreate"]["memory"]["rss_mb"]
    assert (rss["initial_mb"], rss["final_mb"], rss["growth_mb"]) == (100.0, 120.0, 20.0)
    assert rss["mb_per_iter_naive"] == pytest.approx(2.0)
    assert rss["slope_mb_per_iter"] == pytest.approx(2.0)
    assert doc["summary"]["recreate"]["verdict"] == "LEAK"
    assert doc["summary"]["restart"]["verdict"] == "no leak"
    ttft = doc["summary"]["recreate"]["ttft_ms"]
    assert ttft["median"] == pytest.approx(60.0)
    assert ttft["p95"] == pytest.approx(105.0)   # numpy's linear percentile of 10..110
    assert doc["summary"]["recreate"]["exact_matches"] == 11
    assert doc["verdicts"]["recreate"].startswith("recreate: LEAK +2 MB/iter")


def test_failed_destroys_are_counted():
    doc = document({"recreate": (100.0, 0.0, 4)})
    doc["iterations"]["recreate"][2]["release_rc"] = -1
    assert results.summarise(doc)["summary"]["recreate"]["release_failures"] == 1


def test_table_shows_every_way_and_the_verdicts():
    doc = results.summarise(document({"recreate": (100.0, 2.0, 11), "restart": (300.0, 0.0, 11)}))
    printed = table(doc)
    assert "recreate" in printed.splitlines()[0] and "restart" in printed.splitlines()[0]
    assert "RssAnon MB/iter, Theil-Sen [95% CI]" in printed
    assert printed.splitlines()[-1].startswith("restart: no leak")


def test_results_file_written_atomically_and_read_back(tmp_path):
    doc = results.summarise(document({"restart": (300.0, 0.0, 5)}))
    path = tmp_path / "r.json"
    results.write_atomically(path, doc)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert results.load(path)["iterations"] == doc["iterations"]


def test_results_file_gets_the_mode_of_any_new_file(tmp_path):
    """Not mkstemp's owner-only 0600: a run in a container as root must leave results the host user can read."""
    old = os.umask(0o022)
    try:
        results.write_atomically(tmp_path / "r.json", {"a": 1})
        os.umask(0o027)
        results.write_atomically(tmp_path / "s.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o640


def test_a_hand_written_file_with_only_rss_can_be_analysed(tmp_path):
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({"iterations": {"restart": [{"iteration": i, "rss_mb": 500 + i} for i in range(1, 31)]}}))
    doc = results.summarise(results.load(path))
    assert doc["summary"]["restart"]["verdict_metric"] == "rss_mb"
    assert doc["summary"]["restart"]["memory"]["rss_mb"]["slope_mb_per_iter"] == pytest.approx(1.0)


@pytest.mark.parametrize("content, complaint", [
    ("not json", "not a readable JSON"),
    ('{"schema_version": 1}', "no 'iterations'"),
    ('{"iterations": {"restart": [{"iteration": 1}]}}', "at least rss_mb"),
    ('{"schema_version": 99, "iterations": {}}', "schema_version 99"),
])
def test_bad_results_files_are_refused_with_the_reason(tmp_path, content, complaint):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(results.ResultsError, match=complaint):
        results.load(path)


def test_journal_cut_short_keeps_every_whole_line(tmp_path):
    path = tmp_path / "restart.jsonl"
    lines = [json.dumps({"event": "start", "pid": 1})] + [json.dumps({"event": "iteration", **record(i, 100)}) for i in (1, 2)]
    path.write_text("\n".join(lines) + '\n{"event": "iteration", "iter')
    journal = results.read_journal(path)
    assert [r["iteration"] for r in journal["iterations"]] == [1, 2]
    assert journal["start"]["pid"] == 1 and journal["end"] is None


def test_a_run_folder_without_results_file_is_rebuilt_from_journals(tmp_path):
    (tmp_path / "restart.jsonl").write_text("".join(json.dumps({"event": "iteration", **record(i, 100 + i)}) + "\n" for i in range(1, 8)))
    doc = results.summarise(results.load(tmp_path))
    assert doc["summary"]["restart"]["iterations"] == 7


def test_compare_fails_above_the_limit_and_on_significant_growth():
    old = results.summarise(document({"restart": (300.0, 0.0, 20)}))
    new = results.summarise(document({"restart": (300.0, 1.0, 20)}))
    text, failed = compare(old, new, fail_above=5.0)
    assert failed and "grew significantly" in text
    text, failed = compare(old, old, fail_above=5.0)
    assert not failed
    text, failed = compare(new, new, fail_above=0.5)
    assert failed and "slope above 0.5" in text


def test_transcripts_are_scored_when_the_results_are_assembled():
    doc = {"config": {"reference_text": "0900073331", "language": "Chinese"},
           "iterations": {"restart": [{"iteration": 1, "rss_mb": 1.0, "raw_transcript": "零九零零零七三三三二"}]}}
    record = results.summarise(doc)["iterations"]["restart"][0]
    assert record["text_itn"] == "0900073332"
    assert record["cer"] == pytest.approx(0.1)


def test_report_reproduces_the_summary_of_the_run_that_wrote_it(tmp_path):
    from conftest import run_tool, synthetic

    assert synthetic(tmp_path, iterations=25, settings="work_ms=1,load_ms=1,noise_mb=2,request_leak_mb=0.3").returncode == 0
    written = json.loads((tmp_path / "comparison_results.json").read_text())
    again = results.summarise(results.load(tmp_path / "comparison_results.json"))
    assert again["summary"] == written["summary"]
    assert again["verdicts"] == written["verdicts"]
    report = run_tool("--report", tmp_path / "comparison_results.json", "--no-plot")
    assert report.returncode == 0
    assert report.stdout.strip().splitlines()[-2:] == [written["verdicts"]["recreate"], written["verdicts"]["restart"]]


def version_1_document():
    """A file as schema_version 1 wrote it: 5 iterations growing a clean 5 MB each, which it called 'no leak ... flat'."""
    records = [record(i, 500.0 + 5 * i + 0.1 * (i % 2)) for i in range(1, 6)]
    return {"schema_version": 1, "status": "completed", "config": {"leak_threshold_mb": 0.05, "iterations": 5},
            "ways": {"recreate": {"status": "completed", "message": "completed 5 iterations"}},
            "summary": {"recreate": {"verdict": "no leak"}},
            "verdicts": {"recreate": "recreate: no leak, +5 MB/iter [4.81, 5.26] flat"},
            "iterations": {"recreate": records}}


def test_a_version_1_file_is_read_and_judged_by_todays_rules(tmp_path):
    from conftest import run_tool

    path = tmp_path / "v1.json"
    path.write_text(json.dumps(version_1_document()))
    doc = results.summarise(results.load(path))
    assert doc["summary"]["recreate"]["verdict"] == "undecided"
    assert doc["verdicts"]["recreate"].startswith("recreate: undecided, too few iterations for a verdict (5 ")
    report = run_tool("--report", path, "--no-plot")
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip().splitlines()[-1] == doc["verdicts"]["recreate"]
    assert "Theil-Sen [95% CI]" in report.stdout


def test_files_are_written_as_version_3():
    assert results.SCHEMA_VERSION == 3
    assert results.summarise(document({"restart": (300.0, 0.0, 12)}))["summary"]["restart"]["memory"]["rss_mb"]["confidence"] == 0.95


def test_a_long_way_keeps_a_sample_in_the_json_and_its_whole_series_beside_it(tmp_path):
    doc = results.summarise(document({"restart": (300.0, 0.001, results.KEPT * 3 + 7), "recreate": (300.0, 0.0, 50)}))
    path = tmp_path / "comparison_results.json"
    results.write_atomically(path, doc)
    written = json.loads(path.read_text())
    kept = written["iterations"]["restart"]
    assert len(kept) == results.KEPT and kept[0]["iteration"] == 1 and kept[-1]["iteration"] == results.KEPT * 3 + 7
    assert len(written["iterations"]["recreate"]) == 50 and written["series"]["file"] == results.SERIES_FILE
    assert written["series"]["iterations"] == {"restart": results.KEPT * 3 + 7, "recreate": 50}
    again = results.load(path)
    assert again["iterations"] == doc["iterations"] and "series" not in again
    assert results.summarise(again)["verdicts"] == doc["verdicts"]
    (tmp_path / results.SERIES_FILE).unlink()
    with pytest.raises(results.ResultsError, match=f"{results.SERIES_FILE} beside it, which is missing"):
        results.load(path)


def test_a_version_2_file_is_still_read(tmp_path):
    doc = document({"restart": (300.0, 0.0, 30)})
    doc["schema_version"] = 2
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert results.summarise(results.load(path))["summary"]["restart"]["verdict"] == "no leak"


def test_an_interrupted_way_with_two_iterations_says_it_has_too_few():
    doc = document({"restart": (300.0, 0.0, 2)})
    doc["ways"]["restart"] = {"status": "interrupted", "message": "interrupted at iteration 3 (interrupted by SIGINT)"}
    line = results.summarise(doc)["verdicts"]["restart"]
    assert line.startswith("restart: undecided, too few iterations for a verdict (2 ")
    assert line.endswith("(interrupted at iteration 3 (interrupted by SIGINT))")


def test_compare_carries_the_verdicts():
    old = results.summarise(document({"restart": (300.0, 0.0, 20)}))
    new = results.summarise(document({"restart": (300.0, 1.0, 20)}))
    text, failed = compare(old, new, fail_above=None)
    assert "no leak -> LEAK" in text.splitlines()[1] and failed
    few = results.summarise(document({"restart": (300.0, 0.0, 4)}))
    text, _ = compare(old, few, fail_above=None)
    assert "no leak -> undecided" in text


def test_a_run_judged_at_five_looks_shows_the_stricter_interval_everywhere():
    doc = document({"restart": (300.0, 0.0, 30)})
    doc["config"].update(until_decided=True, min_iterations=20, iterations=100)
    summarised = results.summarise(doc)
    assert results.checkpoints(doc["config"]) == [20, 30, 45, 68, 100]
    assert summarised["summary"]["restart"]["memory"]["rss_mb"]["confidence"] == pytest.approx(0.99)
    assert "Theil-Sen [99% CI]" in table(summarised)


def test_a_seeded_model_s_accuracy_is_marked_meaningless_beside_the_figures():
    doc = results.summarise(document({"restart": (300.0, 0.0, 12)}))
    plain = table(doc)
    assert "WER / CER, mean (*)" not in plain and "seeded random weights" not in plain
    doc["config"]["seeded_model"] = {"size": "0.6b", "seed": 0, "tool": "tools/make_model.py"}
    marked = table(doc)
    for label in ("WER / CER, mean (*)", "exact matches (*)", "chars/s after first token, mean (*)"):
        assert label in marked
    assert marked.splitlines()[-1].startswith("(*) the model has seeded random weights") or \
        "(*) the model has seeded random weights" in marked.split(doc["verdicts"]["restart"])[1]
