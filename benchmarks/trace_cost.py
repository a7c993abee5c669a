#!/usr/bin/env python3
"""What --trace-native costs: the same run with and without it, per model and way; the README's cost table.

    python benchmarks/trace_cost.py                                  # tiny and real-size models, recreate and restart
    python benchmarks/trace_cost.py --model tiny --iterations 12

Each cell is a pair of runs of run_comparison.py on the fixed library (recreate completes there), untraced first; the
figures compare the traced iterations with the same iterations of the untraced run: wall time per iteration (from
the workers' iteration end times) and RssAnon at the last iteration. Timing needs a quiet machine: the load average
before and after each pair is printed with it. Run folders are kept under benchmarks/out/trace-cost-<time>/.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MODELS = {"tiny": PROJECT / "models" / "tiny-qwen3-asr.bin",
          "0.6b": PROJECT / "models" / "seeded-qwen3-asr-0.6b-q4_0.bin"}


def run(model: Path, way: str, iterations: int, after: int, trace: bool, out: Path, library: str) -> dict:
    args = [sys.executable, str(PROJECT / "run_comparison.py"), "--model", str(model), "--library", library,
            "--ways", way, "--iterations", str(iterations), "--threads", "2", "--output", str(out), "--quiet",
            "--no-plot"] + (["--trace-native-after", str(after)] if trace else [])
    proc = subprocess.run(args, capture_output=True, text=True)
    path = out / "comparison_results.json"
    if not path.is_file():
        raise RuntimeError(f"{' '.join(args)} wrote no results:\n{proc.stderr[-2000:]}")
    return json.loads(path.read_text())


def per_iteration_s(doc: dict, way: str, after: int) -> float:
    records = doc["iterations"][way]
    ends = {r["iteration"]: r["time"] for r in records}
    return statistics.median(ends[n] - ends[n - 1] for n in ends if n > after + 1 and n - 1 in ends)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(MODELS) + ["both"], default="both")
    p.add_argument("--ways", default="recreate,restart")
    p.add_argument("--iterations", type=int, help="per run (default 12 tiny, 8 real size)")
    p.add_argument("--after", type=int, default=2, help="untraced iterations before tracing (default 2)")
    p.add_argument("--library", default="fixed")
    args = p.parse_args()
    out = PROJECT / "benchmarks" / "out" / time.strftime("trace-cost-%Y%m%d-%H%M%S")
    rows = []
    for name in (MODELS if args.model == "both" else [args.model]):
        iterations = args.iterations or (12 if name == "tiny" else 8)
        for way in args.ways.split(","):
            load_before = os.getloadavg()[0]
            plain = run(MODELS[name], way, iterations, args.after, False, out / f"{name}-{way}-plain", args.library)
            traced = run(MODELS[name], way, iterations, args.after, True, out / f"{name}-{way}-traced", args.library)
            load_after = os.getloadavg()[0]
            t0, t1 = per_iteration_s(plain, way, args.after), per_iteration_s(traced, way, args.after)
            a0, a1 = (doc["iterations"][way][-1]["rss_anon_mb"] for doc in (plain, traced))
            trace = traced["ways"][way]["native_trace"]
            rows.append({"model": name, "way": way, "iterations": iterations, "traced": trace.get("iterations_traced"),
                         "s_per_iter_plain": t0, "s_per_iter_traced": t1, "rss_anon_end_plain": a0,
                         "rss_anon_end_traced": a1, "blocks_per_iter": (trace.get("blocks_recorded") or 0) / max(trace.get("iterations_traced") or 1, 1),
                         "capture_mb": (trace.get("trace_bytes") or 0) / 2**20, "analysis_s": trace.get("analysis_s"),
                         "load": (load_before, load_after)})
            r = rows[-1]
            print(f"| {name} | {way} | {r['s_per_iter_plain']:.2f} → {r['s_per_iter_traced']:.2f} s "
                  f"(×{r['s_per_iter_traced'] / r['s_per_iter_plain']:.1f}) | {a0:.1f} → {a1:.1f} MB "
                  f"({a1 - a0:+.1f}) | {r['blocks_per_iter'] / 1e3:.0f} k | {r['capture_mb']:.1f} MB | "
                  f"{r['analysis_s']:.1f} s | {load_before:.1f} / {load_after:.1f} |", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trace_cost.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{out / 'trace_cost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
