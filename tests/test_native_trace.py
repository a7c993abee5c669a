"""--trace-native: memray in the worker names the native allocation sites of a way's growth.

The synthetic engine's leak is known (a block from operator new per request), so its site and bytes per iteration
are checked exactly; a clean run must show no site above a small threshold; a block kept only until the next
iteration must not count as growth; and without the flag nothing of the tracer reaches the worker.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from asrbench import native_trace
from asrbench.config import RunConfig
from conftest import PROJECT, results_of, run_tool, synthetic

memray = pytest.importorskip("memray", reason="memray not installed (pip install -e '.[trace]')")

# Iterations long enough (about 30 ms) that memray's 10 ms snapshots place every block in its own iteration.
STEADY = "work_ms=15,load_ms=10,noise_mb=2"
MIB = 1024 * 1024


def traced(tmp_path, settings, ways="restart", iterations=8, *args):
    proc = synthetic(tmp_path, "--ways", ways, "--trace-native", *args, iterations=iterations,
                     settings=f"{STEADY},{settings}" if settings else STEADY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, results_of(tmp_path)


def test_the_known_native_leak_is_the_top_site_with_its_bytes_per_iteration(tmp_path):
    proc, doc = traced(tmp_path, "request_leak_mb=0.5", ways="recreate,restart")
    for way in ("recreate", "restart"):
        trace = doc["ways"][way]["native_trace"]
        assert trace["status"] == "traced" and trace["started_after"] == 3
        assert (trace["first_traced"], trace["last_traced"], trace["rate_iterations"]) == (4, 8, 4)
        top = trace["sites"][0]
        assert top["site"].startswith("__init__ (asrbench/engines/synthetic.py:"), top  # NativeBlock, via ctypes
        assert top["via"].startswith("_leak (asrbench/engines/synthetic.py:"), top
        assert top["bytes_per_iter"] == pytest.approx(0.5 * MIB, rel=0.10)
        assert top["live_blocks"] == 5 and top["iterations"] == 5  # one block per traced request, each in its own
        assert top["resident_bytes"] == pytest.approx(5 * 0.5 * MIB, rel=0.02)  # every page written
        html = (tmp_path / "runs").glob(f"*/{trace['flamegraph']}")
        assert "<html" in next(html).read_text(errors="replace")[:2000].lower()
        assert next((tmp_path / "runs").glob(f"*/{trace['trace_file']}")).stat().st_size > 0
    assert "Where the memory goes" in proc.stdout and "via _leak (asrbench/engines/synthetic.py:" in proc.stdout
    again = run_tool("--report", doc["run_dir"], "--no-plot")  # the sites again, read from the captures
    assert again.returncode == 0 and again.stdout.count("via _leak (asrbench/engines/synthetic.py:") == 2, again.stdout


def test_a_clean_run_shows_no_site_above_a_small_threshold(tmp_path):
    _, doc = traced(tmp_path, "", ways="recreate,restart", iterations=10)
    for way in ("recreate", "restart"):
        trace = doc["ways"][way]["native_trace"]
        assert trace["status"] == "traced" and trace["rate_iterations"] == 6
        worst = max(trace["sites"], key=lambda s: s["bytes_per_iter"], default=None)
        assert worst is None or worst["bytes_per_iter"] < 4096, worst  # a leak here is 0.05 MB/iter or more


def test_a_block_kept_only_until_the_next_iteration_is_not_growth(tmp_path):
    """A buffer held from one request to the next is live at the end, but it is not growth: only blocks that outlive
    a whole later iteration count per iteration."""
    from asrbench.engines.synthetic import NativeBlock
    from asrbench.worker import Journal

    config = RunConfig(engine="synthetic", iterations=6, trace_native=True, trace_native_after=1)
    journal = Journal(tmp_path / "restart.jsonl")
    trace = native_trace.WorkerTrace(config, journal)
    held, leaked = None, []
    for number in range(1, 7):
        journal.iteration = number
        trace.before_iteration(number)
        time.sleep(0.02)
        if held:
            held.free()
        held = NativeBlock(1.0)  # kept until the next iteration frees it
        leaked.append(NativeBlock(0.25))  # never freed
        time.sleep(0.02)
        journal.write("iteration", iteration=number, rss_mb=1.0, time=time.time())
    trace.stop()
    report = native_trace.analyse(config, tmp_path, "restart", flamegraph=False)
    assert report["rate_iterations"] == 4  # iterations 2-6 traced; the last is not counted per iteration
    kept = next(s for s in report["sites"] if s["live_bytes"] == MIB)
    leak = next(s for s in report["sites"] if s["live_bytes"] == 5 * MIB // 4)
    assert kept["bytes_per_iter"] == 0 and kept["iterations"] == 1, report["sites"]
    assert leak["bytes_per_iter"] == pytest.approx(0.25 * MIB) and leak["iterations"] == 5, report["sites"]
    for block in leaked + [held]:
        block.free()


@pytest.mark.parametrize("stack, site, via", [
    ([("operator new(unsigned long)", "<unknown>", 0),
      ("std::vector<int, std::allocator<int> >::_M_default_append(unsigned long)", "/usr/include/c++/12/bits/vector.tcc", 650),
      ("chatllm::BaseTensorPosHelper::allocate_pos_tensor(chatllm::InitContext*, int)", "/b/chatllm.cpp/src/layers.cpp", 2869),
      ("chatllm::qwen::v3::ConditionalGeneration::ConditionalGeneration(chatllm::qwen::v3::Config const&)", "/b/chatllm.cpp/models/qwen.cpp", 1981)],
     "chatllm::BaseTensorPosHelper::allocate_pos_tensor (src/layers.cpp:2869)", None),
    ([("ggml_aligned_malloc", "<unknown>", 0),
      ("ggml_backend_cpu_buffer_type_alloc_buffer", "../../../ggml/src/ggml-backend.cpp", 2209),
      ("chatllm::LayerBufAllocator::alloc(unsigned long, chatllm::BackendBufAllocator::Usage)", "../src/backend.cpp", 105)],
     "ggml_backend_cpu_buffer_type_alloc_buffer (ggml/src/ggml-backend.cpp:2209)", "chatllm::LayerBufAllocator::alloc (src/backend.cpp:105)"),
    ([("ggml_aligned_malloc", "<unknown>", 0),
      ("ggml_backend_cpu_buffer_type_alloc_buffer", "/b/chatllm.cpp/ggml/src/ggml-backend.cpp", 2209),
      ("chatllm::LayerBufAllocator::alloc(unsigned long, chatllm::BackendBufAllocator::Usage)", "/b/chatllm.cpp/src/backend.cpp", 105),
      ("chatllm::TensorInfo::load(tokenizer::DataReader*, chatllm::LayerBufAllocator*)", "/b/chatllm.cpp/src/chat.cpp", 1212)],
     "ggml_backend_cpu_buffer_type_alloc_buffer (ggml/src/ggml-backend.cpp:2209)", "chatllm::TensorInfo::load (src/chat.cpp:1212)"),
    ([("__GI__IO_file_doallocate", "./libio/filedoalloc.c", 101), ("_IO_doallocbuf", "./libio/genops.c", 347),
      ("bool chatllm::SimpleFile::seek<long>(long, int)", "/b/chatllm.cpp/src/chat.cpp", 1162)],
     "chatllm::SimpleFile::seek<long> (src/chat.cpp:1162)", None),
    ([("operator new(unsigned long, std::nothrow_t const&)", "<unknown>", 0), ("<unknown>", "<unknown>", 0),
      ("ffi_call", "<unknown>", 0), ("_ctypes_callproc", "Modules/_ctypes/callproc.c", 1), ("_PyObject_MakeTpCall", "Objects/call.c", 2),
      ("__init__", "/p/asrbench/engines/synthetic.py", 72), ("_leak", "/p/asrbench/engines/synthetic.py", 121)],
     "__init__ (/p/asrbench/engines/synthetic.py:72)", "_leak (/p/asrbench/engines/synthetic.py:121)"),
])
def test_a_site_is_the_deepest_frame_past_allocators_runtime_and_interpreter(stack, site, via):
    assert native_trace.site_of(stack)[:2] == (site, via)


@pytest.mark.parametrize("demangled, plain", [
    ("bool chatllm::load_model<A, B>(chatllm::ModelLoader&, chatllm::ModelFactory::Result&)", "chatllm::load_model<A, B>"),
    ("chatllm::Pipeline::chat[abi:cxx11](chatllm::Messages&, chatllm::GenerationConfig const&)", "chatllm::Pipeline::chat"),
    ("operator new(unsigned long)", "operator new"),
    ("chatllm::Foo::operator()(int) const", "chatllm::Foo::operator()"),
    ("load_vocab_merges", "load_vocab_merges"),
])
def test_demangled_names_are_shortened_to_the_qualified_name(demangled, plain):
    assert native_trace.plain_name(demangled) == plain


def test_without_the_flag_the_worker_loads_nothing_of_the_tracer(tmp_path):
    config = RunConfig(engine="synthetic", iterations=2, reference_text="0900073331", synthetic="work_ms=1,load_ms=1")
    config.save(tmp_path / "config.json")
    code = ("import sys; import asrbench.worker as w; w.main(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'memray' or m == 'asrbench.native_trace'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "config.json"), "restart", str(tmp_path / "restart.jsonl")],
                         cwd=PROJECT, capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    events = [json.loads(line)["event"] for line in (tmp_path / "restart.jsonl").read_text().splitlines()]
    assert "native_trace" not in events and not list(tmp_path.glob("*.memray"))


def test_a_way_that_ends_before_tracing_starts_says_so(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--trace-native", iterations=6, settings="work_ms=1,load_ms=1,crash_at=2")
    assert proc.returncode == 1
    trace = results_of(tmp_path)["ways"]["restart"]["native_trace"]
    assert trace["status"] == "not_traced"
    assert trace["message"] == "not traced: the way finished 1 iteration(s) and tracing was to begin after iteration 3"
    assert "restart: not traced" in proc.stdout


def test_a_worker_stopped_while_tracing_still_reports_what_was_live(tmp_path):
    proc = synthetic(tmp_path, "--ways", "restart", "--trace-native", "--max-rss-mb", "200", iterations=40,
                     settings="work_ms=20,load_ms=10,request_leak_mb=20")
    assert proc.returncode == 1
    doc = results_of(tmp_path)
    trace = doc["ways"]["restart"]["native_trace"]
    assert doc["ways"]["restart"]["status"] == "stopped" and trace["status"] == "incomplete"
    assert trace["sites"][0]["bytes_per_iter"] == pytest.approx(20 * MIB, rel=0.10)
    assert trace["resident_bytes"] is None  # the page map is taken only when tracing stops


def test_report_keeps_the_recorded_sites_when_the_library_has_been_rebuilt(tmp_path):
    """memray names frames when it reads a capture: after a rebuild the old addresses would get the new symbols."""
    library = tmp_path / "libchatllm.so"
    library.write_bytes(b"rebuilt")
    (tmp_path / "restart.jsonl").write_text("")
    recorded = {"status": "traced", "sites": [{"site": "load_vocab_merges (src/tokenizer.cpp:407)"}]}
    document = {"config": {"trace_native": True}, "iterations": {"restart": []},
                "metadata": {"chatllm_library": {"library": {"path": str(library), "sha256": "0" * 64}}},
                "ways": {"restart": {"native_trace": dict(recorded)}}}
    native_trace.reanalyse(document, tmp_path)
    trace = document["ways"]["restart"]["native_trace"]
    assert trace["sites"] == recorded["sites"] and trace["message"].startswith(f"as recorded: {library} has changed")


@pytest.mark.parametrize("args, words", [
    (["--trace-native", "--iterations", "4"], ["--trace-native starts after iteration 3", "--iterations 5"]),
    (["--trace-native-after", "6", "--iterations", "7"], ["after iteration 6", "--iterations 8"]),
    (["--trace-native-after", "-1"], ["--trace-native-after must be 0 or more"]),
])
def test_trace_options_that_cannot_work_are_refused_in_one_line(args, words):
    proc = run_tool("--engine", "synthetic", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_chatllm_sites_are_named_by_symbol_and_line_and_add_up_to_the_growth(tiny_model, chatllm_dir, tmp_path):
    """recreate-drop keeps every instance: the sites must be libchatllm's own functions with file and line, and the
    resident bytes they keep per iteration must account for the measured RssAnon slope."""
    proc = run_tool("--model", tiny_model, "--chatllm-dir", chatllm_dir, "--ways", "recreate-drop", "--iterations", 6,
                    "--trace-native-after", 2, "--threads", 2, "--output", tmp_path, "--quiet", "--no-plot", timeout=600)
    doc = results_of(tmp_path)
    trace = doc["ways"]["recreate-drop"]["native_trace"]
    assert trace["status"] == "traced", proc.stdout + proc.stderr
    named = [s for s in trace["sites"][:5] if "(src/" in s["site"] or "(src/" in (s["via"] or "")]
    assert len(named) >= 3, trace["sites"][:5]
    slope = doc["summary"]["recreate-drop"]["memory"]["rss_anon_mb"]["slope_mb_per_iter"]
    assert trace["resident_per_iter"] / MIB == pytest.approx(slope, rel=0.10)
    assert trace["bytes_per_iter"] > trace["resident_per_iter"]  # ggml reserves more than it ever writes
