"""Theil-Sen's slope and Sen's interval, as scipy.stats.theilslopes gives them, in O(n log n) (asrbench.stats.pairs).

The values are scipy's own to the last bit: the same pairwise slopes, the same ranks for the interval's ends (Sen
1968, eq. 2.6, with ties in y), the same median and intercept. Only the pairs are never listed.
"""

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from ._scipy import stats

from . import pairs

_CACHE: OrderedDict = OrderedDict()  # one series is asked for its slopes several times per analysis
_CACHE_SIZE = 64
_LOCK = threading.Lock()  # metrics are analysed in threads (asrbench.stats.verdict.analyse_all)


def _ranked(y, x, ranks) -> dict:
    """The slopes at these ranks, from what is known of this series already and a selection of the rest. The key
    ignores where x starts: a series at iterations 5..n and the same values at 0..n-5 have the same slopes."""
    key = hashlib.blake2b(y.tobytes() + b"|" + (x - x[0]).tobytes(), digest_size=16).digest()
    with _LOCK:
        known = dict(_CACHE.get(key, {}))
    missing = [r for r in ranks if r not in known]
    if missing:
        known.update(pairs.select(y, x, missing))
        with _LOCK:
            _CACHE.setdefault(key, {}).update(known)
            _CACHE.move_to_end(key)
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return known


def _median_ranks(total: int) -> list[int]:
    return [total // 2] if total % 2 else [total // 2 - 1, total // 2]


def median_slope(y, x=None) -> float:
    """The median of all pairwise slopes (np.median's, the mean of the two middle ones for an even count)."""
    y, x = pairs.prepare(y, x)
    total = len(y) * (len(y) - 1) // 2
    if total == 0:
        raise ValueError("a slope needs at least two samples")
    return _median(_ranked(y, x, _median_ranks(total)), total)


def _median(found: dict, total: int) -> float:
    if total % 2:
        return found[total // 2]
    return float(np.mean([found[total // 2 - 1], found[total // 2]]))  # as np.median takes the middle two


def theilslopes(y, x=None, alpha: float = 0.95) -> tuple[float, float, float, float]:
    """scipy.stats.theilslopes(y, x, alpha): slope, intercept, and the interval's low and high slope."""
    y, x = pairs.prepare(y, x)
    n = len(y)
    if n < 2:
        raise ValueError("`x` and `y` must have length at least 2.")
    total = n * (n - 1) // 2
    if alpha > 0.5:
        alpha = 1.0 - alpha
    z = stats.norm.ppf(alpha / 2.0)
    _, tied = np.unique(y, return_counts=True)
    tied = tied[tied > 1]
    tied = tied.astype(np.int64)  # scipy sums numpy integers too
    sigsq = 1 / 18.0 * (n * (n - 1) * (2 * n + 5) - int(np.sum(tied * (tied - 1) * (2 * tied + 5))))
    try:
        sigma = np.sqrt(sigsq)
        upper = min(int(np.round((total - z * sigma) / 2.0)), total - 1)
        lower = max(int(np.round((total + z * sigma) / 2.0)) - 1, 0)
    except (ValueError, OverflowError):
        lower = upper = None
    found = _ranked(y, x, _median_ranks(total) + [r for r in (lower, upper) if r is not None])
    slope = _median(found, total)
    intercept = float(np.median(y) - slope * np.median(x))
    if lower is None:
        return slope, intercept, float("nan"), float("nan")
    return slope, intercept, found[lower], found[upper]


def line(y, x=None) -> tuple[float, float]:
    """Theil-Sen's slope and scipy's intercept for it (median of y minus the slope times the median of x)."""
    y, x = pairs.prepare(y, x)
    slope = median_slope(y, x)
    return slope, float(np.median(y) - slope * np.median(x))
