#!/usr/bin/env python3
"""The model matrix as one table (FINDINGS.md section 12): for every row of models/matrix/rows.json, on the released
library and the fixed one,

- same output: the greedy answer of the released library and of the fixed one (each in a fresh process);
- stock / fixed: three times create, answer, destroy, then create, answer, destroy another family's model, under
  AddressSanitizer + LeakSanitizer (stock-asan, fixed-asan): what happened;
- slope: recreate's RssAnon per model after malloc_trim(0), 30 times, on the fixed release library (Theil-Sen, MB).

The exception-path row loads the mismatched file, then the row-A model.

    python benchmarks/matrix.py [--iterations 30] [--rows qwen3,qwen3_5]
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from asrbench import stats  # noqa: E402

DRIVER = PROJECT / "tests" / "sanitizer" / "matrix.py"
LIBRARIES = {"stock": PROJECT / "chatllm.cpp", "fixed": PROJECT / "build" / "engines" / "fixed" / "chatllm.cpp",
             "stock-asan": PROJECT / "build" / "engines" / "stock-asan" / "chatllm.cpp",
             "fixed-asan": PROJECT / "build" / "engines" / "fixed-asan" / "chatllm.cpp"}
ROW_A = "qwen3"


def runtime(name: str) -> str:
    path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return os.path.realpath(path)


def drive(library: str | Path, *args, asan: str = "", driver: Path = DRIVER) -> subprocess.CompletedProcess:
    """A driver script on a library: a name of LIBRARIES, or a chatllm.cpp folder (ASan when its name says -asan)."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT), GGML_NO_BACKTRACE="1")  # ggml would attach gdb on a crash
    folder = LIBRARIES[library] if isinstance(library, str) else library
    if str(library).endswith("-asan") or "-asan" in folder.parts[-2]:
        env.update(LD_PRELOAD=f"{runtime('libasan.so')} {runtime('libstdc++.so.6')}",
                   ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86" + asan,
                   LSAN_OPTIONS=f"suppressions={PROJECT / 'tests' / 'sanitizer' / 'lsan.supp'}:exitcode=87")
    return subprocess.run([sys.executable, str(driver), str(folder), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=900, cwd=PROJECT)


def what_happened(proc: subprocess.CompletedProcess) -> str:
    """clean, or the first fault: the sanitizer's report and its first frame in libchatllm, a signal, an abort."""
    report = proc.stderr
    error = re.search(r"ERROR: (AddressSanitizer|LeakSanitizer): ([\w-]+(?: [\w-]+)*)", report)
    frame = re.search(r"#\d+ 0x[0-9a-f]+ in (chatllm::[^\s(]+)[^\n]* (\.\./[\w./]+:\d+)", report[error.start():]) \
        if error else None
    if error:
        kind = "leak" if error.group(1) == "LeakSanitizer" else error.group(2).split(" on ")[0]
        leaked = re.search(r"SUMMARY: AddressSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation", report)
        where = f" in {frame.group(1)} ({frame.group(2).lstrip('./')})" if frame else ""
        return f"{kind}{where}" + (f", {leaked.group(1)} B in {leaked.group(2)} blocks" if leaked else "")
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}" + (" (abort)" if proc.returncode == -6 else "")
    if proc.returncode != 0:
        last = (report.strip().splitlines() or [""])[-1][:80]
        return f"exit {proc.returncode}: {last}"
    return "clean"


def output_of(proc: subprocess.CompletedProcess) -> str | None:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("output ")]
    return lines[0].split(": ", 1)[1] if lines else None


def slope(row: str, iterations: int) -> str:
    proc = drive("fixed", "slope", row, iterations)
    found = re.search(r"^rss_anon: (\[.*\])$", proc.stdout, re.M)
    if not found:
        return f"failed: {what_happened(proc)}"
    series_mb = [kb / 1024 for kb in json.loads(found.group(1))]
    a = stats.analyse(series_mb)
    return f"{a['slope_mb_per_iter']:+.4f} [{a['slope_low']:+.4f}, {a['slope_high']:+.4f}] ({a['verdict']})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--rows", help="comma-separated rows (default: all in models/matrix/rows.json)")
    args = parser.parse_args(argv)
    rows_file = PROJECT / "models" / "matrix" / "rows.json"
    if not rows_file.is_file():
        print("matrix.py: error: models/matrix/rows.json is missing: run make matrix-models", file=sys.stderr)
        return 2
    rows = json.loads(rows_file.read_text())
    wanted = args.rows.split(",") if args.rows else [r["row"] for r in rows]
    missing = [name for name in wanted if name not in {r["row"] for r in rows}]
    if missing:
        print(f"matrix.py: error: no row {missing[0]!r} in {rows_file}", file=sys.stderr)
        return 2
    for name, path in LIBRARIES.items():
        if not (path / "bindings" / "libchatllm.so").is_file():
            print(f"matrix.py: error: the {name} library is not built in {path}: run make engines", file=sys.stderr)
            return 2
    print("| row | family | path | stock (ASan) | stock, type-mismatch check off | fixed (ASan) | same output "
          "| fixed recreate RssAnon MB/model [95 % CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for row in (r for r in rows if r["row"] in wanted):
        name = row["row"]
        if row["file"].endswith("-mismatched.bin"):
            scenario = ("after-failure", name, ROW_A)
            same, growth = "–", "–"
        else:
            following = "qwen3_5-noproj" if name == ROW_A else ROW_A
            scenario = ("lifecycle", name, following)
            stock_out, fixed_out = output_of(drive("stock", "output", name)), output_of(drive("fixed", "output", name))
            same = "yes" if stock_out is not None and stock_out == fixed_out else f"no: {stock_out} / {fixed_out}"
            growth = slope(name, args.iterations)
        results = [what_happened(drive("stock-asan", *scenario)),
                   # ASan stops at the first report: on stock that is DataReader's delete (patch 0005); with that check
                   # off, the next fault shows
                   what_happened(drive("stock-asan", *scenario, asan=":new_delete_type_mismatch=0")),
                   what_happened(drive("fixed-asan", *scenario))]
        print(f"| {name} | {row['family']} | {row['path']} | {results[0]} | {results[1]} | {results[2]} | {same} "
              f"| {growth} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
