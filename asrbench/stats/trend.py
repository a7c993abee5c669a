"""Mann-Kendall's trend test with Hamed and Rao's (1998) variance correction, as pymannkendall computes it, in
O(n log n): S from a merge sort (asrbench.stats.pairs), Sen's slope without listing the pairs, and the rank
autocorrelation by FFT beyond FFT_FROM samples (pymannkendall's np.correlate is O(n^2)).
"""

import math

import numpy as np
from ._scipy import signal, stats

from . import pairs, slopes

FFT_FROM = 20_000  # below this, the autocorrelation and its sum are pymannkendall's own operations, in its order


def _variance(y) -> float:
    """Var(S) with ties (pymannkendall's __variance_s)."""
    n = len(y)
    _, tp = np.unique(y, return_counts=True)
    if len(tp) == n:
        return (n * (n - 1) * (2 * n + 5)) / 18
    tp = tp.astype(float)
    return (n * (n - 1) * (2 * n + 5) - np.sum(tp * (tp - 1) * (2 * tp + 5))) / 18


def _acf(ranks) -> np.ndarray:
    """Autocorrelation of the ranks at every lag (pymannkendall's __acf)."""
    d = ranks - ranks.mean()
    n = len(d)
    if n < FFT_FROM:
        acov = (np.correlate(d, d, "full") / (n * np.ones(2 * n - 1)))[n - 1:]
    else:
        acov = signal.fftconvolve(d, d[::-1], mode="full")[n - 1:] / n
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant series has no autocorrelation to speak of
        return acov / acov[0]


def _p(s: int, var_s: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        if s > 0:
            z = (s - 1) / np.sqrt(var_s)
        elif s < 0:
            z = (s + 1) / np.sqrt(var_s)
        else:
            z = 0.0
        return float(2 * (1 - stats.norm.cdf(abs(z))))


def original_p(y) -> float:
    """pymannkendall.original_test(y).p"""
    y = np.asarray(y, dtype=float)
    return _p(pairs.kendall_s(y), _variance(y))


def hamed_rao_p(y, alpha: float = 0.05) -> float:
    """pymannkendall.hamed_rao_modification_test(y, alpha).p; nan where its variance is not positive."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 3:
        return float("nan")
    s, var_s = pairs.kendall_s(y), _variance(y)
    slope = slopes.median_slope(y, np.arange(n, dtype=float))
    acf = _acf(stats.rankdata(y - np.arange(1, n + 1) * slope))
    bound = stats.norm.ppf(1 - alpha / 2) / np.sqrt(n)
    if n < FFT_FROM:
        sni = 0
        for i in range(1, n):
            if not (acf[i] <= bound and acf[i] >= -bound):
                sni += (n - i) * (n - i - 1) * (n - i - 2) * acf[i]
    else:
        lags = np.arange(1, n, dtype=float)
        significant = ~((acf[1:] <= bound) & (acf[1:] >= -bound))
        sni = float(np.sum(((n - lags) * (n - lags - 1) * (n - lags - 2) * acf[1:])[significant]))
    return _p(s, var_s * (1 + (2 / (n * (n - 1) * (n - 2))) * sni))


def trend_p_value(y) -> float:
    """Mann-Kendall trend test with the Hamed-Rao variance correction, which tolerates autocorrelated series; the
    plain test where the correction leaves no variance (a perfect line)."""
    y = np.asarray(y, dtype=float)
    if len(y) < 4 or float(np.ptp(y)) == 0.0:
        return 1.0
    p = hamed_rao_p(y)
    if math.isnan(p):
        p = original_p(y)
    return 1.0 if math.isnan(p) else float(p)
