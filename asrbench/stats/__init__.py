"""Is memory growing? The statistics behind every verdict, in O(n log n):

- pairs: order statistics of pairwise slopes and Kendall's counts without listing the pairs (kernels: its
  merge sorts, compiled by numba);
- slopes: Theil-Sen's slope and Sen's interval, as scipy gives them;
- trend: Mann-Kendall's test with Hamed and Rao's correction, as pymannkendall gives it;
- verdict: warm-up cut, the interval widened for autocorrelation, shape, verdict and its line.
"""

from .slopes import line, median_slope, theilslopes
from .trend import trend_p_value
from .verdict import (ALPHA, DECIDED, GROWTH, MIN_ITERATIONS, NOISE_FLOOR_MB, TREND_ALPHA, analyse, analyse_all,
                      autocorrelation,
                      checkpoints, effective_n, growing, interval_z, mean, median, more_iterations, percentile, shape,
                      theil_sen, verdict, verdict_line, warmup_cut)

__all__ = ["ALPHA", "DECIDED", "GROWTH", "MIN_ITERATIONS", "NOISE_FLOOR_MB", "TREND_ALPHA", "analyse", "analyse_all",
           "autocorrelation", "checkpoints", "effective_n", "growing", "interval_z", "line", "mean", "median",
           "median_slope", "more_iterations", "percentile", "shape", "theil_sen", "theilslopes", "trend_p_value",
           "verdict", "verdict_line", "warmup_cut"]
