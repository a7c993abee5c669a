#!/usr/bin/env python3
"""Which chatllm.cpp builds abort in destroy, and which leak per model (FINDINGS.md section 12): the same lifecycle on
several builds of chatllm.cpp, each under AddressSanitizer + LeakSanitizer.

    python benchmarks/history.py LABEL=CHATLLM_DIR [LABEL=CHATLLM_DIR ...] [--rows qwen3,gemma3]

Each CHATLLM_DIR is a chatllm.cpp folder whose bindings/libchatllm.so is an ASan build, e.g. of an older commit:

    git -C <a clone of chatllm.cpp> worktree add /tmp/src-a22839b a22839b
    CHATLLM_DIR=/tmp/src-a22839b CHATLLM_VARIANTS_DIR=build/history/a22839b \\
        SANITIZE_MODELS="models/qwen.cpp;models/qwen_asr.cpp;models/gemma.cpp;models/bce.cpp;models/siglip.cpp" \\
        tools/build_engine.sh build stock-asan
    python benchmarks/history.py a22839b=build/history/a22839b/stock-asan/chatllm.cpp

For every build: tiny Qwen3-ASR (path B) created, transcribing the sample and destroyed three times through the C
API's chatllm_destroy (tests/sanitizer/cycle.py), and every matrix row (models/matrix/rows.json) created, answering and
destroyed three times (tests/sanitizer/matrix.py chain). ASan's new-delete-type-mismatch check is off: on every build
before patch 0005 its first report is DataReader's delete, which would hide what destroy does. A leak is given per
model: LeakSanitizer's total at exit over the three models. A row a build cannot load says so.
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix import PROJECT, drive, what_happened  # noqa: E402

CYCLE = PROJECT / "tests" / "sanitizer" / "cycle.py"
TINY_MODEL = PROJECT / "models" / "tiny-qwen3-asr.bin"
SAMPLE = PROJECT / "samples" / "phoneNumber1-zh-TW.wav"
ROUNDS = 3
NO_TYPE_CHECK = ":new_delete_type_mismatch=0"


def per_model(result: str) -> str:
    """'leak in X (f:1), 1200 B in 30 blocks' -> the same with the bytes per model."""
    found = re.search(r", (\d+) B in (\d+) blocks$", result)
    if not found:
        return result
    return f"{result[:found.start()]}, {int(found.group(1)) / ROUNDS / 1024:.0f} KB per model"


def outcome(proc, loaded: bool) -> str:
    return per_model(what_happened(proc)) if loaded else f"cannot load: {what_happened(proc)}"


def asr(folder: Path) -> str:
    if not (folder / "models" / "qwen_asr.cpp").is_file():
        return "no Qwen3-ASR in this build"
    proc = drive(folder, TINY_MODEL, SAMPLE, ROUNDS, asan=NO_TYPE_CHECK, driver=CYCLE)
    result = outcome(proc, "Traceback" not in proc.stderr or "transcribing failed" in proc.stdout)
    return result + ("; its binding could not transcribe" if "transcribing failed" in proc.stdout else "")


def row(folder: Path, name: str) -> str:
    proc = drive(folder, "chain", name, asan=NO_TYPE_CHECK)
    return outcome(proc, f"output {name}:" in proc.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", metavar="LABEL=CHATLLM_DIR")
    parser.add_argument("--rows", help="comma-separated matrix rows (default: every row but the mismatched file)")
    args = parser.parse_args(argv)
    builds = []
    for spec in args.builds:
        label, _, folder = spec.partition("=")
        folder = Path(folder)
        if not folder or not (folder / "bindings" / "libchatllm.so").is_file():
            print(f"history.py: error: {spec!r}: no bindings/libchatllm.so in {folder}; give LABEL=CHATLLM_DIR of an "
                  "ASan build (see this script's docstring)", file=sys.stderr)
            return 2
        builds.append((label, folder))
    rows_file = PROJECT / "models" / "matrix" / "rows.json"
    if not rows_file.is_file() or not TINY_MODEL.is_file():
        print("history.py: error: the matrix or the tiny model is missing: run make models", file=sys.stderr)
        return 2
    rows = [r["row"] for r in json.loads(rows_file.read_text()) if not r["file"].endswith("-mismatched.bin")]
    if args.rows:
        unknown = [r for r in args.rows.split(",") if r not in rows]
        if unknown:
            print(f"history.py: error: no row {unknown[0]!r}; rows: {', '.join(rows)}", file=sys.stderr)
            return 2
        rows = args.rows.split(",")
    print("| build | " + " | ".join(["qwen3_asr (B)", *rows]) + " |")
    print("|---" * (len(rows) + 2) + "|")
    for label, folder in builds:
        cells = [asr(folder), *(row(folder, name) for name in rows)]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
