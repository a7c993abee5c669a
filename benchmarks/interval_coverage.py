#!/usr/bin/env python3
"""Does the slope's 95 % interval hold the true slope, and do --until-decided's looks keep their error rates?

    python benchmarks/interval_coverage.py [--seeds 400]

Seeded memory series with a known slope under three kinds of noise a process's memory shows:

- independent: a buffer of uniform 0..2 MB held between requests (what the synthetic engine's noise_mb=2 does);
- AR(1): e_t = 0.8 e_(t-1) + innovation, 1 MB standard deviation (allocator caches that drain slowly);
- random steps: with probability 0.1 per iteration the level jumps to a new uniform 0..4 MB, plus 0.2 MB of jitter
  (arenas and pools grabbed and returned in chunks);
- and series in cycles (a cache refilled every k requests, a collector's cycle): 20 MB up over each cycle and back
  down, period 10, or 4 to 10 drawn per series, the slope moving the troughs.

Each series goes through asrbench.stats.analyse exactly as a run's does (warm-up cut included). The first table is
the share of series whose interval holds the true slope (target: at least 93 %); the second replays
--until-decided's planned looks (min 20, max 100) and counts false LEAKs on clean series, LEAKs found at
0.5 MB/iteration, false 'no leak' verdicts on leaking series, and the mean iterations used. Not part of the test suite
(tests/test_stats.py runs a smaller seeded subset).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import theilslopes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asrbench import stats  # noqa: E402

NOISE = ("independent", "AR(1) 0.8", "random steps")
# memory in cycles: rises by 20 MB over each cycle and falls back (plus 0.2 MB of jitter); the slope moves the troughs
PERIODIC = ("sawtooth, period 10", "refill, period 4-10")


def memory_series(kind: str, n: int, slope: float, seed: int, start: float = 500.0) -> np.ndarray:
    """n samples (MB) of a process growing by `slope` MB per iteration under one kind of noise."""
    rng = np.random.default_rng(seed)
    if kind == "independent":
        noise = rng.uniform(0, 2, n)
    elif kind == "AR(1) 0.8":
        innovations = rng.normal(0, np.sqrt(1 - 0.8 ** 2), n)
        noise = np.empty(n)
        noise[0] = rng.normal(0, 1)
        for i in range(1, n):
            noise[i] = 0.8 * noise[i - 1] + innovations[i]
    elif kind == "random steps":
        level, noise = rng.uniform(0, 4), np.empty(n)
        for i in range(n):
            if rng.random() < 0.1:
                level = rng.uniform(0, 4)
            noise[i] = level
        noise += rng.uniform(0, 0.2, n)
    elif kind in PERIODIC:
        period = 10 if kind.startswith("sawtooth") else int(rng.integers(4, 11))
        phase = int(rng.integers(0, period))
        noise = 20 * ((np.arange(n) + phase) % period) / period + rng.uniform(0, 0.2, n)
    else:
        raise ValueError(f"unknown noise {kind!r}: choose from {', '.join(NOISE + PERIODIC)}")
    return start + slope * np.arange(1, n + 1) + noise


def coverage(kind: str, n: int, slope: float, seeds: range) -> dict:
    held, widths = 0, []
    for seed in seeds:
        a = stats.analyse(memory_series(kind, n, slope, seed))
        held += a["slope_low"] <= slope <= a["slope_high"]
        widths.append(a["slope_high"] - a["slope_low"])
    return {"coverage": held / len(seeds), "median_width": float(np.median(widths))}


def scipy_coverage(kind: str, n: int, slope: float, seeds: range) -> float:
    """The same for scipy's own Theil-Sen interval, which assumes independent errors."""
    x = np.arange(1, n + 1)
    held = 0
    for seed in seeds:
        result = theilslopes(memory_series(kind, n, slope, seed), x)
        held += result.low_slope <= slope <= result.high_slope
    return held / len(seeds)


def until_decided(kind: str, slope: float, seeds: range, minimum: int = 20, maximum: int = 100,
                  threshold: float = 0.05) -> dict:
    """Replay --until-decided: judge at each planned look with the error split across the looks; stop when decided."""
    looks = stats.checkpoints(minimum, maximum)
    verdicts, used = [], []
    for seed in seeds:
        y = memory_series(kind, maximum, slope, seed)
        for at in looks:
            a = stats.analyse(y[:at], threshold_mb=threshold, looks=len(looks))
            if a["verdict"] in stats.DECIDED:
                break
        verdicts.append(a["verdict"])
        used.append(at)
    count = {v: verdicts.count(v) for v in ("LEAK", "no leak", "minor growth", "undecided")}
    return {"verdicts": count, "mean_iterations": float(np.mean(used)), "looks": looks}


def until_decided_table(label: str, kinds, seeds: range, slope_label: str = "true slope") -> None:
    print(f"| {label} | {slope_label} (MB/iter) | LEAK | no leak | minor growth | undecided at 100 | mean iterations |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        for slope in (0.0, 0.5):
            r = until_decided(kind, slope, seeds)
            v = r["verdicts"]
            print(f"| {kind} | {slope:g} | {v['LEAK']} | {v['no leak']} | {v['minor growth']} | {v['undecided']} | "
                  f"{r['mean_iterations']:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400, help="series per cell (default 400)")
    parser.add_argument("--lengths", default="10,20,30,50,100", help="iterations per series (default 10,20,30,50,100)")
    args = parser.parse_args()
    seeds = range(args.seeds)
    lengths = [int(v) for v in args.lengths.split(",")]
    started = time.perf_counter()
    print(f"Share of {args.seeds} seeded series whose 95 % interval holds the true slope (median interval width, MB/iter)\n")
    print("| noise | true slope (MB/iter) | " + " | ".join(f"n = {n}" for n in lengths) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in lengths) + " |")
    worst = 1.0
    for kind in NOISE:
        for slope in (0.0, 0.5):
            cells = [coverage(kind, n, slope, seeds) for n in lengths]
            worst = min([worst] + [c["coverage"] for c, n in zip(cells, lengths) if n >= stats.MIN_ITERATIONS])
            print(f"| {kind} | {slope:g} | " + " | ".join(f"{c['coverage']:.1%} ({c['median_width']:.2g})" for c in cells) + " |")
    print(f"\nlowest coverage: {worst:.1%} (target at least 93 %)\n")
    print("For comparison, scipy's own interval (independent errors, no warm-up cut) on the same series, slope 0.5:\n")
    print("| noise | " + " | ".join(f"n = {n}" for n in lengths) + " |")
    print("| --- | " + " | ".join("---" for _ in lengths) + " |")
    for kind in NOISE:
        print(f"| {kind} | " + " | ".join(f"{scipy_coverage(kind, n, 0.5, seeds):.1%}" for n in lengths) + " |")
    print()
    looks = stats.checkpoints(20, 100)
    print(f"--until-decided replayed on the same series: looks at {looks}, trend test p < {stats.TREND_ALPHA / len(looks):.3g} "
          f"and a {100 * (1 - stats.ALPHA / len(looks)):.3g} % interval at each look, threshold 0.05 MB/iter\n")
    until_decided_table("noise", NOISE, seeds)
    print("\nSeries in cycles (20 MB up over each cycle, then back down), 100 iterations, one look: verdicts per "
          f"{args.seeds} series\n")
    print("| cycles | trough slope (MB/iter) | LEAK | no leak | minor growth | undecided | decided by the troughs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in PERIODIC:
        for slope in (0.0, 0.1, 0.5):
            found = [stats.analyse(memory_series(kind, 100, slope, seed)) for seed in seeds]
            count = {v: sum(a["verdict"] == v for a in found) for v in ("LEAK", "no leak", "minor growth", "undecided")}
            troughs = sum(a.get("decided_by") == "troughs" for a in found)
            print(f"| {kind} | {slope:g} | {count['LEAK']} | {count['no leak']} | {count['minor growth']} | "
                  f"{count['undecided']} | {troughs} |")
    print("\n--until-decided on the same cycles (looks as above):\n")
    until_decided_table("cycles", PERIODIC, seeds, "trough slope")
    print(f"\n({args.seeds} series per row; {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
