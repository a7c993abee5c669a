"""Traffic like a service's: input sets of varied clips, peak RSS per request, and allocator settings."""

import json
import mmap
import os
import shutil
import subprocess
import sys
import time

import pytest

from asrbench import allocators, inputs, memory, results, text
from conftest import PROJECT, SAMPLE, results_of, run_tool, synthetic
from test_cli import one_line_error

FAST = "work_ms=1,load_ms=1"
SHORT = PROJECT / "samples" / "extension-zh-TW.wav"  # about 2 s, reference 07315


# --- input sets ---------------------------------------------------------------------------------------------------

def test_a_folder_is_its_audio_files_by_name_and_files_keep_the_order_given(tmp_path):
    for name in ("b.wav", "a.flac", "c.txt", "notes.md"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in inputs.expand([tmp_path])] == ["a.flac", "b.wav"]
    assert [p.name for p in inputs.expand(["z.wav", tmp_path, "a.wav"])] == ["z.wav", "a.flac", "b.wav", "a.wav"]
    with pytest.raises(inputs.InputError, match="holds no audio file"):
        inputs.expand([tmp_path / "sub"])


def test_cycle_and_seeded_shuffle_send_every_file_once_per_cycle():
    assert inputs.schedule(3, 7) == [0, 1, 2, 0, 1, 2, 0]
    shuffled = inputs.schedule(4, 12, "shuffle", seed=5)
    assert shuffled == inputs.schedule(4, 12, "shuffle", seed=5)  # the same sequence every run and in every way
    assert shuffled != inputs.schedule(4, 12, "shuffle", seed=6)
    assert all(sorted(shuffled[i:i + 4]) == [0, 1, 2, 3] for i in range(0, 12, 4))
    with pytest.raises(inputs.InputError, match="cycle or shuffle"):
        inputs.schedule(2, 2, "random")


def test_each_iteration_names_its_file_and_length_and_is_scored_against_that_files_reference(tmp_path):
    # the synthetic engine always says 零九零零零七三三三一: right for the 4 s sample, wrong for the 2 s one
    proc = synthetic(tmp_path, "--ways", "restart", "--audio", SHORT, SAMPLE, iterations=5, settings=FAST)
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert [i["audio"] for i in doc["config"]["inputs"]] == [str(SHORT), str(SAMPLE)]
    assert [i["reference_text"] for i in doc["config"]["inputs"]] == ["07315", "0900073331"]
    records = doc["iterations"]["restart"]
    assert [r["audio"] for r in records] == [str(SHORT), str(SAMPLE)] * 2 + [str(SHORT)]
    assert [round(r["audio_seconds"], 1) for r in records] == [2.2, 4.1, 2.2, 4.1, 2.2]
    assert records[0]["wer"] == text.score("零九零零零七三三三一", "07315", "Chinese")["wer"] > 1
    assert records[1]["wer"] == 0.0 and records[1]["exact_match"]
    assert records[1]["rtf"] == pytest.approx(records[1]["request_s"] / records[1]["audio_seconds"])
    # drift compares each transcript with the first of the same file: the two files' texts are not drift
    assert doc["summary"]["restart"]["transcript_drift"]["differ_from_first"] == 0
    per_file = doc["summary"]["restart"]["inputs"]
    assert [(row["audio"], row["requests"]) for row in per_file] == [(str(SHORT), 3), (str(SAMPLE), 2)]
    assert "per file of the input set" in proc.stdout and "extension-zh-TW.wav" in proc.stdout


def test_scoring_uses_the_reference_of_the_file_a_record_names():
    doc = {"config": {"language": "Chinese", "reference_text": "0900073331",
                      "inputs": [{"audio": "a.wav", "reference_text": "07315"},
                                 {"audio": "b.wav", "reference_text": "0900073331"}]},
           "iterations": {"restart": [{"iteration": 1, "rss_mb": 1.0, "audio": "a.wav", "raw_transcript": "零七三一五"},
                                      {"iteration": 2, "rss_mb": 1.0, "audio": "b.wav", "raw_transcript": "零七三一五"},
                                      {"iteration": 3, "rss_mb": 1.0, "raw_transcript": "零九零零零七三三三一"}]}}
    records = results.summarise(doc)["iterations"]["restart"]
    assert [r["exact_match"] for r in records] == [True, False, True]  # a record naming no file: the run's reference


def test_several_files_with_one_reference_and_a_file_without_its_own_are_refused(tmp_path):
    one_line_error(run_tool("--engine", "synthetic", "--audio", SHORT, SAMPLE, "--reference", SAMPLE.with_suffix(".txt")),
                   "--reference names one transcript", "NAME.txt")
    lonely = tmp_path / "lonely.wav"
    shutil.copyfile(SAMPLE, lonely)
    one_line_error(run_tool("--engine", "synthetic", "--audio", SAMPLE, lonely), "lonely.txt not found",
                   "write the words spoken in lonely.wav")
    one_line_error(run_tool("--engine", "synthetic", "--audio", SHORT, SAMPLE, script="run_asr.py"),
                   "transcribes one file")


# --- peak RSS -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, work_ms", [("hwm", 1), ("sampling", 60)])
def test_the_peak_catches_a_spike_allocated_and_freed_within_a_request(tmp_path, method, work_ms):
    """64 MB mapped, written and unmapped inside the request: the samples before and after never see it, the peak
    does. The sampling thread needs the spike to last a few of its 10 ms periods."""
    proc = synthetic(tmp_path, "--ways", "recreate,restart", "--peak", method, iterations=4,
                     settings=f"load_ms=1,work_ms={work_ms},spike_mb=64")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    for way in ("recreate", "restart"):
        assert doc["ways"][way]["worker"]["peak"]["method"] == method
        for r in doc["iterations"][way]:
            assert r["peak_rss_mb"] - r["memory"]["after_transcribe"]["rss_mb"] > 0.9 * 64
            assert r["peak_rss_mb"] - r["rss_mb"] > 0.9 * 64
        peak = doc["summary"][way]["peak_rss"]
        assert peak["above_between_median_mb"] > 0.9 * 64 and peak["max_mb"] >= peak["p95_mb"] >= peak["median_mb"]
    # the model (20 MB, mapped by malloc) is in memory while it loads
    assert all(r["peak_load_rss_mb"] >= r["memory"]["after_load"]["rss_mb"] for r in doc["iterations"]["recreate"])
    assert "peak RSS in request (MB), median / p95 / max" in proc.stdout


def test_no_spike_no_peak_above_the_samples_and_off_reads_nothing(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--peak", "off", iterations=2, settings=FAST)
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    assert [r["peak_rss_mb"] for r in doc["iterations"]["restart"]] == [None, None]
    assert doc["summary"]["restart"]["peak_rss"] is None and "peak RSS" not in proc.stdout


def test_where_clear_refs_is_refused_a_sampling_thread_takes_over_and_says_why(tmp_path):
    meter = memory.PeakMeter("hwm", clear_refs=str(tmp_path / "no" / "clear_refs"))
    try:
        assert meter.method == "sampling" and meter.requested == "hwm"
        assert "clear_refs was refused" in meter.why and "10 ms" in meter.why
        meter.reset()
        before = memory.read_status()["rss_mb"]
        # fresh pages, written, held for several sampling periods, then unmapped: an mmap of its own, since a bytes
        # object could land in heap this process freed earlier (and RSS would not move)
        block = mmap.mmap(-1, 32 << 20)
        for _ in range(32):
            block.write(b"x" * (1 << 20))
        time.sleep(0.05)
        block.close()
        assert memory.read_status()["rss_mb"] - before < 8
        assert meter.read() - before > 28
    finally:
        meter.close()


# --- allocators ---------------------------------------------------------------------------------------------------

def loaded_in(env: dict) -> dict:
    code = "import json; from asrbench import allocators; print(json.dumps(allocators.loaded()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=PROJECT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["jemalloc", "tcmalloc"])
def test_the_allocator_a_worker_actually_runs_with_is_detected(name):
    if not allocators.find_library(name):
        pytest.skip(f"{allocators.SETTINGS[name].preload} is not installed (make setup)")
    found = loaded_in(allocators.environment(name, dict(os.environ)))
    assert found["name"] == name
    assert any(os.path.basename(p).startswith(allocators.KNOWN_LIBRARIES[name]) for p in found["mapped"])
    assert os.path.basename(found["malloc_from"]).startswith(allocators.KNOWN_LIBRARIES[name])


def test_a_preload_that_fails_is_detected_as_glibc():
    found = loaded_in(dict(os.environ, LD_PRELOAD="/nonexistent/libjemalloc.so.2"))
    assert found == {"name": "glibc", "malloc_from": found["malloc_from"], "mapped": []}
    assert "libc.so" in found["malloc_from"]


def test_each_setting_starts_from_a_clean_malloc_environment():
    base = {"PATH": "/bin", "MALLOC_ARENA_MAX": "8", "LD_PRELOAD": "/x/libtcmalloc.so.4:/y/libother.so",
            "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.rtld.nns=4"}
    glibc = allocators.environment("glibc", base)
    assert "MALLOC_ARENA_MAX" not in glibc and glibc["LD_PRELOAD"] == "/y/libother.so"
    assert glibc["GLIBC_TUNABLES"] == "glibc.rtld.nns=4" and glibc["ASRBENCH_ALLOCATOR"] == "glibc"
    assert allocators.environment("glibc-arena2", base)["MALLOC_ARENA_MAX"] == "2"
    jemalloc = allocators.environment("jemalloc", base, dirs=["/lib-dir"])
    assert jemalloc["LD_PRELOAD"].split(":")[1:] == ["/y/libother.so"]
    assert jemalloc["LD_PRELOAD"].split(":")[0].endswith("libjemalloc.so.2")


def test_a_missing_allocator_library_names_the_package_and_an_unknown_setting_the_choices(tmp_path):
    with pytest.raises(allocators.AllocatorError, match="apt-get install libjemalloc2.*make setup"):
        allocators.require(["glibc", "jemalloc"], dirs=[str(tmp_path)])
    allocators.require(["glibc", "glibc-arena2", "trim-after-release"], dirs=[str(tmp_path)])  # need no library
    one_line_error(run_tool("--engine", "synthetic", "--allocators", "glibc,hoard"), "unknown allocator setting hoard",
                   "glibc-arena2")
    assert allocators.parse("all") == list(allocators.SETTINGS)


def test_arena_limit_and_trim_change_what_the_statistics_see(tmp_path):
    """scratch_mb: per request, 4 threads (each with an arena of its own under glibc) in turn malloc 8 MB in pieces
    and free it below a small block, so glibc keeps about 4 x 8 MB after every request. Stated effects:
    - trim-after-release returns all of it: RssAnon after each restart about 32 MB lower than glibc's;
    - glibc-arena2 (two arenas shared by the four threads) keeps at most half of it: at least 16 MB lower;
    - neither moves the peak during the request by more than the memory it avoids keeping (trim: not at all, since
      the request needs its scratch again), and none of them is a leak."""
    proc = synthetic(tmp_path, "--ways", "restart", "--allocators", "glibc,glibc-arena2,trim-after-release",
                     iterations=12, settings=f"{FAST},scratch_mb=8")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    rows = {row["allocator"]: row for row in doc["allocator_matrix"]}
    assert set(rows) == {"glibc", "glibc-arena2", "trim-after-release"}
    assert all(row["loaded"] == "glibc" and row["verdict"] != "LEAK" for row in rows.values())
    assert rows["glibc"]["verdict"] == rows["trim-after-release"]["verdict"] == "no leak"
    assert rows["trim-after-release"]["rss_anon_final_removed_vs_glibc_mb"] == pytest.approx(32, abs=4)
    assert 16 - 2 <= rows["glibc-arena2"]["rss_anon_final_removed_vs_glibc_mb"] <= 32 + 2
    assert rows["trim-after-release"]["peak_rss"]["median_mb"] == pytest.approx(rows["glibc"]["peak_rss"]["median_mb"], abs=4)
    assert all(r["trim_s"] >= 0 for r in doc["iterations"]["restart@trim-after-release"])
    assert "trim_s" not in doc["iterations"]["restart@glibc"][0]
    assert doc["ways"]["restart@glibc-arena2"]["worker"]["malloc_arena_max"] == "2"
    assert "allocator matrix" in proc.stdout and "removed vs glibc" in proc.stdout


def test_a_preloaded_allocator_runs_the_synthetic_engine_and_the_matrix_says_so(tmp_path):
    if not allocators.find_library("jemalloc"):
        pytest.skip("libjemalloc.so.2 is not installed (make setup)")
    proc = synthetic(tmp_path, "--ways", "restart", "--allocators", "glibc,jemalloc", iterations=3,
                     settings=f"{FAST},scratch_mb=8")
    assert proc.returncode == 0, proc.stderr
    doc = results_of(tmp_path)
    worker = doc["ways"]["restart@jemalloc"]["worker"]
    assert worker["allocator_setting"] == "jemalloc" and worker["allocator_loaded"]["name"] == "jemalloc"
    assert "libjemalloc" in worker["ld_preload"]
    # the synthetic engine's malloc is jemalloc's too: glibc's per-thread retention does not appear
    rows = {row["allocator"]: row for row in doc["allocator_matrix"]}
    assert rows["jemalloc"]["rss_anon_final_removed_vs_glibc_mb"] > 8
    # a run folder whose parent died before writing its results is rebuilt from the journals, matrix and all
    run_dir = next((tmp_path / "runs").iterdir())
    (run_dir / "comparison_results.json").unlink()
    rebuilt = results.summarise(results.load(run_dir))
    assert {r["allocator"] for r in rebuilt["allocator_matrix"]} == {"glibc", "jemalloc"}
