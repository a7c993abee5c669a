#!/usr/bin/env python3
"""Write the model matrix: one tiny seeded model per way chatllm.cpp's models own their tensor position helpers, for
tests/test_matrix.py and benchmarks/matrix.py (FINDINGS.md section 12).

Each family is a module in tools/matrix/ that writes a seeded random checkpoint in Hugging Face layout (config,
tokenizer, weights); chatllm.cpp's own convert.py turns it into models/matrix/<family>.bin (f32), as
tools/make_model.py does for Qwen3-ASR. models/matrix/rows.json then lists every row the tests run: a family's
model, with the options and the prompt it is run with.

    python tools/make_matrix.py                 # every family
    python tools/make_matrix.py qwen3 qwen3_5   # only these
"""

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FAMILIES_DIR = Path(__file__).resolve().parent / "matrix"
OUT = PROJECT / "models" / "matrix"
SEED = 0


def families() -> dict:
    found = {}
    if str(FAMILIES_DIR) not in sys.path:
        sys.path.insert(0, str(FAMILIES_DIR))  # the families import _shared
    for path in sorted(FAMILIES_DIR.glob("[a-z]*.py")):
        spec = importlib.util.spec_from_file_location(f"matrix_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found[module.FAMILY] = module
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(family, checkpoint: Path, out: Path, chatllm_dir: Path) -> None:
    partial = out.with_suffix(".partial")
    result = subprocess.run([sys.executable, str(chatllm_dir / "convert.py"), "-i", str(checkpoint), "-o", str(partial),
                             "-t", "f32", "-n", family.NAME, *family.CONVERT_ARGS], capture_output=True, text=True)
    if result.returncode != 0 or not partial.is_file():
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-4000:])
        raise RuntimeError(f"chatllm.cpp's convert.py failed for {family.FAMILY} (output above)")
    partial.replace(out)


def build(family, chatllm_dir: Path) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"matrix-{family.FAMILY}-") as tmp:
        checkpoint = Path(tmp) / "checkpoint"
        checkpoint.mkdir()
        family.build_checkpoint(checkpoint, SEED)
        convert(family, checkpoint, OUT / f"{family.FAMILY}.bin", chatllm_dir)
    if hasattr(family, "write_media"):
        family.write_media(OUT)
    return {"seconds": round(time.monotonic() - started, 1)}


def mismatched(source: Path, out: Path, patch) -> None:
    """A copy of a model file whose config says something its constructor refuses (the exception path)."""
    data = bytearray(source.read_bytes())
    patch(data)
    out.write_bytes(bytes(data))


def row_entries(family) -> list[dict]:
    base = {"family": family.FAMILY, "path": family.PATH, "file": f"{family.FAMILY}.bin",
            "kind": getattr(family, "KIND", "chat"), "run_args": list(family.RUN_ARGS)}
    entries = [dict(base, row=family.FAMILY, prompt=family.PROMPT)]
    for suffix, extra in getattr(family, "EXTRA_ROWS", {}).items():
        entries.append(dict(base, row=f"{family.FAMILY}-{suffix}", **extra))
    return entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("families", nargs="*", help="families to build (default: all in tools/matrix/)")
    parser.add_argument("--chatllm-dir", type=Path, default=Path(os.environ.get("CHATLLM_DIR", PROJECT / "chatllm.cpp")))
    args = parser.parse_args(argv)
    if not (args.chatllm_dir / "convert.py").is_file():
        print(f"make_matrix.py: error: {args.chatllm_dir / 'convert.py'} not found: run make setup (or set "
              "CHATLLM_DIR to chatllm.cpp's source)", file=sys.stderr)
        return 2
    known = families()
    wanted = args.families or list(known)
    missing = [f for f in wanted if f not in known]
    if missing:
        print(f"make_matrix.py: error: no family {missing[0]!r}; families: {', '.join(known)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        info = build(known[name], args.chatllm_dir)
        path = OUT / f"{name}.bin"
        print(f"{name}: {path.relative_to(PROJECT)} ({path.stat().st_size / 1024:.0f} KB, sha256 {sha256(path)[:16]}…) "
              f"in {info['seconds']} s", flush=True)
        for extra_name, extra in getattr(known[name], "MISMATCHED", {}).items():
            mismatched(path, OUT / extra_name, extra)
    table = [entry for family in known.values() for entry in row_entries(family)]
    (OUT / "rows.json").write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
