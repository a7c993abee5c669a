"""More than one instance per worker: restart's pool (--instances), requests in threads (--concurrency), the same load
over several worker processes, and every transcript checked against a single instance's."""

import json
import os
import subprocess
import sys

import pytest

from asrbench import consistency, scheduling
from asrbench.config import RunConfig
from conftest import PROJECT, results_of, synthetic

SLOW = "work_ms=40,load_ms=5,model_mb=2"  # long enough requests that two in threads overlap


def run_worker(tmp_path, key, *share, iterations=6, settings=SLOW, **config):
    cfg = RunConfig(engine="synthetic", iterations=iterations, reference_text="0900073331", synthetic=settings, **config)
    cfg.save(tmp_path / "config.json")
    out = tmp_path / f"{key}.jsonl"
    proc = subprocess.run([sys.executable, "-m", "asrbench.worker", str(tmp_path / "config.json"), key, str(out), *share],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    return events, [e for e in events if e["event"] == "iteration"]


def overlapping(a: dict, b: dict) -> bool:
    """Whether two requests held their instances at the same time (from the end of the wait to the transcript)."""
    start = lambda r: r["issued_at"] + (r.get("wait_s") or 0.0)
    return start(a) < b["issued_at"] + b["latency_s"] and start(b) < a["issued_at"] + a["latency_s"]


def test_a_pool_is_created_at_start_and_one_thread_takes_each_instance_in_turn(tmp_path):
    events, records = run_worker(tmp_path, "restart", iterations=7, instances=3)
    kinds = [e["event"] for e in events]
    assert kinds[:4] == ["start", "instance", "instance", "instance"]  # all three exist before the first request
    assert [r["instance"] for r in records] == [1, 2, 3, 1, 2, 3, 1]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    # each instance's load is reported with the first request it serves
    assert [r["load_s"] is not None for r in records] == [True, True, True, False, False, False, False]
    assert events[-1]["served"]["instances"] == 3 and events[-1]["served"]["requests"] == 7


def test_threads_serve_requests_at_once_each_on_an_instance_of_its_own(tmp_path):
    events, records = run_worker(tmp_path, "restart@c2", iterations=8)
    assert sorted(r["request"] for r in records) == list(range(1, 9))  # every request once
    assert [r["iteration"] for r in records] == list(range(1, 9))  # numbered as they finish
    assert {r["thread"] for r in records} == {1, 2}
    assert {r["instance"] for r in records} == {1, 2}  # one instance per thread by default
    assert any(overlapping(a, b) for a in records for b in records if a["request"] < b["request"])
    for a in records:  # never two requests on one instance at once
        assert not any(overlapping(a, b) for b in records if b is not a and b["instance"] == a["instance"])
    assert all(r["raw_transcript"] == "零九零零零七三三三一" for r in records)


def test_more_threads_than_instances_wait_for_one_and_the_wait_counts_in_latency(tmp_path):
    _, records = run_worker(tmp_path, "restart@c2", iterations=6, instances=1)
    assert {r["instance"] for r in records} == {1}
    assert max(r["wait_s"] for r in records) > 0.02  # a 40 ms request was in the way
    assert all(r["latency_s"] >= r["wait_s"] + r["request_s"] - 1e-3 for r in records)
    assert not any(overlapping(a, b) for a in records for b in records if a is not b)


def test_recreate_in_threads_creates_and_destroys_an_instance_per_request(tmp_path):
    _, records = run_worker(tmp_path, "recreate@c2", iterations=6)
    assert sorted(r["instance"] for r in records) == list(range(1, 7))
    assert all(r["load_s"] is not None and r["release_rc"] == 0 for r in records)
    assert any(overlapping(a, b) for a in records for b in records if a is not b)  # two alive at once


def test_a_process_of_a_group_serves_every_nth_request(tmp_path):
    events, records = run_worker(tmp_path, "restart@p2", "2/2", iterations=7)
    assert [r["request"] for r in records] == [2, 4, 6]
    assert events[0]["share"] == [2, 2] and events[0]["instances"] == 1


def test_the_processes_of_one_load_add_up_to_one_series():
    first = [{"iteration": 1, "time": 1.0, "rss_anon_mb": 100.0, "rss_mb": 150.0, "instance": 1},
             {"iteration": 2, "time": 3.0, "rss_anon_mb": 101.0, "rss_mb": 151.0, "instance": 1}]
    second = [{"iteration": 1, "time": 2.0, "rss_anon_mb": 200.0, "rss_mb": 250.0, "instance": 1}]
    merged = scheduling.merge_processes([first, second])
    assert [(r["iteration"], r["process"], r["instance"]) for r in merged] == [(1, 1, "1/1"), (2, 2, "2/1"), (3, 1, "1/1")]
    # the second process counts with its first sample before it has finished a request
    assert [r["rss_anon_mb"] for r in merged] == [300.0, 300.0, 301.0]
    assert merged[2]["process_rss_anon_mb"] == 101.0


def test_run_entries_name_each_way_concurrency_and_setting():
    config = RunConfig(ways=["recreate", "restart"], concurrency=[1, 2], allocators=["glibc"])
    keys = [e.key for e in scheduling.entries(config)]
    assert keys == ["recreate@glibc", "restart@glibc", "recreate@c2@glibc", "recreate@p2@glibc",
                    "restart@c2@glibc", "restart@p2@glibc"]
    assert all(scheduling.Entry.parse(k).key == k for k in keys)
    assert scheduling.Entry.parse("restart@p2@jemalloc") == scheduling.Entry("restart", "jemalloc", 2, True)
    assert [e.key for e in scheduling.entries(RunConfig())] == ["recreate", "restart"]  # the default run is as it was


def test_a_wrong_transcript_from_one_instance_is_caught_and_the_run_does_not_end_clean(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--instances", "3", iterations=9,
                     settings="wrong_instance=2,work_ms=5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = results_of(tmp_path)
    assert doc["reference_transcripts"]["transcripts"] == {str(PROJECT / "samples" / "phoneNumber1-zh-TW.wav"): "零九零零零七三三三一"}
    found = doc["summary"]["restart"]["single_instance"]
    assert (found["requests"], found["differing"], found["instances"], found["instances_wrong"]) == (9, 3, 3, [2])
    assert found["differences"][0]["transcript"] == "一三三三七零零零九零"  # the wrong text itself is kept
    assert [r["same_as_single_instance"] for r in doc["iterations"]["restart"]] == [True, False, True] * 3
    verdict = doc["verdicts"]["restart"]
    assert verdict.startswith("restart: WRONG TRANSCRIPTS: 3 of 9 requests differ from one instance alone (1 of 3 "
                              "instances: 2); memory: "), verdict
    assert "WRONG TRANSCRIPTS" in proc.stdout and "6/9 requests, 2/3 instances" in proc.stdout


def test_every_instance_right_gives_a_clean_run_with_serving_figures(tmp_path):
    proc = synthetic(tmp_path, "--ways", "recreate,restart", "--concurrency", "2", iterations=10, settings=SLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results_of(tmp_path)
    assert list(doc["iterations"]) == ["recreate@c2", "recreate@p2", "restart@c2", "restart@p2"]
    for key, summary in doc["summary"].items():
        assert summary["single_instance"]["differing"] == 0, key
        serving = summary["serving"]
        assert serving["requests"] == 10 and serving["requests_per_s"] > 0, key
        assert serving["latency_s"]["p50"] <= serving["latency_s"]["p95"] <= serving["latency_s"]["max"]
        assert serving["peak_rss_mb"] > 0
        assert "WRONG" not in doc["verdicts"][key]
    assert doc["summary"]["restart@p2"]["serving"]["instances_alive"] == "2 x 1 (processes)"
    assert doc["summary"]["restart@c2"]["serving"]["instances_alive"] == "2 (pool)"
    assert doc["summary"]["recreate@c2"]["serving"]["instances_alive"] == "up to 2"
    assert {r["process"] for r in doc["iterations"]["restart@p2"]} == {1, 2}
    assert "serving (" in proc.stdout and "restart@p2" in proc.stdout


def test_a_default_run_has_no_reference_worker_and_no_serving_table(tmp_path):
    proc = synthetic(tmp_path, iterations=4)
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert "reference_transcripts" not in doc and list(doc["iterations"]) == ["recreate", "restart"]
    assert "serving (" not in proc.stdout
    assert not list((tmp_path / "runs").glob("*/reference.jsonl"))


def test_sampled_decoding_is_not_checked_against_one_instance():
    assert consistency.needs_reference(RunConfig(engine="chatllm", instances=2, ways=["restart"], decoding="greedy"))
    assert not consistency.needs_reference(RunConfig(engine="chatllm", instances=2, decoding="engine-default"))
    assert consistency.needs_reference(RunConfig(engine="chatllm", concurrency=[2], decoding="engine-default",
                                                 engine_args=["--seed", "7"]))
    assert not consistency.needs_reference(RunConfig(engine="synthetic"))


@pytest.mark.parametrize("args, message", [
    (["--concurrency", "0"], "each --concurrency value must be from 1 to 64, got 0"),
    (["--concurrency", "1,1"], "--concurrency names a value twice (1,1): give each once"),
    (["--concurrency", "two"], "each --concurrency value must be a whole number"),
    (["--ways", "recreate", "--instances", "2"], "--instances sets the pool restart keeps"),
    (["--concurrency", "2", "--trace-native"], "--trace-native attributes memory to one request at a time"),
    (["--concurrency", "2", "--until-decided", "--iterations", "30"], "--until-decided stops one worker"),
])
def test_bad_serving_options_get_one_line_and_exit_2(tmp_path, capsys, args, message):
    from asrbench.cli import main_comparison  # in this process: each is refused before any worker starts

    code = main_comparison(["--engine", "synthetic", "--iterations", "5", "--output", str(tmp_path), "--quiet", *args])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_group_of_processes_is_reported_by_the_one_that_failed_on_its_own():
    from asrbench.runner import group_outcome

    done = {"status": "completed", "exit_code": -6, "iterations_completed": 15, "log": "a.log", "exit_crash": "SIGABRT",
            "message": "completed 15 iterations; the worker then died at exit (SIGABRT)"}
    crashed = {"status": "crashed", "exit_code": -11, "iterations_completed": 3, "log": "b.log",
               "message": "crashed at iteration 4 (SIGSEGV)"}
    stopped = {"status": "stopped", "exit_code": -9, "iterations_completed": 2, "log": "c.log",
               "message": "stopped when restart@p2.2 ended"}
    names = ["restart@p2.1", "restart@p2.2"]
    both = group_outcome([dict(done), dict(done)], names)
    assert both["status"] == "completed" and both["iterations_completed"] == 30
    assert both["message"] == ("completed 30 iterations in 2 processes; then died at exit (restart@p2.1: SIGABRT, "
                               "restart@p2.2: SIGABRT)")
    one = group_outcome([dict(stopped), dict(crashed)], names)
    assert one["status"] == "crashed" and one["iterations_completed"] == 5
    assert one["message"].startswith("restart@p2.2: crashed at iteration 4 (SIGSEGV)")


def test_a_failing_request_stops_the_threads_waiting_for_an_instance(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--instances", "1", "--concurrency", "3", iterations=9,
                     settings="no_end_at=4,work_ms=20", timeout=60)
    doc = results_of(tmp_path)
    assert doc["ways"]["restart@c3"]["status"] == "error", doc["ways"]["restart@c3"]
    assert "without its end callback" in doc["ways"]["restart@c3"]["message"]
    assert proc.returncode == 1


def test_requests_get_a_shared_instance_in_the_order_they_were_issued(tmp_path):
    _, records = run_worker(tmp_path, "restart@c2", iterations=8, instances=1)
    starts = sorted(records, key=lambda r: r["issued_at"] + r["wait_s"])  # when each got the instance
    assert [r["request"] for r in starts] == list(range(1, 9))
    assert max(r["wait_s"] for r in records) < 3 * max(r["request_s"] for r in records)  # nobody starved
