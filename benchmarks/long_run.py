#!/usr/bin/env python3
"""A long run end to end: 100,000 iterations per way of a 1 ms synthetic engine leaking 1 KB per request, through
run_comparison.py as a user runs it, with a budget of 256 MB per million requests (0.000256 MB per request).

    python benchmarks/long_run.py [--iterations 100000] [--ways recreate,restart] [--leak-mb 0.001]

Prints the wall time per way, the files the run wrote and their sizes, each way's verdict line, and how long
`--report` takes to read the run back and analyse it again. Not part of the test suite (it takes minutes).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--ways", default="recreate,restart")
    parser.add_argument("--leak-mb", type=float, default=0.001)
    parser.add_argument("--budget", default="256")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="long-run-") as out:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(PROJECT / "run_comparison.py"), "--engine", "synthetic",
                               "--synthetic", f"request_leak_mb={args.leak_mb},work_ms=1,load_ms=1", "--ways", args.ways,
                               "--iterations", str(args.iterations), "--budget", args.budget, "--output", out,
                               "--quiet"], capture_output=True, text=True)
        wall = time.monotonic() - started
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stderr[-3000:])
            return proc.returncode
        run_dir = next((Path(out) / "runs").iterdir())
        doc = json.loads((run_dir / "comparison_results.json").read_text())
        print(f"{args.iterations:,} iterations per way of {args.ways}, request_leak_mb={args.leak_mb}, "
              f"--budget {args.budget}: {wall:.0f} s in all")
        for way, status in doc["ways"].items():
            worker = status.get("worker") or {}
            times = [r["time"] for r in doc["iterations"][way]]
            print(f"  {way}: {status['message']}; {times[-1] - times[0]:.0f} s from first to last iteration "
                  f"(pid {worker.get('pid')})")
        for f in sorted(run_dir.iterdir()):
            print(f"  {f.name}: {f.stat().st_size / 2 ** 20:,.1f} MB")
        for line in doc["verdicts"].values():
            print(f"  {line}")
        started = time.monotonic()
        again = subprocess.run([sys.executable, str(PROJECT / "run_comparison.py"), "--report", str(run_dir),
                                "--no-plot"], capture_output=True, text=True)
        print(f"  --report on the run folder: {time.monotonic() - started:.1f} s, exit {again.returncode}, "
              f"same verdicts: {[l for l in again.stdout.splitlines() if l.split(':')[0] in doc['verdicts']] == list(doc['verdicts'].values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
