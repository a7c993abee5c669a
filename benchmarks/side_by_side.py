#!/usr/bin/env python3
"""chatllm.cpp (stock and fixed library) and CrispASR side by side on the same seeded Qwen3-ASR-0.6B weights (q4_0 in
both files, the same bytes), both ways, at each thread count: memory per instance, RssAnon slope (and after
malloc_trim), load time, time to first token, request time and real-time factor.

    python benchmarks/side_by_side.py                        (make side-by-side)
    python benchmarks/side_by_side.py --iterations 30 --threads 1,2 --wait-quiet 60

Every figure comes from run_comparison.py's own results file for that engine, way and thread count; this script
only starts the runs, one after another, and lays their summaries side by side. Timing with every core busy is
ruined by anything else running (OpenMP workers spin-wait), so --wait-quiet waits until the load average is below
--max-load before each run and records the load it started at. Writes benchmarks/out/side-by-side-<time>.json.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import metadata  # noqa: E402

MODELS = PROJECT / "models"
# name: (run_comparison.py options, model file)
ENGINES = {
    "chatllm-stock": (["--engine", "chatllm", "--library", "stock"], MODELS / "seeded-qwen3-asr-0.6b-q4_0.bin"),
    "chatllm-fixed": (["--engine", "chatllm", "--library", "fixed"], MODELS / "seeded-qwen3-asr-0.6b-q4_0.bin"),
    "crispasr": (["--engine", "crispasr"], MODELS / "seeded-qwen3-asr-0.6b-q4_0.gguf"),
}


def load_average() -> float:
    return os.getloadavg()[0]


def wait_until_quiet(max_load: float, patience_s: float, every_s: float = 60.0) -> dict:
    """Wait (up to patience_s) for the 1-minute load average to fall below max_load; say what was seen."""
    started = time.monotonic()
    seen = load_average()
    while seen >= max_load and time.monotonic() - started < patience_s:
        print(f"  load average {seen:.2f} >= {max_load}: waiting (up to {patience_s - (time.monotonic() - started):.0f} s more)",
              file=sys.stderr, flush=True)
        time.sleep(every_s)
        seen = load_average()
    return {"load_average_1min": seen, "waited_s": round(time.monotonic() - started), "quiet": seen < max_load}


def run(options: list, model: Path, threads: int, iterations: int, output: Path, extra: list) -> tuple[dict | None, str, float]:
    command = [sys.executable, str(PROJECT / "run_comparison.py"), *options, "--model", str(model), "--threads",
               str(threads), "--iterations", str(iterations), "--malloc-trim", "--quiet", "--no-plot",
               "--output", str(output), *extra]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    wall = time.monotonic() - started
    path = output / "comparison_results.json"
    if proc.returncode == 2 or not path.is_file():
        print(f"  {' '.join(command[1:])}: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None, " ".join(command[1:]), wall
    return json.loads(path.read_text(encoding="utf-8")), " ".join(command[1:]), wall


def way_figures(doc: dict, way: str) -> dict:
    """One way's figures from a results file: what an instance holds, growth, and speed."""
    status = doc["ways"].get(way, {})
    summary = doc["summary"].get(way, {})
    records = doc["iterations"].get(way, [])
    first = records[0] if records else status.get("unfinished_iteration")
    baseline = (status.get("worker") or {}).get("after_engine_import") or {}
    instance = {}
    if first and baseline:
        after = first["memory"]["after_transcribe"]
        instance = {key: after[key] - baseline[key] for key in ("rss_mb", "rss_anon_mb", "rss_file_mb")}
    memory = summary.get("memory", {})

    def slope(metric):
        m = memory.get(metric) or {}
        return None if m.get("n", 0) < 3 else {k: m[k] for k in ("slope_mb_per_iter", "slope_low", "slope_high",
                                                                   "warmup", "shape", "verdict")}

    anon = memory.get("rss_anon_mb") or {}
    loads = [r["load_s"] for r in records if r.get("load_s") is not None] or ([first["load_s"]] if first else [])
    return {
        "status": status.get("message", status.get("status")),
        "iterations": len(records),
        "instance_mb": instance,
        "rss_anon_first_last_mb": [anon.get("initial_mb"), anon.get("final_mb")],
        "rss_anon_slope": slope("rss_anon_mb"),
        "rss_anon_trimmed_slope": slope("rss_anon_trimmed_mb"),
        "verdict": doc["verdicts"].get(way),
        "load_s_mean": sum(loads) / len(loads) if loads else None,
        "ttft_ms_median": (summary.get("ttft_ms") or {}).get("median"),
        "request_s_median": (summary.get("request_s") or {}).get("median"),
        "request_s_p95": (summary.get("request_s") or {}).get("p95"),
        "rtf_mean": summary.get("rtf_mean"),
        "transcripts_differing": (summary.get("transcript_drift") or {}).get("differ_from_first"),
    }


def fmt(value, spec=".2f", none="-"):
    return none if value is None else format(value, spec)


def slope_text(s: dict | None) -> str:
    return "-" if not s else f"{s['slope_mb_per_iter']:+.3f} [{s['slope_low']:+.3f}, {s['slope_high']:+.3f}]"


def table(rows: list[dict]) -> str:
    head = ("| engine | threads | way | status | instance RSS / RssAnon (MB) | RssAnon MB/iter [95% CI] | "
            "after malloc_trim | load (s) | first token (ms) | request median / p95 (s) | RTF |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        f = r["figures"]
        inst = f["instance_mb"]
        ttft = fmt(f["ttft_ms_median"], ".0f", "n/m" if r["engine"] == "crispasr" else "-")
        lines.append(f"| {r['engine']} | {r['threads']} | {r['way']} | {f['status']} | "
                     f"{fmt(inst.get('rss_mb'), '.0f')} / {fmt(inst.get('rss_anon_mb'), '.0f')} | "
                     f"{slope_text(f['rss_anon_slope'])} | {slope_text(f['rss_anon_trimmed_slope'])} | "
                     f"{fmt(f['load_s_mean'])} | {ttft} | {fmt(f['request_s_median'], '.3f')} / "
                     f"{fmt(f['request_s_p95'], '.3f')} | {fmt(f['rtf_mean'], '.3f')} |")
    return "\n".join(lines)


def ratios(rows: list[dict], base: str = "chatllm-fixed", other: str = "crispasr") -> list[str]:
    """CrispASR against chatllm.cpp (fixed) for the same way and threads: request time and instance size."""
    index = {(r["engine"], r["threads"], r["way"]): r["figures"] for r in rows}
    lines = []
    for (engine, threads, way), f in index.items():
        if engine != other or (base, threads, way) not in index:
            continue
        b = index[(base, threads, way)]
        parts = [f"{other} vs {base}, {way}, {threads} thread(s):"]
        if f["request_s_median"] and b["request_s_median"]:
            parts.append(f"request {f['request_s_median'] / b['request_s_median']:.2f}x")
        if f["load_s_mean"] and b["load_s_mean"]:
            parts.append(f"load {f['load_s_mean'] / b['load_s_mean']:.2f}x")
        if f["instance_mb"].get("rss_mb") and b["instance_mb"].get("rss_mb"):
            parts.append(f"instance RSS {f['instance_mb']['rss_mb']:.0f} vs {b['instance_mb']['rss_mb']:.0f} MB, "
                         f"RssAnon {f['instance_mb']['rss_anon_mb']:.0f} vs {b['instance_mb']['rss_anon_mb']:.0f} MB")
        lines.append(" ".join(parts))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, from {', '.join(ENGINES)}")
    parser.add_argument("--chatllm-model", type=Path, help="chatllm.cpp file (default models/seeded-qwen3-asr-0.6b-q4_0.bin)")
    parser.add_argument("--gguf", type=Path, help="CrispASR GGUF (default models/seeded-qwen3-asr-0.6b-q4_0.gguf)")
    parser.add_argument("--chatllm-dir", help="chatllm.cpp checkout with the stock library (passed on)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="MIN",
                        help="before each run wait up to MIN minutes for the load average to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        print(f"side_by_side.py: error: unknown engine {', '.join(unknown)}: choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    extra = ["--chatllm-dir", args.chatllm_dir] if args.chatllm_dir else []
    rows, runs = [], []
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as scratch:
        for n in threads:
            for engine in engines:
                options, model = ENGINES[engine]
                if engine == "crispasr" and args.gguf:
                    model = args.gguf
                elif engine != "crispasr" and args.chatllm_model:
                    model = args.chatllm_model
                quiet = wait_until_quiet(args.max_load, args.wait_quiet * 60) if args.wait_quiet else \
                    {"load_average_1min": load_average(), "waited_s": 0}
                print(f"{engine}, {n} thread(s), load {quiet['load_average_1min']:.2f} ...", file=sys.stderr, flush=True)
                folder = Path(scratch) / f"{engine}-{n}"
                doc, command, wall = run(options, model, n, args.iterations, folder,
                                         extra if engine != "crispasr" else [])
                runs.append({"engine": engine, "threads": n, "command": command, "wall_s": wall, "before": quiet,
                             "load_average_after": load_average(), "results": doc})
                if doc is None:
                    continue
                for way in doc["iterations"]:
                    rows.append({"engine": engine, "threads": n, "way": way, "figures": way_figures(doc, way)})
    text = table(rows)
    print(text)
    print()
    print("\n".join(ratios(rows)))
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / f"side-by-side-{started.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"cpu_model": metadata.cpu_model(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
               "os": platform.platform(), "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30}
    out.write_text(json.dumps({"started": started.isoformat(timespec="seconds"), "machine": machine,
                               "iterations": args.iterations, "rows": rows, "runs": runs, "table": text},
                              ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\nwritten: {out}")
    return 0 if all(r["results"] is not None for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
