"""The results format: one JSON file per run, with a version, metadata, config, per-way status, summary and every iteration.

A worker's journal (JSON lines) is the raw material; everything in the summary can be recomputed from the
iterations alone, so a file written by hand with just `iteration` and `rss_mb` per record can be analysed too.
"""

import gzip
import json
import os
import tempfile
from pathlib import Path

from . import consistency, evidence, projection, scheduling, stats, text, throughput
from .config import RunConfig
from .engines.chatllm import DECODING_OPTIONS, decoding_settings

SCHEMA_VERSION = 3  # 3: long runs' whole series in SERIES_FILE, a sample in the JSON; 2: verdict 'undecided',
                    # intervals that allow for autocorrelation, --until-decided; 1 and 2 are still read
SERIES_FILE = "iterations.jsonl.gz"
KEPT = 2000  # records per way the JSON keeps of a longer way (its whole series is in SERIES_FILE)
MEMORY_METRICS = ("rss_mb", "rss_anon_mb", "rss_file_mb", "uss_mb", "rss_anon_trimmed_mb", "py_traced_mb")
PRIMARY_METRIC = "rss_anon_mb"  # model weights are read into anonymous memory, so a leak shows here


class ResultsError(Exception):
    """A results file that cannot be read or is not in this format."""


def read_events(path: Path) -> list[dict]:
    """Every whole event of one worker's journal, in order ([] when it has none yet)."""
    events = []
    if not Path(path).exists():
        return events
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it is whole
    return events


def read_journal(path: Path) -> dict:
    """Events of one worker: its start event, iterations in order, and how it ended (done, error or nothing)."""
    journal = {"start": None, "iterations": [], "end": None}
    for event in read_events(path):
        kind = event.pop("event", None)
        if kind == "iteration":
            journal["iterations"].append(event)
        elif kind == "start":
            journal["start"] = event
        elif kind in ("done", "error"):
            journal["end"] = {"event": kind, **event}
    return journal


def checkpoints(config: dict) -> list[int]:
    """The iterations --until-decided judges a way at; none without it."""
    if not config.get("until_decided"):
        return []
    return stats.checkpoints(config.get("min_iterations") or 20, config.get("iterations") or 100)


def looks(config: dict) -> int:
    """How many times a way of this run is judged: its error is split across them."""
    return max(len(checkpoints(config)), 1)


def verdict_analysis(records: list[dict], warmup: int | None, threshold_mb: float, planned_looks: int = 1) -> dict:
    """The analysis a way's verdict rests on (RssAnon, else RSS): what --until-decided judges at each look."""
    metric = PRIMARY_METRIC if any(r.get(PRIMARY_METRIC) is not None for r in records) else "rss_mb"
    numbers = [r.get("iteration", i + 1) for i, r in enumerate(records)]
    return stats.analyse([r.get(metric) for r in records], numbers, warmup, threshold_mb, planned_looks)


def summarise_way(records: list[dict], warmup: int | None, threshold_mb: float, planned_looks: int = 1) -> dict:
    numbers = [r.get("iteration", i + 1) for i, r in enumerate(records)]

    def series(key):
        return [r.get(key) for r in records]

    def spread(key):
        return {"median": stats.median(series(key)), "p95": stats.percentile(series(key), 95)}

    present = {metric: series(metric) for metric in MEMORY_METRICS}
    analyses = stats.analyse_all({metric: values for metric, values in present.items()
                                  if any(v is not None for v in values)}, numbers, warmup, threshold_mb, planned_looks)
    primary = analyses.get(PRIMARY_METRIC) or analyses.get("rss_mb") or {"n": 0}
    summary = {
        "iterations": len(records),
        "memory": analyses,
        "verdict_metric": PRIMARY_METRIC if PRIMARY_METRIC in analyses else "rss_mb",
        "verdict": primary.get("verdict", "no data"),
        "load_s": {"first": next((v for v in series("load_s") if v is not None), None),
                   "mean": stats.mean(series("load_s"))},
        "ttft_ms": spread("ttft_ms"),
        "request_s": spread("request_s"),
        "chars_per_s_mean": stats.mean(series("chars_per_s")),
        "rtf_mean": stats.mean(series("rtf")),
        "wer_mean": stats.mean(series("wer")),
        "cer_mean": stats.mean(series("cer")),
        "exact_matches": sum(1 for r in records if r.get("exact_match")),
        "scored": sum(1 for r in records if r.get("wer") is not None),  # iterations whose input had a reference
        "release_failures": sum(1 for r in records if r.get("release_rc") not in (None, 0)),
        "attribution": attribution(records, analyses),
    }
    objects = [v for v in series("binding_objects") if v is not None]
    if objects:
        summary["binding_objects_final"] = objects[-1]
    return summary


def attribution(records: list[dict], analyses: dict) -> dict:
    """How much of the growth is Python heap, how much native, and how much the allocator only retains."""
    anon = analyses.get(PRIMARY_METRIC, {}).get("slope_mb_per_iter")
    blocks = [r.get("py_blocks") for r in records]
    result = {"py_blocks_per_iter": stats.theil_sen([b for b in blocks if b is not None])[0]
              if any(b is not None for b in blocks) else None}
    python_mb = analyses.get("py_traced_mb", {}).get("slope_mb_per_iter")
    result["python_mb_per_iter"] = python_mb
    result["native_mb_per_iter"] = anon - python_mb if anon is not None and python_mb is not None else None
    trimmed = analyses.get("rss_anon_trimmed_mb", {}).get("slope_mb_per_iter")
    result["allocator_retained_mb_per_iter"] = anon - trimmed if anon is not None and trimmed is not None else None
    return result


def score_iterations(records: list[dict], reference: str, language: str, references: dict | None = None) -> None:
    """Add each transcript's zh-TW and normalised text and its WER/CER (workers record only the raw text), each against
    the reference of the file that iteration sent (references: audio path -> text), else the run's one reference."""
    for record in records:
        expected = (references or {}).get(record.get("audio"), reference)
        if expected and record.get("raw_transcript") is not None and "wer" not in record:
            record.update(text.score(record["raw_transcript"], expected, language))


def input_references(config: dict) -> dict:
    """audio path -> reference text, for every file of the run's input set."""
    return {i["audio"]: i.get("reference_text", "") for i in config.get("inputs") or []}


def summarise(results: dict) -> dict:
    """(Re)compute summary and verdicts from the iterations and config of a results document."""
    config = results.get("config", {})
    for records in results.get("iterations", {}).values():
        score_iterations(records, config.get("reference_text", ""), config.get("language", "Chinese"),
                         input_references(config))
    warmup, threshold = config.get("warmup"), config.get("leak_threshold_mb", 0.05)
    results["summary"] = {}
    results["verdicts"] = {}
    for way, records in results.get("iterations", {}).items():
        summary = summarise_way(records, warmup, threshold, looks(config))
        results["summary"][way] = summary
        status = results.get("ways", {}).get(way, {})
        decision = evidence.decide(summary, status, threshold)
        summary.update(verdict=decision["verdict"], verdict_evidence=decision["decided_by"])
        deciding = summary["memory"].get(decision["decided_by"]) or summary["memory"].get(summary["verdict_metric"], {})
        summary["projection"] = projection.terms(deciding, config.get("horizon") or projection.HORIZON,
                                                 projection.requests_per_hour(records))
        line = evidence.line(way, stats.verdict_line(way, summary["memory"].get(summary["verdict_metric"], {"n": 0})),
                             projection.phrase(summary["projection"], summary["verdict"]), decision)
        if status.get("status") == "decided":
            line += f" (decided at iteration {status['iterations_completed']} of at most {config.get('iterations')})"
        elif status.get("status") not in (None, "completed"):
            line += f" ({status.get('message', status['status'])})"
        results["verdicts"][way] = line
    drift = consistency.transcript_drift(results.get("iterations", {}))
    single = (results.get("reference_transcripts") or {}).get("transcripts")
    for way, summary in results["summary"].items():
        summary["decoding"] = decoding_of(results, way)
        summary["transcript_drift"] = drift.get(way)
        results["verdicts"][way] += consistency.drift_note(summary["transcript_drift"], summary["decoding"])
        if single is not None:
            summary["single_instance"] = consistency.check(results["iterations"][way], single)
            results["verdicts"][way] = consistency.flag(results["verdicts"][way], way, summary["single_instance"])
        summary["serving"] = throughput.summary(results["iterations"][way], results.get("ways", {}).get(way, {}), way)
    summarise_traffic(results)
    return results


def decoding_of(results: dict, way: str) -> dict | None:
    """How a way's engine decoded, from its worker's start event; for a run recorded before the start event said so,
    read from the chatllm.cpp options it was started with, or from the config."""
    engine = ((results.get("ways", {}).get(way) or {}).get("worker") or {}).get("engine") or {}
    config = results.get("config", {})
    if engine.get("decoding"):
        decoding = dict(engine["decoding"])
        decoding.setdefault("deterministic", decoding.get("temperature") == 0)  # faster-whisper: one temperature, 0
        return decoding
    if engine.get("params"):
        return decoding_settings(engine["params"])
    if (engine.get("engine") or config.get("engine")) == "synthetic":
        return {"sampler": "fixed text", "deterministic": True}
    if config.get("engine", "chatllm") == "chatllm" and config.get("decoding") in DECODING_OPTIONS:
        extra = list(config.get("engine_args") or [])
        return decoding_settings(DECODING_OPTIONS[config["decoding"]] + extra, config["decoding"], extra)
    return None


def peak_summary(records: list[dict], worker: dict | None = None) -> dict | None:
    """Peak RSS during each request (median, p95, max), during load (max), and how far it rose above the RSS sampled
    after the same iteration's destroy/restart, which is all that samples between requests see."""
    peaks = [r.get("peak_rss_mb") for r in records if r.get("peak_rss_mb") is not None]
    if not peaks:
        return None
    # a process's own RSS where several processes served the load (their rss_mb is the sum)
    own = lambda r: r.get("process_rss_mb", r.get("rss_mb"))
    above = [r["peak_rss_mb"] - own(r) for r in records if r.get("peak_rss_mb") is not None and own(r)]
    loads = [r.get("peak_load_rss_mb") for r in records if r.get("peak_load_rss_mb") is not None]
    return {"n": len(peaks), "median_mb": stats.median(peaks), "p95_mb": stats.percentile(peaks, 95),
            "max_mb": max(peaks), "load_max_mb": max(loads) if loads else None,
            "above_between_median_mb": stats.median(above), "above_between_max_mb": max(above) if above else None,
            "method": ((worker or {}).get("peak") or {}).get("method"), "why": ((worker or {}).get("peak") or {}).get("why")}


def input_summary(records: list[dict]) -> list[dict] | None:
    """Per file of an input set, shortest first: what its requests cost and what memory did when it first arrived
    (RssAnon after that iteration minus after the one before: a step there is a buffer grown for a longer input)."""
    by_audio = {}
    for i, r in enumerate(records):
        if r.get("audio") is not None:
            by_audio.setdefault(r["audio"], []).append((i, r))
    if len(by_audio) < 2:
        return None
    rows = []
    for audio, items in by_audio.items():
        series = lambda key: [r.get(key) for _, r in items]
        first = items[0][0]
        step = (records[first]["rss_anon_mb"] - records[first - 1]["rss_anon_mb"]
                if first > 0 and records[first].get("rss_anon_mb") is not None
                and records[first - 1].get("rss_anon_mb") is not None else None)
        rows.append({"audio": audio, "seconds": items[0][1].get("audio_seconds"), "requests": len(items),
                     "first_iteration": items[0][1].get("iteration", first + 1),
                     "request_s_median": stats.median(series("request_s")), "rtf_mean": stats.mean(series("rtf")),
                     "peak_rss_median_mb": stats.median(series("peak_rss_mb")),
                     "peak_rss_max_mb": max((v for v in series("peak_rss_mb") if v is not None), default=None),
                     "rss_anon_median_mb": stats.median(series("rss_anon_mb")),
                     "rss_anon_step_at_first_mb": step, "wer_mean": stats.mean(series("wer"))})
    return sorted(rows, key=lambda row: (row["seconds"] is None, row["seconds"] or 0))


def allocator_matrix(results: dict) -> list[dict]:
    """One row per way and allocator setting: the RssAnon slope and its interval, final RssAnon and RSS, peak RSS, and
    how much of the glibc setting's slope and final RssAnon the setting removes (positive: less memory)."""
    rows = []
    for key, summary in results.get("summary", {}).items():
        status = results.get("ways", {}).get(key, {})
        entry = scheduling.Entry.parse(key)  # a run folder rebuilt from journals has only the names
        way, setting = scheduling.Entry(entry.way, None, entry.concurrency, entry.processes).key, entry.allocator
        if not setting:
            continue
        anon = summary["memory"].get(PRIMARY_METRIC) or {}
        rss = summary["memory"].get("rss_mb") or {}
        loaded = (status.get("worker") or {}).get("allocator_loaded") or {}
        rows.append({"way": way, "allocator": setting, "loaded": loaded.get("name"),
                     "malloc_from": loaded.get("malloc_from"), "status": status.get("status"),
                     "message": status.get("message"), "iterations": summary["iterations"],
                     "slope_mb_per_iter": anon.get("slope_mb_per_iter"), "slope_low": anon.get("slope_low"),
                     "slope_high": anon.get("slope_high"), "rss_anon_final_mb": anon.get("final_mb"),
                     "rss_final_mb": rss.get("final_mb"), "peak_rss": summary.get("peak_rss"),
                     "verdict": summary.get("verdict")})
    for row in rows:
        base = next((r for r in rows if r["way"] == row["way"] and r["allocator"] == "glibc"), None)
        both = lambda k: base and base.get(k) is not None and row.get(k) is not None
        # slopes need three samples each; final levels compare only at the same iteration
        row["slope_removed_vs_glibc"] = (base["slope_mb_per_iter"] - row["slope_mb_per_iter"]
                                         if both("slope_mb_per_iter") and min(base["iterations"], row["iterations"]) >= 3
                                         else None)
        row["rss_anon_final_removed_vs_glibc_mb"] = (base["rss_anon_final_mb"] - row["rss_anon_final_mb"]
                                                     if both("rss_anon_final_mb") and base["iterations"] == row["iterations"]
                                                     else None)
    return rows


def summarise_traffic(results: dict) -> None:
    """What traffic like a service's adds to the summary: peak RSS per way, per-file figures for an input set, and the
    allocator matrix when the run had allocator settings."""
    for key, records in results.get("iterations", {}).items():
        summary = results["summary"][key]
        summary["peak_rss"] = peak_summary(records, results.get("ways", {}).get(key, {}).get("worker"))
        summary["inputs"] = input_summary(records)
    if any(scheduling.Entry.parse(key).allocator for key in results.get("iterations", {})):
        results["allocator_matrix"] = allocator_matrix(results)


def sample_of(records: list, kept: int = KEPT) -> list:
    """At most `kept` records, evenly spaced, the first and the last among them."""
    if len(records) <= kept:
        return records
    step = (len(records) - 1) / (kept - 1)
    return [records[round(i * step)] for i in range(kept)]


def write_atomically(path: Path, document: dict) -> list[Path]:
    """Temporary file in the same folder, then rename: a reader never sees half a file.

    A way of more than KEPT iterations puts its whole series in SERIES_FILE beside the results file (gzip'd JSON
    lines, one [run key, record] each) and keeps an evenly spaced sample of KEPT records in the JSON, which stays a
    few MB however long the run; load() puts the whole series back. mkstemp makes the file readable by its owner
    only; it gets the mode any new file gets (0666 less the umask), so that results written by a container running as
    root stay readable on the host, as the run's other files are. Returns the files written, the results file first."""
    path = Path(path)
    iterations = document.get("iterations") or {}
    written = [path]
    if any(len(records) > KEPT for records in iterations.values()):
        _write(path.parent / SERIES_FILE, lambda f: _series(f, iterations), binary=True)
        written.append(path.parent / SERIES_FILE)
        document = {**document, "iterations": {key: sample_of(records) for key, records in iterations.items()},
                    "series": {"file": SERIES_FILE, "format": "gzip JSON lines, one [run key, record] per iteration",
                               "iterations": {key: len(records) for key, records in iterations.items()},
                               "kept_in_json": {key: min(len(records), KEPT) for key, records in iterations.items()}}}
    else:
        document = {k: v for k, v in document.items() if k != "series"}
    _write(path, lambda f: json.dump(document, f, ensure_ascii=False, indent=1))
    return written


def _series(f, iterations: dict) -> None:
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0) as z:
        for key, records in iterations.items():
            for record in records:
                z.write(json.dumps([key, record], ensure_ascii=False).encode("utf-8") + b"\n")


def read_series(path: Path) -> dict:
    """The whole series of every way from a SERIES_FILE."""
    found = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            key, record = json.loads(line)
            found.setdefault(key, []).append(record)
    return found


def _write(path: Path, write, binary: bool = False) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: Path) -> dict:
    """A results file, or a run folder whose parent died before writing one (rebuilt from the journals)."""
    path = Path(path)
    if path.is_dir():
        if (path / "comparison_results.json").is_file():
            return load(path / "comparison_results.json")
        journals = sorted(path.glob("*.jsonl"))
        if not journals:
            raise ResultsError(f"{path} holds no results file and no worker journal (*.jsonl)")
        config = RunConfig.load(path / "config.json").to_dict() if (path / "config.json").is_file() else {}
        groups = {}  # restart@p2.1.jsonl and restart@p2.2.jsonl: the two processes of restart@p2
        for j in journals:
            if j.stem != "reference":
                key, _, process = j.stem.rpartition(".")
                groups.setdefault(key if process.isdigit() and key else j.stem, []).append(j)
        iterations = {key: (read_journal(files[0])["iterations"] if len(files) == 1 else
                            scheduling.merge_processes([read_journal(f)["iterations"] for f in files]))
                      for key, files in groups.items()}
        return {"schema_version": SCHEMA_VERSION, "config": config, "metadata": {}, "ways": {}, "iterations": iterations}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"results file {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path} is not a readable JSON results file ({e})") from None
    if not isinstance(document, dict) or not isinstance(document.get("iterations"), dict):
        raise ResultsError(f"{path} has no 'iterations' object: see docs/results-format.md")
    version = document.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1:
        raise ResultsError(f"{path} has schema_version {version!r}, not a version number: set it to 1 or {SCHEMA_VERSION}")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{path} is schema_version {version}; this tool reads up to {SCHEMA_VERSION}: update it")
    if document.get("series"):
        side = path.parent / document["series"]["file"]
        try:
            whole = read_series(side)
        except FileNotFoundError:
            raise ResultsError(f"{path} keeps a sample of its iterations; the whole series is in {side.name} beside "
                               f"it, which is missing: copy {side.name} with the results file") from None
        except (OSError, EOFError, ValueError) as e:
            raise ResultsError(f"{side} cannot be read ({e}): the whole series of {path.name} is lost") from None
        counts = {key: len(records) for key, records in whole.items()}
        if counts != document["series"]["iterations"]:
            raise ResultsError(f"{side.name} holds {counts} iterations, {path.name} says {document['series']['iterations']}"
                               f": the two files are from different runs")
        document["iterations"] = whole
        document.pop("series")
    for way, records in document["iterations"].items():
        if not isinstance(records, list) or not all(isinstance(r, dict) and "rss_mb" in r for r in records):
            raise ResultsError(f"{path}: iterations.{way} must be a list of records, each with at least rss_mb")
    document.setdefault("config", {})
    document.setdefault("ways", {})
    return document
