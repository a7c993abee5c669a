#!/usr/bin/env python3
"""Stock against fixed libchatllm, way by way, and what each patch removes: the figures of FINDINGS.md section 1.

    python benchmarks/libraries.py                      # both models, stock and fixed, every way (about 30 minutes)
    python benchmarks/libraries.py --model tiny --iterations 30
    python benchmarks/libraries.py --patches            # recreate on fixed-p1, fixed-p12, ... (make the variants first)

Each cell is one run of run_comparison.py with --malloc-trim; every run folder is kept under
benchmarks/out/libraries-<time>/, next to libraries.json with the rows. Prints Markdown tables.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import results  # noqa: E402
from asrbench.engines.chatllm import library_dir, library_path  # noqa: E402

MODELS = {"tiny": PROJECT / "models" / "tiny-qwen3-asr.bin",
          "0.6b": PROJECT / "models" / "seeded-qwen3-asr-0.6b-q4_0.bin"}
WAYS = "recreate,restart,recreate-drop"
# cumulative patch sets, built with PATCHES=... tools/build_engine.sh build fixed-NAME (see FINDINGS.md)
PATCH_STEPS = [("fixed-p1", "0001-0002 (+ binding 0006)"), ("fixed-p12", "+ 0003"), ("fixed-p123", "+ 0004"),
               ("fixed", "+ 0005 and the rest: all")]


def run(model: Path, library: str, ways: str, iterations: int, threads: int, out: Path) -> dict:
    args = [sys.executable, str(PROJECT / "run_comparison.py"), "--model", str(model), "--library", library,
            "--ways", ways, "--iterations", str(iterations), "--threads", str(threads), "--malloc-trim",
            "--output", str(out), "--quiet", "--no-plot"]
    proc = subprocess.run(args, capture_output=True, text=True)
    path = out / "comparison_results.json"
    if not path.is_file():
        raise RuntimeError(f"{' '.join(args)} wrote no results:\n{proc.stderr[-2000:]}")
    return json.loads(path.read_text())


def slope(analysis: dict | None) -> str:
    if not analysis or analysis.get("n", 0) < 3:
        return "-"
    return f"{analysis['slope_mb_per_iter']:+.4f} [{analysis['slope_low']:+.4f}, {analysis['slope_high']:+.4f}]"


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def cells(doc: dict, way: str) -> dict:
    records = doc["iterations"].get(way, [])
    summary = doc.get("summary", {}).get(way, {})
    memory = summary.get("memory", {})
    status = doc["ways"][way]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    return {
        "status": "completed" if status["status"] == "completed" and not status.get("exit_crash") else status["message"],
        "iterations": len(records),
        "rss_anon": slope(memory.get("rss_anon_mb")),
        "rss_anon_trimmed": slope(memory.get("rss_anon_trimmed_mb")),
        "verdict": summary.get("verdict", "no data"),
        "verdict_trimmed": memory.get("rss_anon_trimmed_mb", {}).get("verdict", "-"),
        # the first instance, made in a fresh process: later ones are carved out of what glibc kept from the last
        "instance_mb": fmt(records[0].get("instance_mb") if records else None, ".0f"),
        "load_s": fmt(median([r.get("load_s") for r in records]), ".2f"),
        "release_ms": fmt(median([r["release_s"] * 1000 for r in records if r.get("release_s") is not None]), ".1f"),
        "results": doc.get("run_dir"),
    }


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(label for _, label in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[key]) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "0.6b", "both"], default="both")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patches", action="store_true", help="recreate on each cumulative patch set instead")
    parser.add_argument("--from", dest="again", metavar="DIR", help="print the tables of an earlier run's folder again")
    args = parser.parse_args()
    models = ["tiny", "0.6b"] if args.model == "both" else [args.model]
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "iterations": args.iterations, "threads": args.threads,
              "rows": []}
    tmp = Path(args.again) if args.again else PROJECT / "benchmarks" / "out" / f"libraries-{time.strftime('%Y%m%d-%H%M%S')}"
    tmp.mkdir(parents=True, exist_ok=True)
    for model in models:
        if args.patches:
            for library, patches in PATCH_STEPS:
                folder = tmp / f"{model}-{library}"
                if args.again:
                    if not folder.is_dir():
                        continue
                    doc = results.load(folder / "comparison_results.json")  # an earlier run's: nothing is run
                elif not library_path(library_dir(library, "")).is_file():
                    print(f"skipping {library}: not built", file=sys.stderr)
                    continue
                else:
                    doc = run(MODELS[model], library, "recreate", args.iterations, args.threads, folder)
                report["rows"].append({"model": model, "library": library, "patches": patches, "way": "recreate",
                                       **cells(doc, "recreate")})
        else:
            for library in ("stock", "fixed"):
                if args.again:
                    # the run's folder, and any folder with more ways of it (e.g. 0.6b-fixed-restart, a later run of
                    # the ways an interrupted run did not finish): each way from the run that did the most of it
                    folders = [tmp / f"{model}-{library}", *sorted(tmp.glob(f"{model}-{library}-*"))]
                    docs = [results.load(folder / "comparison_results.json") for folder in folders if folder.is_dir()]
                    for way in WAYS.split(","):
                        have = [d for d in docs if way in d["ways"]]
                        if have:
                            doc = max(have, key=lambda d: len(d["iterations"].get(way, [])))
                            report["rows"].append({"model": model, "library": library, "way": way, **cells(doc, way)})
                    continue
                doc = run(MODELS[model], library, WAYS, args.iterations, args.threads, tmp / f"{model}-{library}")
                for way in WAYS.split(","):
                    report["rows"].append({"model": model, "library": library, "way": way, **cells(doc, way)})
        print(f"\n{model}: {args.iterations} iterations per way, {args.threads} threads", flush=True)
        columns = ([("library", "library"), ("patches", "patches")] if args.patches else
                   [("library", "library"), ("way", "way")])
        columns += [("status", "status"), ("iterations", "iterations"), ("rss_anon", "RssAnon MB/iter [95% CI]"),
                    ("rss_anon_trimmed", "after malloc_trim"), ("verdict", "verdict"),
                    ("verdict_trimmed", "verdict after malloc_trim"),
                    ("instance_mb", "first instance (RssAnon MB at load)"), ("load_s", "load (s)"),
                    ("release_ms", "destroy/restart (ms)")]
        print(table([r for r in report["rows"] if r["model"] == model], columns), flush=True)
    if not args.again:  # re-rendering writes nothing
        path = tmp / ("libraries-patches.json" if args.patches else "libraries.json")
        path.write_text(json.dumps(report, indent=1))
        print(f"\nwritten: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
