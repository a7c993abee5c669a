#!/usr/bin/env python3
"""How long the analysis takes as runs grow: every memory metric of two ways (recreate with a leak of 0.8 KB per
iteration, restart flat; RSS-like values in whole quarter-KB steps plus noise), summarised as a run's report does
(asrbench.results.summarise_way), by the O(n log n) statistics, and by the O(n^2) code they replaced
(tests/reference_stats.py) where that finishes in reasonable time.

    python benchmarks/scaling.py [--sizes 1000,10000,100000,1000000] [--old-up-to 5000]

Prints a Markdown table (the README's). Each size runs in a fresh process, so its peak RSS is its own; numba's
compiled kernels come from its cache (the first run ever compiles them, about 3 s, and is not what is timed).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LEAK_MB = 0.0008


def records(n: int, leak: float, seed: int) -> list[dict]:
    import numpy as np
    from asrbench import results
    rng = np.random.default_rng(seed)
    out = [{"iteration": i + 1} for i in range(n)]
    for k, metric in enumerate(results.MEMORY_METRICS):
        values = (np.round((800 + k + leak * np.arange(n) + rng.normal(0, 0.5, n)) * 4096) / 4096).tolist()
        for record, v in zip(out, values):
            record[metric] = v
    return out


def one(n: int, old: bool) -> dict:
    """Run in a child: summarise both ways, print the figures as JSON."""
    sys.path.insert(0, str(PROJECT))
    sys.path.insert(0, str(PROJECT / "tests"))
    import numpy as np
    from asrbench import results
    from asrbench.stats import kernels
    kernels.count_ge_pairs(np.zeros(2))  # load the compiled kernels before the clock starts (numba: about 1.5 s)
    kernels.ge_pairs(np.zeros(2), np.arange(2), 1)
    ways = {"recreate": records(n, LEAK_MB, 1), "restart": records(n, 0.0, 2)}
    if old:
        import reference_stats
        results.stats = reference_stats  # summarise_way's analysis, one metric after another, by the old code
        stats_module = reference_stats

        def analyse_all(named, iterations=None, warmup=None, threshold_mb=0.05, looks=1):
            return {k: stats_module.analyse(v, iterations, warmup, threshold_mb, looks) for k, v in named.items()}
        reference_stats.analyse_all = analyse_all
    started = time.perf_counter()
    summaries = {way: results.summarise_way(recs, None, 0.05) for way, recs in ways.items()}
    seconds = time.perf_counter() - started
    return {"n": n, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "verdicts": {w: s["verdict"] for w, s in summaries.items()},
            "slope": summaries["recreate"]["memory"]["rss_anon_mb"]["slope_mb_per_iter"]}


def measure(n: int, old: bool, timeout: float) -> dict | None:
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), *(["--old"] if old else [])],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--old-up-to", type=int, default=5000, help="largest size the O(n^2) code is timed at")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one(args.child, args.old)))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        print(f"scaling.py: error: --sizes {args.sizes!r}: give comma-separated iteration counts, e.g. 1000,100000",
              file=sys.stderr)
        return 2
    print("| iterations per way | analysis, 2 ways × 6 metrics | peak RSS | O(n²) code | verdicts | recreate slope, "
          "MB/iter |")
    print("|---:|---:|---:|---:|---|---:|")
    for n in sizes:
        new = measure(n, False, 3600)
        old = measure(n, True, 3600) if n <= args.old_up_to else None
        if new is None:
            print(f"| {n:,} | failed | | | | |")
            continue
        same = "" if old is None else (" (same)" if old["verdicts"] == new["verdicts"] and old["slope"] == new["slope"]
                                       else f" (differs: {old['verdicts']}, {old['slope']})")
        old_cell = f"{old['seconds']:.2f} s, {old['peak_rss_mb']:,.0f} MB{same}" if old else "–"
        print(f"| {n:,} | {new['seconds']:.2f} s | {new['peak_rss_mb']:,.0f} MB | {old_cell} | "
              f"{new['verdicts']['recreate']} / {new['verdicts']['restart']} | {new['slope']:.7f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
