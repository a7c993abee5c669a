"""What serving requests at once costs and gives: requests per second, latency (with the time a request waited for an
instance), peak RSS and how many instances were alive, for each run entry."""

from . import stats
from .scheduling import POOLED, Entry


def summary(records: list[dict], status: dict, key: str) -> dict | None:
    """For one run entry, from its records (issued_at and latency_s, monotonic seconds) and how its worker(s) ended
    (the done event's `served`); None for a run recorded before requests carried their times."""
    timed = [r for r in records if r.get("issued_at") is not None and r.get("latency_s") is not None]
    if not timed:
        return None
    entry = Entry.parse(key)
    start = min(r["issued_at"] for r in timed)
    end = max(r["issued_at"] + r["latency_s"] for r in timed)
    rate = len(timed) / (end - start) if end > start else None
    if entry.processes:  # processes start serving when each has loaded: their rates add up, each over its own span
        spans = {}
        for r in timed:
            low, high, count = spans.get(r.get("process"), (r["issued_at"], r["issued_at"] + r["latency_s"], 0))
            spans[r.get("process")] = (min(low, r["issued_at"]), max(high, r["issued_at"] + r["latency_s"]), count + 1)
        rate = sum(count / (high - low) for low, high, count in spans.values() if high > low) or None
    latencies = [r["latency_s"] for r in timed]
    waits = [r.get("wait_s") for r in timed if r.get("wait_s") is not None]
    worker = status.get("worker") or {}
    parts = status.get("processes") or []
    if entry.processes:  # each process's own peak, added up: at most what the C of them held at once
        peaks = [max((r.get("peak_rss_mb") or 0.0 for r in records if r.get("process") == n), default=0.0)
                 for n in range(1, entry.concurrency + 1)]
        peak, peak_how = (sum(peaks) if any(peaks) else None), "sum of each process's peak during its requests"
    elif status.get("served", {}).get("peak_rss_mb") is not None:
        peak, peak_how = status["served"]["peak_rss_mb"], "the worker's peak while its requests ran"
    else:
        peaks = [r.get("peak_rss_mb") for r in records if r.get("peak_rss_mb") is not None]
        peak, peak_how = (max(peaks) if peaks else None), "the highest peak of one request"
    instances = worker.get("instances") or ((parts[0].get("worker") or {}).get("instances") if parts else None) or 1
    alive = (f"{instances} (pool)" if entry.way in POOLED and not entry.processes and instances > 1 else
             f"{entry.concurrency} x 1 (processes)" if entry.processes else
             f"up to {entry.concurrency}" if entry.concurrency > 1 else "1")
    return {"requests": len(timed), "concurrency": entry.concurrency,
            "served_by": "processes" if entry.processes else "threads" if entry.concurrency > 1 else "one at a time",
            "instances_alive": alive, "wall_s": end - start,
            "requests_per_s": rate,
            "latency_s": {"p50": stats.median(latencies), "p95": stats.percentile(latencies, 95), "max": max(latencies)},
            "wait_s": {"p50": stats.median(waits), "max": max(waits)} if waits else None,
            "peak_rss_mb": peak, "peak_rss_how": peak_how}
