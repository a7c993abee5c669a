"""Memory of this process: RSS split into anonymous and file-backed pages, USS, Python heap, allocator."""

import ctypes
import ctypes.util
import os
import sys
import tracemalloc

import psutil

_STATUS_FIELDS = {"VmRSS:": "rss_mb", "RssAnon:": "rss_anon_mb", "RssFile:": "rss_file_mb"}
_process = psutil.Process()


def read_status(pid: int | str = "self") -> dict:
    """RSS, RssAnon and RssFile in MB from /proc/<pid>/status (a few microseconds; no page walk)."""
    sample = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            key = line.split(b" ", 1)[0].split(b"\t", 1)[0].decode()
            if key in _STATUS_FIELDS:
                sample[_STATUS_FIELDS[key]] = int(line.split()[1]) / 1024.0
    return sample


def unique_set_size_mb() -> float:
    """USS: pages only this process holds. It walks every mapping (about 11 ms at 1 GB), so it is sampled sparingly."""
    return _process.memory_full_info().uss / (1024.0 * 1024.0)


def python_heap() -> dict:
    """Python-side memory: allocated blocks (cheap, always) and tracemalloc's figure when tracing is on."""
    heap = {"py_blocks": sys.getallocatedblocks()}
    if tracemalloc.is_tracing():
        heap["py_traced_mb"] = tracemalloc.get_traced_memory()[0] / (1024.0 * 1024.0)
    return heap


libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)  # the one libc handle


def malloc_trim() -> bool:
    """Ask glibc to give free heap memory back to the system; True when it released some."""
    trim = getattr(libc, "malloc_trim", None)
    return bool(trim(0)) if trim else False


def sample(with_uss: bool = False, trim: bool = False) -> dict:
    """One memory sample. With trim, the figures after malloc_trim(0) are added as *_trimmed_mb."""
    point = read_status()
    if with_uss:
        point["uss_mb"] = unique_set_size_mb()
    point.update(python_heap())
    if trim:
        malloc_trim()
        trimmed = read_status()
        point["rss_trimmed_mb"] = trimmed["rss_mb"]
        point["rss_anon_trimmed_mb"] = trimmed["rss_anon_mb"]
    return point


def allocator() -> str:
    """Which malloc serves this process: a preloaded one (jemalloc, tcmalloc, mimalloc) or glibc's."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in preload:
            return name
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                for name in ("jemalloc", "tcmalloc", "mimalloc"):
                    if name in line:
                        return name
    except OSError:
        pass
    return "glibc"
