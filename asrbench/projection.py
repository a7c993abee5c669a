"""Growth in an operator's terms: what a process holds after the requests it will really serve, and per hour.

A slope per request means little on its own: a kilobyte per request is a gigabyte per million, and a fast engine
serves a million requests in hours. So every verdict also gives its slope (and interval) over a horizon of requests
(--horizon, default one million) and per hour at the rate the run itself measured, and beside "no leak" the smallest
slope the run could have detected: a run too short for the operator's budget says so instead of reassuring.

The smallest detectable slope is the slope that would make the trend test significant (at the run's trend level) with
80 % power, given the spread the run's own interval shows: (z_trend + z_power) times the slope's standard error, the
standard error being the interval's half-width over its quantile; and never less than two pages (8 KB) over the
iterations measured, the least RSS can show. Growth that freed heap absorbs shows in neither: asrbench.evidence.
"""

from .stats._scipy import stats

HORIZON = 1_000_000
POWER = 0.8
PAGE_MB = 4 / 1024  # RSS moves by whole pages: a series cannot show less than two of them over its span


def requests_per_hour(records: list[dict]) -> float | None:
    """The rate the way served at: iterations between the first and last finished one, over the time between."""
    times = [r["time"] for r in records if r.get("time") is not None]
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0]) * 3600


def detectable(analysis: dict) -> float | None:
    """The smallest slope (MB per request) this series could have shown as growth, at its error levels."""
    if not analysis.get("n_steady") or analysis.get("slope_high") is None:
        return None
    half = (analysis["slope_high"] - analysis["slope_low"]) / 2
    level = stats.norm.isf((1 - analysis["confidence"]) / 2)
    span = analysis.get("span_iterations") or analysis["n_steady"]
    floor = 2 * PAGE_MB / max(span - 1, 1)
    if half <= 0 or level <= 0:
        return floor
    return max((stats.norm.isf(analysis["trend_alpha"] / 2) + stats.norm.isf(1 - POWER)) * half / level, floor)


def terms(analysis: dict, horizon: int, per_hour: float | None) -> dict | None:
    """Slope per request (KB), over the horizon (MB, with its interval), per hour (MB) and the detectable slope."""
    if not analysis.get("n"):
        return None
    if analysis.get("decided_by") == "troughs":  # a series in cycles grows as its troughs do
        analysis = analysis["cycle"]["troughs"]
    slope, low, high = analysis["slope_mb_per_iter"], analysis["slope_low"], analysis["slope_high"]
    smallest = detectable(analysis)
    return {"horizon_requests": horizon, "kb_per_request": slope * 1024,
            "over_horizon_mb": slope * horizon, "over_horizon_low_mb": low * horizon,
            "over_horizon_high_mb": high * horizon, "requests_per_hour": per_hour,
            "mb_per_hour": slope * per_hour if per_hour else None,
            "detectable_mb_per_request": smallest,
            "detectable_over_horizon_mb": smallest * horizon if smallest is not None else None}


def count(n: int) -> str:
    """1000000 -> '1M', 250000 -> '250k', 1500 -> '1,500'."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return f"{n:,}"


def mb(value: float) -> str:
    """+0.0123 MB, +123 MB, +1,234 MB, +12.3 GB."""
    if abs(value) >= 10_240:
        return f"{value / 1024:+,.1f} GB"
    if abs(value) >= 100:
        return f"{value:+,.0f} MB"
    return f"{value:+.3g} MB"


def phrase(t: dict | None, verdict: str) -> str:
    """e.g. '= +1.02 GB per 1M requests [+0.98 GB, +1.05 GB], +36.8 MB/h at 36,000 requests/h' and, beside a
    verdict that is not growth, 'this run could detect +120 MB per 1M requests'."""
    if not t:
        return ""
    horizon = count(t["horizon_requests"])
    text = (f"= {mb(t['over_horizon_mb'])} per {horizon} requests "
            f"[{mb(t['over_horizon_low_mb'])}, {mb(t['over_horizon_high_mb'])}]")
    if t["mb_per_hour"] is not None:
        text += f", {mb(t['mb_per_hour'])}/h at {t['requests_per_hour']:,.0f} requests/h"
    if verdict in ("no leak", "undecided") and t["detectable_over_horizon_mb"] is not None:
        text += f"; the smallest growth this run could detect: {mb(t['detectable_over_horizon_mb'])} per {horizon}"
    return text
