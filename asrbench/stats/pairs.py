"""Order statistics of pairwise slopes and Kendall's pair counts without listing the pairs: O(n log n) per count.

Theil-Sen's slope, Sen's interval and Mann-Kendall's S are all built on the n (n - 1) / 2 pairs of a series. scipy and
pymannkendall list them, which costs O(n^2) time and memory (20,000 iterations: 263 s; 100,000: out of memory). Here:

- For x strictly increasing, the pair (i < j) has slope <= t exactly when r_j <= r_i, r = y - t x. So the number of
  slopes <= t is the number of pairs a merge sort of r finds out of order (count_ge_pairs): O(n log n).
- The k-th smallest slope is found by bracketing it between two values of t (from a random sample of pairs, then by
  interpolating the count), and once the bracket holds few enough slopes, listing just those: the pairs whose order
  changes between r at the bracket's two ends (ge_pairs), each slope computed as scipy computes it,
  (y_j - y_i) / (x_j - x_i). The result is the same float scipy's sort would give, not an approximation.
- Mann-Kendall's S is P - 2 G + T, with G the pairs found out of order in y itself and T the tied pairs.

The comparison r_j <= r_i and the division can disagree for a slope within rounding of t, so each bracket keeps a
margin of slopes on both sides of the one it looks for; a pair misjudged at a bracket's end then only moves among
slopes at that end, never the one selected. Slopes that differ only by roundings (a line plus whole-page noise puts a
million of them within 1e-11 of one another) cannot be told apart by counts: their bracket is widened until its ends
lie where no slope is, and all of them, up to NEAR_TIES, are listed and selected exactly. Only a series with more near-
ties than that (a perfectly straight line of over 5,700 samples) gets a slope a few roundings from scipy's. Small
series (up to DIRECT_PAIRS pairs) list every slope, as scipy does, and up to SMALL samples numpy counts pairs itself,
so numba is not even imported.
"""

import math

import hashlib
from collections import OrderedDict

import numpy as np

DIRECT_PAIRS = 2_000_000     # up to this many pairs (2,000 samples), every slope is listed and sorted once
SMALL = 2_000                # up to this many samples numpy counts pairs directly: numba (the kernels) is not even
                             # imported, which costs a process about 1.5 s
LIST_LIMIT = 4_000_000       # a bracket is narrowed until it holds at most this many slopes (or 8 per sample, if
                             # fewer), which are then listed
MARGIN = 64                  # slopes kept between the one selected and each end of its bracket
NEAR_TIES = 16_000_000       # slopes a bracket of near-ties may list (400 MB while it lasts)
SAMPLE = 2_000_000           # at most this many random pairs (4 per sample) place the first brackets


def count_ge_pairs(v) -> int:
    """Pairs a < b with v[a] >= v[b]: by numpy for short series, else by a merge sort (asrbench.stats.kernels)."""
    v = np.asarray(v, dtype=float)
    if len(v) <= SMALL:
        return int(np.count_nonzero(np.triu(v[:, np.newaxis] >= v[np.newaxis, :], 1)))
    from . import kernels
    return int(kernels.count_ge_pairs(v))


def prepare(y, x=None) -> tuple[np.ndarray, np.ndarray]:
    """y and x as floats, in order of x, which must not repeat (iteration numbers never do)."""
    y = np.asarray(y, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) > 1 and not np.all(np.diff(x) > 0):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        if not np.all(np.diff(x) > 0):
            raise ValueError("x repeats a value: each sample needs its own iteration number")
    return y, x


def count_at_most(y, x, t: float) -> int:
    """How many pairwise slopes are <= t."""
    return int(count_ge_pairs(y - t * x))


def slopes_between(y, x, lo: float, hi: float, capacity: int) -> tuple[np.ndarray, int]:
    """The slopes in (lo, hi] (as many as capacity), each computed as scipy does, and how many there are."""
    n = len(y)
    from . import kernels
    order = n - 1 - np.argsort((y - lo * x)[::-1], kind="stable")  # by r at lo, later samples first among equals
    left, right, found = kernels.ge_pairs((y - hi * x)[order], order.astype(np.int64), capacity)
    keep = left < right  # a pair listed the other way round is one whose order did not really change
    i, j = left[keep], right[keep]
    return (y[j] - y[i]) / (x[j] - x[i]), found


def all_slopes(y, x) -> np.ndarray:
    """Every pairwise slope, as scipy.stats.theilslopes lists them."""
    deltax = x[:, np.newaxis] - x
    deltay = y[:, np.newaxis] - y
    return deltay[deltax > 0] / deltax[deltax > 0]


_SORTED: OrderedDict = OrderedDict()  # the last few short series' sorted slopes: each is asked several ranks


def _sorted_slopes(y, x) -> np.ndarray:
    key = hashlib.blake2b(y.tobytes() + b"|" + x.tobytes(), digest_size=16).digest()
    if key not in _SORTED:
        _SORTED[key] = np.sort(all_slopes(y, x))
        if len(_SORTED) > 4:
            _SORTED.popitem(last=False)
    return _SORTED[key]


def select(y, x, ranks) -> dict:
    """The slopes at the given ranks (0-based, among all pairwise slopes sorted ascending), exactly."""
    y, x = prepare(y, x)
    n = len(y)
    total = n * (n - 1) // 2
    ranks = sorted({int(r) for r in ranks})
    if any(r < 0 or r >= total for r in ranks):
        raise ValueError(f"ranks must lie in [0, {total})")
    if total <= DIRECT_PAIRS:
        slopes = _sorted_slopes(y, x)
        return {r: float(slopes[r]) for r in ranks}
    rng = np.random.default_rng(0)
    m = min(SAMPLE, max(4 * n, 100_000), total)
    i, j = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = i != j
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    sample = np.sort((y[j] - y[i]) / (x[j] - x[i]))
    found, counts = {}, {}

    def count(t):
        if t not in counts:
            counts[t] = count_at_most(y, x, t)
        return counts[t]

    for rank in ranks:
        if rank not in found:
            found.update(_select_near(y, x, rank, [r for r in ranks if r not in found], total, sample, count))
    return {r: found[r] for r in ranks}


def _select_near(y, x, rank, pending, total, sample, count) -> dict:
    """The slope at `rank`, and at every pending rank that falls well inside the same final bracket."""
    m = len(sample)
    limit = min(LIST_LIMIT, max(8 * len(y), 100_000))
    q = (rank + 0.5) / total
    width = 5 * math.sqrt(q * (1 - q) / m) + 10 / m
    below, above = max(rank - MARGIN, 0), min(rank + MARGIN, total - 1)  # count(lo) <= below, count(hi) > above
    lo = float(sample[max(int((q - width) * m), 0)])
    hi = float(sample[min(int((q + width) * m), m - 1)])
    # a value the sample repeats near the rank is one a great many pairs share (a flat series: 0): is the rank
    # among them? Listing them could take more memory than there is.
    window = sample[max(int((q - width) * m), 0):min(int((q + width) * m), m - 1) + 1]
    values, repeats = np.unique(window, return_counts=True)
    often = max(2, m * limit // (4 * total))  # the sample holds a share of all pairs too large to list
    for v in values[repeats >= often][np.argsort(-repeats[repeats >= often])][:3]:
        tied = _tie_counts(y, x, float(v))
        if tied[0] <= rank < tied[1]:
            inside = [r for r in pending if tied[0] <= r < tied[1]]
            if v == 0 or tied[1] - tied[0] > NEAR_TIES:  # exact for 0; else all lie within rounding of v
                return {r: float(v) for r in inside}
            step = 8 * _resolution(y, x, float(v))  # slopes within rounding of v but not v: list them, select exactly
            near, _ = slopes_between(y, x, float(v) - step, float(v) + step, tied[1] - tied[0] + 16)
            near.sort()
            return {r: float(near[min(r - tied[0], len(near) - 1)]) for r in inside}
    step = max(float(sample[-1] - sample[0]), abs(lo), abs(hi), 1e-300)
    while count(lo) > below:  # widen until the bracket holds the rank with its margin (all slopes, at worst)
        lo, step = lo - step, step * 2
    step = max(float(sample[-1] - sample[0]), abs(lo), abs(hi), 1e-300)
    while count(hi) <= above:
        hi, step = hi + step, step * 2
    c_lo, c_hi = count(lo), count(hi)
    resolution = _resolution(y, x, max(abs(lo), abs(hi)))
    while c_hi - c_lo > limit and hi - lo > resolution:
        share = max(limit / 4, 4 * MARGIN) / (c_hi - c_lo)
        frac = (rank - c_lo) / (c_hi - c_lo)
        # pivots around where the rank would be if the count grew linearly; where it does not, the bracket's quarters
        for fractions in ((max(frac - share, 0.0), min(frac + share, 1.0)), (0.25, 0.5, 0.75)):
            before = (lo, hi)
            for t in [lo + (hi - lo) * f for f in fractions]:
                if lo < t < hi:
                    c = count(t)
                    if c <= below:
                        lo, c_lo = t, c
                    elif c > above:
                        hi, c_hi = t, c
            if (lo, hi) != before:
                break
        else:
            break  # adjacent floats, or the margins span the bracket: list it as it is
    near_ties = hi - lo < 8 * resolution
    if near_ties:  # slopes that differ by roundings: put the ends where no slope is, so that their counts are sure
        mid = lo + (hi - lo) / 2
        lo, hi = mid - 8 * resolution, mid + 8 * resolution
        c_lo, c_hi = count(lo), count(hi)
    # a bracket the counts cannot narrow holds slopes that agree to within rounding (a perfectly straight series):
    # up to NEAR_TIES of them are listed and selected exactly; beyond that, the slope at the rank's share of those
    # listed, at most a few roundings from scipy's
    capacity = min(c_hi - c_lo, max(4 * limit, NEAR_TIES)) + 2 * MARGIN + 16
    slopes, listed = slopes_between(y, x, lo, hi, capacity)
    if listed > capacity:
        slopes.sort()
        return {r: float(slopes[min(int((r - c_lo) / max(c_hi - c_lo, 1) * len(slopes)), len(slopes) - 1)])
                for r in pending if c_lo <= r < c_hi}
    slopes.sort()
    low_margin = 0 if c_lo == 0 or near_ties else MARGIN
    high_margin = 0 if c_hi == total or near_ties else MARGIN
    out = {}
    for r in pending:
        at = r - c_lo
        if r == rank or low_margin <= at < len(slopes) - high_margin:
            out[r] = float(slopes[min(max(at, 0), len(slopes) - 1)])
    return out


def _resolution(y, x, t: float) -> float:
    """How close two slopes near t may be before r_j <= r_i can misjudge which is larger: a few hundred roundings
    of the largest r, over the smallest step in x."""
    return 256 * np.finfo(float).eps * (float(np.max(np.abs(y))) + abs(t) * float(np.max(np.abs(x)))) / \
        float(np.min(np.diff(x)))


def _tie_counts(y, x, v: float) -> tuple[int, int]:
    """How many slopes are < v and <= v. Exact for v = 0 (r is y itself); else r is taken at v -+ a small multiple
    of the resolution, which holds as long as no other slope lies that close to v."""
    if v == 0:
        at_most = int(count_ge_pairs(y))
        _, tied = np.unique(y, return_counts=True)
        return at_most - int(np.sum(tied.astype(np.int64) * (tied.astype(np.int64) - 1) // 2)), at_most
    step = 8 * _resolution(y, x, v)
    return count_at_most(y, x, v - step), count_at_most(y, x, v + step)


def kendall_s(y) -> int:
    """Mann-Kendall's S: pairs rising minus pairs falling, in order of position."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    _, tied = np.unique(y, return_counts=True)
    ties = int(np.sum(tied.astype(np.int64) * (tied.astype(np.int64) - 1) // 2))
    return n * (n - 1) // 2 - 2 * int(count_ge_pairs(y)) + ties
