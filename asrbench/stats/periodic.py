"""Memory that rises and falls back in cycles: a cache refilled every k requests, a collector's cycle, an allocator's
periodic trim. Such a series is autocorrelated at its period, so the interval that allows for autocorrelation stays
wide and the verdict undecided, although every cycle ends where the last one did.

What grows in such a series is its troughs: the least memory of each cycle. So the period is found from the
autocorrelation of the series after its Theil-Sen line is removed (the lag, up to a tenth of the series, where the
autocorrelation peaks after having dipped: a cycle, not the slow decay of autocorrelated noise), the series is cut into
consecutive cycles of that length, and the minimum of each, at its own iteration, is analysed as any series is
(asrbench.stats.verdict.analyse): flat troughs are "no leak", rising troughs "LEAK". benchmarks/interval_coverage.py
measures how often each is called what.
"""

import numpy as np

from .slopes import line

MIN_CYCLES = 10        # a period is looked for only up to a tenth of the series: ten troughs at least
MIN_PEAK = 0.3         # the autocorrelation at the period, and its rise from the dip before it


def autocorrelation(values) -> np.ndarray:
    """The series' autocorrelation at every lag (by FFT)."""
    d = np.asarray(values, dtype=float) - np.mean(values)
    n = len(d)
    spectrum = np.fft.rfft(d, 2 * n)
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / n
    if acov[0] <= 0:
        return np.zeros(n)
    return acov / acov[0]


def period(y, x) -> int | None:
    """The cycle's length in samples, or None when the series has no clear cycle of at most a tenth of its length."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    n = len(y)
    longest = n // MIN_CYCLES
    if longest < 2:
        return None
    slope, intercept = line(y, x)
    acf = autocorrelation(y - (intercept + slope * x))
    lags = np.arange(2, longest + 1)
    best = int(lags[np.argmax(acf[lags])])
    dip = float(np.min(acf[1:best + 1]))
    if acf[best] < MIN_PEAK or acf[best] - dip < MIN_PEAK:
        return None
    return best


def troughs(y, x, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The least value of each whole cycle of `length` samples, and the iteration it was sampled at."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    cycles = len(y) // length
    blocks = y[:cycles * length].reshape(cycles, length)
    at = np.argmin(blocks, axis=1) + np.arange(cycles) * length
    return y[at], x[at]
