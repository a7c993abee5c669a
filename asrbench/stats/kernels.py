"""The merge sorts behind asrbench.stats.pairs, compiled by numba (imported only for series longer than
pairs.SMALL). Both release the GIL, so metrics are analysed in threads side by side."""

import os
import tempfile
from pathlib import Path

import numpy as np

# numba caches the compiled kernels beside this file; where the package is read-only (an installed image run as
# another user) it would refuse to compile at all ("no locator available"), so the cache goes to a temporary folder
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "asrbench-numba")

from numba import njit  # noqa: E402


@njit(cache=True, nogil=True)
def _merge(v, ids, capacity, listing):
    """A bottom-up merge sort of v counting the pairs a < b with v[a] >= v[b]; when listing, also the first
    `capacity` of them as (ids[a], ids[b])."""
    n = v.size
    a, ia = v.copy(), ids.copy()
    b, ib = np.empty_like(a), np.empty_like(ia)
    left = np.empty(capacity, np.int64)
    right = np.empty(capacity, np.int64)
    found = 0
    width = 1
    while width < n:
        for start in range(0, n, 2 * width):
            mid = min(start + width, n)
            end = min(start + 2 * width, n)
            i, j, k = start, mid, start
            while i < mid and j < end:
                if a[i] < a[j]:
                    b[k] = a[i]
                    if listing:
                        ib[k] = ia[i]
                    i += 1
                else:
                    b[k] = a[j]
                    if listing:
                        ib[k] = ia[j]
                        for t in range(i, min(mid, i + capacity - found)):
                            left[found + t - i] = ia[t]
                            right[found + t - i] = ia[j]
                    found += mid - i
                    j += 1
                k += 1
            while i < mid:
                b[k] = a[i]
                if listing:
                    ib[k] = ia[i]
                i += 1
                k += 1
            while j < end:
                b[k] = a[j]
                if listing:
                    ib[k] = ia[j]
                j += 1
                k += 1
        a, b = b, a
        ia, ib = ib, ia
        width *= 2
    kept = min(found, capacity)
    return left[:kept], right[:kept], found


@njit(cache=True, nogil=True)
def count_ge_pairs(v):
    """Pairs a < b with v[a] >= v[b]."""
    return _merge(v, np.empty(0, np.int64), 0, False)[2]


@njit(cache=True, nogil=True)
def ge_pairs(v, ids, capacity):
    """The pairs a < b with v[a] >= v[b], as (ids[a], ids[b]), at most `capacity` of them; and how many there are."""
    return _merge(v, ids, capacity, True)
