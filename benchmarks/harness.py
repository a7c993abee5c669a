#!/usr/bin/env python3
"""Benchmark the benchmark: harness overhead, memory-sample cost, leak sensitivity, and (where libchatllm and the tiny
model exist) request latency against chatllm.cpp's own command-line program and the default run's wall time.

    python benchmarks/harness.py [--quick]        (make bench)

Prints the figures and writes them to benchmarks/out/harness-<time>.json. Not part of the test suite.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import memory, metadata, results, text  # noqa: E402
from asrbench.config import SEEDED_MAX_NEW_TOKENS  # noqa: E402
from asrbench.engines.synthetic import NativeBlock  # noqa: E402

CHATLLM_DIR = Path(os.environ.get("CHATLLM_DIR") or PROJECT / "chatllm.cpp")
TINY = PROJECT / "models" / "tiny-qwen3-asr.bin"
SEEDED = PROJECT / "models" / "seeded-qwen3-asr-0.6b-q4_0.bin"
SAMPLE = PROJECT / "samples" / "phoneNumber1-zh-TW.wav"
# Both sides decode greedily and stop after the tokens the benchmark allows a seeded model by default, so they generate
# the same tokens and the same amount of work every request.
SAME_WORK = ["-t", "0", "--max_new_tokens", str(SEEDED_MAX_NEW_TOKENS)]


def comparison(*args, timeout=3600) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(PROJECT / "run_comparison.py"), "--output", out, "--quiet",
                               "--no-plot", *map(str, args)], capture_output=True, text=True, timeout=timeout)
        wall = time.monotonic() - started
        path = Path(out) / "comparison_results.json"
        if not path.is_file():
            raise RuntimeError(f"run_comparison.py {' '.join(map(str, args))} wrote no results:\n{proc.stderr}")
        return json.loads(path.read_text()), wall


def harness_overhead(iterations: int, *extra) -> dict:
    """Per iteration: the worker's wall time minus the engine's own time, as a share of the engine's time."""
    doc, _ = comparison("--engine", "synthetic", "--iterations", iterations, "--synthetic", "work_ms=50,load_ms=0,model_mb=0",
                        *extra)
    figures = {}
    for way, records in doc["iterations"].items():
        walls = [b["time"] - a["time"] for a, b in zip(records, records[1:])]
        engine = [(r["load_s"] or 0) + r["request_s"] + r["release_s"] for r in records[1:]]
        overhead = [w - e for w, e in zip(walls, engine)]
        figures[way] = {"engine_ms_median": statistics.median(engine) * 1000,
                        "overhead_ms_median": statistics.median(overhead) * 1000,
                        "overhead_share_pct": statistics.median(overhead) / statistics.median(engine) * 100}
    started = time.perf_counter()
    for r in doc["iterations"]["restart"]:
        text.score(r["raw_transcript"], "0900073331", "Chinese")
    figures["scoring_ms_per_record_in_parent"] = (time.perf_counter() - started) / len(doc["iterations"]["restart"]) * 1000
    return figures


def time_call(fn, repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1000


def sample_costs() -> dict:
    """What each memory sample costs at about 100 MB and about 1 GB of process memory (ms per call)."""
    figures, blocks = {}, []
    meter = memory.PeakMeter("hwm")
    for target_mb in (100, 1024):
        blocks.append(NativeBlock(max(target_mb - memory.read_status()["rss_mb"], 0)))
        label = f"{memory.read_status()['rss_mb']:.0f}MB"
        figures[label] = {
            "rss_anon_file_ms": time_call(memory.read_status, 2000),
            "python_heap_ms": time_call(memory.python_heap, 2000),
            "uss_ms": time_call(memory.unique_set_size_mb, 30),
            "every_iteration_ms": time_call(lambda: memory.sample(with_uss=False), 2000),
            # twice per recreate iteration (load, request), once per restart iteration
            "peak_reset_and_read_ms": time_call(lambda: (meter.reset(), meter.read()), 2000),
        }
    for block in blocks:
        block.free()
    figures["peak_method"] = meter.describe()
    meter.close()  # where clear_refs is refused it is a sampling thread itself, which the next figure must not count
    figures["peak_sampling_thread_cpu_pct"] = sampling_thread_cpu()
    return figures


def sampling_thread_cpu(seconds: float = 2.0) -> float:
    """CPU the fallback's sampling thread takes (per cent of one core), measured as this process's CPU time."""
    meter = memory.PeakMeter("sampling")
    started, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    used = (time.process_time() - cpu) / (time.perf_counter() - started) * 100
    meter.close()
    return used


def sensitivity(seeds: int, clean_seeds: int, iterations: int) -> dict:
    """Iterations until a 0.5 MB/iteration leak is called LEAK (and stays so), and false positives on clean runs."""
    needed = []
    for seed in range(seeds):
        doc, _ = comparison("--engine", "synthetic", "--ways", "restart", "--iterations", iterations,
                            "--synthetic", f"work_ms=1,load_ms=1,noise_mb=2,request_leak_mb=0.5,seed={seed}")
        records = doc["iterations"]["restart"]
        first_stable = None
        for n in range(4, len(records) + 1):
            verdict = results.summarise_way(records[:n], None, 0.05)["verdict"]
            if verdict == "LEAK" and first_stable is None:
                first_stable = n
            elif verdict != "LEAK":
                first_stable = None
        needed.append(first_stable)
    flagged = 0
    for seed in range(clean_seeds):
        doc, _ = comparison("--engine", "synthetic", "--ways", "restart", "--iterations", 40,
                            "--synthetic", f"work_ms=1,load_ms=1,noise_mb=2,seed={100 + seed}")
        flagged += doc["summary"]["restart"]["verdict"] == "LEAK"
    return {"noise_mb": 2, "leak_mb_per_iter": 0.5, "iterations_needed_per_seed": needed,
            "iterations_needed_max": max(n for n in needed if n) if any(needed) else None,
            "false_positives": flagged, "clean_seeds": clean_seeds}


def cli_request_latency(model: Path, requests: int, threads: int) -> list[float]:
    """Request latency through chatllm.cpp's own program: interactive ASR mode, one file per prompt."""
    main = CHATLLM_DIR / "build" / "bin" / "main"
    proc = subprocess.Popen([str(main), "-m", str(model), "-n", str(threads), "-c", "4096", "--set", "language", "Chinese",
                             *SAME_WORK, "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def wait_prompt():
        seen = b""
        while not seen.endswith(b"File > "):
            chunk = proc.stdout.read1(4096)
            if not chunk:
                raise RuntimeError("chatllm.cpp main ended early")
            seen = (seen + chunk)[-64:]

    latencies = []
    try:
        wait_prompt()
        for _ in range(requests):
            started = time.perf_counter()
            proc.stdin.write(f"{SAMPLE}\n".encode())
            proc.stdin.flush()
            wait_prompt()
            latencies.append(time.perf_counter() - started)
    finally:
        proc.kill()
        proc.wait()
    return latencies


def engine_figures(model: Path, requests: int, threads: int, default_run: bool, rounds: int = 5) -> dict:
    if not (CHATLLM_DIR / "bindings" / "libchatllm.so").is_file() or not model.is_file():
        return {"skipped": f"libchatllm or {model} missing (make engine models)"}
    figures = {"model": model.name, "requests_per_round": requests, "rounds": rounds, "engine_args": SAME_WORK}
    has_main = (CHATLLM_DIR / "build" / "bin" / "main").is_file()
    ours, cli = [], []
    for _ in range(rounds):  # alternate the two, so drifts in machine speed hit both alike
        doc, _ = comparison("--model", model, "--ways", "restart", "--iterations", requests, "--threads", threads,
                            "--engine-args", " ".join(SAME_WORK))
        ours += [r["request_s"] for r in doc["iterations"]["restart"][1:]]
        if has_main:
            cli += cli_request_latency(model, requests, threads)[1:]
    quartiles = lambda xs: [round(q * 1000, 1) for q in statistics.quantiles(xs, n=4)]
    figures["benchmark_request_ms_quartiles"] = quartiles(ours)
    if has_main:
        figures["chatllm_main_request_ms_quartiles"] = quartiles(cli)
        figures["difference_pct"] = (statistics.median(ours) / statistics.median(cli) - 1) * 100
    else:
        figures["chatllm_main"] = "not built (cmake --build chatllm.cpp/build --target main)"
    if default_run:
        doc, wall = comparison("--model", model, "--threads", threads)
        figures["default_run_wall_s"] = wall
        figures["default_run_ways"] = {w: s["message"] for w, s in doc["ways"].items()}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and iterations")
    parser.add_argument("--model", choices=["tiny", "0.6b"], default="tiny",
                        help="model for the latency comparison with chatllm.cpp's main (default tiny)")
    parser.add_argument("--latency-only", action="store_true", help="only the latency comparison and the default run")
    args = parser.parse_args()
    quick = args.quick
    model = TINY if args.model == "tiny" else SEEDED
    report = {
        "machine": {"cpu": metadata.cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "os": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_at_start": os.getloadavg(),  # latency figures need a quiet machine
        # one thread: on 2 cores, two inference threads share the machine with everything else and latencies
        # jump between two modes (seen here: ~690 and ~950 ms), which swamps a few per cent either way
        "chatllm_1_thread": engine_figures(model, 6, 1, default_run=False, rounds=2 if quick else 5),
        "chatllm_2_threads": engine_figures(model, 6, 2, default_run=not quick, rounds=2 if quick else 5),
    }
    if not args.latency_only:
        report.update(harness_overhead=harness_overhead(30 if quick else 100),
                      harness_overhead_peak_off=harness_overhead(30 if quick else 100, "--peak", "off"),
                      sample_cost=sample_costs(), sensitivity=sensitivity(2 if quick else 5, 5 if quick else 20, 60))
    print(json.dumps(report, indent=1))
    out = PROJECT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"harness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
