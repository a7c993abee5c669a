#!/usr/bin/env python3
"""More than one instance per process, stock against fixed: the table of FINDINGS.md section 11 and the README's answer.

    python benchmarks/instances.py                        # real size, stock and fixed (about 30 minutes)
    python benchmarks/instances.py --model tiny --iterations 12

For each library: recreate and restart one request at a time; restart with a pool of K = 2 and 4 instances; and two
requests at once (C = 2): in two threads of one worker (restart with a pool of K = 1, 2 or 4; recreate with an instance
per request) and in two worker processes of one instance each. Every run checks each transcript against one instance
alone (greedy decoding). Each run folder is kept under benchmarks/out/instances-<time>/, next to instances.json with
the rows. Prints a Markdown table.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from libraries import MODELS, PROJECT, slope, table  # noqa: E402

from asrbench.scheduling import Entry  # noqa: E402

# (ways, K, C) of one run_comparison.py run; C = 2 also serves the load from two processes
RUNS = [("recreate", None, 1), ("restart", 1, 1), ("restart", 2, 1), ("restart", 4, 1),
        ("recreate", None, 2), ("restart", 1, 2), ("restart", 2, 2), ("restart", 4, 2)]
COLUMNS = [("library", "library"), ("way", "way"), ("K", "K"), ("C", "C"), ("served_by", "served by"),
           ("status", "status"), ("instances_right", "instances right"), ("requests_right", "requests right"),
           ("slope", "RssAnon MB/request [95% CI]"), ("verdict", "verdict"), ("peak", "peak RSS MB"),
           ("rps", "requests/s"), ("p95", "p95 latency s")]


def run(model: Path, library: str, way: str, instances: int | None, concurrency: int, iterations: int, threads: int,
        out: Path) -> dict:
    args = [sys.executable, str(PROJECT / "run_comparison.py"), "--model", str(model), "--library", library,
            "--ways", way, "--iterations", str(iterations), "--threads", str(threads), "--concurrency", str(concurrency),
            *(["--instances", str(instances)] if instances else []), "--output", str(out), "--quiet", "--no-plot"]
    proc = subprocess.run(args, capture_output=True, text=True)
    path = out / "comparison_results.json"
    if not path.is_file():
        raise RuntimeError(f"{' '.join(args)} wrote no results:\n{proc.stderr[-2000:]}")
    return json.loads(path.read_text())


def rows_of(doc: dict, library: str, instances: int | None) -> list[dict]:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    rows = []
    for key, summary in doc["summary"].items():
        status = doc["ways"][key]
        serving = summary.get("serving") or {}
        single = summary.get("single_instance") or {}
        entry = Entry.parse(key)
        rows.append({
            "library": library, "way": entry.way, "K": "1 each" if entry.processes else (instances or "-"),
            "C": entry.concurrency, "served_by": ("processes" if entry.processes else
                                                  "threads" if entry.concurrency > 1 else "one at a time"),
            "status": "completed" if status["status"] == "completed" and not status.get("exit_crash") else status["message"],
            "instances_right": f"{single['instances_right']}/{single['instances']}" if single else "-",
            "requests_right": f"{single['requests'] - single['differing']}/{single['requests']}" if single else "-",
            "slope": slope(summary["memory"].get("rss_anon_mb")), "verdict": summary.get("verdict", "no data"),
            "peak": fmt(serving.get("peak_rss_mb"), ".0f"), "rps": fmt(serving.get("requests_per_s"), ".2f"),
            "p95": fmt((serving.get("latency_s") or {}).get("p95"), ".2f"), "results": doc.get("run_dir"),
        })
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(MODELS), default="0.6b")
    p.add_argument("--libraries", default="stock,fixed")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="inference threads per instance (default 2)")
    p.add_argument("--runs", help="which of the runs, by number from 1 (default all): " +
                   ", ".join(f"{n}: {w} K={k or '-'} C={c}" for n, (w, k, c) in enumerate(RUNS, start=1)))
    args = p.parse_args()
    chosen = [int(n) for n in args.runs.split(",")] if args.runs else list(range(1, len(RUNS) + 1))
    out = PROJECT / "benchmarks" / "out" / time.strftime("instances-%Y%m%d-%H%M%S")
    rows = []
    for library in args.libraries.split(","):
        for n, (way, instances, concurrency) in enumerate(RUNS, start=1):
            if n not in chosen:
                continue
            started = time.monotonic()
            doc = run(MODELS[args.model], library, way, instances, concurrency, args.iterations, args.threads,
                      out / f"{library}-{n}")
            rows += rows_of(doc, library, instances)
            print(f"{library} {way} K={instances or '-'} C={concurrency}: {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
            (out / "instances.json").write_text(json.dumps(rows, indent=1))
    print(table(rows, COLUMNS))
    print(f"\nrun folders and instances.json: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
