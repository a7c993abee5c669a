"""What one request measures in a worker, and the journal every measurement goes to as soon as it is taken."""

import json
import threading
import time
from pathlib import Path

from . import memory
from .config import RunConfig
from .engines import EngineError


class Journal:
    """Appends events as JSON lines, each flushed when written; requests in threads write through one lock."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")
        self.iteration = 0  # the iteration under way, for an error event
        self.lock = threading.Lock()

    def write(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


def load_instance(engine, peak: memory.PeakMeter, record: dict, sample) -> object:
    """Create one engine instance and put what it cost into record: load time, peak RSS while loading, and the
    RssAnon it added (weights and buffers allocated at load; its KV cache fills later)."""
    before = memory.read_status()
    peak.reset()
    started = time.perf_counter()
    handle = engine.create()
    record["load_s"] = time.perf_counter() - started
    record["peak_load_rss_mb"] = peak.read()
    record["memory"]["after_load"] = sample("after_load")
    record["instance_mb"] = record["memory"]["after_load"]["rss_anon_mb"] - before["rss_anon_mb"]
    return handle


class Iteration:
    """Measures one request: timings, memory at each step and the raw transcript.

    number is the iteration (the order requests finish in, from 1); request is the request's place in the plan (from
    1), the same as number when one request runs at a time; instance names the engine instance that served it."""

    def __init__(self, config: RunConfig, engine, way: str, number: int | None, source: dict, peak: memory.PeakMeter,
                 trim_after_release: bool, request: int | None = None, instance: int | None = None):
        self.config, self.engine, self.way, self.number = config, engine, way, number
        self.source = source  # the file this iteration sends
        self.peak = peak
        self.trim_after_release = trim_after_release
        self.record = {"way": way, "iteration": number, "request": request or number, "instance": instance,
                       "audio": self.source["audio"], "audio_seconds": self.source["seconds"], "load_s": None,
                       "release_rc": None, "memory": {"after_load": None}}

    def sample(self, point: str) -> dict:
        every = self.config.uss_every
        number = self.record["request"]
        with_uss = bool(every) and (number == 1 or number % every == 0) and point == "after_release"
        self.record["memory"][point] = memory.sample(with_uss=with_uss, trim=self.config.malloc_trim)
        return self.record["memory"][point]

    def load(self):
        return load_instance(self.engine, self.peak, self.record, self.sample)

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

    def release(self, handle, how: str) -> None:
        """End the iteration. The caller passes its last reference (held.pop()) for destroy and drop, so the worker's
        own reference is gone before memory is sampled."""
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
        counters = self.engine.counters()
        clash = sorted(set(counters) & set(self.record))
        if clash:  # an engine's figure must never replace one the benchmark measured
            raise EngineError(f"engine {getattr(self.engine, 'name', '')}: counters() returned {', '.join(clash)}, "
                              f"which the benchmark records itself: give them other names")
        self.record.update(counters)
        self.record["time"] = time.time()
        return self.record
