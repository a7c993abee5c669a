"""Allocator settings an operator can change without touching the engine, the environment each one gives a worker,
and which malloc a process actually runs with.

Memory an engine frees can stay with the allocator instead of going back to the system: glibc keeps freed chunks in
its arenas (one per thread, up to eight per core) until something trims them. Each setting here runs every way in a
fresh worker whose environment (and preload) is set before it starts, so the difference between settings is memory
the allocator keeps, not memory the engine leaks.
"""

import ctypes
import os
import sysconfig
from dataclasses import dataclass, field

SETTING_VARIABLE = "ASRBENCH_ALLOCATOR"  # tells the worker which setting it runs under
# What the glibc settings start from: none of glibc's malloc variables, no preloaded allocator, no malloc tunables.
MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_",
                    "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_PERTURB_", "MALLOC_CHECK_")
KNOWN_LIBRARIES = {"jemalloc": "libjemalloc", "tcmalloc": "libtcmalloc", "mimalloc": "libmimalloc"}


@dataclass(frozen=True)
class Setting:
    name: str
    what: str
    env: dict = field(default_factory=dict)
    preload: str | None = None      # library file put first in LD_PRELOAD
    package: str | None = None      # the Debian package that installs it
    trim_after_release: bool = False


SETTINGS = {s.name: s for s in (
    Setting("glibc", "glibc's malloc as a process starts with it: no MALLOC_* variables (up to 8 arenas per core)"),
    Setting("glibc-arena2", "glibc's malloc with MALLOC_ARENA_MAX=2 (the main arena and one more)",
            env={"MALLOC_ARENA_MAX": "2"}),
    Setting("trim-after-release", "glibc's malloc; the worker calls malloc_trim(0) after every destroy or restart, "
                                  "before memory is sampled", trim_after_release=True),
    Setting("jemalloc", "jemalloc through LD_PRELOAD, its default options", preload="libjemalloc.so.2",
            package="libjemalloc2"),
    Setting("tcmalloc", "tcmalloc (gperftools, minimal) through LD_PRELOAD, its default options",
            preload="libtcmalloc_minimal.so.4", package="libtcmalloc-minimal4"),
)}


class AllocatorError(ValueError):
    """An allocator setting that cannot be used; the message names the problem and the fix."""


def parse(spec: str) -> list[str]:
    """'glibc,jemalloc' -> ['glibc', 'jemalloc']; 'all' -> every setting; unknown names raise AllocatorError."""
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    if names == ["all"]:
        return list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or not names:
        raise AllocatorError(f"unknown allocator setting {', '.join(unknown) or '(none)'}: choose from "
                             f"{', '.join(SETTINGS)} or all (comma-separated)")
    if len(set(names)) != len(names):
        raise AllocatorError(f"--allocators names a setting twice ({spec}): name each once")
    return names


def library_dirs() -> list[str]:
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{arch}", f"/lib/{arch}"] if arch else []
    return dirs + ["/usr/lib64", "/usr/lib", "/usr/local/lib"]


def find_library(name: str, dirs=None) -> str | None:
    """The full path of the library a setting preloads (None for the glibc settings, or when it is not installed)."""
    setting = SETTINGS[name]
    if not setting.preload:
        return None
    for folder in dirs if dirs is not None else library_dirs():
        path = os.path.join(folder, setting.preload)
        if os.path.isfile(path):
            return path
    return None


def require(names, dirs=None) -> None:
    """Every preloaded library is installed, or one line says which package installs it."""
    for name in names:
        setting = SETTINGS[name]
        if setting.preload and not find_library(name, dirs):
            looked = ", ".join(dirs if dirs is not None else library_dirs())
            raise AllocatorError(f"allocator {name} needs {setting.preload}, which is not installed (looked in {looked}):"
                                 f" apt-get install {setting.package} (make setup installs it), or leave {name} out of"
                                 f" --allocators")


def library_of(path: str) -> str | None:
    """The allocator (a KNOWN_LIBRARIES key) a library file is, by its name; None for anything else."""
    return next((name for name, lib in KNOWN_LIBRARIES.items() if os.path.basename(path).startswith(lib)), None)


def environment(name: str, base: dict, dirs=None) -> dict:
    """The environment a worker starts with under a setting: the parent's, without any malloc variable, malloc tunable
    or preloaded allocator, then the setting's own."""
    setting = SETTINGS[name]
    env = {k: v for k, v in base.items() if k not in MALLOC_VARIABLES}
    preload = [p for p in env.pop("LD_PRELOAD", "").replace(" ", ":").split(":")
               if p and library_of(p) is None]
    tunables = [t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.")]
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    if setting.preload:
        preload.insert(0, find_library(name, dirs) or setting.preload)
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    env.update(setting.env)
    env[SETTING_VARIABLE] = name
    return env


def current() -> Setting | None:
    """The setting this process was started under (None: the environment as the user gave it)."""
    return SETTINGS.get(os.environ.get(SETTING_VARIABLE, ""))


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def malloc_provider() -> str | None:
    """The file that defines the malloc this process's code calls (dladdr on the symbol the global lookup finds)."""
    try:
        process = ctypes.CDLL(None)
        info = _DlInfo()
        address = ctypes.cast(process.malloc, ctypes.c_void_p)
        if process.dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        pass
    return None


def mapped_allocators(maps: str = "/proc/self/maps") -> list[str]:
    """Allocator libraries mapped into this process (a preload that failed leaves none)."""
    found = set()
    try:
        with open(maps) as f:
            for line in f:
                parts = line.split(maxsplit=5)
                path = parts[5].strip() if len(parts) == 6 else ""
                if library_of(path):
                    found.add(path)
    except OSError:
        pass
    return sorted(found)


def loaded(maps: str = "/proc/self/maps") -> dict:
    """Which malloc this process runs with: the allocator library mapped into it (/proc/self/maps), checked against
    the library that defines the malloc symbol its code resolves to."""
    mapped = mapped_allocators(maps)
    provider = malloc_provider()
    if provider:
        name = library_of(provider) or "glibc"
    else:  # dladdr unavailable: the mapped library is the best evidence (the last of KNOWN_LIBRARIES mapped)
        name = next((c for c in reversed(KNOWN_LIBRARIES) if any(library_of(p) == c for p in mapped)), "glibc")
    return {"name": name, "malloc_from": provider, "mapped": mapped}
