"""Metadata kept with every result, in the spirit of pyperf's _collect_metadata: what a reader needs to reproduce
the figures or to distrust them (machine, software, engine build, model and audio files)."""

import datetime
import inspect
import os
import platform
import subprocess
import sys
from pathlib import Path

from . import __version__, memory
from .checksum import sha256_of
from .config import PROJECT_DIR, RunConfig
from .engines.chatllm import build_manifest, library_path
from .engines.crispasr import package_dir as crispasr_dir
from .engines.registry import is_builtin, registered, resolve, split


def git_sha(path: Path) -> str | None:
    """HEAD of the git work tree whose top is `path` (not of a repository that merely contains it)."""
    try:
        top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(path).resolve():
            return None
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def pinned_chatllm_sha() -> str | None:
    """The submodule commit this project pins, for an engine built from a copy without git (the Docker image)."""
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_DIR), "ls-tree", "HEAD", "chatllm.cpp"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = out.stdout.split()
    return fields[2] if out.returncode == 0 and len(fields) >= 3 else None


def file_facts(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        return {"path": path}
    return {"path": str(p), "size_bytes": p.stat().st_size, "sha256": sha256_of(p)}


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def collect_metadata(config: RunConfig) -> dict:
    """What a reader needs to reproduce or distrust the figures."""
    meta = {
        "tool": f"asrbench {__version__}",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "project_sha": git_sha(PROJECT_DIR),
        "engine": config.engine,
        "threads": config.threads,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "glibc": "-".join(platform.libc_ver()),
        "os": platform.platform(),
        "allocator": memory.allocator(),
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
        # ggml's CPU threads are OpenMP's: how they wait decides what processes sharing the cores get (README: serving)
        "openmp": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))},
        "audio": file_facts(config.audio),
    }
    if config.engine == "chatllm":
        meta["chatllm_sha"] = git_sha(Path(config.chatllm_dir)) or pinned_chatllm_sha()
        meta["chatllm_library"] = library_facts(config.library, Path(config.chatllm_dir))
        meta["model"] = file_facts(config.model)
        meta["seeded_model"] = config.seeded_model
    if not is_builtin(config.engine):
        meta["plugin"] = plugin_facts(config.engine)
    if config.engine_options:
        meta["engine_options"] = dict(config.engine_options)
    if config.engine == "crispasr":
        meta["crispasr"] = crispasr_facts()
        meta["model"] = file_facts(config.model)
        meta["seeded_model"] = config.seeded_model
    return meta


def plugin_facts(spec: str) -> dict:
    """Which engine code ran: its factory, and the sha256 of the file that defines it (and the version of the
    distribution that holds it, for an installed one)."""
    target = registered().get(spec, spec)
    where, name, is_file = split(target)
    facts = {"factory": target}
    if is_file:
        facts["file"] = file_facts(where)
        return facts
    factory, _loaded = resolve(spec)  # imported already, by the checks
    try:
        source = inspect.getsourcefile(factory)
    except TypeError:  # a callable without Python source
        source = None
    if source and Path(source).is_file():
        facts["file"] = file_facts(source)
    try:
        from importlib.metadata import packages_distributions, version

        dists = packages_distributions().get(where.split(".")[0]) or []
        facts["distribution"] = {d: version(d) for d in dists}
    except Exception:
        pass
    return facts


def crispasr_facts() -> dict:
    """Which CrispASR ran: the package version and its native library's sha256 (read without loading it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        facts = {"version": version("crispasr")}
    except PackageNotFoundError:
        return {"version": None}
    folder = crispasr_dir()
    if folder:
        facts["library"] = file_facts(str(folder / "libcrispasr.so"))
    return facts


def library_facts(library: str, chatllm_dir: Path) -> dict:
    """Which libchatllm ran: the variant, the library file's sha256, and how it was built (source, patches).

    A fixed library built from patches that have changed since is flagged, so a figure is never credited to patches
    that were not in the library that produced it."""
    facts = {"variant": library, "library": file_facts(str(library_path(chatllm_dir)))}
    build = build_manifest(chatllm_dir)
    if build:
        facts["build"] = build
        now = {p.name: sha256_of(p) for p in sorted((PROJECT_DIR / "patches").glob("*.patch"))}
        built = {p["name"]: p["sha256"] for p in build.get("patches", [])}
        facts["patches_changed_since_build"] = sorted(n for n in built if now.get(n) != built[n])
        if build.get("library_sha256") != facts["library"].get("sha256"):
            facts["library_changed_since_build"] = True
    return facts
