"""The statistics' numbers as asrbench/stats.py computed them before asrbench/stats became a package (commit a930b5a):
Theil-Sen and Sen's interval by scipy.stats.theilslopes, Mann-Kendall by pymannkendall, both listing every pair of
iterations, O(n^2). tests/test_stats_scale.py and benchmarks/scaling.py compare the package with them.

Only the primitives below are the old code's: the package's own functions (autocorrelation, theil_sen, warmup_cut,
growing, shape, verdict, analyse) run with them in their globals, so what is compared is the numerics and nothing
else (the series in cycles, which the old code did not judge, are left out).
"""

import importlib
import math
import types

import numpy as np
import pymannkendall
from scipy import stats

_package = importlib.import_module("asrbench.stats.verdict")  # the module (asrbench.stats.verdict is also a function)


def median_slope(y, x=None) -> float:
    return float(stats.theilslopes(y, x).slope)


def theilslopes(y, x=None, alpha: float = 0.95) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in stats.theilslopes(y, x, alpha=alpha))


def line(y, x=None) -> tuple[float, float]:
    result = stats.theilslopes(y, x)
    return float(result.slope), float(result.intercept)


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


_GLOBALS = {**vars(_package), "median_slope": median_slope, "theilslopes": theilslopes, "line": line,
            "trend_p_value": trend_p_value}
for _name in ("autocorrelation", "theil_sen", "warmup_cut", "growing", "shape", "verdict", "analyse"):
    _f = getattr(_package, _name)
    _GLOBALS[_name] = types.FunctionType(_f.__code__, _GLOBALS, _name, _f.__defaults__)


def analyse(values, iterations=None, warmup=None, threshold_mb: float = 0.05, looks: int = 1) -> dict:
    return _GLOBALS["analyse"](values, iterations, warmup, threshold_mb, looks, cycles=False)


def analyse_all(named: dict, iterations=None, warmup=None, threshold_mb: float = 0.05, looks: int = 1) -> dict:
    return {name: analyse(v, iterations, warmup, threshold_mb, looks) for name, v in named.items()}


def theil_sen(y, x=None, confidence: float = 1 - _package.ALPHA):
    return _GLOBALS["theil_sen"](y, x, confidence)


def __getattr__(name):  # everything else (median, verdict_line, ...) is the package's
    return getattr(_package, name)
