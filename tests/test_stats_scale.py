"""The O(n log n) statistics (asrbench.stats.pairs, slopes, trend) against the O(n^2) code they replaced
(tests/reference_stats.py: asrbench/stats.py as it was, on scipy's theilslopes and pymannkendall): the same slope,
interval, p-value and verdict on the project's seeded series, with the fast path forced (every slope selected by
counting, brackets small enough to be narrowed) and with the default one."""

import math

import numpy as np
import pytest

import reference_stats
from asrbench import stats
from asrbench.stats import pairs
from benchmarks.interval_coverage import NOISE, memory_series

SERIES = [(kind, n, slope, seed) for kind in NOISE for n, seed in ((30, 1), (200, 2), (2000, 3))
          for slope in (0.0, 0.02, 0.1)]


def quantised(y):
    return np.round(np.asarray(y) * 256) / 256  # RSS moves in whole KB: many tied values and tied slopes


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.fixture(params=["forced", "default"])
def path(request, monkeypatch):
    if request.param == "forced":
        monkeypatch.setattr(pairs, "DIRECT_PAIRS", 0)
        monkeypatch.setattr(pairs, "LIST_LIMIT", 2000)
        monkeypatch.setattr(pairs, "SAMPLE", 5000)
    return request.param


@pytest.mark.parametrize("kind,n,slope,seed", SERIES)
def test_the_analysis_is_the_old_one_to_the_last_bit(kind, n, slope, seed, path):
    y = memory_series(kind, n, slope, seed)
    for series in (y, quantised(y)):
        old, new = reference_stats.analyse(list(series)), stats.analyse(list(series))
        new = {k: new[k] for k in old}  # every figure the old analysis gave (the new one adds a few)
        assert same(old, new), {k: (old.get(k), new.get(k)) for k in old if not same(old.get(k), new.get(k))}


def test_selected_slopes_are_scipys_sorted_slopes_at_every_rank_asked(monkeypatch):
    monkeypatch.setattr(pairs, "DIRECT_PAIRS", 0)
    monkeypatch.setattr(pairs, "LIST_LIMIT", 3000)
    rng = np.random.default_rng(7)
    n = 1500
    x = np.arange(1, n + 1, dtype=float)
    for y in (rng.normal(0, 1, n) + 0.001 * x,                       # distinct slopes
              np.round(rng.normal(0, 2, n)) * 4 / 1024,              # half the pairs tied at slope 0
              4 / 1024 * (x // 40) + np.round(rng.normal(0, 1, n)) * 4 / 1024):  # steps
        every = np.sort(pairs.all_slopes(y, x))
        ranks = [0, 1, 100, len(every) // 3, len(every) // 2 - 1, len(every) // 2, len(every) - 2, len(every) - 1]
        got = pairs.select(y, x, ranks)
        assert [got[r] for r in ranks] == [float(every[r]) for r in ranks]


def test_kendall_s_counts_rising_minus_falling_pairs():
    y = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 0.0, 2.0])
    s = sum(np.sign(y[j] - y[i]) for i in range(len(y)) for j in range(i + 1, len(y)))
    assert pairs.kendall_s(y) == s


def test_repeated_iteration_numbers_are_refused():
    with pytest.raises(ValueError, match="repeats"):
        stats.theilslopes([1.0, 2.0, 3.0], [1, 1, 2])


def test_the_compiled_count_is_numpys_count():
    from asrbench.stats import kernels
    rng = np.random.default_rng(11)
    for v in (rng.normal(size=777), np.round(rng.normal(size=1000) * 3), np.zeros(50), np.arange(300.0)[::-1]):
        assert int(kernels.count_ge_pairs(v)) == pairs.count_ge_pairs(v)


def test_a_short_analysis_does_not_load_numba():
    import subprocess
    import sys
    code = ("import sys, numpy as np; from asrbench import stats; "
            "stats.analyse(list(np.random.default_rng(0).normal(size=2000))); print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_slopes_that_differ_only_by_rounding_are_still_scipys():
    """A line plus whole-page noise: a million slopes lie within a few roundings of 0.001, too close for the counts to
    tell apart; they are listed and selected exactly. A perfectly straight series of 6,007 samples has all its 18
    million slopes that close (more than pairs.NEAR_TIES): the result is then within a few roundings of scipy's."""
    from scipy import stats as scipy_stats
    rng = np.random.default_rng(1)
    n = 3000
    x = np.arange(1, n + 1, dtype=float)
    y = 300 + 0.001 * np.arange(n) + np.round(rng.normal(0, 1, n)) * 4 / 1024
    assert stats.theilslopes(y, x, alpha=0.95) == tuple(map(float, scipy_stats.theilslopes(y, x, alpha=0.95)))
    n = 6007
    x = np.arange(1, n + 1, dtype=float)
    y = 300 + 0.001 * np.arange(n)
    ours, theirs = stats.theilslopes(y, x, alpha=0.95), scipy_stats.theilslopes(y, x, alpha=0.95)
    assert all(abs(a - b) <= 8 * np.spacing(0.001) for a, b in zip(ours[2:], (theirs[2], theirs[3])))
    assert abs(ours[0] - theirs[0]) <= 8 * np.spacing(0.001)


def test_a_read_only_package_caches_the_compiled_kernels_in_a_temporary_folder():
    import os
    import subprocess
    import sys
    code = ("import os; os.access = lambda *a, **k: False; import numpy as np; from asrbench.stats import kernels; "
            "print(os.environ['NUMBA_CACHE_DIR'], kernels.count_ge_pairs(np.array([3.0, 1.0, 2.0])))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.split()[0].endswith("asrbench-numba") and out.stdout.split()[1] == "2", \
        out.stdout + out.stderr
