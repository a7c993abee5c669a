"""The merge sorts behind asrbench.stats.pairs, compiled by numba (imported only for series longer than
pairs.SMALL). Both release the GIL, so metrics are analysed in threads side by side."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def count_ge_pairs(v):
    """Pairs a < b with v[a] >= v[b] (a bottom-up merge sort)."""
    n = v.size
    a = v.copy()
    b = np.empty_like(a)
    total = 0
    width = 1
    while width < n:
        for start in range(0, n, 2 * width):
            mid = min(start + width, n)
            end = min(start + 2 * width, n)
            i, j, k = start, mid, start
            while i < mid and j < end:
                if a[i] < a[j]:
                    b[k] = a[i]
                    i += 1
                else:
                    b[k] = a[j]
                    total += mid - i
                    j += 1
                k += 1
            while i < mid:
                b[k] = a[i]
                i += 1
                k += 1
            while j < end:
                b[k] = a[j]
                j += 1
                k += 1
        a, b = b, a
        width *= 2
    return total


@njit(cache=True, nogil=True)
def ge_pairs(v, ids, capacity):
    """The pairs a < b with v[a] >= v[b], as (ids[a], ids[b]), at most `capacity` of them; and how many there are."""
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
                    b[k], ib[k] = a[i], ia[i]
                    i += 1
                else:
                    b[k], ib[k] = a[j], ia[j]
                    for t in range(i, mid):
                        if found < capacity:
                            left[found] = ia[t]
                            right[found] = ia[j]
                        found += 1
                    j += 1
                k += 1
            while i < mid:
                b[k], ib[k] = a[i], ia[i]
                i += 1
                k += 1
            while j < end:
                b[k], ib[k] = a[j], ia[j]
                j += 1
                k += 1
        a, b = b, a
        ia, ib = ib, ia
        width *= 2
    return left[:min(found, capacity)], right[:min(found, capacity)], found
