"""Is memory growing? Warm-up cut, Theil-Sen slope with its 95 % interval, a trend test, a shape and a verdict."""

import math

import numpy as np
import pymannkendall
from scipy import stats

NOISE_FLOOR_MB = 0.5   # RSS moves by whole pages and allocator chunks: smaller steps are not a shape
ALPHA = 0.05           # the slope's interval is 95 %
TREND_ALPHA = 0.01     # growth needs the trend test below 1 % as well: two 5 % gates still let through ~1 clean run in 30


def percentile(values, q: float):
    values = [v for v in values if v is not None]
    return float(np.percentile(values, q)) if values else None


def median(values):
    return percentile(values, 50)


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def theil_sen(y, x=None) -> tuple[float, float, float, float]:
    """Slope, intercept and the slope's 95 % interval (scipy.stats.theilslopes)."""
    y = np.asarray(y, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(y) < 2:
        return 0.0, float(y[0]) if len(y) else 0.0, 0.0, 0.0
    result = stats.theilslopes(y, x, alpha=1 - ALPHA)
    return float(result.slope), float(result.intercept), float(result.low_slope), float(result.high_slope)


def warmup_cut(y) -> int:
    """Leading iterations that sit off the steady-state line fitted to the second half (at most a third)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 6:
        return 0
    x = np.arange(1, n + 1, dtype=float)
    slope, intercept, _, _ = theil_sen(y[n // 2:], x[n // 2:])
    residuals = y[n // 2:] - (intercept + slope * x[n // 2:])
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    tolerance = max(4 * 1.4826 * mad, NOISE_FLOOR_MB)
    cut = 0
    for i in range(n // 3):
        if abs(y[i] - (intercept + slope * x[i])) > tolerance:
            cut = i + 1
    return cut


def trend_p_value(y) -> float:
    """Mann-Kendall trend test with the Hamed-Rao variance correction, which tolerates autocorrelated series."""
    y = np.asarray(y, dtype=float)
    if len(y) < 4 or float(np.ptp(y)) == 0.0:
        return 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        try:
            p = pymannkendall.hamed_rao_modification_test(y).p
        except (ZeroDivisionError, ValueError, FloatingPointError):
            p = None
        if p is None or math.isnan(p):  # no residual variance to correct for (a perfect line): the plain test
            p = pymannkendall.original_test(y).p
    return 1.0 if p is None or math.isnan(p) else float(p)


def growing(y) -> bool:
    y = np.asarray(y, dtype=float)
    _, _, low, _ = theil_sen(y)
    return trend_p_value(y) < TREND_ALPHA and low > 0 and float(y[-1] - y[0]) > 0


def shape(y) -> str:
    """flat, plateau (grows then stops), step (a few jumps carry the growth) or linear."""
    y = np.asarray(y, dtype=float)
    if len(y) < 4 or not growing(y):
        return "flat"
    steps = np.diff(y)
    total = float(y[-1] - y[0])
    jumps = steps[steps > max(5 * float(np.median(np.abs(steps))), NOISE_FLOOR_MB)]
    if total > 0 and 0 < len(jumps) <= max(1, len(steps) // 10) and jumps.sum() >= 0.7 * total:
        return "step"
    slope = theil_sen(y)[0]
    tail = y[-max(len(y) // 3, 4):]
    tail_slope, _, tail_low, _ = theil_sen(tail)
    # Theil-Sen shrugs off a few late jumps, so the last third must also not have risen in level
    if (tail_low <= 0 or tail_slope < 0.25 * slope) and _rise(tail) < 0.25 * _rise(y):
        return "plateau"
    return "linear"


def _rise(y) -> float:
    """How much the level rose from the start to the end of a series (medians of its first and last quarter)."""
    k = max(len(y) // 4, 1)
    return float(np.median(y[-k:]) - np.median(y[:k]))


def analyse(values, iterations=None, warmup: int | None = None, threshold_mb: float = 0.05) -> dict:
    """Everything the verdict rests on, for one memory series (MB, at the given iteration numbers)."""
    iterations = range(1, len(values) + 1) if iterations is None else iterations
    pairs = [(x, v) for x, v in zip(iterations, values) if v is not None]
    x = np.asarray([p[0] for p in pairs], dtype=float)
    y = np.asarray([p[1] for p in pairs], dtype=float)
    if len(y) == 0:
        return {"n": 0, "verdict": "no data", "shape": None}
    if warmup is None:
        cut = warmup_cut(y)
    else:  # the warm-up is given in iterations; sparse series (USS) skip the samples taken before it
        cut = min(int(np.searchsorted(x, warmup, side="right")), max(len(y) - 2, 0))
    steady = y[cut:]
    slope, intercept, low, high = theil_sen(steady, x[cut:])
    form = shape(steady)
    if form in ("linear", "step") and slope >= threshold_mb:
        verdict = "LEAK"
    elif form in ("linear", "step"):
        verdict = "minor growth"
    else:
        verdict = "no leak"
    return {
        "n": int(len(y)),
        "initial_mb": float(y[0]),
        "final_mb": float(y[-1]),
        "growth_mb": float(y[-1] - y[0]),
        "mb_per_iter_naive": float((y[-1] - y[0]) / (x[-1] - x[0])) if len(y) > 1 else 0.0,
        "warmup": int(x[cut - 1]) if cut else 0,
        "warmup_auto": warmup is None,
        "slope_mb_per_iter": slope,
        "slope_low": low,
        "slope_high": high,
        "intercept_mb": intercept,
        "trend_p": trend_p_value(steady),
        "shape": form,
        "per_1000_requests_mb": slope * 1000,
        "threshold_mb_per_iter": threshold_mb,
        "verdict": verdict,
    }


def verdict_line(way: str, analysis: dict) -> str:
    """e.g. 'recreate: LEAK +41.5 MB/iter [41.2, 41.8] linear' or 'restart: no leak, +0.01 MB/iter [-0.02, 0.04] flat'."""
    if not analysis.get("n"):
        return f"{way}: no data"
    figures = (f"{analysis['slope_mb_per_iter']:+.3g} MB/iter "
               f"[{analysis['slope_low']:.3g}, {analysis['slope_high']:.3g}] {analysis['shape']}")
    if analysis["verdict"] == "LEAK":
        return f"{way}: LEAK {figures}"
    if analysis["verdict"] == "minor growth":
        return f"{way}: minor growth, {figures} (below the {analysis['threshold_mb_per_iter']:g} MB/iter threshold)"
    return f"{way}: {analysis['verdict']}, {figures}"
