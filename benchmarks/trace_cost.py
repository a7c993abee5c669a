#!/usr/bin/env python3
"""What --trace-native costs: the same worker with and without it, per model and way; the README's cost table.

    python benchmarks/trace_cost.py                                  # tiny and real-size models, recreate and restart
    python benchmarks/trace_cost.py --model tiny --iterations 12

Each cell runs one way's worker (python -m asrbench.worker, as run_comparison.py starts it) on the fixed library
(recreate completes there) twice, untraced and with tracing after --after iterations, and compares the traced
iterations with the same iterations untraced:

- CPU time of the worker (user + system, every thread) per traced iteration. With one inference thread this hardly
  depends on what else the machine runs, unlike wall time (ggml's worker threads spin while they wait, so with more
  threads CPU time grows with contention too);
- wall time per traced iteration (from the journal's iteration end times), valid only on a quiet machine: the load
  average before and after is printed with it;
- RssAnon at the last iteration and its slope over the traced iterations;
- what the parent then does with the capture: allocations recorded per iteration, capture size, analysis time.

Run folders are kept under benchmarks/out/trace-cost-<time>/.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import native_trace, results  # noqa: E402
from asrbench.config import RunConfig, validate  # noqa: E402
from asrbench.engines.chatllm import library_dir  # noqa: E402
from asrbench.stats import theil_sen  # noqa: E402

MODELS = {"tiny": PROJECT / "models" / "tiny-qwen3-asr.bin",
          "0.6b": PROJECT / "models" / "seeded-qwen3-asr-0.6b-q4_0.bin"}


def worker(config: RunConfig, way: str, folder: Path) -> tuple[list[dict], float]:
    """Run one worker to its end: its iteration records and the CPU seconds it used."""
    folder.mkdir(parents=True)
    config.save(folder / "config.json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "asrbench.worker", str(folder / "config.json"), way, str(folder / f"{way}.jsonl")],
                   cwd=PROJECT, env=dict(os.environ, PYTHONPATH=str(PROJECT)), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return results.read_journal(folder / f"{way}.jsonl")["iterations"], cpu


def traced_slice(records: list[dict], after: int) -> list[dict]:
    return [r for r in records if r["iteration"] > after]


def wall_per_iteration(records: list[dict], after: int) -> float:
    ends = {r["iteration"]: r["time"] for r in records}
    return statistics.median(ends[n] - ends[n - 1] for n in ends if n > after + 1 and n - 1 in ends)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(MODELS) + ["both"], default="both")
    p.add_argument("--ways", default="recreate,restart")
    p.add_argument("--iterations", type=int, help="per run (default 12 tiny, 8 real size)")
    p.add_argument("--after", type=int, default=2, help="untraced iterations before tracing (default 2)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1: see above)")
    p.add_argument("--library", default="fixed")
    p.add_argument("--real-model", type=Path, default=MODELS["0.6b"], help="the real-size model file")
    args = p.parse_args()
    MODELS["0.6b"] = args.real_model
    out = PROJECT / "benchmarks" / "out" / time.strftime("trace-cost-%Y%m%d-%H%M%S")
    print("| model | way | CPU per iteration, untraced → traced | wall per iteration | RssAnon at the end (MB) | RssAnon slope, "
          "traced iterations (MB/iter) | allocations recorded per iteration | capture | analysis | load before / after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for name in (MODELS if args.model == "both" else [args.model]):
        iterations = args.iterations or (12 if name == "tiny" else 8)
        for way in args.ways.split(","):
            config = validate(RunConfig(engine="chatllm", library=args.library, ways=[way], iterations=iterations,
                                        chatllm_dir=str(library_dir(args.library, PROJECT / "chatllm.cpp")),
                                        model=str(MODELS[name]), threads=args.threads))
            load_before = os.getloadavg()[0]
            plain, cpu0 = worker(config, way, out / f"{name}-{way}-plain")
            config.trace_native, config.trace_native_after = True, args.after
            traced, cpu1 = worker(config, way, out / f"{name}-{way}-traced")
            load_after = os.getloadavg()[0]
            trace = native_trace.analyse(config, out / f"{name}-{way}-traced", way, flamegraph=False)
            k = len(traced_slice(traced, args.after))
            # untraced iterations cost the same in both runs, so the difference is the tracer's, over k iterations
            per_plain = cpu0 / len(plain)
            per_traced = per_plain + (cpu1 - cpu0) / k
            slopes = [theil_sen([r["rss_anon_mb"] for r in traced_slice(rs, args.after)],
                                [r["iteration"] for r in traced_slice(rs, args.after)])[0] for rs in (plain, traced)]
            row = {"model": name, "way": way, "iterations": iterations, "traced": k, "threads": args.threads,
                   "cpu_s_per_iter": [per_plain, per_traced],
                   "wall_s_per_iter": [wall_per_iteration(plain, args.after), wall_per_iteration(traced, args.after)],
                   "rss_anon_end_mb": [plain[-1]["rss_anon_mb"], traced[-1]["rss_anon_mb"]],
                   "rss_anon_slope": slopes, "allocations_per_iter": trace["blocks_recorded"] / k,
                   "capture_mb": trace["trace_bytes"] / 2**20, "analysis_s": trace["analysis_s"],
                   "load": [load_before, load_after]}
            rows.append(row)
            c, w, a = row["cpu_s_per_iter"], row["wall_s_per_iter"], row["rss_anon_end_mb"]
            print(f"| {name} | {way} | {c[0]:.2f} → {c[1]:.2f} s (×{c[1] / c[0]:.1f}) | {w[0]:.2f} → {w[1]:.2f} s | "
                  f"{a[0]:.1f} → {a[1]:.1f} ({a[1] - a[0]:+.1f}) | {slopes[0]:+.3f} → {slopes[1]:+.3f} | "
                  f"{row['allocations_per_iter'] / 1e3:.0f} k | {row['capture_mb']:.1f} MB | {row['analysis_s']:.1f} s | "
                  f"{load_before:.1f} / {load_after:.1f} |", flush=True)
    (out / "trace_cost.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{out / 'trace_cost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
