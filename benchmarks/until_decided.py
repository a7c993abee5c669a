#!/usr/bin/env python3
"""--until-decided on the synthetic control engine: false LEAKs, detection, and the iterations and time it saves.

    python benchmarks/until_decided.py [--seeds 200] [--work-ms 200] [--load-ms 200]

1. Error rates: `--until-decided --iterations 100` on --seeds clean runs (noise_mb=2) and --seeds runs leaking
   0.5 MB per request (noise_mb=2), both ways each, through the real workers (1 ms of work per request).
2. Savings: a fixed 100 iterations against --until-decided (maximum 100) for a clean engine, a 0.5 MB/request leak,
   a 0.1 MB/request leak and a leak that stops after 15 requests, each way on its own, with requests that take
   --work-ms and loads that take --load-ms, so that the wall times have the proportions of a real engine's.

Prints Markdown tables and writes benchmarks/out/until-decided-<time>.json. Not part of the test suite.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import runner  # noqa: E402
from asrbench.config import RunConfig, validate  # noqa: E402

CONTROLS = {"clean": "", "leak 0.5 MB/request": "request_leak_mb=0.5", "leak 0.1 MB/request": "request_leak_mb=0.1",
            "leak 1 MB/request stopping after 15": "request_leak_mb=1,plateau_after=15"}


def run(settings: str, ways: list[str], until_decided: bool, iterations: int = 100) -> tuple[dict, float]:
    config = RunConfig(engine="synthetic", ways=ways, iterations=iterations, until_decided=until_decided,
                       min_iterations=20, synthetic=settings)
    validate(config)
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        document, _ = runner.compare_ways(config, Path(out), quiet=True, plot=False)
        return document, time.monotonic() - started


def verdict(line: str) -> str:
    """The verdict word of a verdict line: 'restart: no leak, +0.01 ...' -> 'no leak'."""
    return line.split(": ", 1)[1].split(",")[0].split(" +")[0].split(" -")[0].split(" (")[0]


def error_rates(seeds: int) -> dict:
    figures = {}
    for name, leak in (("clean", ""), ("leak 0.5 MB/request", "request_leak_mb=0.5,")):
        per_way = {w: {"LEAK": 0, "no leak": 0, "minor growth": 0, "undecided": 0, "iterations": []}
                   for w in ("recreate", "restart")}
        for seed in range(seeds):
            document, _ = run(f"work_ms=1,load_ms=1,noise_mb=2,{leak}seed={seed}", ["recreate", "restart"], True)
            for way, tally in per_way.items():
                tally[document["summary"][way]["verdict"]] += 1
                tally["iterations"].append(document["summary"][way]["iterations"])
        for tally in per_way.values():
            tally["mean_iterations"] = sum(tally["iterations"]) / len(tally["iterations"])
            tally["max_iterations"] = max(tally.pop("iterations"))
        figures[name] = per_way
        print(f"  {name}: {per_way}", file=sys.stderr, flush=True)
    return figures


def savings(work_ms: float, load_ms: float) -> list[dict]:
    rows = []
    for name, leak in CONTROLS.items():
        settings = f"work_ms={work_ms:g},load_ms={load_ms:g},noise_mb=2,seed=11" + (f",{leak}" if leak else "")
        for way in ("recreate", "restart"):
            fixed, fixed_s = run(settings, [way], False)
            until, until_s = run(settings, [way], True)
            rows.append({"control": name, "way": way,
                         "fixed": {"iterations": fixed["summary"][way]["iterations"], "wall_s": fixed_s,
                                   "verdict": fixed["verdicts"][way]},
                         "until_decided": {"iterations": until["summary"][way]["iterations"], "wall_s": until_s,
                                           "verdict": until["verdicts"][way]}})
            print(f"  {name} {way}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="clean and leaking runs each (default 200)")
    parser.add_argument("--work-ms", type=float, default=200, help="request time in the savings runs (default 200)")
    parser.add_argument("--load-ms", type=float, default=200, help="model load time in the savings runs (default 200)")
    args = parser.parse_args()
    started = time.monotonic()
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seeds": args.seeds,
              "error_rates": error_rates(args.seeds), "savings": savings(args.work_ms, args.load_ms),
              "work_ms": args.work_ms, "load_ms": args.load_ms}
    print(f"\n--until-decided --iterations 100 on the synthetic engine (noise_mb=2), {args.seeds} seeds, both ways each\n")
    print("| control | way | LEAK | no leak | minor growth | undecided | mean iterations | most iterations |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, per_way in report["error_rates"].items():
        for way, t in per_way.items():
            print(f"| {name} | {way} | {t['LEAK']} | {t['no leak']} | {t['minor growth']} | {t['undecided']} | "
                  f"{t['mean_iterations']:.1f} | {t['max_iterations']} |")
    print(f"\nA fixed 100 iterations against --until-decided (requests {args.work_ms:g} ms, loads {args.load_ms:g} ms, "
          f"noise_mb=2, seed 11)\n")
    print("| control | way | fixed 100: verdict | wall (s) | --until-decided: verdict | iterations | wall (s) | saved |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in report["savings"]:
        f, u = row["fixed"], row["until_decided"]
        print(f"| {row['control']} | {row['way']} | {verdict(f['verdict'])} | {f['wall_s']:.1f} | "
              f"{verdict(u['verdict'])} | {u['iterations']} | {u['wall_s']:.1f} | {1 - u['wall_s'] / f['wall_s']:.0%} |")
    out = PROJECT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"until-decided-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\n({time.monotonic() - started:.0f} s; written: {path.relative_to(PROJECT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
