"""The statistics' numbers as asrbench/stats.py computed them before asrbench/stats became a package (commit a930b5a):
Theil-Sen and Sen's interval by scipy.stats.theilslopes, Mann-Kendall by pymannkendall, both listing every pair of
iterations, O(n^2). tests/test_stats_scale.py and benchmarks/scaling.py compare the package with them.

Only the numbers are the old code's: analyse() and verdict() are the package's own functions, run with the functions
below in their globals, so what is compared is the numerics and nothing else (the series in cycles, which the old code
did not judge, are left out).
"""

import importlib
import math
import types

import numpy as np
import pymannkendall
from scipy import stats

_package = importlib.import_module("asrbench.stats.verdict")  # the module (asrbench.stats.verdict is also a function)
from asrbench.stats.verdict import ALPHA, NOISE_FLOOR_MB, TREND_ALPHA, _rise, _xy, interval_z


def autocorrelation(y, x=None, slope: float | None = None) -> float:
    """Lag-1 autocorrelation of the ranks of the series after removing its Theil-Sen line (Hamed and Rao's ranks)."""
    y, x = _xy(y, x)
    if len(y) < 3:
        return 0.0
    if slope is None:
        slope = stats.theilslopes(y, x).slope
    ranks = stats.rankdata(y - slope * x)
    d = ranks - ranks.mean()
    total = float(d @ d)
    return float(d[1:] @ d[:-1] / total) if total > 0 else 0.0

def theil_sen(y, x=None, confidence: float = 1 - ALPHA) -> tuple[float, float, float, float]:
    """Slope, intercept and the slope's interval, widened for autocorrelation (see the module's docstring)."""
    y, x = _xy(y, x)
    if len(y) < 2:
        return 0.0, float(y[0]) if len(y) else 0.0, 0.0, 0.0
    slope = stats.theilslopes(y, x).slope
    z = interval_z(len(y), autocorrelation(y, x, slope), confidence)
    # Sen's interval with its variance multiplied by n / n_eff and a t quantile is Sen's interval at the normal
    # quantile z: scipy's own theilslopes, given z's two-sided tail probability (it reads an alpha below 0.5 as that)
    result = stats.theilslopes(y, x, alpha=2 * stats.norm.sf(z))
    return float(result.slope), float(result.intercept), float(result.low_slope), float(result.high_slope)

def warmup_cut(y) -> int:
    """Leading iterations that sit off the steady-state line fitted to the second half (at most a third)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 6:
        return 0
    x = np.arange(1, n + 1, dtype=float)
    line = stats.theilslopes(y[n // 2:], x[n // 2:])
    # the spread of every sample around that line: autocorrelated noise wanders further than the second half shows
    residuals = y - (line.intercept + line.slope * x)
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    tolerance = max(4 * 1.4826 * mad, NOISE_FLOOR_MB)
    cut = 0
    for i in range(n // 3):
        if abs(y[i] - (line.intercept + line.slope * x[i])) > tolerance:
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

def growing(y, trend_alpha: float = TREND_ALPHA, confidence: float = 1 - ALPHA) -> bool:
    """Growth as the trend test sees it: Mann-Kendall (Hamed-Rao) below trend_alpha, Sen's interval for independent
    errors above zero, and a net rise. It names a shape; a verdict of growth also needs the interval that allows for
    autocorrelation (theil_sen) above zero."""
    y = np.asarray(y, dtype=float)
    low = stats.theilslopes(y, np.arange(1, len(y) + 1, dtype=float), alpha=confidence).low_slope
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
    if stats.theilslopes(tail).slope < 0.25 * stats.theilslopes(y).slope and _rise(tail) < 0.25 * _rise(y):
        return "plateau"
    return "linear"

_NUMBERS = {f.__name__: f for f in (autocorrelation, theil_sen, warmup_cut, trend_p_value, growing, shape)}
_GLOBALS = {**vars(_package), **_NUMBERS}
for _name in ("verdict", "analyse"):
    _GLOBALS[_name] = types.FunctionType(getattr(_package, _name).__code__, _GLOBALS, _name,
                                         getattr(_package, _name).__defaults__)


def analyse(values, iterations=None, warmup=None, threshold_mb: float = 0.05, looks: int = 1) -> dict:
    return _GLOBALS["analyse"](values, iterations, warmup, threshold_mb, looks, cycles=False)


def analyse_all(named: dict, iterations=None, warmup=None, threshold_mb: float = 0.05, looks: int = 1) -> dict:
    return {name: analyse(v, iterations, warmup, threshold_mb, looks) for name, v in named.items()}


def __getattr__(name):  # everything else (median, verdict_line, ...) is the package's
    return getattr(_package, name)
