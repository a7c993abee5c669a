"""Is memory growing? Warm-up cut, Theil-Sen slope with an interval that allows for autocorrelation, a trend test,
a shape and a verdict: LEAK, minor growth, no leak or undecided.

The interval: Sen's (1968) interval for the Theil-Sen slope (scipy.stats.theilslopes) assumes independent errors.
Memory series are not independent (allocator steps, caches that drain slowly), so the Mann-Kendall variance behind
Sen's interval is multiplied by (1 + r) / (1 - r) = n / n_eff: the Hamed-Rao variance factor of an AR(1) series in
its large-n form, r being the lag-1 correlation of the ranks of the detrended series (as Hamed and Rao measure it).
n_eff = n (1 - r) / (1 + r) is the effective sample size Nychka et al. (2000) use for trend intervals, and the normal
quantile becomes Student's t with n_eff - 2 degrees of freedom. A short series underestimates its autocorrelation, so
r is not the estimate but the upper end of its one-sided 90 % confidence bound, tanh(atanh(r) + 1.28 / sqrt(n)).
(Nychka et al. add 0.68 / sqrt(n) to r instead; with Theil-Sen that held the true slope only 92 % of the time at 20
iterations of AR(1) noise.) benchmarks/interval_coverage.py measures the coverage; the README has the table.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ._scipy import stats

from . import periodic
from .slopes import line, median_slope, theilslopes
from .trend import trend_p_value

NOISE_FLOOR_MB = 0.5   # RSS moves by whole pages and allocator chunks: smaller steps are not a shape
ALPHA = 0.05           # the slope's interval is 95 %
TREND_ALPHA = 0.01     # growth needs the trend test below 1 % as well: two 5 % gates still let through ~1 clean run in 30
MIN_ITERATIONS = 10    # fewer samples (after the warm-up cut) give no verdict: too few to judge their autocorrelation
RHO_BOUND = 1.2816     # the autocorrelation used is its one-sided 90 % upper bound: the estimate's Fisher z + 1.28 / sqrt(n)
MAX_Z = 30.0           # beyond this the interval is simply the widest Sen's method has: every pairwise slope
GROWTH = 1.5           # --until-decided looks at min, then 1.5 times as many iterations each time, and at the maximum
DECIDED = ("LEAK", "no leak", "minor growth")


def percentile(values, q: float):
    values = [v for v in values if v is not None]
    return float(np.percentile(values, q)) if values else None


def median(values):
    return percentile(values, 50)


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _xy(y, x):
    y = np.asarray(y, dtype=float)
    return y, (np.arange(1, len(y) + 1, dtype=float) if x is None else np.asarray(x, dtype=float))


def autocorrelation(y, x=None, slope: float | None = None) -> float:
    """Lag-1 autocorrelation of the ranks of the series after removing its Theil-Sen line (Hamed and Rao's ranks)."""
    y, x = _xy(y, x)
    if len(y) < 3:
        return 0.0
    if slope is None:
        slope = median_slope(y, x)
    ranks = stats.rankdata(y - slope * x)
    d = ranks - ranks.mean()
    total = float(d @ d)
    return float(d[1:] @ d[:-1] / total) if total > 0 else 0.0


def effective_n(n: int, rho: float) -> float:
    """Independent samples worth as much as n autocorrelated ones: n (1 - r) / (1 + r), r the 90 % upper bound of rho."""
    if n < 2:
        return float(n)
    r = math.tanh(math.atanh(min(max(rho, 0.0), 0.999)) + RHO_BOUND / math.sqrt(n))
    return n * (1 - r) / (1 + r)


def interval_z(n: int, rho: float, confidence: float) -> float:
    """The normal quantile Sen's interval must use so that it is a `confidence` interval for n_eff samples."""
    n_eff = effective_n(n, rho)
    if n_eff <= 1:
        return MAX_Z
    t = stats.t.ppf(0.5 + confidence / 2, max(n_eff - 2, 1.0))
    return float(min(t * math.sqrt(n / n_eff), MAX_Z))


def theil_sen(y, x=None, confidence: float = 1 - ALPHA) -> tuple[float, float, float, float]:
    """Slope, intercept and the slope's interval, widened for autocorrelation (see the module's docstring)."""
    y, x = _xy(y, x)
    if len(y) < 2:
        return 0.0, float(y[0]) if len(y) else 0.0, 0.0, 0.0
    z = interval_z(len(y), autocorrelation(y, x, median_slope(y, x)), confidence)
    # Sen's interval with its variance multiplied by n / n_eff and a t quantile is Sen's interval at the normal
    # quantile z: scipy's theilslopes, given z's two-sided tail probability (it reads an alpha below 0.5 as that)
    slope, intercept, low, high = theilslopes(y, x, alpha=2 * stats.norm.sf(z))
    return float(slope), float(intercept), float(low), float(high)


def warmup_cut(y) -> int:
    """Leading iterations that sit off the steady-state line fitted to the second half (at most a third)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 6:
        return 0
    x = np.arange(1, n + 1, dtype=float)
    slope, intercept = line(y[n // 2:], x[n // 2:])
    # the spread of every sample around that line: autocorrelated noise wanders further than the second half shows
    residuals = y - (intercept + slope * x)
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    tolerance = max(4 * 1.4826 * mad, NOISE_FLOOR_MB)
    off = np.nonzero(np.abs(y[:n // 3] - (intercept + slope * x[:n // 3])) > tolerance)[0]
    return int(off[-1]) + 1 if len(off) else 0


def growing(y, trend_alpha: float = TREND_ALPHA, confidence: float = 1 - ALPHA) -> bool:
    """Growth as the trend test sees it: Mann-Kendall (Hamed-Rao) below trend_alpha, Sen's interval for independent
    errors above zero, and a net rise. It names a shape; a verdict of growth also needs the interval that allows for
    autocorrelation (theil_sen) above zero."""
    y = np.asarray(y, dtype=float)
    low = theilslopes(y, np.arange(1, len(y) + 1, dtype=float), alpha=confidence)[2]
    return trend_p_value(y) < trend_alpha and low > 0 and float(y[-1] - y[0]) > 0


def shape(y, trend_alpha: float = TREND_ALPHA, confidence: float = 1 - ALPHA) -> str:
    """flat (no growth the trend test sees), plateau (grows then stops), step (a few jumps carry the growth) or linear."""
    y = np.asarray(y, dtype=float)
    if len(y) < 4 or not growing(y, trend_alpha, confidence):
        return "flat"
    steps = np.diff(y)
    total = float(y[-1] - y[0])
    jumps = steps[steps > max(5 * float(np.median(np.abs(steps))), NOISE_FLOOR_MB)]
    if total > 0 and 0 < len(jumps) <= max(1, len(steps) // 10) and jumps.sum() >= 0.7 * total:
        return "step"
    tail = y[-max(len(y) // 3, 4):]
    # the last third grows at under a quarter of the whole rate; Theil-Sen shrugs off a few late jumps, so the last
    # third must also not have risen in level. A label only: 'no leak' needs the plateau rule in verdict()
    if median_slope(tail) < 0.25 * median_slope(y) and _rise(tail) < 0.25 * _rise(y):
        return "plateau"
    return "linear"


def _rise(y) -> float:
    """How much the level rose from the start to the end of a series (medians of its first and last quarter)."""
    k = max(len(y) // 4, 1)
    return float(np.median(y[-k:]) - np.median(y[:k]))


def checkpoints(minimum: int, maximum: int) -> list[int]:
    """The iterations --until-decided looks at: the minimum, then 1.5 times as many each time, and the maximum."""
    looks, at = [], max(min(minimum, maximum), 1)
    while at < maximum:
        looks.append(at)
        at = math.ceil(at * GROWTH)
    return looks + [maximum]


def analyse(values, iterations=None, warmup: int | None = None, threshold_mb: float = 0.05, looks: int = 1,
            cycles: bool = True) -> dict:
    """Everything the verdict rests on, for one memory series (MB, at the given iteration numbers).

    looks: how many times the series is judged (--until-decided); each look spends 1/looks of the trend test's and
    the interval's error (Bonferroni), so that looking repeatedly does not raise false verdicts.
    """
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
    trend_alpha, confidence = TREND_ALPHA / looks, 1 - ALPHA / looks
    steady, xs = y[cut:], x[cut:]
    slope, intercept, low, high = theil_sen(steady, xs, confidence)
    rho = autocorrelation(steady, xs, slope)
    analysis = {
        "n": int(len(y)),
        "n_steady": int(len(steady)),
        "span_iterations": int(xs[-1] - xs[0] + 1) if len(xs) else 0,
        "initial_mb": float(y[0]),
        "final_mb": float(y[-1]),
        "growth_mb": float(y[-1] - y[0]),
        "mb_per_iter_naive": float((y[-1] - y[0]) / (x[-1] - x[0])) if len(y) > 1 else 0.0,
        "warmup": int(x[cut - 1]) if cut else 0,
        "warmup_auto": warmup is None,
        "slope_mb_per_iter": slope,
        "slope_low": low,
        "slope_high": high,
        "confidence": confidence,
        "autocorrelation": rho,
        "n_effective": effective_n(len(steady), rho),
        "intercept_mb": intercept,
        "trend_p": trend_p_value(steady),
        "trend_alpha": trend_alpha,
        "shape": shape(steady, trend_alpha, confidence),
        "per_1000_requests_mb": slope * 1000,
        "threshold_mb_per_iter": threshold_mb,
    }
    analysis.update(verdict(steady, xs, analysis))
    if cycles and analysis["verdict"] == "undecided" and len(steady) >= 2 * MIN_ITERATIONS:
        analysis.update(cyclic(steady, xs, threshold_mb, looks))
    return analysis


def cyclic(steady, xs, threshold_mb: float, looks: int) -> dict:
    """An undecided series that runs in cycles is judged by its troughs (asrbench.stats.periodic); {} when it has no
    clear cycle or its troughs do not decide either."""
    length = periodic.period(steady, xs)
    if length is None:
        return {}
    ty, tx = periodic.troughs(steady, xs, length)
    t = analyse(list(ty), list(tx), 0, threshold_mb, looks, cycles=False)
    found = {"cycle": {"period": length, "troughs": {k: t.get(k) for k in (
        "n", "verdict", "shape", "slope_mb_per_iter", "slope_low", "slope_high", "trend_p", "confidence", "trend_alpha",
        "n_steady", "span_iterations", "threshold_mb_per_iter")}}}
    if t["verdict"] in DECIDED:
        found.update(verdict=t["verdict"], decided_by="troughs", reason=None, more_iterations=None)
    return found


PARALLEL_FROM = 20_000  # series at least this long are analysed side by side, one thread per core (the kernels
                       # release the GIL)


def analyse_all(named: dict, iterations=None, warmup: int | None = None, threshold_mb: float = 0.05,
                looks: int = 1) -> dict:
    """analyse() of every series in `named` (name -> values at the same iterations)."""
    longest = max((len(v) for v in named.values()), default=0)
    if longest < PARALLEL_FROM or len(named) < 2:
        return {name: analyse(v, iterations, warmup, threshold_mb, looks) for name, v in named.items()}
    with ThreadPoolExecutor(max_workers=min(len(named), os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(analyse, v, iterations, warmup, threshold_mb, looks) for name, v in named.items()}
        return {name: f.result() for name, f in futures.items()}


def verdict(steady, xs, a: dict) -> dict:
    """LEAK, minor growth, no leak (interval below the threshold, or a plateau) or undecided, and why.

    LEAK: significant growth (trend test below trend_alpha, interval above zero) of linear or step shape, slope at
    least the threshold. minor growth: significant growth whose whole interval lies below the threshold. no leak: the
    interval's upper end lies below the threshold, or a plateau: the last half of all samples (at least
    MIN_ITERATIONS, all after the warm-up cut) has an interval whose upper end lies below the threshold. Anything
    else is undecided, with the reason and an estimate of how many more iterations would decide it.
    """
    threshold, confidence = a["threshold_mb_per_iter"], a["confidence"]
    span = float(xs[-1] - xs[0] + 1) if len(xs) else 0.0
    unclear = {"shape": "unclear"} if a["shape"] == "flat" else {}  # no significant growth, none excluded either
    if len(steady) < MIN_ITERATIONS:
        spacing = span / len(steady) if len(steady) else 1.0
        return {"verdict": "undecided", "reason": "too few iterations",
                "more_iterations": math.ceil((MIN_ITERATIONS - len(steady)) * spacing), **unclear}
    significant = a["shape"] != "flat" and a["slope_low"] > 0
    if significant and a["shape"] in ("linear", "step") and a["slope_mb_per_iter"] >= threshold:
        return {"verdict": "LEAK"}
    if a["slope_high"] < threshold:
        return {"verdict": "minor growth" if significant else "no leak", "decided_by": "interval"}
    # plateau: memory has stayed flat for the last half of the run, at least as long as it was measured before
    half = max(a["n"] // 2, MIN_ITERATIONS)
    tail = None
    if half < len(steady):
        t_slope, _, t_low, t_high = theil_sen(steady[-half:], xs[-half:], confidence)
        tail = {"from_iteration": int(xs[-half]), "n": half, "slope_mb_per_iter": t_slope,
                "slope_low": t_low, "slope_high": t_high}
        if t_high < threshold:
            return {"verdict": "no leak", "decided_by": "plateau", "shape": "plateau", "tail": tail}
    if a["slope_low"] < threshold <= a["slope_high"]:
        reason = "interval straddles the threshold"
    elif a["shape"] == "plateau":
        reason = "growth may have stopped"
    else:
        reason = "trend not significant"
    # whichever comes first: the whole interval narrowing enough, or the last half's (it gains half the new iterations)
    estimates = [more_iterations(span, a)]
    if tail and tail["slope_mb_per_iter"] < threshold:
        later = more_iterations(float(xs[-1] - xs[-half] + 1), {**a, **tail})
        estimates.append(2 * later if later is not None else None)
    estimates = [e for e in estimates if e is not None]
    return {"verdict": "undecided", "reason": reason, "more_iterations": min(estimates) if estimates else None,
            **({"tail": tail} if tail else {}), **unclear}


def more_iterations(span: float, a: dict) -> int | None:
    """About how many more iterations would narrow the interval enough to decide, if the slope stays where it is.

    A slope's interval narrows as the span of iterations to the power 3/2. Below the threshold the interval's upper
    half must shrink under the gap to the threshold; at or above it, the lower half must clear zero at the trend
    test's stricter level. None when the width is not what keeps it undecided, or when the slope sits so close to
    the threshold that it would take more than ten times the span.
    """
    slope, threshold = a["slope_mb_per_iter"], a["threshold_mb_per_iter"]
    if slope < threshold:
        have, need = a["slope_high"] - slope, threshold - slope
    else:
        strict = stats.norm.isf(a["trend_alpha"] / 2) / stats.norm.isf((1 - a["confidence"]) / 2)
        have, need = (slope - a["slope_low"]) * strict, slope
    if have <= need or need <= 0 or (have / need) ** (2 / 3) > 10:
        return None
    return math.ceil(span * ((have / need) ** (2 / 3) - 1))


def _figure(value: float, *marks: float) -> str:
    """3 significant digits, or as many more as keep the value on its own side of each mark (0, the threshold)."""
    for digits in range(3, 12):
        text = f"{value:.{digits}g}"
        if all((float(text) < m) == (value < m) and (float(text) > m) == (value > m) for m in marks):
            return text
    return repr(value)


def _interval(analysis: dict, threshold: float) -> str:
    return (f"{analysis['slope_mb_per_iter']:+.3g} MB/iter [{_figure(analysis['slope_low'], 0, threshold)}, "
            f"{_figure(analysis['slope_high'], 0, threshold)}]")


def verdict_line(way: str, analysis: dict) -> str:
    """e.g. 'recreate: LEAK +41.5 MB/iter [41.2, 41.8] linear', 'restart: no leak, +0.01 MB/iter [-0.02, 0.04] flat'
    or 'restart: undecided, +0.21 MB/iter [0.08, 0.36]: the trend test is not significant yet (...); about 40 more
    iterations would likely decide it'. The interval printed is always the one the verdict rests on."""
    if not analysis.get("n"):
        return f"{way}: no data"
    threshold = analysis["threshold_mb_per_iter"]
    figures = _interval(analysis, threshold)
    verdict = analysis["verdict"]
    if verdict == "LEAK":
        return f"{way}: LEAK {figures} {analysis['shape']}"
    if verdict == "minor growth":
        return f"{way}: minor growth, {figures} {analysis['shape']} (below the {threshold:g} MB/iter threshold)"
    if analysis.get("decided_by") == "troughs":
        cycle = analysis["cycle"]
        return (f"{way}: {verdict}, troughs of a {cycle['period']}-iteration cycle: "
                f"{_interval(cycle['troughs'], threshold)} {cycle['troughs']['shape']} (the whole run "
                f"{analysis['slope_mb_per_iter']:+.3g} MB/iter, undecided)")
    if verdict == "no leak" and analysis.get("decided_by") == "plateau":
        tail = analysis["tail"]
        return (f"{way}: no leak, plateau since iteration {tail['from_iteration']}: {_interval(tail, threshold)} "
                f"(below the {threshold:g} MB/iter threshold; the whole run {analysis['slope_mb_per_iter']:+.3g} MB/iter)")
    if verdict != "undecided":
        return f"{way}: {verdict}, {figures} {analysis['shape']}"
    more = analysis.get("more_iterations")
    if analysis["reason"] == "too few iterations":
        return (f"{way}: undecided, too few iterations for a verdict ({analysis['n_steady']} after the warm-up cut; "
                f"the statistics need {MIN_ITERATIONS}, so at least {more} more), {figures}")
    level = f"{analysis['confidence'] * 100:.3g} %"
    why = {
        "interval straddles the threshold": f"the {level} interval straddles the {threshold:g} MB/iter threshold",
        "growth may have stopped": "growth may have stopped, but not yet for long enough to show it",
        "trend not significant": (f"the trend test is not significant yet (p = {analysis['trend_p']:.2g}, "
                                  f"needs < {analysis['trend_alpha']:.2g})"),
    }[analysis["reason"]]
    if more is not None:
        return f"{way}: undecided, {figures}: {why}; about {more} more iterations would likely decide it"
    return f"{way}: undecided, {figures}: {why}; more iterations are needed (the interval's width gives no estimate of how many)"
