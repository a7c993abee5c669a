"""A results file as GitHub-flavoured Markdown, to paste into an upstream issue: what ran and where, the comparison
table, the verdict lines, what a figure cannot mean, the native sites, and the plot by path."""

from pathlib import Path

from . import report
from .native_trace import section as native_trace_section
from .scheduling import Entry


def _cell(text) -> str:
    """A table cell: pipes escaped, so that a figure never splits a column."""
    return str(text).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else "-"


def _file(facts: dict | None) -> str:
    if not facts:
        return "-"
    sha = facts.get("sha256")
    return f"`{facts.get('path')}`" + (f", sha256 `{sha}`" if sha else " (not found when the run started)")


def metadata_lines(document: dict) -> list[str]:
    """What ran and where: engine, library, model and audio with their sha256s, and the machine."""
    meta, config = document.get("metadata") or {}, document.get("config") or {}
    lines = [f"- **engine**: `{meta.get('engine') or config.get('engine')}`"
             + (f", options `{' '.join(f'{k}={v}' for k, v in meta['engine_options'].items())}`"
                if meta.get("engine_options") else "")]
    plugin = meta.get("plugin")
    if plugin:
        lines.append(f"- **engine factory**: `{plugin.get('factory')}`"
                     + (f" in {_file(plugin['file'])}" if plugin.get("file") else "")
                     + (f"; {', '.join(f'{d} {v}' for d, v in plugin['distribution'].items())}"
                        if plugin.get("distribution") else ""))
    library = meta.get("chatllm_library")
    if library:
        build = library.get("build") or {}
        patches = [p["name"] for p in build.get("patches", [])]
        lines.append(f"- **libchatllm**: {library.get('variant')}, {_file(library.get('library'))}"
                     + (f"; built from {build.get('source')}" if build.get("source") else "")
                     + (f" with {len(patches)} patches ({patches[0]} … {patches[-1]})" if patches else ""))
    if meta.get("chatllm_sha"):
        lines.append(f"- **chatllm.cpp**: `{meta['chatllm_sha']}`")
    if meta.get("crispasr"):
        crisp = meta["crispasr"]
        lines.append(f"- **CrispASR**: {crisp.get('version')}" + (f", {_file(crisp.get('library'))}" if crisp.get("library") else ""))
    if meta.get("model"):
        seeded = meta.get("seeded_model")
        lines.append(f"- **model**: {_file(meta['model'])}" + (" — seeded random weights (*)" if seeded else ""))
    inputs = config.get("inputs") or []
    if len(inputs) > 1:
        lines.append(f"- **inputs**: {len(inputs)} files, {config.get('input_order', 'cycle')} order")
    elif meta.get("audio"):
        lines.append(f"- **audio**: {_file(meta['audio'])}")
    decodes = config.get("engine", "chatllm") in ("chatllm", "crispasr", "faster-whisper")  # --decoding means nothing else
    lines.append(f"- **run**: {', '.join(document.get('iterations') or config.get('ways') or [])}; "
                 f"{config.get('iterations')} iterations per way; threads {meta.get('threads')}; "
                 + (f"decoding {config.get('decoding')}; " if decodes else "")
                 + f"leak threshold {config.get('leak_threshold_mb')} MB/request"
                 + (f" (budget {config['budget_mb']:g} MB over {config.get('horizon'):,} requests)"
                    if config.get("budget_mb") else ""))
    lines.append(f"- **machine**: {meta.get('cpu_model') or 'unknown CPU'}, {meta.get('cpu_count')} cores; "
                 f"{meta.get('os')}; {meta.get('glibc')}; Python {meta.get('python')}; allocator "
                 f"{meta.get('allocator') or '-'}")
    lines.append(f"- **tool**: {meta.get('tool')}" + (f", project `{meta['project_sha']}`" if meta.get("project_sha") else "")
                 + f"; started {meta.get('started')}; results schema {document.get('schema_version')}")
    return lines


def comparison(document: dict, ways: list) -> list[str]:
    """The comparison table as a Markdown table, one column per way."""
    rows = report.table_rows(document, ways)
    lines = ["| | " + " | ".join(_cell(w) for w in ways) + " |", "|---|" + "---|" * len(ways)]
    lines += ["| " + _cell(label) + " | " + " | ".join(_cell(c) for c in cells) + " |" for label, cells in rows]
    return lines


def render(document: dict, plot: Path | None = None) -> str:
    """The whole report. plot: the PNG to reference (by path; it is not embedded)."""
    config = document.get("config") or {}
    keys = list(document.get("iterations") or {})
    one_at_a_time = [k for k in keys if Entry.parse(k).concurrency == 1]
    engine = (document.get("metadata") or {}).get("engine") or config.get("engine")
    lines = [f"### Memory over repeated requests: {', '.join(keys)} ({engine})", ""]
    lines += metadata_lines(document) + [""]
    if document.get("allocator_matrix") or len(one_at_a_time) < len(keys):
        lines += ["```text", report.printed(document), "```", ""]
    else:
        lines += comparison(document, keys) + [""]
        lines += [f"- {_verdict(document['verdicts'][k])}" for k in keys]
        lines += [f"- {note}" for note in report.notes(document)]
        lines.append("")
        if any((s or {}).get("inputs") for s in document.get("summary", {}).values()):
            lines += ["```text", report.inputs_table(document), "```", ""]
    native = native_trace_section(document)
    if native and not document.get("allocator_matrix") and len(one_at_a_time) == len(keys):
        lines += ["#### Native allocation sites", "", "```text", *[line for line in native if line], "```", ""]
    failed = [f"- {k}: {w.get('message')}" for k, w in (document.get("ways") or {}).items()
              if w.get("status") not in (None, "completed", "decided")]
    if failed:
        lines += ["#### Ways that did not complete", "", *failed, ""]
    if plot:
        lines += [f"![memory per iteration]({plot})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _verdict(line: str) -> str:
    """'restart: LEAK ...' -> '**restart**: LEAK ...'"""
    way, sep, rest = line.partition(":")
    return f"**{way}**:{rest}" if sep else line
