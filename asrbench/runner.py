"""Runs each way in its own fresh worker process and watches it: progress, timeout, memory cap, crash, interrupt."""

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import allocators, consistency, inputs, memory, metadata, native_trace, report, results, scheduling, stats
from .config import RunConfig
from .engines import registry
from .paths import IMPORT_ROOT
from .scheduling import Entry

POLL_S = 0.2
GRACE_S = 5.0


@dataclass
class Interrupt:
    """Set by SIGINT/SIGTERM in the parent; the run stops its worker and writes what it has."""

    signum: int | None = None

    def __call__(self, signum, frame) -> None:
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class JournalTail:
    """Reads the whole lines a worker has appended since the last look."""

    def __init__(self, path: Path):
        self.path, self.offset, self.events, self.done = path, 0, [], False

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        new = [json.loads(line) for line in whole.splitlines() if line.strip()]
        for event in new:
            # each iteration's 'unfinished' record matters only while it is the last: a long run keeps one, not all
            if event["event"] in ("unfinished", "iteration") and self.events and self.events[-1]["event"] == "unfinished":
                self.events[-1] = event
            else:
                self.events.append(event)
            self.done = self.done or event["event"] == "done"
        return new


def clock(seconds: float) -> str:
    """45 s, 3 min 20 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the worker's whole process group (it runs in a session of its own); SIGKILL after a grace period."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=GRACE_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Progress:
    """How a way is getting on: on an interactive terminal one line rewritten in place (at most 10 times a second),
    elsewhere (a CI log, a file) one line a minute once a way has run that long; never with --quiet. Each gives the
    rate over the last minute and the time left: to the last iteration, or to the end of --duration."""

    REFRESH_S, LOG_EVERY_S, WINDOW_S = 0.1, 60.0, 60.0

    def __init__(self, quiet: bool, duration_s: float | None = None):
        self.live = not quiet and sys.stderr.isatty()
        self.quiet, self.duration_s = quiet, duration_s
        self.way, self.started, self.shown, self.recent = None, 0.0, 0.0, collections.deque()

    def update(self, way: str, total: int, record: dict) -> None:
        now = time.monotonic()
        if way != self.way:
            self.way, self.started, self.shown, self.recent = way, now, now, collections.deque()
        self.recent.append((now, record["iteration"]))
        while self.recent and now - self.recent[0][0] > self.WINDOW_S:
            self.recent.popleft()  # a deque: at thousands of iterations a second, a list's pop(0) is the hot path
        if self.quiet or now - self.shown < (self.REFRESH_S if self.live else self.LOG_EVERY_S):
            return
        self.shown = now
        line = (f"{way}: iteration {record['iteration']:,}/{total:,}{self.pace(now, record['iteration'], total)}"
                f"  RSS {record['rss_mb']:.0f} MB  RssAnon {record['rss_anon_mb']:.0f} MB"
                f"  request {record.get('request_s') or 0:.2f} s")
        if self.live:
            sys.stderr.write(f"\r{line}   ")
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)

    def pace(self, now: float, at: int, total: int) -> str:
        """'  412/s, 3 min 20 s left' from the last minute's iterations."""
        if len(self.recent) < 2 or self.recent[-1][0] <= self.recent[0][0]:
            return ""
        rate = (self.recent[-1][1] - self.recent[0][1]) / (self.recent[-1][0] - self.recent[0][0])
        left = (total - at) / rate if rate > 0 else None
        if self.duration_s:
            left = min(left, self.duration_s - (now - self.started)) if left is not None else None
        return f"  {rate:,.1f}/s" + (f", {clock(max(left, 0))} left" if left is not None else "")

    def done(self, way: str, outcome: dict) -> None:
        if self.live:
            sys.stderr.write("\n")
        if not self.quiet:
            print(f"{way}: {outcome['message']}", file=sys.stderr, flush=True)


class UntilDecided:
    """--until-decided: judges a way's iterations at each planned look, with the error split across the looks.

    The looks are the minimum, then 1.5 times as many iterations each time, then the maximum (--iterations); at each
    the trend test needs p < 0.01 / looks and the interval is the 1 - 0.05 / looks one (Bonferroni), so that looking
    five times raises neither false LEAKs nor false 'no leak's above what one look at the end would give.
    """

    def __init__(self, config: RunConfig):
        self.config = config
        self.plan = results.checkpoints(config.to_dict())
        self.records, self.looks, self.decided = [], [], None

    def see(self, record: dict) -> None:
        """Take one finished iteration; at a planned look, judge everything so far."""
        self.records.append(record)
        if self.decided or len(self.records) not in self.plan:
            return
        a = results.verdict_analysis(self.records, self.config.warmup, self.config.leak_threshold_mb, len(self.plan))
        self.looks.append({"iteration": len(self.records), "verdict": a["verdict"], "reason": a.get("reason"),
                           "slope_mb_per_iter": a.get("slope_mb_per_iter"), "slope_low": a.get("slope_low"),
                           "slope_high": a.get("slope_high"), "trend_p": a.get("trend_p")})
        if a["verdict"] in stats.DECIDED:
            self.decided = self.looks[-1]

    def describe(self) -> dict:
        return {"checkpoints": self.plan, "trend_alpha_per_look": stats.TREND_ALPHA / len(self.plan),
                "confidence_per_look": 1 - stats.ALPHA / len(self.plan), "looks": self.looks,
                "decided_at": self.decided["iteration"] if self.decided else None,
                "decision": self.decided["verdict"] if self.decided else None}

    def outcome(self, returncode: int, events: list[dict], last_rss, log: Path) -> dict:
        """How a way stopped because it was decided: only the iterations up to the deciding look count."""
        at, kept, count = self.decided["iteration"], [], 0
        for event in events:
            if count == at:
                break
            kept.append(event)
            count += event["event"] == "iteration"
        result = outcome(returncode, kept, None, last_rss, self.config.iterations, log)
        for key in ("signal", "exit_crash", "died_in", "unfinished_iteration", "log_tail"):
            result.pop(key, None)  # the worker was stopped on purpose, wherever it was
        result.update(status="decided", iterations_completed=at, until_decided=self.describe(),
                      message=f"decided at iteration {at} of at most {self.config.iterations} ({self.decided['verdict']})")
        return result


def start_worker(config: RunConfig, key: str, run_dir: Path, journal: Path, log_name: str, allocator: str | None,
                 share: str | None = None) -> subprocess.Popen:
    """A fresh worker process in a session of its own, under the allocator setting when one is given."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(IMPORT_ROOT or ""), os.environ.get("PYTHONPATH")])))
    if allocator:  # set before the worker starts: its malloc variables and preload apply from its first allocation
        env = allocators.environment(allocator, env)
    with open(run_dir / log_name, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "asrbench.worker", str(run_dir / "config.json"), key, str(journal), *filter(None, [share])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
        )


def run_way(config: RunConfig, entry: Entry, run_dir: Path, progress: Progress, interrupt: Interrupt) -> dict:
    """Start the worker(s) for one run entry, watch them to the end, and say how it ended. An entry served by C
    processes starts C workers at once, each with its share of the requests; the memory cap applies to their sum."""
    key = entry.key  # recreate, recreate@jemalloc, restart@c2: its journal, log and results entry
    group = entry.concurrency if entry.processes else 1
    names = [key] if group == 1 else [f"{key}.{i}" for i in range(1, group + 1)]
    procs = [start_worker(config, key, run_dir, run_dir / f"{name}.jsonl", f"{name}.log", entry.allocator,
                          f"{i}/{group}" if group > 1 else None) for i, name in enumerate(names, start=1)]
    tails = [JournalTail(run_dir / f"{name}.jsonl") for name in names]
    judge = UntilDecided(config) if config.until_decided and group == 1 else None
    last_activity, last_rss, stopped = time.monotonic(), None, None
    while True:
        returncodes = [proc.poll() for proc in procs]
        for tail in tails:
            for event in tail.read():
                last_activity = time.monotonic()
                if event["event"] == "iteration":
                    progress.update(key, config.iterations, event)
                    if judge:
                        judge.see(event)
        if judge and judge.decided:
            stop(procs[0], signal.SIGTERM)  # the answer is known: the iterations after the deciding look are not used
            break
        if all(code is not None for code in returncodes):
            break
        if group > 1 and any(code not in (None, 0) and not tail.done for code, tail in zip(returncodes, tails)):
            break  # one process of the group died before its last request: the others are stopped below, their
                   # iterations kept (one that died at exit, after its work, is left to the others)
        if interrupt.signum:
            stopped = ("interrupted", f"interrupted by {signal_name(interrupt.signum)}")
            break
        if time.monotonic() - last_activity > config.timeout_s:
            stopped = ("timed_out", f"no progress for {config.timeout_s:g} s (--timeout)")
            break
        try:
            readings = [memory.read_status(proc.pid)["rss_mb"] for proc in procs if proc.poll() is None]
            if readings:  # a worker that has just died keeps its last reading: the out-of-memory hint needs it
                last_rss = sum(readings)
        except (OSError, KeyError):
            pass
        if config.max_rss_mb and last_rss and last_rss > config.max_rss_mb:
            cap = (f"--max-rss-mb {config.max_rss_mb:g}" if config.max_rss_mb_why in ("", "--max-rss-mb") else
                   f"the cap of {config.max_rss_mb:g} MB ({config.max_rss_mb_why}; --max-rss-mb sets it)")
            stopped = ("stopped", f"RSS {last_rss:.0f} MB{' (all processes)' if group > 1 else ''} above {cap}")
            break
        time.sleep(POLL_S)
    cut_short = [proc.poll() is None for proc in procs]  # still running: stopped here, because of another process
    for proc in procs:
        if proc.poll() is None:
            stop(proc, signal.SIGTERM if stopped and stopped[0] == "interrupted" else signal.SIGKILL)
    for tail in tails:
        tail.read()
    if judge and judge.decided:
        return judge.outcome(procs[0].returncode, tails[0].events, last_rss, run_dir / f"{key}.log")
    results_ = [outcome(proc.returncode, tail.events, stopped, last_rss,
                        len(shard_of(config, i, group)) if group > 1 else config.iterations, run_dir / f"{name}.log")
                for i, (proc, tail, name) in enumerate(zip(procs, tails, names), start=1)]
    if group > 1 and not stopped:
        ended = next((name for name, short in zip(names, cut_short) if not short), names[0])
        for part, short in zip(results_, cut_short):
            if short:  # not its own failure: it was stopped because another process of the group died
                part.update(status="stopped", message=f"stopped when {ended} ended")
                part.pop("signal", None)
    result = results_[0] if group == 1 else group_outcome(results_, names)
    if judge:
        result["until_decided"] = judge.describe()
        if result["status"] == "completed":
            result["message"] += "; still undecided at the last look"
    if entry.allocator or entry.concurrency > 1:
        result.update(way=entry.way, allocator=entry.allocator, concurrency=entry.concurrency,
                      served_by="processes" if entry.processes else "threads")
    return result


def shard_of(config: RunConfig, index: int, count: int) -> list:
    return scheduling.shard(inputs.schedule(len(config.input_list()), config.iterations, config.input_order,
                                            config.input_seed), index, count)


def group_outcome(parts: list[dict], names: list[str]) -> dict:
    """How C worker processes serving one load ended together: completed when every one did, else as the first that
    did not, named."""
    done = sum(p["iterations_completed"] for p in parts)
    failed = (next(((name, p) for name, p in zip(names, parts) if p["status"] not in ("completed", "stopped")), None)
              or next(((name, p) for name, p in zip(names, parts) if p["status"] != "completed"), None))
    result = {"exit_code": next((p["exit_code"] for p in parts if p["exit_code"] not in (0, None)), parts[0]["exit_code"]),
              "iterations_completed": done, "last_rss_mb": parts[0].get("last_rss_mb"), "log": parts[0]["log"],
              "worker": parts[0].get("worker"), "processes": parts}
    if failed:
        name, part = failed
        result.update({k: v for k, v in part.items() if k not in ("iterations_completed", "processes")},
                      message=f"{name}: {part['message']} ({done} iterations completed by all {len(parts)} processes)")
    else:
        result.update(status="completed", message=f"completed {done} iterations in {len(parts)} processes")
        crashes = [f"{name}: {p['exit_crash']}" for name, p in zip(names, parts) if p.get("exit_crash")]
        if crashes:
            result.update(exit_crash=", ".join(crashes), message=result["message"] + f"; then died at exit ({', '.join(crashes)})")
    return result


def run_reference(config: RunConfig, run_dir: Path, quiet: bool) -> dict:
    """Each input transcribed once by a single instance in a worker of its own: what every request must give."""
    journal = run_dir / "reference.jsonl"
    proc = start_worker(config, "reference", run_dir, journal, "reference.log", None)
    try:
        proc.wait(timeout=config.timeout_s * (1 + len(config.input_list())))
    except subprocess.TimeoutExpired:
        stop(proc)
    events = results.read_events(journal)
    transcripts = {e["audio"]: e["raw_transcript"] for e in events if e["event"] == "reference" and e.get("ended")}
    missing = [i["audio"] for i in config.input_list() if i["audio"] not in transcripts]
    status = "completed" if proc.returncode == 0 and not missing else "failed"
    found = {"status": status, "exit_code": proc.returncode, "log": "reference.log", "transcripts": transcripts,
             "how": "one instance alone in a worker process of its own, each input once (restart between inputs)"}
    if status != "completed":
        found["message"] = (f"the single-instance reference did not finish (exit code {proc.returncode}; "
                            f"{len(missing)} of {len(config.input_list())} inputs missing): see reference.log")
        found["log_tail"] = _tail(run_dir / "reference.log")
    if not quiet:
        print(f"reference: {len(transcripts)} of {len(config.input_list())} inputs transcribed by one instance alone"
              + ("" if status == "completed" else f" ({found['message']})"), file=sys.stderr, flush=True)
    return found


def outcome(returncode: int, events: list[dict], stopped, last_rss, total: int, log: Path) -> dict:
    iterations = [e for e in events if e["event"] == "iteration"]
    done = len(iterations)
    at = done + 1
    start = next((e for e in events if e["event"] == "start"), None)
    error = next((e for e in events if e["event"] == "error"), None)
    finished = any(e["event"] == "done" for e in events)
    result = {"exit_code": returncode, "iterations_completed": done, "last_rss_mb": last_rss, "log": log.name,
              "worker": start}
    unfinished = [e for e in events if e["event"] == "unfinished"]
    if unfinished and unfinished[-1]["record"]["iteration"] == at:
        result["unfinished_iteration"] = unfinished[-1]["record"]  # measured up to the step that never returned
        result["died_in"] = unfinished[-1]["release"]
    if last_rss is None and iterations:
        result["last_rss_mb"] = iterations[-1]["rss_mb"]
    if stopped:
        status, why = stopped
        result.update(status=status, message=f"{status.replace('_', ' ')} at iteration {at} ({why})")
    elif error:
        result.update(status="error", message=f"error at iteration {error.get('iteration') or at}: {error['type']}: {error['message']}")
    elif finished and returncode == 0:
        ended = next(e for e in events if e["event"] == "done")
        result.update(status="completed", message=f"completed {done} iterations" + (
            f" in its --duration of {clock(ended['seconds'])}" if ended.get("reason") == "duration" else ""))
    elif finished:
        how = signal_name(-returncode) if returncode < 0 else f"exit code {returncode}"
        result.update(status="completed", exit_crash=how,
                      message=f"completed {done} iterations; the worker then died at exit ({how})")
    elif returncode is not None and returncode < 0:
        name = signal_name(-returncode)
        hint = f"; possibly out of memory, last RSS {result['last_rss_mb']:.0f} MB" if name == "SIGKILL" and result["last_rss_mb"] else ""
        step = f" in {result['died_in']}" if result.get("died_in") else ""
        result.update(status="crashed", signal=name, message=f"crashed at iteration {at}{step} ({name}{hint})")
    else:
        result.update(status="crashed", message=f"crashed at iteration {at} (exit code {returncode}); see {log.name}")
    if result["status"] != "completed":
        result["log_tail"] = _tail(log)
    return result


def _tail(log: Path, lines: int = 15) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def new_run_dir(output: Path, engine: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run_dir = output / "runs" / (f"{stamp}-{engine}" + (f"-{n}" if n else ""))
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError("could not create a run folder")


def save(document: dict, run_dir: Path, output: Path) -> Path:
    """The run's own results file, then a copy at OUTPUT/comparison_results.json for the latest run."""
    path = run_dir / "comparison_results.json"
    names = [p.name for p in results.write_atomically(path, document)]
    for name in names:  # the latest run's files, side by side as in its folder
        tmp = output / f".{name}.tmp"
        shutil.copyfile(run_dir / name, tmp)
        os.replace(tmp, output / name)
    if len(names) == 1 and (output / results.SERIES_FILE).is_file():
        os.unlink(output / results.SERIES_FILE)  # an earlier long run's series, which this results file does not use
    return path


def compare_ways(config: RunConfig, output: Path, quiet: bool = False, plot: bool = True) -> tuple[dict, int]:
    """Run every way in its own worker, write results as each way ends, and return them with the exit code."""
    run_dir = new_run_dir(output, registry.label(config.engine))
    config.save(run_dir / "config.json")
    document = {"schema_version": results.SCHEMA_VERSION, "status": "running", "run_dir": str(run_dir),
                "metadata": metadata.collect_metadata(config), "config": config.to_dict(), "ways": {}, "iterations": {}}
    interrupt = Interrupt()
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(quiet, config.duration_s)
    try:
        if consistency.needs_reference(config):
            document["reference_transcripts"] = run_reference(config, run_dir, quiet)
        for entry in scheduling.entries(config):
            key = entry.key
            if interrupt.signum:
                document["ways"][key] = {"status": "not_run", "message": "not run (interrupted before it started)"}
                continue
            ended = run_way(config, entry, run_dir, progress, interrupt)
            document["ways"][key] = ended
            if entry.processes:
                records = scheduling.merge_processes(
                    [results.read_journal(run_dir / f"{key}.{i}.jsonl")["iterations"] for i in range(1, entry.concurrency + 1)])
            else:
                journal = results.read_journal(run_dir / f"{key}.jsonl")
                records = journal["iterations"]
                if (journal["end"] or {}).get("served"):
                    ended["served"] = journal["end"]["served"]  # the pool's and threads' own figures
                if (journal["end"] or {}).get("heap"):
                    ended["heap"] = journal["end"]["heap"]  # the allocator's heap as the way ended (asrbench.evidence)
            document["iterations"][key] = records[:ended["iterations_completed"]] if ended["status"] == "decided" else records
            if config.trace_native:
                ended["native_trace"] = native_trace.analyse(config, run_dir, key)
            progress.done(key, ended)
            save(results.summarise(document), run_dir, output)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    statuses = [w["status"] for w in document["ways"].values()]
    document["status"] = ("interrupted" if interrupt.signum else
                          "completed" if all(s in ("completed", "decided") for s in statuses) else "failed")
    results.summarise(document)
    if plot and any(document["iterations"].values()):
        document["plot"] = report.plot(document, run_dir / "memory.png").name
    save(document, run_dir, output)
    wrong = any((s.get("single_instance") or {}).get("differing") for s in document["summary"].values())
    code = interrupt.exit_code if interrupt.signum else (0 if document["status"] == "completed" and not wrong else 1)
    return document, code
