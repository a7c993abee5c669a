"""One way of repeated inference, run in a fresh process: `python -m asrbench.worker CONFIG WAY OUT`.

Each finished iteration is appended to OUT as one JSON line and flushed at once, so whatever
happens to this process later, every measured iteration is already on disk. Transcripts are scored
by the parent, so the text pipeline's own allocations never show in this process's memory.
"""

import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

from . import allocators, inputs, memory
from .config import RunConfig
from .engines import EngineError, open_engine


# How each way ends an iteration: chatllm_destroy, restart(), or only dropping the Python reference
# (all a user of the binding's ChatLLM class can do, since it has no destroy()).
RELEASE = {"recreate": "destroy", "restart": "restart", "recreate-drop": "drop"}


class Journal:
    """Appends events as JSON lines, each flushed when written."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")
        self.iteration = 0  # the iteration under way, for an error event

    def write(self, event: str, **fields) -> None:
        self.file.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        self.file.flush()


class Iteration:
    """Measures one iteration: timings, memory at each step and the raw transcript."""

    def __init__(self, config: RunConfig, engine, way: str, number: int, source: dict, peak: memory.PeakMeter,
                 trim_after_release: bool):
        self.config, self.engine, self.way, self.number = config, engine, way, number
        self.source = source  # the file this iteration sends
        self.peak = peak
        self.trim_after_release = trim_after_release
        self.record = {"way": way, "iteration": number, "audio": self.source["audio"],
                       "audio_seconds": self.source["seconds"], "load_s": None, "release_rc": None,
                       "memory": {"after_load": None}}

    def sample(self, point: str) -> None:
        every = self.config.uss_every
        with_uss = bool(every) and (self.number == 1 or self.number % every == 0) and point == "after_release"
        self.record["memory"][point] = memory.sample(with_uss=with_uss, trim=self.config.malloc_trim)

    def load(self):
        before = memory.read_status()
        self.peak.reset()
        started = time.perf_counter()
        handle = self.engine.create()
        self.record["load_s"] = time.perf_counter() - started
        self.record["peak_load_rss_mb"] = self.peak.read()
        self.sample("after_load")
        # what one instance costs once loaded: weights and buffers allocated at load (its KV cache fills later)
        self.record["instance_mb"] = self.record["memory"]["after_load"]["rss_anon_mb"] - before["rss_anon_mb"]
        return handle

    def transcribe(self, handle) -> None:
        self.peak.reset()
        result = self.engine.transcribe(handle, Path(self.source["audio"]))
        self.record["peak_rss_mb"] = self.peak.read()  # the most RSS while the request ran, between two samples
        if not result.ended:
            raise EngineError(f"generation stopped without its end callback after {result.chars} characters")
        audio_s = self.source["seconds"]
        self.record.update(
            ttft_ms=None if result.ttft_s is None else result.ttft_s * 1000,
            request_s=result.request_s,
            chars=result.chars,
            chunks=result.chunks,
            chars_per_s=result.chars_per_s,
            rtf=result.request_s / audio_s if audio_s else None,
            raw_transcript=result.text,
        )
        self.sample("after_transcribe")

    def release(self, held: list, how: str) -> None:
        """End the iteration; for destroy and drop the worker's own reference is gone before memory is sampled."""
        handle = held[0] if how == "restart" else held.pop()
        started = time.perf_counter()
        if how == "destroy":
            self.record["release_rc"] = self.engine.destroy(handle)
        elif how == "restart":
            self.engine.restart(handle)
        self.record["release_s"] = time.perf_counter() - started
        del handle
        if self.trim_after_release:  # the operator's setting: hand freed heap memory back before the next request
            started = time.perf_counter()
            memory.malloc_trim()
            self.record["trim_s"] = time.perf_counter() - started
        self.sample("after_release")

    def finish(self) -> dict:
        self.record.update(self.record["memory"]["after_release"])  # the series the statistics read
        self.record.update(self.engine.counters())
        self.record["time"] = time.time()
        return self.record


def run(config: RunConfig, way: str, journal: Journal) -> None:
    if config.tracemalloc:
        tracemalloc.start()
    baseline = memory.sample(with_uss=True)
    engine = open_engine(config)
    peak = memory.PeakMeter(config.peak)
    setting = allocators.current()
    trim_after_release = bool(setting and setting.trim_after_release)
    loaded = allocators.loaded()
    journal.write("start", way=way, pid=os.getpid(), python=sys.version.split()[0], baseline=baseline,
                  after_engine_import=memory.sample(with_uss=True), engine=engine.describe(),
                  allocator=loaded["name"], malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX"),
                  allocator_loaded=loaded, allocator_setting=setting.name if setting else None,
                  ld_preload=os.environ.get("LD_PRELOAD"), peak=peak.describe())
    release = RELEASE[way]
    sources = config.input_list()
    plan = inputs.schedule(len(sources), config.iterations, config.input_order, config.input_seed)
    held = []  # the engine object, while this way keeps one
    trace = None
    if config.trace_native:  # imported only when asked for: without it, nothing of memray is in this process
        from .native_trace import WorkerTrace

        trace = WorkerTrace(config, journal)
    for number in range(1, config.iterations + 1):
        journal.iteration = number
        if trace:
            trace.before_iteration(number)
        step = Iteration(config, engine, way, number, sources[plan[number - 1]], peak, trim_after_release)
        if not held:
            held.append(step.load())
        step.transcribe(held[0])
        # what this iteration measured so far survives a crash inside the release step (chatllm_destroy may abort)
        journal.write("unfinished", release=release, record=step.record)
        step.release(held, release)
        journal.write("iteration", **step.finish())
    if trace:
        trace.stop()
    journal.write("done", iterations=config.iterations)


def main(argv: list[str]) -> int:
    config_path, way, out = argv
    config = RunConfig.load(Path(config_path))
    journal = Journal(Path(out))
    try:
        run(config, way, journal)
    except Exception as e:  # recorded for the parent, which reports it; the process exits non-zero
        journal.write("error", iteration=journal.iteration, type=e.__class__.__name__, message=str(e))
        print(f"{way}: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
