"""How requests are served: one instance at a time (the default), a pool of K instances that restart keeps, C requests
in flight in one worker's threads, or the same load spread over C worker processes of one instance each (a
pre-forking server).

Parent side: the run entries (way x allocator setting x concurrency x threads or processes) and their names.
Worker side: `serve`, which runs a pool and threads in one process. chatllm.cpp's chat() runs with the GIL
released, so C threads really compute at once.
"""

import collections
import threading
import time
from dataclasses import dataclass

from . import memory
from .iteration import Iteration, Journal, load_instance

# How each way ends a request: chatllm_destroy, restart(), or only dropping the Python reference
# (all a user of the binding's ChatLLM class can do, since it has no destroy()).
RELEASE = {"recreate": "destroy", "restart": "restart", "recreate-drop": "drop"}
POOLED = ("restart",)  # the ways that keep their instances from one request to the next, and so can keep a pool


@dataclass(frozen=True)
class Entry:
    """One worker (or, for processes, one group of workers) of a run: a way served under one setting."""

    way: str
    allocator: str | None = None
    concurrency: int = 1
    processes: bool = False  # C worker processes of one instance each, instead of C threads in one

    @property
    def key(self) -> str:
        """Its name in results and file names: restart, restart@c2 (2 threads), restart@p2 (2 processes),
        recreate@c2@jemalloc."""
        parts = [self.way]
        if self.concurrency > 1:
            parts.append(f"{'p' if self.processes else 'c'}{self.concurrency}")
        if self.allocator:
            parts.append(self.allocator)
        return "@".join(parts)

    @classmethod
    def parse(cls, key: str) -> "Entry":
        way, *rest = key.split("@")
        concurrency, processes, allocator = 1, False, None
        for part in rest:
            if len(part) > 1 and part[0] in "cp" and part[1:].isdigit():
                concurrency, processes = int(part[1:]), part[0] == "p"
            else:
                allocator = part
        return cls(way, allocator, concurrency, processes)


def entries(config) -> list[Entry]:
    """Every way under every allocator setting and value of --concurrency, setting by setting; a concurrency above 1
    is served twice: by threads in one worker, then by as many worker processes of one instance each."""
    found = []
    for setting in config.allocators or [None]:
        for c in config.concurrency or [1]:
            for way in config.ways:
                found.append(Entry(way, setting, c))
                if c > 1:
                    found.append(Entry(way, setting, c, processes=True))
    return found


def instances_of(config, entry: Entry) -> int:
    """How many engine instances a worker keeps: restart's pool (--instances, else one per thread; fewer than the
    threads make requests wait for one); the other ways create one per request, so up to C exist at once."""
    if entry.way in POOLED and not entry.processes:
        return config.instances or entry.concurrency
    return 1


def requests_of(plan, index: int = 1, count: int = 1):
    """(request number from 1, input index) of the requests worker process `index` (from 1) of `count` serves: every
    count-th request, so each process gets the same mix of inputs. Lazy: `plan` may be endless (--duration)."""
    return ((n + 1, source) for n, source in enumerate(plan) if n % count == index - 1)


def shard(plan: list[int], index: int, count: int) -> list[tuple[int, int]]:
    """requests_of() as a list."""
    return list(requests_of(plan, index, count))


class Served:
    """A pool of K instances and C threads taking the plan's requests in turn, in one worker process.

    restart: the pool is created before the first request, as a service creates its pool at start; a request takes
    the instance free longest (with one thread: each instance in turn), waits while none is free, and gives it back
    after restart(). Requests get instances in the order they were issued, so a thread that gives one back cannot take
    it again ahead of a request already waiting. The other ways: each request creates, uses and destroys its own
    instance.
    """

    def __init__(self, config, engine, way: str, journal: Journal, sources: list[dict], requests: list[tuple[int, int]],
                 peak: memory.PeakMeter, trim_after_release: bool, concurrency: int, instances: int):
        self.config, self.engine, self.way, self.journal = config, engine, way, journal
        self.sources, self.requests = sources, list(requests)
        self.peak, self.trim_after_release = peak, trim_after_release
        self.concurrency, self.instances = concurrency, instances
        self.release = RELEASE[way]
        self.idle: collections.deque = collections.deque()  # (instance, handle), free longest first
        self.free = threading.Condition()  # an instance was given back, or a request's turn came
        self.turn = 0  # the ticket of the request whose turn it is to take an instance
        self.loads: dict[int, dict] = {}  # instance -> what creating it cost, put into the first request it serves
        self.lock = threading.Lock()
        self.next_request, self.finished, self.in_flight = 0, 0, 0
        self.created = 0
        self.failure: BaseException | None = None
        # one request at a time: each request's own peak; several: the whole stretch's peak (one high-water mark)
        self.step_peak = peak if concurrency == 1 else memory.PeakMeter("off")

    def create_pool(self) -> None:
        for number in range(1, self.instances + 1):
            record = {"instance": number, "memory": {}}
            handle = load_instance(self.engine, self.peak, record, lambda point: memory.sample(with_uss=True))
            self.loads[number] = record
            self.journal.write("instance", **record)
            self.idle.append((number, handle))

    def run(self) -> dict:
        if self.way in POOLED:
            self.create_pool()
        self.peak.reset()
        started = time.monotonic()
        threads = [threading.Thread(target=self._serve, name=f"request-{i + 1}", args=(i + 1,))
                   for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.failure:
            raise self.failure
        # one request at a time, each request's own peak was read (and the meter reset for it): their maximum is the
        # stretch's, which the parent takes from the records
        served = {"requests": self.finished, "concurrency": self.concurrency, "instances": self.instances,
                  "wall_s": time.monotonic() - started, "peak_method": self.peak.method,
                  "peak_rss_mb": self.peak.read() if self.concurrency > 1 else None}
        self.idle.clear()  # the pool lives until the worker exits, as a service's would
        return served

    def _acquire(self, ticket: int) -> tuple[int, object]:
        """The instance free longest, once every request issued before this one has had its own."""
        with self.free:
            while not self.failure and (self.turn != ticket or not self.idle):
                self.free.wait()
            if self.failure:
                raise RuntimeError("another request failed") from None
            self.turn += 1
            taken = self.idle.popleft()
            self.free.notify_all()
            return taken

    def _give_back(self, number: int, handle) -> None:
        with self.free:
            self.idle.append((number, handle))
            self.free.notify_all()

    def _take(self) -> tuple[int, int, int, int, float] | None:
        """The next request of the plan: its number, input, requests in flight with it, its ticket (its place in the
        order requests get instances) and when it was issued."""
        with self.lock:
            if self.failure or self.next_request >= len(self.requests):
                return None
            request, source = self.requests[self.next_request]
            ticket = self.next_request
            self.next_request += 1
            self.in_flight += 1
            return request, source, self.in_flight, ticket, time.monotonic()

    def _serve(self, thread: int) -> None:
        try:
            while (taken := self._take()) is not None:
                self._request(thread, *taken)
        except BaseException as e:  # the first failure stops every thread; the worker reports it
            with self.lock:
                self.failure = self.failure or e
            with self.free:
                self.free.notify_all()  # no request waits for an instance any more

    def _request(self, thread: int, request: int, source: int, in_flight: int, ticket: int, issued: float) -> None:
        step = Iteration(self.config, self.engine, self.way, None, self.sources[source], self.step_peak,
                         self.trim_after_release, request=request)
        if self.way in POOLED:
            number, handle = self._acquire(ticket)  # waits while every instance serves another request
            step.record.update(self.loads.pop(number, {"instance": number}))
        else:
            with self.lock:
                self.created += 1
                number = self.created
            step.record["instance"] = number
            handle = step.load()
        step.record.update(instance=number, thread=thread, in_flight_at_start=in_flight,
                           wait_s=(time.monotonic() - issued) if self.way in POOLED else 0.0)
        step.transcribe(handle)
        step.record.update(latency_s=time.monotonic() - issued, issued_at=issued)  # what the caller waited for
        self.journal.write("unfinished", release=self.release, record=step.record)
        held = [handle]
        del handle
        if self.way in POOLED:
            step.release(held[0], self.release)
            self._give_back(number, held[0])
        else:
            step.release(held.pop(), self.release)  # its last reference: a dropped instance is freed before the sample
        with self.lock:
            self.finished += 1
            self.in_flight -= 1
            step.record["iteration"] = self.finished
            self.journal.write("iteration", **step.finish())


SUMMED = ("rss_mb", "rss_anon_mb", "rss_file_mb", "uss_mb", "rss_trimmed_mb", "rss_anon_trimmed_mb")


def merge_processes(parts: list[list[dict]]) -> list[dict]:
    """One series from the journals of C worker processes that served one load: requests in the order they finished,
    renumbered from 1, each record's memory figures the sum over the processes of each one's latest sample (what the C
    processes hold together; a process that has not finished a request yet counts with its first sample), its own
    figures kept as process_*."""
    finished = sorted(((r.get("time") or 0.0, process, r) for process, records in enumerate(parts, start=1)
                       for r in records), key=lambda item: (item[0], item[1]))
    latest = {process: {k: records[0].get(k) for k in SUMMED} for process, records in enumerate(parts, start=1) if records}
    merged = []
    for number, (_, process, record) in enumerate(finished, start=1):
        record = dict(record, process=process, process_iteration=record.get("iteration"), iteration=number,
                      instance=f"{process}/{record.get('instance')}")  # instance 1 of process 2: 2/1
        for k in SUMMED:
            if record.get(k) is None:
                continue
            latest[process][k] = record[k]
            record[f"process_{k}"] = record[k]
            record[k] = sum(figures[k] for figures in latest.values() if figures.get(k) is not None)
        merged.append(record)
    return merged
