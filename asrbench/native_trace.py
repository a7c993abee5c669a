"""Where the memory goes: the native allocation sites of a way's growth, recorded with memray in the worker.

With --trace-native the worker starts memray's tracker (native stack traces, every allocation recorded) before
iteration N+1, N being --trace-native-after (default: --warmup when given, else 3), and stops it after
its last iteration. The parent then reads the capture and reports, per allocation site, what was allocated while
tracing and is still live at the end:

- live: bytes and blocks still allocated when tracing stopped, made in any traced iteration;
- per iteration: the live bytes made in every traced iteration but the last, divided by those iterations. A block
  made in the last iteration may be one the next request would free (a buffer kept from one request to the next), so
  only blocks that outlived at least one whole later iteration count as growth. Each block is placed in its
  iteration by memray's memory snapshots (every 10 ms) against the times the traced iterations began; the worker
  pauses 30 ms before each traced iteration so that a snapshot falls between two iterations;
- resident: the part of those bytes in pages that were in memory when tracing stopped (mincore over the worker's
  anonymous memory, for blocks of 64 KiB or more; smaller ones share pages the allocator writes and count whole).
  ggml reserves buffers far larger than it writes, so sites are ordered by resident bytes per iteration.

A site is the deepest frame of the allocation's stack that is not an allocator (malloc, operator new, ...), the C++
standard library, the C library, the Python interpreter, ctypes or libffi: the engine's own function and line, or,
when the stack below the interpreter holds only those, the Python line that called into native code. When the site
is in ggml (the tensor library, whose buffer functions serve every caller) the first caller outside ggml that is not
itself an allocation helper (LayerBufAllocator::alloc) is named too ('via'); for a Python site, the Python function
that called it. Blocks with the same site and via are one row.

memray is imported only here and only when tracing was asked for, so without --trace-native nothing of it is loaded
into the worker and nothing measured changes.
"""

import atexit
import bisect
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from .checksum import sha256_of
from .config import RunConfig, trace_start_after as start_after
from .paths import PROJECT_DIR

TOP_SITES = 25             # sites kept per way in the results
PRINTED_SITES = 8          # sites printed per way in the table
MB = 1024.0 * 1024.0


def trace_file(journal: Path) -> Path:
    return Path(journal).with_suffix(".memray")


def flamegraph_file(journal: Path) -> Path:
    return Path(journal).with_name(Path(journal).stem + "-leaks.html")


class WorkerTrace:
    """In the worker: memray's tracker around the iterations after the start point, each change noted in the journal.

    Before every traced iteration the worker pauses for QUIET_S, so that memray takes a memory snapshot between the
    last block of one iteration and the first of the next: blocks are placed in iterations by those snapshots, against
    the time noted in the middle of the pause."""

    QUIET_S = 0.03  # three of memray's 10 ms snapshot intervals; outside every measured step

    def __init__(self, config, journal):
        import memray

        self.memray, self.journal, self.after = memray, journal, start_after(config)
        self.path = trace_file(Path(journal.file.name))
        self.tool = f"memray {tool_version()}"  # looked up now: its imports would otherwise be traced
        self.tracker = None
        atexit.register(self.stop)  # an engine error ends the worker early: the capture is still closed whole

    def before_iteration(self, number: int) -> None:
        if number == self.after + 1 and self.tracker is None:
            self.tracker = self.memray.Tracker(self.path, native_traces=True,
                                               file_format=self.memray.FileFormat.ALL_ALLOCATIONS)
            self.tracker.__enter__()
            self.journal.write("native_trace", state="started", after=self.after, file=self.path.name, tool=self.tool)
        if self.tracker is not None:
            # the mark sits in the middle of the pause: a snapshot's time is whole milliseconds, and a block made right
            # after a mark taken at the end of the pause could fall in a snapshot stamped before it (seen in CI: the
            # last iteration's block counted in the one before)
            time.sleep(self.QUIET_S / 2)
            self.journal.write("native_trace", state="iteration", iteration=number, time=time.time())
            time.sleep(self.QUIET_S / 2)

    def stop(self) -> None:
        if self.tracker is None:
            return
        tracker, self.tracker = self.tracker, None
        tracker.__exit__(None, None, None)
        save_residency(resident_file(self.path))
        self.journal.write("native_trace", state="stopped", time=time.time(), iteration=self.journal.iteration)


def resident_file(trace: Path) -> Path:
    return Path(trace).with_suffix(".resident.npz")


def save_residency(path: Path) -> None:
    """Which pages of this process's anonymous memory are resident (mincore), for the blocks still live: a block
    that was allocated but never written holds address space, not memory."""
    import ctypes

    import numpy as np

    from .memory import libc

    mincore = libc.mincore
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    page = os.sysconf("SC_PAGE_SIZE")
    ranges, pages = [], []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if fields[4] != "0" or name in ("[stack]", "[vvar]", "[vdso]", "[vsyscall]"):
                continue  # file-backed, or the kernel's
            start, end = (int(x, 16) for x in fields[0].split("-"))
            vector = np.zeros((end - start) // page, dtype=np.uint8)
            if mincore(start, end - start, vector.ctypes.data) == 0:
                ranges.append((start, end))
                pages.append(vector & 1)
    np.savez_compressed(path, page=page, ranges=np.array(ranges, dtype=np.uint64).reshape(-1, 2),
                        resident=np.packbits(np.concatenate(pages) if pages else np.zeros(0, np.uint8)))


def tool_version() -> str:
    from importlib.metadata import version

    return version("memray")


# --- naming sites ---------------------------------------------------------------------------------------------------

_ALLOCATOR = re.compile(r"^(operator new|operator delete|malloc|calloc|realloc|free|posix_memalign|aligned_alloc|"
                        r"memalign|valloc|pvalloc|mmap|mmap64|munmap|strn?dup|__GI_|__libc_|_int_malloc|_IO_|"
                        r"ggml_aligned_malloc)\b")
_RUNTIME = re.compile(r"^(std::|__gnu_cxx::|__cxxabiv1::)")
_INTERPRETER = re.compile(r"^(_?Py|_ctypes|_call_function_pointer|ffi_|cfunction_|method_vectorcall|vectorcall|"
                          r"slot_tp_|type_call|object_vacall|builtin_|call_function|_start$|__libc_start)")
_INTERPRETER_FILE = re.compile(r"(^|/)(Python|Objects|Modules|Include|Parser)/.*\.[ch]$")
_LIBC_FILE = re.compile(r"^\./(libio|stdio-common|string|malloc|misc|posix|nptl|elf|csu|stdlib|sysdeps)/")  # glibc's own


def plain_name(function: str) -> str:
    """A demangled C++ name without its argument list, return type and ABI tags: 'chatllm::BackendContext::init'."""
    name = re.sub(r"\[abi:[^\]]*\]", "", function).strip()
    name = re.sub(r"\s+const$", "", name)
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                if not name[:i].endswith("operator"):  # operator() keeps its parentheses
                    name = name[:i]
                break
    if name.startswith("operator "):
        return name
    depth, cut = 0, 0
    for i, c in enumerate(name):  # a return type ends at the last space outside template brackets
        depth += {"<": 1, ">": -1}.get(c, 0)
        if c == " " and depth == 0 and not name[:i].endswith("operator"):
            cut = i + 1
    return name[cut:]


def short_path(path: str) -> str:
    if "/chatllm.cpp/" in path:
        return path.rsplit("/chatllm.cpp/", 1)[1]
    if path.startswith("../"):  # a build that recorded paths relative to its build folder
        return re.sub(r"^(\.\./)+", "", path)
    try:
        return str(Path(path).relative_to(PROJECT_DIR))
    except ValueError:
        return re.sub(r"^.*/lib/python3\.\d+/(site-packages/)?", "", path)


def label(frame) -> str:
    function, path, line = frame
    name = function if path.endswith(".py") else plain_name(function)
    return f"{name} ({short_path(path)}:{line})" if path and path != "<unknown>" else name


def _skipped(frame) -> bool:
    function, path, _ = frame
    if path.endswith(".py"):
        return False
    name = plain_name(function)
    return (function == "<unknown>" or bool(_ALLOCATOR.match(name)) or bool(_RUNTIME.match(name))
            or path.startswith("/usr/include/") or bool(_LIBC_FILE.match(path)) or bool(_INTERPRETER.match(name))
            or bool(_INTERPRETER_FILE.search(path)))


def _in_ggml(frame) -> bool:
    return frame[0].startswith("ggml_") or "/ggml/" in frame[1] or frame[1].startswith("ggml/")


def _allocating(frame) -> bool:
    """An allocation helper of the engine's own (LayerBufAllocator::alloc): a 'via' names the code that asked it."""
    return "alloc" in re.split(r"::", re.sub(r"<.*>", "", plain_name(frame[0])))[-1].lower()


def site_of(stack: list) -> tuple[str, str | None, list[str]]:
    """(site, via, the site's frames outward) of one allocation stack, innermost frame first."""
    kept = [f for f in stack if not _skipped(f)]
    if not kept:
        return (label(stack[0]) if stack else "(no stack)"), None, []
    site, via = kept[0], None
    if site[1].endswith(".py"):
        via = next((f for f in kept[1:] if f[1].endswith(".py") and f[0] != site[0]), None)
    elif _in_ggml(site):
        outside = [f for f in kept[1:] if not _in_ggml(f)]
        via = next((f for f in outside if not _allocating(f)), outside[0] if outside else None)
    return label(site), (label(via) if via else None), [label(f) for f in kept[:12]]


# --- reading a capture ----------------------------------------------------------------------------------------------

def analyse(config, run_dir: Path, way: str, flamegraph: bool = True) -> dict:
    """The native-trace report of one way, from its journal and its memray capture."""
    from .results import read_events  # only the parent analyses: the worker, which imports this module, never loads it

    journal = Path(run_dir) / f"{way}.jsonl"
    try:
        events = read_events(journal)
    except OSError:
        events = []
    trace_events = [e for e in events if e.get("event") == "native_trace"]
    started = next((e for e in trace_events if e["state"] == "started"), None)
    stopped = next((e for e in trace_events if e["state"] == "stopped"), None)
    records = [e for e in events if e.get("event") == "iteration"]
    after = started["after"] if started else start_after(config)
    report = {"tool": started["tool"] if started else None, "started_after": after}
    if not started:
        return {**report, "status": "not_traced",
                "message": f"not traced: the way finished {len(records)} iteration(s) and tracing was to begin "
                           f"after iteration {after}"}
    path = journal.parent / started["file"]
    marks = [e for e in trace_events if e["state"] == "iteration"]  # when each traced iteration began
    finished = {r["iteration"] for r in records}
    began = time.perf_counter()
    try:
        sites, blocks_total = _read(path, [m["time"] * 1000.0 for m in marks])
    except Exception as e:  # a capture cut short by a crash may not be readable
        return {**report, "status": "unreadable", "trace_file": path.name,
                "message": f"the capture {path.name} cannot be read ({e.__class__.__name__}: {e})"}
    rate_iterations = max(len(marks) - 1, 0)  # the last traced iteration's blocks may be freed by the next
    unwritten = _unwritten(path)
    rows, every_iteration = [], 0.0
    for (site, via), s in sites.items():
        retained = sum(b for i, (b, _) in s["by_bucket"].items() if i < rate_iterations)
        if rate_iterations > 0 and all(i in s["by_bucket"] for i in range(rate_iterations)):
            every_iteration += retained / rate_iterations  # blocks from each traced iteration, all still live
        resident = None if unwritten is None else s["bytes"] - unwritten.get((site, via), 0)
        per_iter = retained / rate_iterations if rate_iterations > 0 else None
        rows.append({"site": site, "via": via, "live_bytes": s["bytes"], "live_blocks": s["blocks"],
                     "resident_bytes": resident, "retained_bytes": retained, "bytes_per_iter": per_iter,
                     "resident_per_iter": (per_iter * resident / s["bytes"] if per_iter is not None and resident
                                           is not None and s["bytes"] else None),
                     "iterations": len(s["by_bucket"]), "stack": s["stack"]})
    rows.sort(key=lambda r: (-(r["resident_per_iter"] if r["resident_per_iter"] is not None else r["bytes_per_iter"] or 0),
                             -(r["bytes_per_iter"] or 0), -r["live_bytes"]))
    retained_total = sum(r["retained_bytes"] for r in rows)
    report.update(
        status="traced" if stopped else "incomplete",
        message=None if stopped else "the worker ended while tracing: what was live when it ended",
        iterations_traced=len(marks), first_traced=marks[0]["iteration"] if marks else None,
        last_traced=marks[-1]["iteration"] if marks else None, rate_iterations=rate_iterations,
        last_finished=marks[-1]["iteration"] in finished if marks else None,
        trace_file=path.name, trace_bytes=path.stat().st_size,
        live_bytes=sum(r["live_bytes"] for r in rows), live_blocks=sum(r["live_blocks"] for r in rows),
        resident_bytes=None if unwritten is None else sum(r["resident_bytes"] for r in rows),
        resident_per_iter=(None if unwritten is None or rate_iterations <= 0 else
                           sum(r["resident_per_iter"] or 0 for r in rows)),
        blocks_recorded=blocks_total,
        bytes_per_iter=retained_total / rate_iterations if rate_iterations > 0 else None,
        every_iteration_bytes_per_iter=every_iteration if rate_iterations > 0 else None,
        sites_total=len(rows), sites=rows[:TOP_SITES], analysis_s=round(time.perf_counter() - began, 2))
    if flamegraph:
        report.update(leak_flamegraph(path, flamegraph_file(journal)))
    return report


def _read(path: Path, starts: list[float]):
    """Live-at-end blocks per site and per traced iteration: a block belongs to the last iteration that began before
    the memory snapshot that first follows it (the worker pauses between iterations so that one falls there)."""
    import memray

    reader = memray.FileReader(str(path))
    times = [s.time for s in reader.get_memory_snapshots()]

    def bucket(snapshot: int) -> int:  # starts are in journal order, so sorted
        # a block made after the last snapshot belongs to the last iteration that began: a capture cut short by a kill
        # records its start as its end, which put such a block in the first iteration (seen 1 run in 16)
        t = times[snapshot] if snapshot < len(times) else math.inf
        return max(bisect.bisect_left(starts, t) - 1, 0)

    sites = defaultdict(lambda: {"bytes": 0, "blocks": 0, "by_bucket": {}, "stack": None})
    for record in reader.get_temporal_allocation_records(merge_threads=True):
        live = [iv for iv in record.intervals if iv.deallocated_before_snapshot is None]
        if not live:
            continue
        site, via, stack = site_of(list(record.hybrid_stack_trace()))
        s = sites[(site, via)]
        s["stack"] = s["stack"] or stack
        for iv in live:
            s["bytes"] += iv.n_bytes
            s["blocks"] += iv.n_allocations
            b = bucket(iv.allocated_before_snapshot)
            got = s["by_bucket"].get(b, (0, 0))
            s["by_bucket"][b] = (got[0] + iv.n_bytes, got[1] + iv.n_allocations)
    total = reader.metadata.total_allocations
    reader.close()
    return sites, total


def reanalyse(document: dict, run_dir: Path) -> None:
    """--report: each traced way's sites again from its capture, when the run folder still holds it.

    memray names native frames when the capture is read, from the library files as they are then: a library rebuilt
    since the run would put its new symbols on the old addresses, so then the sites stay as recorded."""
    if not (document.get("config") or {}).get("trace_native"):
        return
    config = RunConfig.from_dict(document["config"])
    library = ((document.get("metadata") or {}).get("chatllm_library") or {}).get("library") or {}
    if library.get("sha256") and (not Path(library["path"]).is_file() or sha256_of(Path(library["path"])) != library["sha256"]):
        for status in document.get("ways", {}).values():
            if status.get("native_trace", {}).get("status") in ("traced", "incomplete"):
                status["native_trace"]["message"] = (f"as recorded: {library['path']} has changed since the run, so its "
                                                     "frames cannot be named again")
        return
    for way in document.get("iterations", {}):
        status = document.setdefault("ways", {}).setdefault(way, {})
        if (Path(run_dir) / f"{way}.jsonl").is_file():
            recorded = status.get("native_trace") or {}
            status["native_trace"] = {**analyse(config, run_dir, way, flamegraph=False),
                                      **{k: recorded[k] for k in ("flamegraph", "flamegraph_error") if k in recorded}}


BIG_BLOCK = 64 * 1024  # smaller blocks share pages the allocator writes: counted resident


def _unwritten(trace: Path) -> dict | None:
    """Per site: bytes of live blocks of BIG_BLOCK or more that lay in pages not resident when tracing stopped, from
    the worker's page map (None without one). The capture is replayed in order to find where each live block is."""
    page_map = resident_file(trace)
    if not page_map.is_file():
        return None
    import memray
    import numpy as np

    data = np.load(page_map)
    page, ranges = int(data["page"]), data["ranges"].astype(np.int64)
    bits = np.unpackbits(data["resident"])
    first_page = np.concatenate([[0], np.cumsum((ranges[:, 1] - ranges[:, 0]) // page)]) if len(ranges) else np.zeros(1)
    freeing = {memray.AllocatorType.FREE, memray.AllocatorType.MUNMAP, memray.AllocatorType.PYMALLOC_FREE}
    live = {}
    reader = memray.FileReader(str(trace))
    for record in reader.get_allocation_records():
        if record.allocator in freeing or record.size < BIG_BLOCK:
            live.pop(record.address, None)
        else:
            live[record.address] = record
    sites, unwritten = {}, defaultdict(int)
    for address, record in live.items():
        key = (record.tid, record.stack_id, record.native_stack_id, record.native_segment_generation)
        if key not in sites:
            site, via, _ = site_of(list(record.hybrid_stack_trace()))
            sites[key] = (site, via)
        start, end = address, address + record.size
        i = int(np.searchsorted(ranges[:, 0], start, side="right")) - 1 if len(ranges) else -1
        if i < 0 or start >= ranges[i, 1]:
            continue  # not in anonymous memory: counted resident
        pages = bits[first_page[i] + (start - ranges[i, 0]) // page: first_page[i] + (min(end, ranges[i, 1]) - 1 - ranges[i, 0]) // page + 1]
        missing = int(pages.size - pages.sum()) * page
        unwritten[sites[key]] += min(missing, record.size)
    reader.close()
    return unwritten


def leak_flamegraph(trace: Path, html: Path) -> dict:
    """memray's own flame graph of the blocks live at the end (its --leaks view), next to the capture."""
    proc = subprocess.run([sys.executable, "-m", "memray", "flamegraph", "--leaks", "--force", "-o", str(html),
                           str(trace)], capture_output=True, text=True)
    if proc.returncode != 0 or not html.is_file():
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"flamegraph": None, "flamegraph_error": f"memray flamegraph failed: {why}"}
    return {"flamegraph": html.name}


# --- what a person reads --------------------------------------------------------------------------------------------

def size(n) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", MB * 1024), ("MB", MB), ("KB", 1024.0)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def section(results: dict) -> list[str]:
    """The table's lines on native allocation sites, one block per traced way."""
    traces = {w: s["native_trace"] for w, s in results.get("ways", {}).items() if s.get("native_trace")}
    if not traces:
        return []
    lines = ["", "Where the memory goes: native blocks allocated after the warm-up and still live at the end "
                 "(--trace-native, memray; 'per iter' counts blocks that outlived the next iteration)"]
    for way, t in traces.items():
        if t["status"] not in ("traced", "incomplete"):
            lines.append(f"{way}: {t['message']}")
            continue
        span = f"iterations {t['first_traced']}-{t['last_traced']} traced" if t["first_traced"] else "nothing traced"
        if t["first_traced"] and t.get("last_finished") is False:
            span += f" ({t['last_traced']} unfinished)"
        anon = (((results.get("summary") or {}).get(way) or {}).get("memory") or {}).get("rss_anon_mb") or {}
        slope = f", RssAnon slope {anon['slope_mb_per_iter']:+.3f} MB/iter" if anon.get("n", 0) >= 3 else ""
        resident = f" ({size(t['resident_per_iter'])} resident)" if t.get("resident_per_iter") is not None else ""
        lines.append(f"{way}: {span}; {size(t['bytes_per_iter'])}/iter allocated{resident}{slope}; live at the end "
                     f"{size(t['live_bytes'])}" + (f" ({size(t['resident_bytes'])} resident)" if t.get("resident_bytes")
                                                    is not None else "")
                     + f" in {t['sites_total']} sites" + (f"; {t['message']}" if t.get("message") else "")
                     + (f"; flame graph {t['flamegraph']}" if t.get("flamegraph") else ""))
        shown = [s for s in t["sites"][:PRINTED_SITES] if s["live_bytes"]]
        if shown:
            lines.append(f"  {'per iter':>9} {'resident':>9} {'live':>9} {'blocks':>8} {'iters':>5}  site")
        for s in shown:
            where = s["site"] + (f"  via {s['via']}" if s["via"] else "")
            lines.append(f"  {size(s['bytes_per_iter']):>9} {size(s.get('resident_per_iter')):>9} {size(s['live_bytes']):>9} "
                         f"{s['live_blocks']:>8} {s['iterations']:>5}  {where}")
    return lines
