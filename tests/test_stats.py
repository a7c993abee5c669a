import numpy as np
import pytest

from asrbench import stats
from benchmarks.interval_coverage import NOISE, memory_series


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


# --- three verdicts that never contradict their interval ---------------------------------------------------------

THRESHOLD = 0.05


def printed_interval(line: str) -> tuple[float, float]:
    """The [low, high] printed on a verdict line: the interval the verdict rests on."""
    low, high = line.split("[", 1)[1].split("]", 1)[0].split(",")
    return float(low), float(high)


@pytest.mark.parametrize("name, series", [
    ("5 iterations of a clean 5 MB each", lambda seed: noisy(5.0, n=5, noise=0.3, seed=seed)),
    ("30 iterations, 0.3 MB/iter under 3 MB of noise", lambda seed: noisy(0.3, n=30, noise=3.0, seed=seed)),
    ("30 iterations, 0.1 MB/iter under 2 MB of noise", lambda seed: noisy(0.1, n=30, noise=2.0, seed=seed)),
    ("interrupted after 2 iterations", lambda seed: noisy(0.0, n=2, seed=seed)),
])
def test_the_issues_examples_are_leak_or_undecided_never_no_leak(name, series):
    for seed in range(25):
        analysis = stats.analyse(series(seed))
        assert analysis["verdict"] in ("LEAK", "undecided"), (name, seed, stats.verdict_line("w", analysis))


def test_fewer_iterations_than_the_statistics_need_give_no_verdict():
    for n in range(1, stats.MIN_ITERATIONS):
        analysis = stats.analyse([100 + 5.0 * i for i in range(n)])
        assert (analysis["verdict"], analysis["reason"]) == ("undecided", "too few iterations")
        assert analysis["more_iterations"] == stats.MIN_ITERATIONS - n
        line = stats.verdict_line("recreate", analysis)
        assert line.startswith("recreate: undecided, too few iterations for a verdict") and "no leak" not in line


def test_no_printed_verdict_contradicts_its_interval():
    """Series of every kind near and far from the threshold: a verdict and the interval printed with it agree."""
    seen = set()
    for slope in (0.0, 0.01, 0.03, 0.05, 0.08, 0.2, 1.0):
        for kind in NOISE:
            for n in (12, 25, 60):
                for seed in range(6):
                    analysis = stats.analyse(memory_series(kind, n, slope, seed), threshold_mb=THRESHOLD)
                    line = stats.verdict_line("w", analysis)
                    low, high = printed_interval(line)
                    verdict = analysis["verdict"]
                    seen.add(verdict)
                    if verdict in ("no leak", "minor growth"):
                        assert high < THRESHOLD, line
                    if verdict in ("LEAK", "minor growth"):
                        assert low > 0, line
                    if verdict == "LEAK":
                        assert analysis["slope_mb_per_iter"] >= THRESHOLD, line
                    if verdict == "undecided":
                        assert analysis["reason"] and ("too few iterations" in line or "would likely decide it" in line
                                                       or "more iterations are needed" in line), line
    assert {"LEAK", "no leak", "undecided"} <= seen


def test_undecided_says_why_and_its_estimate_of_more_iterations_is_about_right():
    decided_later = undecided = 0
    for seed in range(20):
        y = noisy(0.0, n=200, seed=seed)
        analysis = stats.analyse(y[:20])
        if analysis["verdict"] != "undecided":
            continue
        undecided += 1
        line = stats.verdict_line("restart", analysis)
        assert "interval straddles the 0.05 MB/iter threshold" in line and "more iterations would likely decide it" in line
        more = analysis["more_iterations"]
        decided_later += stats.analyse(y[:20 + more])["verdict"] in stats.DECIDED
    assert undecided >= 10
    assert decided_later >= 0.5 * undecided  # "would likely decide it"


def test_a_trend_that_is_not_yet_significant_is_undecided_with_the_reason():
    analysis = stats.analyse([100, 104, 101, 106, 103, 108, 105, 110, 107, 112, 109, 114])
    line = stats.verdict_line("w", analysis)
    assert analysis["verdict"] == "undecided", line
    assert "no leak" not in line


def test_a_plateau_held_for_the_last_half_is_no_leak_with_the_plateaus_own_interval():
    # grows 2 MB/iteration for 48 iterations, longer than a warm-up cut may take (a third), then holds
    y = 100 + np.minimum(np.arange(100), 48) * 2.0 + np.random.default_rng(5).uniform(0, 2, 100)
    analysis = stats.analyse(y)
    line = stats.verdict_line("restart", analysis)
    assert (analysis["verdict"], analysis["decided_by"], analysis["shape"]) == ("no leak", "plateau", "plateau"), line
    assert analysis["slope_high"] >= THRESHOLD  # the whole run's interval alone would not say no leak
    assert line.startswith("restart: no leak, plateau since iteration 51:")
    assert printed_interval(line)[1] < THRESHOLD


def test_growth_that_stopped_only_recently_is_not_yet_a_plateau():
    y = 100 + np.minimum(np.arange(60), 40) * 1.0 + np.random.default_rng(3).uniform(0, 1, 60)
    assert stats.analyse(y)["verdict"] == "undecided"


def test_too_few_jumps_to_judge_a_rate_are_undecided_but_many_are_a_step_leak():
    few = 100 + 10 * (np.arange(60) // 20) + np.random.default_rng(1).uniform(0, 0.2, 60)
    assert stats.analyse(few)["verdict"] == "undecided"
    many = 100 + 10 * (np.arange(100) // 20) + np.random.default_rng(1).uniform(0, 0.2, 100)
    analysis = stats.analyse(many)
    assert (analysis["verdict"], analysis["shape"]) == ("LEAK", "step")


def test_the_interval_widens_for_autocorrelated_noise_only():
    independent = stats.analyse(memory_series("independent", 60, 0.0, 1))
    correlated = stats.analyse(memory_series("AR(1) 0.8", 60, 0.0, 1))
    assert independent["n_effective"] > 30 and correlated["n_effective"] < 15
    from scipy.stats import theilslopes

    y = memory_series("AR(1) 0.8", 60, 0.0, 1)
    naive = theilslopes(y, np.arange(1, 61))
    assert correlated["slope_high"] - correlated["slope_low"] > 1.5 * (naive.high_slope - naive.low_slope)


@pytest.mark.parametrize("kind", NOISE)
def test_the_interval_holds_the_true_slope_at_least_93_percent_of_the_time(kind):
    """A seeded subset of benchmarks/interval_coverage.py (which runs 1000 series per cell for the README's table)."""
    for n in (20, 50):
        intervals = [stats.theil_sen(memory_series(kind, n, 0.5, seed))[2:] for seed in range(200)]
        held = sum(low <= 0.5 <= high for low, high in intervals)
        assert held / 200 >= 0.93, (kind, n, held)


def test_planned_looks_for_until_decided():
    assert stats.checkpoints(20, 100) == [20, 30, 45, 68, 100]
    assert stats.checkpoints(10, 10) == [10]
    assert stats.checkpoints(20, 25) == [20, 25]


def replay_until_decided(kind, slope, seeds, maximum=100):
    looks = stats.checkpoints(20, maximum)
    outcomes = []
    for seed in seeds:
        y = memory_series(kind, maximum, slope, seed)
        for at in looks:
            analysis = stats.analyse(y[:at], looks=len(looks))
            if analysis["verdict"] in stats.DECIDED:
                break
        outcomes.append((analysis["verdict"], at))
    return outcomes


@pytest.mark.parametrize("kind", NOISE)
def test_until_decided_looks_raise_no_false_alarms_on_clean_series(kind):
    outcomes = replay_until_decided(kind, 0.0, range(200))
    assert sum(v == "LEAK" for v, _ in outcomes) <= 2  # at most 1 % of 200
    if kind == "independent":  # the synthetic engine's noise: decided, and well before 100
        assert sum(v == "no leak" for v, _ in outcomes) >= 190
        assert np.mean([at for _, at in outcomes]) < 60


@pytest.mark.parametrize("kind", NOISE[1:])
def test_until_decided_never_calls_a_leak_under_autocorrelated_noise_no_leak(kind):
    outcomes = replay_until_decided(kind, 0.5, range(100))
    assert not [v for v, _ in outcomes if v in ("no leak", "minor growth")]
    assert sum(v == "LEAK" for v, _ in outcomes) >= 80


def test_until_decided_finds_half_a_megabyte_per_iteration_early():
    outcomes = replay_until_decided("independent", 0.5, range(200))
    assert sum(v == "LEAK" for v, _ in outcomes) >= 190  # at least 95 %
    assert max(at for _, at in outcomes) <= 45


def test_a_look_uses_the_stricter_levels():
    one, five = stats.analyse(noisy(0.0, n=45)), stats.analyse(noisy(0.0, n=45), looks=5)
    assert (one["confidence"], five["confidence"]) == (0.95, 0.99)
    assert five["trend_alpha"] == pytest.approx(0.002)
    assert five["slope_high"] - five["slope_low"] > one["slope_high"] - one["slope_low"]


@pytest.mark.parametrize("kind", ["sawtooth, period 10", "refill, period 4-10"])
def test_memory_in_cycles_is_judged_by_its_troughs_within_100_iterations(kind):
    from benchmarks.interval_coverage import memory_series as series
    for seed in range(5):
        flat = stats.analyse(series(kind, 100, 0.0, seed))
        assert flat["verdict"] == "no leak", stats.verdict_line("flat", flat)
        rising = stats.analyse(series(kind, 100, 0.1, seed))
        assert rising["verdict"] == "LEAK", stats.verdict_line("rising", rising)
    line = stats.verdict_line("restart", stats.analyse(series("sawtooth, period 10", 100, 0.0, 0)))
    assert line.startswith("restart: no leak, troughs of a 10-iteration cycle: ")


def test_noise_without_a_cycle_has_no_period():
    from asrbench.stats import periodic
    x = np.arange(1, 101, dtype=float)
    for kind in NOISE:
        for seed in range(5):
            assert periodic.period(memory_series(kind, 100, 0.0, seed), x) is None, (kind, seed)
    saw = 500 + 20 * (np.arange(100) % 7) / 7
    assert periodic.period(saw, x) == 7
    y, at = periodic.troughs(saw, x, 7)
    assert len(y) == 14 and np.all(y == 500) and list(at[:2]) == [1.0, 8.0]
