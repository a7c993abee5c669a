"""What a person reads: the comparison table, verdict lines, the comparison of two runs, and the memory plot."""

from pathlib import Path

from . import projection
from .allocators import KNOWN_LIBRARIES
from .native_trace import section as native_trace_section
from .scheduling import Entry


def _fmt(value, spec: str = ".1f", unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:{spec}}{unit}"


def _horizon(summary: dict, ways: list) -> str:
    found = next((summary[w]["projection"]["horizon_requests"] for w in ways if summary[w].get("projection")), None)
    return projection.count(found) if found else "1M"


def _projected(t: dict | None) -> str:
    if not t:
        return "-"
    return f"{projection.mb(t['over_horizon_mb'])} [{projection.mb(t['over_horizon_low_mb'])}, " \
           f"{projection.mb(t['over_horizon_high_mb'])}]"


def _per_hour(t: dict | None) -> str:
    if not t or t["mb_per_hour"] is None:
        return "-"
    return f"{projection.mb(t['mb_per_hour'])} at {t['requests_per_hour']:,.0f}/h"


def _detectable(t: dict | None) -> str:
    return projection.mb(t["detectable_over_horizon_mb"])[1:] if t and t["detectable_over_horizon_mb"] is not None else "-"


def _pair(a, b, spec=".1f") -> str:
    return f"{_fmt(a, spec)} / {_fmt(b, spec)}"


def table(results: dict, ways: list | None = None) -> str:
    """The comparison table: one column per way (the given run entries, else all), then the verdict lines, the seeded
    model's note and the native sites."""
    ways = list(results.get("iterations", {})) if ways is None else ways
    rows = table_rows(results, ways)
    width = max(len(label) for label, _ in rows) + 2
    col = max([24] + [len(c) + 2 for _, cells in rows for c in cells])
    lines = ["".ljust(width) + "".join(w.ljust(col) for w in ways)]
    lines += [label.ljust(width) + "".join(c.ljust(col) for c in cells) for label, cells in rows]
    lines.append("")
    lines += [results["verdicts"][w] for w in ways]
    lines += notes(results)
    lines += native_trace_section(results)
    return "\n".join(line.rstrip() for line in lines)


def notes(results: dict) -> list[str]:
    """What a figure of the table cannot mean, said under it."""
    return [SEEDED_NOTE] if (results.get("config") or {}).get("seeded_model") else []


def table_rows(results: dict, ways: list) -> list[tuple[str, list[str]]]:
    """The comparison table's rows: (label, one cell per way)."""
    summary = results.get("summary", {})
    status = results.get("ways", {})

    level = _level(summary)
    meaningless = " (*)" if (results.get("config") or {}).get("seeded_model") else ""  # SEEDED_NOTE

    def memory_rows(metric: str, label: str):
        rows = []
        rows.append((f"{label} initial / final (MB)",
                     [_pair(summary[w]["memory"].get(metric, {}).get("initial_mb"),
                            summary[w]["memory"].get(metric, {}).get("final_mb")) for w in ways]))
        rows.append((f"{label} growth (MB)", [_fmt(summary[w]["memory"].get(metric, {}).get("growth_mb"), "+.1f") for w in ways]))
        rows.append((f"{label} MB/iter, naive", [_fmt(summary[w]["memory"].get(metric, {}).get("mb_per_iter_naive"), "+.3f") for w in ways]))
        rows.append((f"{label} MB/iter, Theil-Sen [{level} CI]", [_slope(summary[w]["memory"].get(metric)) for w in ways]))
        return rows

    rows = [("status", [_status(status.get(w, {}), len(results["iterations"][w])) for w in ways])]
    rows += [("iterations measured", [str(summary[w]["iterations"]) for w in ways])]
    rows += memory_rows("rss_mb", "RSS")
    rows += memory_rows("rss_anon_mb", "RssAnon")
    rows += peak_rows(summary, ways)
    if any("uss_mb" in summary[w]["memory"] for w in ways):
        rows += [(f"USS MB/iter, Theil-Sen [{level} CI]", [_slope(summary[w]["memory"].get("uss_mb")) for w in ways])]
    if any("rss_anon_trimmed_mb" in summary[w]["memory"] for w in ways):
        rows += [("RssAnon after malloc_trim MB/iter", [_slope(summary[w]["memory"].get("rss_anon_trimmed_mb")) for w in ways])]
    rows += [
        ("warm-up cut (iterations)", [_fmt(summary[w]["memory"].get(summary[w]["verdict_metric"], {}).get("warmup"), "d") for w in ways]),
        ("shape", [_fmt(summary[w]["memory"].get(summary[w]["verdict_metric"], {}).get("shape"), "") for w in ways]),
        ("trend test p (Mann-Kendall, Hamed-Rao)",
         [_fmt(summary[w]["memory"].get(summary[w]["verdict_metric"], {}).get("trend_p"), ".2g") for w in ways]),
        ("lag-1 autocorrelation / effective n",
         [_pair(summary[w]["memory"].get(summary[w]["verdict_metric"], {}).get("autocorrelation"),
                summary[w]["memory"].get(summary[w]["verdict_metric"], {}).get("n_effective"), ".2f") for w in ways]),
        (f"projected per {_horizon(summary, ways)} requests [CI]", [_projected(summary[w].get("projection")) for w in ways]),
        ("per hour at the rate measured", [_per_hour(summary[w].get("projection")) for w in ways]),
        (f"smallest growth detectable per {_horizon(summary, ways)}",
         [_detectable(summary[w].get("projection")) for w in ways]),
        ("load time (s), first / mean", [_pair(summary[w]["load_s"]["first"], summary[w]["load_s"]["mean"], ".2f") for w in ways]),
        ("time to first token (ms), median / p95", [_pair(summary[w]["ttft_ms"]["median"], summary[w]["ttft_ms"]["p95"]) for w in ways]),
        ("request (s), median / p95", [_pair(summary[w]["request_s"]["median"], summary[w]["request_s"]["p95"], ".3f") for w in ways]),
        ("chars/s after first token, mean" + meaningless, [_fmt(summary[w]["chars_per_s_mean"]) for w in ways]),
        ("real-time factor, mean", [_fmt(summary[w]["rtf_mean"], ".3f") for w in ways]),
        ("WER / CER, mean" + meaningless, [_accuracy(summary[w]) for w in ways]),
        ("exact matches" + meaningless, [_matches(summary[w]) for w in ways]),
        ("decoding", [decoding_label(summary[w].get("decoding")) for w in ways]),
        ("transcripts differing from own first", [_drift(summary[w].get("transcript_drift")) for w in ways]),
        *([("same as one instance alone", [single_instance_note(summary[w].get("single_instance")) for w in ways])]
          if any(summary[w].get("single_instance") for w in ways) else []),
        ("... from the other ways' first", [_drift_across(summary[w].get("transcript_drift")) for w in ways]),
        ("Python blocks/iter", [_fmt(summary[w]["attribution"]["py_blocks_per_iter"], "+.1f") for w in ways]),
    ]
    if any(summary[w]["attribution"].get("allocator_retained_mb_per_iter") is not None for w in ways):
        rows += [("retained by allocator MB/iter",
                  [_fmt(summary[w]["attribution"]["allocator_retained_mb_per_iter"], "+.3f") for w in ways])]
    if any(summary[w]["attribution"].get("python_mb_per_iter") is not None for w in ways):
        rows += [("Python heap / native MB/iter",
                  [_pair(summary[w]["attribution"]["python_mb_per_iter"], summary[w]["attribution"]["native_mb_per_iter"], "+.3f")
                   for w in ways])]
    if any("binding_objects_final" in summary[w] for w in ways):
        rows += [("binding objects kept (Python)", [_fmt(summary[w].get("binding_objects_final"), "d") for w in ways])]
    rows += [("destroy failures (rc != 0)", [str(summary[w]["release_failures"]) for w in ways])]
    return rows


SEEDED_NOTE = ("(*) the model has seeded random weights (tools/make_model.py): its transcripts, WER/CER, exact matches "
               "and chars/s mean nothing; its memory, load and request times are those of a model of its size")


def _scored(summary: dict) -> int:
    """Iterations scored against a reference (a results file from before the count: every one with a WER)."""
    return summary.get("scored", summary["iterations"] if summary.get("wer_mean") is not None else 0)


def _accuracy(summary: dict) -> str:
    scored = _scored(summary)
    if not scored and summary["iterations"]:
        return "not scored (no reference)"
    cell = _pair(summary["wer_mean"], summary["cer_mean"], ".3f")
    return cell if scored == summary["iterations"] else f"{cell} ({scored} scored)"


def _matches(summary: dict) -> str:
    scored = _scored(summary)
    return f"{summary['exact_matches']}/{scored}" if scored or not summary["iterations"] else "-"


def peak_rows(summary: dict, ways: list) -> list:
    """Peak RSS while requests ran, which the samples between requests never see (median / p95 / max per way)."""
    peaks = {w: summary[w].get("peak_rss") for w in ways}
    if not any(peaks.values()):
        return []
    cell = lambda p, f: f(p) if p else "-"
    return [
        ("peak RSS in request (MB), median / p95 / max",
         [cell(peaks[w], lambda p: f"{_pair(p['median_mb'], p['p95_mb'])} / {_fmt(p['max_mb'])}") for w in ways]),
        ("peak RSS in load (MB), max", [cell(peaks[w], lambda p: _fmt(p["load_max_mb"])) for w in ways]),
        ("peak above RSS after release (MB), median / max",
         [cell(peaks[w], lambda p: _pair(p["above_between_median_mb"], p["above_between_max_mb"])) for w in ways]),
    ]


def printed(results: dict) -> str:
    """What a run prints: the comparison table (the allocator matrix instead when the run had allocator settings, whose
    one column per way and setting would not fit a screen), the serving table when requests ran at once (--concurrency)
    or from a pool (--instances), then per-file figures when it sent an input set."""
    keys = list(results.get("iterations", {}))
    at_once = [k for k in keys if Entry.parse(k).concurrency > 1]
    if results.get("allocator_matrix"):
        parts = [matrix_table(results)]
    else:
        parts = [table(results, [k for k in keys if k not in at_once])] if len(at_once) < len(keys) else []
    if any(Entry.parse(k).concurrency > 1 or (results["summary"][k].get("serving") or {}).get("instances_alive", "1") != "1"
           for k in keys):
        parts.append(serving_table(results, at_once if not results.get("allocator_matrix") else []))
    if any((s or {}).get("inputs") for s in results.get("summary", {}).values()):
        parts.append(inputs_table(results))
    return "\n\n".join(parts)


def matrix_table(results: dict) -> str:
    """Per way and allocator setting: RssAnon slope with its 95 % interval, what it removes of glibc's, final RssAnon
    and RSS after destroy/restart, and peak RSS during requests; then the verdict lines."""
    header = ["way", "allocator", "loaded", "iterations", f"RssAnon MB/iter [{_level(results['summary'])} CI]", "removed vs glibc",
              "RssAnon final", "RSS final", "peak RSS median / max", "verdict"]
    body, notes = [], []
    for row in sorted(results["allocator_matrix"], key=lambda r: r["way"]):
        peak = row.get("peak_rss") or {}
        slope = _slope({"n": row["iterations"], **row}) if row["slope_mb_per_iter"] is not None else "-"
        body.append([row["way"], row["allocator"], row["loaded"] or "-",
                     str(row["iterations"]) + ("" if row["status"] in (None, "completed") else " (!)"), slope,
                     _fmt(row["slope_removed_vs_glibc"], "+.3f") + " MB/iter, " +
                     _fmt(row["rss_anon_final_removed_vs_glibc_mb"], "+.0f") + " MB",
                     _fmt(row["rss_anon_final_mb"]), _fmt(row["rss_final_mb"]),
                     _pair(peak.get("median_mb"), peak.get("max_mb")), row["verdict"] or "-"])
        expected = row["allocator"] if row["allocator"] in KNOWN_LIBRARIES else "glibc"
        if row["loaded"] and row["loaded"] != expected:
            notes.append(f"{row['way']}@{row['allocator']}: asked for {expected} but the worker ran {row['loaded']}'s "
                         f"malloc ({row['malloc_from']}): the preload failed, see its log")
        if row["status"] not in (None, "completed"):
            notes.append(f"(!) {row['way']}@{row['allocator']}: {row['message']}")
    lines = _grid("allocator matrix (RssAnon and RSS after each destroy/restart; peak RSS during requests; MB)",
                  header, body)
    lines += notes + [""] + [results["verdicts"][k] for k in results["verdicts"]]
    lines += native_trace_section(results)
    return "\n".join(line.rstrip() for line in lines)


def serving_table(results: dict, with_verdicts: list) -> str:
    """Per run entry: how its requests were served (one at a time, a pool, threads or processes), whether each gave
    the single-instance transcript, the RssAnon slope per request with its verdict, peak RSS, throughput and latency
    (with the wait for a free instance); then the verdict lines of the entries no other table shows."""
    header = ["entry", "served by", "instances alive", "requests", "same as one instance alone",
              f"RssAnon MB/request [{_level(results['summary'])} CI]", "verdict", "peak RSS MB", "requests/s",
              "latency s p50 / p95 / max", "wait s max"]
    body = []
    for key, summary in results["summary"].items():
        serving = summary.get("serving") or {}
        anon = summary["memory"].get(summary["verdict_metric"])
        latency = serving.get("latency_s") or {}
        status = results.get("ways", {}).get(key, {})
        body.append([key + ("" if status.get("status") in (None, "completed", "decided") else " (!)"),
                     serving.get("served_by", "-"), serving.get("instances_alive", "-"), str(summary["iterations"]),
                     single_instance_note(summary.get("single_instance")), _slope(anon), summary.get("verdict") or "-",
                     _fmt(serving.get("peak_rss_mb")), _fmt(serving.get("requests_per_s"), ".2f"),
                     f"{_fmt(latency.get('p50'), '.3f')} / {_fmt(latency.get('p95'), '.3f')} / {_fmt(latency.get('max'), '.3f')}",
                     _fmt((serving.get("wait_s") or {}).get("max"), ".3f")])
    lines = _grid("serving (RssAnon after each request's restart/destroy; processes: summed over them; peak: see "
                  "peak_rss_how in the results)", header, body)
    notes = [f"(!) {key}: {results['ways'][key].get('message')}" for key in results["summary"]
             if results.get("ways", {}).get(key, {}).get("status") not in (None, "completed", "decided")]
    lines += notes + ([""] + [results["verdicts"][k] for k in with_verdicts] if with_verdicts else [])
    return "\n".join(line.rstrip() for line in lines)


def single_instance_note(found: dict | None) -> str:
    """requests and instances that gave the single-instance transcript, e.g. '12/40 requests, 1/4 instances'."""
    if not found:
        return "-"
    return (f"{found['requests'] - found['differing']}/{found['requests']} requests, "
            f"{found['instances_right']}/{found['instances']} instances")


def inputs_table(results: dict) -> str:
    """Per way and file of the input set, shortest first: request time, peak RSS, RssAnon after release, and the step
    RssAnon took when the file first arrived."""
    header = ["way", "file", "seconds", "requests", "request s median", "peak RSS median / max", "RssAnon median",
              "RssAnon step at first", "WER"]
    body = []
    for key, summary in results["summary"].items():
        for row in summary.get("inputs") or []:
            body.append([key, Path(row["audio"]).name, _fmt(row["seconds"]), str(row["requests"]),
                         _fmt(row["request_s_median"], ".3f"), _pair(row["peak_rss_median_mb"], row["peak_rss_max_mb"]),
                         _fmt(row["rss_anon_median_mb"]), _fmt(row["rss_anon_step_at_first_mb"], "+.1f"),
                         _fmt(row["wer_mean"], ".3f")])
    return "\n".join(_grid("per file of the input set (MB)", header, body))


def _grid(title: str, header: list, body: list[list]) -> list[str]:
    """A title over columns padded to their widest cell."""
    widths = [max(len(str(line[i])) for line in [header] + body) + 2 for i in range(len(header))]
    return [title] + ["".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + body]


def decoding_label(decoding: dict | None) -> str:
    """greedy (-t 0), top_p T=0.7 k=20 p=0.7 random seed, ...: what decided every transcript of a way."""
    if not decoding:
        return "-"
    if "sampler" not in decoding:  # faster-whisper's fixed settings
        greedy = decoding.get("beam_size", 1) == 1 and decoding.get("temperature") == 0
        return "greedy (beam 1, T=0)" if greedy else f"beam {decoding.get('beam_size')}, T={decoding.get('temperature')}"
    if decoding["sampler"] == "greedy":
        label = "greedy"
    elif "temperature" not in decoding:
        return decoding["sampler"]  # the synthetic engine's fixed text
    else:
        seed = decoding.get("seed")
        label = (f"{decoding['sampler']} T={decoding['temperature']:g} k={decoding['top_k']} p={decoding['top_p']:g} "
                 + (f"seed {seed}" if isinstance(seed, int) and seed > 0 else "random seed"))
    if decoding.get("beam_size"):
        label += f", beam {decoding['beam_size']}"
    if decoding.get("from_engine_args"):
        return f"{label} (--engine-args {' '.join(decoding['from_engine_args'])})"
    if decoding.get("options"):
        return f"{label} ({' '.join(decoding['options'])})"
    return f"{label} (engine default)" if decoding.get("requested") == "engine-default" else label


def _drift(drift: dict | None) -> str:
    return "-" if not drift else f"{drift['differ_from_first']}/{drift['transcripts']}"


def _drift_across(drift: dict | None) -> str:
    if not drift or not drift["differ_from_first_of"]:
        return "-"
    counts = drift["differ_from_first_of"]
    if len(counts) == 1:
        return f"{next(iter(counts.values()))}/{drift['transcripts']}"
    return ", ".join(f"{other} {count}/{drift['transcripts']}" for other, count in counts.items())


def _level(summary: dict) -> str:
    """The intervals' confidence, e.g. '95%', or '99%' when --until-decided split the error across five looks."""
    levels = {a["confidence"] for way in summary.values() for a in way["memory"].values() if "confidence" in a}
    return "/".join(f"{100 * c:.3g}%" for c in sorted(levels)) or "95%"


def _slope(analysis: dict | None) -> str:
    if not analysis or analysis.get("n", 0) < 3:  # fewer than three samples make no slope worth printing
        return "-"
    return f"{analysis['slope_mb_per_iter']:+.3f} [{analysis['slope_low']:+.3f}, {analysis['slope_high']:+.3f}]"


def _status(way: dict, measured: int) -> str:
    if not way:
        return "-"
    return way.get("status", "-") if way.get("status") == "completed" else way.get("message", way.get("status", "-"))


def compare(old: dict, new: dict, fail_above: float | None) -> tuple[str, bool]:
    """Slopes of two runs side by side; failed when a way's new slope is above fail_above or significantly steeper."""
    lines = [f"{'way':10} {'old MB/iter [' + _level(old.get('summary', {})) + ' CI]':32} "
             f"{'new MB/iter [' + _level(new.get('summary', {})) + ' CI]':32} {'verdict old -> new':30} result"]
    failed = False
    for way in new.get("summary", {}):
        n = new["summary"][way]["memory"].get(new["summary"][way]["verdict_metric"], {})
        o = old.get("summary", {}).get(way, {}).get("memory", {}).get(new["summary"][way]["verdict_metric"], {})
        verdicts = f"{o.get('verdict', 'not run')} -> {n.get('verdict', 'no data')}"
        problems = []
        if fail_above is not None and n.get("n") and n["slope_mb_per_iter"] > fail_above:
            problems.append(f"slope above {fail_above:g}")
        if o.get("n") and n.get("n") and n["slope_low"] > o["slope_high"]:
            problems.append("grew significantly")
        failed = failed or bool(problems)
        lines.append(f"{way:10} {_slope(o):32} {_slope(n):32} {verdicts:30} "
                     f"{'FAIL: ' + ', '.join(problems) if problems else 'ok'}")
    return "\n".join(lines), failed


def plot(results: dict, path: Path) -> Path:
    """Memory per iteration for every way, with the fitted slope and the warm-up cut marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("rss_mb", "RSS (MB)"), ("rss_anon_mb", "RssAnon (MB)")]
    peaks = any(r.get("peak_rss_mb") is not None for records in results["iterations"].values() for r in records)
    fig, axes = plt.subplots(1, len(metrics) + 1 + peaks, figsize=(17 + 5.5 * peaks, 4.8), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics):
        for way, records in results["iterations"].items():
            pairs = [(r.get("iteration", i + 1), r.get(metric)) for i, r in enumerate(records) if r.get(metric) is not None]
            if not pairs:
                continue
            xs, ys = zip(*pairs)
            line, = ax.plot(xs, ys, marker=".", linewidth=1, label=way)
            analysis = results["summary"][way]["memory"].get(metric)
            if analysis and analysis.get("n", 0) > 1:
                start = analysis["warmup"] + 1 if analysis["warmup"] else xs[0]
                fit_x = [x for x in xs if x >= start]
                ax.plot(fit_x, [analysis["intercept_mb"] + analysis["slope_mb_per_iter"] * x for x in fit_x],
                        linestyle="--", color=line.get_color(),
                        label=f"{way} fit {analysis['slope_mb_per_iter']:+.3f} MB/iter ({analysis['shape']})")
                if analysis["warmup"]:
                    ax.axvline(analysis["warmup"] + 0.5, color=line.get_color(), linestyle=":", linewidth=1)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if peaks:
        plot_peaks(axes[0][-1], results)
    growth = axes[0][len(metrics)]  # small growth is invisible beside a steep one: each way against its own first sample
    for way, records in results["iterations"].items():
        pairs = [(r.get("iteration", i + 1), r.get("rss_anon_mb")) for i, r in enumerate(records) if r.get("rss_anon_mb") is not None]
        if pairs:
            growth.plot([x for x, _ in pairs], [(y - pairs[0][1]) * 1024 for _, y in pairs], marker=".", linewidth=1, label=way)
    growth.set_yscale("symlog", linthresh=64)
    growth.set_xlabel("iteration")
    growth.set_ylabel("RssAnon growth since first sample (KB, symlog)")
    growth.grid(alpha=0.3)
    growth.legend(fontsize=8)
    engine = results.get("config", {}).get("engine", "")
    failed = [f"{w}: {s.get('message')}" for w, s in results.get("ways", {}).items()
              if s.get("status") not in (None, "completed", "decided")]
    fig.suptitle(f"Memory per iteration ({engine}; dotted line: warm-up cut)" + ("\n" + "; ".join(failed) if failed else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)



def plot_peaks(ax, results: dict) -> None:
    """Peak RSS during each request (solid) against the RSS sampled after the same iteration's release (dotted)."""
    for way, records in results["iterations"].items():
        pairs = [(r.get("iteration", i + 1), r["peak_rss_mb"], r.get("rss_mb")) for i, r in enumerate(records)
                 if r.get("peak_rss_mb") is not None]
        if not pairs:
            continue
        line, = ax.plot([p[0] for p in pairs], [p[1] for p in pairs], marker=".", linewidth=1, label=f"{way} peak")
        ax.plot([p[0] for p in pairs], [p[2] for p in pairs], linestyle=":", color=line.get_color(), linewidth=1,
                label=f"{way} after release")
    ax.set_xlabel("iteration")
    ax.set_ylabel("peak RSS during the request (MB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
