import numpy as np
import pytest

from asrbench import stats


def noisy(slope, n=60, noise=2.0, seed=0, start=100.0):
    rng = np.random.default_rng(seed)
    return start + slope * np.arange(n) + rng.uniform(0, noise, n)


def test_theil_sen_recovers_an_exact_line_and_a_narrow_interval():
    slope, intercept, low, high = stats.theil_sen([10 + 3 * i for i in range(1, 21)])
    assert slope == pytest.approx(3.0)
    assert intercept == pytest.approx(10.0)
    assert low == pytest.approx(3.0) and high == pytest.approx(3.0)


def test_theil_sen_ignores_one_outlier():
    y = [100.0 + 0.5 * i for i in range(30)]
    y[10] += 500
    assert stats.theil_sen(y)[0] == pytest.approx(0.5)


def test_a_constant_series_has_no_trend():
    assert stats.trend_p_value([5.0] * 20) == 1.0
    analysis = stats.analyse([5.0] * 20)
    assert (analysis["shape"], analysis["verdict"]) == ("flat", "no leak")


def test_warmup_growth_is_cut_and_not_called_a_leak():
    y = [50, 80, 95] + list(noisy(0.0, n=57, noise=0.5))
    analysis = stats.analyse(y)
    assert analysis["warmup"] == 3
    assert analysis["verdict"] == "no leak"


def test_given_warmup_overrides_detection():
    analysis = stats.analyse([50, 80, 95] + [100.0] * 20, warmup=1)
    assert analysis["warmup"] == 1 and analysis["warmup_auto"] is False


def test_linear_leak_is_a_leak_with_its_slope_inside_the_interval():
    analysis = stats.analyse(noisy(0.5))
    assert analysis["verdict"] == "LEAK" and analysis["shape"] == "linear"
    assert analysis["slope_low"] <= 0.5 <= analysis["slope_high"]
    assert analysis["per_1000_requests_mb"] == pytest.approx(analysis["slope_mb_per_iter"] * 1000)


def test_growth_that_stops_is_a_plateau_not_linear():
    y = 100 + np.minimum(np.arange(60), 40) * 1.0 + np.random.default_rng(3).uniform(0, 1, 60)
    assert stats.analyse(y)["shape"] in ("plateau", "flat")
    assert stats.shape(y) == "plateau"


def test_rare_jumps_are_a_step():
    y = 100 + 10 * (np.arange(60) // 20) + np.random.default_rng(1).uniform(0, 0.2, 60)
    assert stats.shape(y) == "step"


def test_significant_growth_below_threshold_is_minor():
    analysis = stats.analyse(noisy(0.02, noise=0.05), threshold_mb=0.05)
    assert analysis["verdict"] == "minor growth"


def test_sparse_series_use_their_iteration_numbers():
    xs = [1, 10, 20, 30, 40, 50]
    analysis = stats.analyse([100 + 2 * x for x in xs], iterations=xs)
    assert analysis["slope_mb_per_iter"] == pytest.approx(2.0)
    assert analysis["mb_per_iter_naive"] == pytest.approx(2.0)


def test_verdict_lines_read_as_the_readme_shows():
    assert stats.verdict_line("recreate", stats.analyse(noisy(41.5, noise=0.5))).startswith("recreate: LEAK +41.")
    assert stats.verdict_line("restart", stats.analyse([100.0] * 30)) == "restart: no leak, +0 MB/iter [0, 0] flat"
