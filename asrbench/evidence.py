"""One verdict per way from all the evidence its run has, not from RssAnon alone.

RssAnon is what the process holds, and the verdict's first evidence. But freed heap that the allocator keeps can
absorb new allocations without RssAnon moving: a leak then grows inside memory the process already had. Two kinds of
evidence in a run see past that:

- the series after malloc_trim(0) (--malloc-trim), which hands the kept heap back before each sample;
- native blocks that stay live in every traced iteration (--trace-native), counted block by block.

Either one showing growth at or above the threshold makes the way LEAK, and the line says which decided. Where
neither was measured and the allocator ended the way holding freed heap, a verdict short of LEAK says that this heap
could hide growth, and names --malloc-trim.
"""

from . import stats

TRIMMED = "rss_anon_trimmed_mb"
MIN_TRACED = 3           # native evidence needs this many traced iterations with the blocks in each
HIDING_MB = 8 / 1024     # freed heap at the end of a way (two pages) from which on it may have hidden growth: 40
                         # requests leaking 10 KB each left RssAnon flat with 0.3 MB free at the end (FINDINGS 13)


def native_rate(trace: dict | None) -> tuple[float, int, int] | None:
    """Bytes per iteration of the native sites whose blocks stayed live from every traced iteration, and of how many
    iterations; None when the way was not traced."""
    if not trace or trace.get("status") not in ("traced", "incomplete"):
        return None
    rate = trace.get("every_iteration_bytes_per_iter")
    if rate is None:  # a trace analysed before this figure existed: the sites listed
        iterations = trace.get("rate_iterations") or 0
        rate = sum(s["bytes_per_iter"] or 0 for s in trace.get("sites", []) if iterations and s["iterations"] >= iterations)
    return float(rate), int(trace.get("rate_iterations") or 0), int(trace.get("iterations_traced") or 0)


def decide(summary: dict, status: dict, threshold_mb: float) -> dict:
    """The way's verdict, what decided it and what the line adds: {'verdict', 'decided_by', 'note'}."""
    primary = summary["memory"].get(summary["verdict_metric"], {})
    verdict = primary.get("verdict", "no data")
    decision = {"verdict": verdict, "decided_by": summary["verdict_metric"], "note": None}
    if verdict == "LEAK":
        return decision
    trimmed = summary["memory"].get(TRIMMED)
    if trimmed and trimmed.get("verdict") == "LEAK":
        return {"verdict": "LEAK", "decided_by": TRIMMED,
                "note": f"decided by RssAnon after malloc_trim: {stats.verdict_line('', trimmed)[2:]}"}
    native = native_rate(status.get("native_trace"))
    if native and native[1] >= MIN_TRACED and native[0] / 2 ** 20 >= threshold_mb:
        rate, iterations, traced = native
        return {"verdict": "LEAK", "decided_by": "native_trace",
                "note": f"decided by the native trace: {rate / 1024:,.1f} KB/iter of blocks allocated in each of "
                        f"{iterations} traced iterations and still live at the end (RssAnon did not show it: freed "
                        f"heap the allocator kept took the new blocks; --malloc-trim shows it in RssAnon too)"}
    heap = status.get("heap") or {}
    if trimmed is None and native is None and (heap.get("free_mb") or 0) >= HIDING_MB and verdict != "no data":
        decision["note"] = (f"RssAnon only: the allocator ended holding {heap['free_mb']:,.1f} MB of freed heap, which "
                            f"can take new blocks without RssAnon moving; --malloc-trim separates it")
    return decision


def line(way: str, base: str, grown: str, decision: dict) -> str:
    """The verdict line: RssAnon's own with its growth in an operator's terms (asrbench.projection), or the deciding
    evidence's with RssAnon's beside it."""
    if decision["decided_by"] in (TRIMMED, "native_trace"):
        return f"{way}: LEAK, {decision['note']}; RssAnon alone said: {base[len(way) + 2:]}"
    return base + (f" {grown}" if grown else "") + (f" ({decision['note']})" if decision["note"] else "")
