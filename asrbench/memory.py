"""Memory of this process: RSS split into anonymous and file-backed pages, USS, Python heap, allocator."""

import ctypes
import ctypes.util
import os
import sys
import threading
import time
import tracemalloc

import psutil

from . import allocators

_STATUS_FIELDS = {"VmRSS:": "rss_mb", "RssAnon:": "rss_anon_mb", "RssFile:": "rss_file_mb"}
_process = psutil.Process()


def read_status(pid: int | str = "self", fields: dict = _STATUS_FIELDS) -> dict:
    """RSS, RssAnon and RssFile (or the given fields) in MB from /proc/<pid>/status (a few microseconds; no page
    walk)."""
    sample = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            key = line.split(b" ", 1)[0].split(b"\t", 1)[0].decode()
            if key in fields:
                sample[fields[key]] = int(line.split()[1]) / 1024.0
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap() -> dict | None:
    """glibc's heap (mallinfo2): in arenas, in use, freed but kept, and in mmap'd chunks, MB; None without glibc's
    mallinfo2. It walks every free chunk (34 ms with 150,000 of them), so it is read once per way, at its end."""
    info = getattr(libc, "mallinfo2", None)
    if info is None:
        return None
    info.restype = _MallInfo2
    m = info()
    mb = 1024 * 1024
    return {"arena_mb": m.arena / mb, "in_use_mb": m.uordblks / mb, "free_mb": m.fordblks / mb, "mmap_mb": m.hblkhd / mb}


def sample(with_uss: bool = False, trim: bool = False) -> dict:
    """One memory sample. With trim, the figures after malloc_trim(0) are added as *_trimmed_mb."""
    point = read_status()
    if with_uss:
        point["uss_mb"] = unique_set_size_mb()
    point.update(python_heap())
    if trim:
        started = time.perf_counter()
        malloc_trim()
        point["trim_ms"] = (time.perf_counter() - started) * 1000
        trimmed = read_status()
        point["rss_trimmed_mb"] = trimmed["rss_mb"]
        point["rss_anon_trimmed_mb"] = trimmed["rss_anon_mb"]
    return point


def allocator() -> str:
    """Which malloc serves this process: jemalloc, tcmalloc or mimalloc when one is loaded and defines malloc, else
    glibc (allocators.loaded has the evidence: /proc/self/maps and the library malloc resolves to)."""
    return allocators.loaded()["name"]


CLEAR_REFS = "/proc/self/clear_refs"
SAMPLE_EVERY_S = 0.01  # the sampling fallback's period: spikes shorter than this can be missed
PEAK_METHODS = ("hwm", "sampling", "off")


def read_hwm_mb() -> float | None:
    """VmHWM: the most RSS this process has had since it started or since the mark was last reset."""
    return read_status(fields={"VmHWM:": "hwm_mb"}).get("hwm_mb")


class PeakMeter:
    """Peak RSS over one stretch of this process's life (a load, a request), which samples between requests miss.

    hwm: writing 5 to /proc/self/clear_refs resets the kernel's high-water mark to the current RSS, and VmHWM read
    afterwards is the largest RSS since: exact, and two small /proc accesses per stretch. Where the write is refused,
    a thread reading VmRSS every 10 ms takes over (as pyperf tracks peak memory), with the reason recorded; it misses
    spikes shorter than its period. sampling: that thread by choice. off: no peak is read."""

    def __init__(self, method: str = "hwm", clear_refs: str = CLEAR_REFS):
        if method not in PEAK_METHODS:
            raise ValueError(f"unknown peak method {method!r}: choose {', '.join(PEAK_METHODS)}")
        self.requested, self.method, self.why = method, method, None
        self._fd = None
        self._highest = 0.0
        self._stop = threading.Event()
        if method == "hwm":
            try:
                self._fd = os.open(clear_refs, os.O_WRONLY)
                os.write(self._fd, b"5")
                if read_hwm_mb() is None:
                    raise OSError(0, "this kernel shows no VmHWM in /proc/self/status")
            except OSError as e:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self.method = "sampling"
                self.why = (f"writing 5 to {clear_refs} was refused ({e.strerror or e.__class__.__name__}), so a thread "
                            f"reads VmRSS every {SAMPLE_EVERY_S * 1000:g} ms instead and misses shorter spikes")
        if self.method == "sampling":
            self.reset()
            threading.Thread(target=self._watch, name="peak-rss", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            rss = read_status()["rss_mb"]
            if rss > self._highest:
                self._highest = rss

    def reset(self) -> None:
        if self.method == "hwm":
            os.write(self._fd, b"5")
        elif self.method == "sampling":
            self._highest = read_status()["rss_mb"]

    def read(self) -> float | None:
        """The peak RSS (MB) since the last reset."""
        if self.method == "hwm":
            return read_hwm_mb()
        if self.method == "sampling":
            return max(self._highest, read_status()["rss_mb"])
        return None

    def describe(self) -> dict:
        return {"method": self.method, "requested": self.requested, "why": self.why,
                "sample_every_ms": SAMPLE_EVERY_S * 1000 if self.method == "sampling" else None}

    def close(self) -> None:
        self._stop.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
