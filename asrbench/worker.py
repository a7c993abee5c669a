"""One way of repeated inference, run in a fresh process: `python -m asrbench.worker CONFIG KEY OUT [SHARD]`.

KEY is a way or a run entry (restart@c2: two requests at a time; asrbench.scheduling); SHARD, i/n, makes this worker
process i of n that share the load (restart@p2), each serving every n-th request with one instance. KEY `reference`
transcribes each input once with a single instance: what every request is compared with (asrbench.consistency).

Each finished iteration is appended to OUT as one JSON line and flushed at once, so whatever
happens to this process later, every measured iteration is already on disk. Transcripts are scored
by the parent, so the text pipeline's own allocations never show in this process's memory.
"""

import itertools
import os
import sys
import time
import tracemalloc
from pathlib import Path

from . import allocators, inputs, memory
from .config import RunConfig
from .engines import open_engine
from .iteration import Iteration, Journal
from .scheduling import POOLED, RELEASE, Entry, Served, instances_of, requests_of, shard

__all__ = ["Iteration", "Journal", "main", "run"]


def run(config: RunConfig, way: str, journal: Journal, share: tuple[int, int] | None = None) -> None:
    entry = Entry.parse(way)
    way = entry.way
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
                  ld_preload=os.environ.get("LD_PRELOAD"), peak=peak.describe(), entry=entry.key,
                  concurrency=entry.concurrency, processes=entry.processes, instances=instances_of(config, entry),
                  share=list(share) if share else None)
    release = RELEASE[way]
    sources = config.input_list()
    instances = instances_of(config, entry)
    if (entry.concurrency > 1 and not entry.processes) or instances > 1:  # a pool, or threads: asrbench.scheduling
        plan = inputs.schedule(len(sources), config.iterations, config.input_order, config.input_seed)
        requests = shard(plan, *(share or (1, 1)))
        served = Served(config, engine, way, journal, sources, requests, peak, trim_after_release,
                        1 if entry.processes else entry.concurrency, instances).run()
        journal.write("done", iterations=served["requests"], served=served, heap=memory.heap())
        return
    held = []  # the engine object, while this way keeps one
    trace = None
    if config.trace_native:  # imported only when asked for: without it, nothing of memray is in this process
        from .native_trace import WorkerTrace

        trace = WorkerTrace(config, journal)
    plan = itertools.islice(inputs.sequence(len(sources), config.input_order, config.input_seed), config.iterations)
    requests = requests_of(plan, *(share or (1, 1)))
    started, served, reason = time.monotonic(), 0, None
    for number, (request, source) in enumerate(requests, start=1):
        if config.duration_s and time.monotonic() - started >= config.duration_s:
            reason = "duration"  # --duration: the way's time is up; the iteration not started is not counted
            break
        journal.iteration = number
        if trace:
            trace.before_iteration(number)
        step = Iteration(config, engine, way, number, sources[source], peak, trim_after_release, request=request,
                         instance=1 if way in POOLED else number)
        issued = time.monotonic()  # a request that creates its instance waits for it; restart's one exists before
        if not held:
            held.append(step.load())
            issued = time.monotonic() if way in POOLED else issued
        step.transcribe(held[0])
        step.record.update(latency_s=time.monotonic() - issued, issued_at=issued)
        # what this iteration measured so far survives a crash inside the release step (chatllm_destroy may abort)
        journal.write("unfinished", release=release, record=step.record)
        step.release(held[0] if release == "restart" else held.pop(), release)
        journal.write("iteration", **step.finish())
        served = number
    if trace:
        trace.stop()
    journal.write("done", iterations=served, heap=memory.heap(), reason=reason,
                  seconds=round(time.monotonic() - started, 3))


def main(argv: list[str]) -> int:
    config_path, way, out, *rest = argv
    config = RunConfig.load(Path(config_path))
    journal = Journal(Path(out))
    share = tuple(int(n) for n in rest[0].split("/")) if rest else None
    try:
        if way == "reference":
            reference(config, journal)
        else:
            run(config, way, journal, share)
    except Exception as e:  # recorded for the parent, which reports it; the process exits non-zero
        journal.write("error", iteration=journal.iteration, type=e.__class__.__name__, message=str(e))
        print(f"{way}: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 3
    return 0


def reference(config: RunConfig, journal: Journal) -> None:
    """Each input of the run transcribed once, by one instance alone in this process (restart between inputs): the
    transcript every request of every way is compared with."""
    engine = open_engine(config)
    journal.write("start", way="reference", pid=os.getpid(), engine=engine.describe())
    handle = engine.create()
    for number, source in enumerate(config.input_list(), start=1):
        journal.iteration = number
        result = engine.transcribe(handle, Path(source["audio"]))
        journal.write("reference", audio=source["audio"], raw_transcript=result.text, ended=result.ended)
        engine.restart(handle)
    journal.write("done", iterations=len(config.input_list()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
