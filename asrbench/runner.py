"""Runs each way in its own fresh worker process and watches it: progress, timeout, memory cap, crash, interrupt."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import allocators, memory, metadata, native_trace, report, results, stats
from .config import PROJECT_DIR, RunConfig

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
        self.path, self.offset, self.events = path, 0, []

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
        self.events += new
        return new


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
    """One status line rewritten in place, only on an interactive terminal and never with --quiet."""

    def __init__(self, quiet: bool):
        self.live = not quiet and sys.stderr.isatty()
        self.quiet = quiet

    def update(self, way: str, total: int, record: dict) -> None:
        if self.live:
            sys.stderr.write(f"\r{way}: iteration {record['iteration']}/{total}  RSS {record['rss_mb']:.0f} MB"
                             f"  RssAnon {record['rss_anon_mb']:.0f} MB  request {record.get('request_s') or 0:.2f} s   ")
            sys.stderr.flush()

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


def run_way(config: RunConfig, way: str, run_dir: Path, progress: Progress, interrupt: Interrupt,
            allocator: str | None = None) -> dict:
    """Start the worker for one way (under one allocator setting, when given), watch it to the end, and say how it ended."""
    key = allocators.run_key(way, allocator)  # recreate, or recreate@jemalloc: its journal, log and results entry
    journal = run_dir / f"{key}.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")])))
    if allocator:  # set before the worker starts: its malloc variables and preload apply from its first allocation
        env = allocators.environment(allocator, env)
    with open(run_dir / f"{key}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asrbench.worker", str(run_dir / "config.json"), way, str(journal)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
        )
    tail = JournalTail(journal)
    judge = UntilDecided(config) if config.until_decided else None
    last_activity, last_rss, stopped = time.monotonic(), None, None
    while True:
        returncode = proc.poll()
        for event in tail.read():
            last_activity = time.monotonic()
            if event["event"] == "iteration":
                progress.update(key, config.iterations, event)
                if judge:
                    judge.see(event)
        if judge and judge.decided:
            stop(proc, signal.SIGTERM)  # the answer is known: the iterations after the deciding look are not used
            break
        if returncode is not None:
            break
        if interrupt.signum:
            stop(proc, signal.SIGTERM)
            stopped = ("interrupted", f"interrupted by {signal_name(interrupt.signum)}")
            break
        if time.monotonic() - last_activity > config.timeout_s:
            stop(proc)
            stopped = ("timed_out", f"no progress for {config.timeout_s:g} s (--timeout)")
            break
        try:
            last_rss = memory.read_status(proc.pid)["rss_mb"]
        except (OSError, KeyError):
            pass
        if config.max_rss_mb and last_rss and last_rss > config.max_rss_mb:
            stop(proc)
            cap = (f"--max-rss-mb {config.max_rss_mb:g}" if config.max_rss_mb_why in ("", "--max-rss-mb") else
                   f"the cap of {config.max_rss_mb:g} MB ({config.max_rss_mb_why}; --max-rss-mb sets it)")
            stopped = ("stopped", f"RSS {last_rss:.0f} MB above {cap}")
            break
        time.sleep(POLL_S)
    tail.read()
    if judge and judge.decided:
        result = judge.outcome(proc.returncode, tail.events, last_rss, run_dir / f"{key}.log")
    else:
        result = outcome(proc.returncode, tail.events, stopped, last_rss, config.iterations, run_dir / f"{key}.log")
        if judge:
            result["until_decided"] = judge.describe()
            if result["status"] == "completed":
                result["message"] += "; still undecided at the last look"
    if allocator:
        result.update(way=way, allocator=allocator)
    return result


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
        result.update(status="completed", message=f"completed {done} iterations")
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
    results.write_atomically(path, document)
    latest = output / "comparison_results.json"
    tmp = output / ".comparison_results.json.tmp"
    shutil.copyfile(path, tmp)
    os.replace(tmp, latest)
    return path


def runs(config: RunConfig) -> list[tuple[str, str | None]]:
    """Each way once, or with --allocators each way once under each setting (setting by setting)."""
    return [(way, setting) for setting in config.allocators or [None] for way in config.ways]


def compare_ways(config: RunConfig, output: Path, quiet: bool = False, plot: bool = True) -> tuple[dict, int]:
    """Run every way in its own worker, write results as each way ends, and return them with the exit code."""
    run_dir = new_run_dir(output, config.engine)
    config.save(run_dir / "config.json")
    document = {"schema_version": results.SCHEMA_VERSION, "status": "running", "run_dir": str(run_dir),
                "metadata": metadata.collect_metadata(config), "config": config.to_dict(), "ways": {}, "iterations": {}}
    interrupt = Interrupt()
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(quiet)
    try:
        for way, allocator in runs(config):
            key = allocators.run_key(way, allocator)
            if interrupt.signum:
                document["ways"][key] = {"status": "not_run", "message": "not run (interrupted before it started)"}
                continue
            ended = run_way(config, way, run_dir, progress, interrupt, allocator)
            document["ways"][key] = ended
            records = results.read_journal(run_dir / f"{key}.jsonl")["iterations"]
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
    code = interrupt.exit_code if interrupt.signum else (0 if document["status"] == "completed" else 1)
    return document, code
