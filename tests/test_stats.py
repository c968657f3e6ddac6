"""The t-interval behind the notebooks' statistical claims: the quantiles of the tables, and an
interval that covers the true mean as often as it says."""
import numpy as np
import pytest

from ndarts_edu import stats
from ndarts_edu.errors import ConfigError

# Student's t, two-sided 95 % and 99 % critical values (any statistics table, e.g. NIST/SEMATECH
# e-Handbook 1.3.6.7.2), to the 3 decimals tables print.
TABLE = {1: (12.706, 63.657), 2: (4.303, 9.925), 3: (3.182, 5.841), 4: (2.776, 4.604),
         5: (2.571, 4.032), 9: (2.262, 3.250), 10: (2.228, 3.169), 30: (2.042, 2.750),
         100: (1.984, 2.626)}


@pytest.mark.parametrize("df", sorted(TABLE))
def test_critical_values_are_those_of_the_tables(df):
    at_95, at_99 = TABLE[df]
    assert stats.t_critical(df) == pytest.approx(at_95, abs=6e-4)
    assert stats.t_critical(df, 0.99) == pytest.approx(at_99, abs=6e-4)


def test_many_degrees_of_freedom_approach_the_normal_quantile():
    assert stats.t_critical(100_000) == pytest.approx(1.95996, abs=1e-4)
    assert stats.t_two_sided_coverage(0.0, 7) == 0.0
    assert stats.t_two_sided_coverage(1e6, 7) == pytest.approx(1.0)


def test_the_interval_of_a_few_values_by_hand():
    interval = stats.t_interval([1.0, 2.0, 3.0, 4.0])
    half = stats.t_critical(3) * np.std([1, 2, 3, 4], ddof=1) / 2
    assert interval.mean == 2.5 and interval.n == 4
    assert (interval.low, interval.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert interval.above(0.4) and not interval.above(0.5) and interval.within(4.6)
    assert not interval.within(4.5)
    assert "n = 4" in str(interval)


def test_paired_differences_are_a_minus_b_seed_by_seed():
    assert stats.paired_differences([3, 5], [1, 1]) == [2.0, 4.0]
    assert stats.paired_interval([3, 5, 4], [1, 1, 1]).mean == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="same number on each side, got 2 and 3"):
        stats.paired_differences([1, 2], [1, 2, 3])


def test_the_interval_covers_the_true_mean_as_often_as_it_says():
    # 4000 experiments of 5 normal values: the 95 % interval holds the true mean in 95 % of them.
    # A fixed numpy generator makes this deterministic; by chance alone the coverage of a correct
    # interval leaves [0.94, 0.96] with probability 2e-3 (binomial, sd 0.0034).
    rng = np.random.default_rng(11)
    samples = rng.normal(1.0, 2.0, size=(4000, 5))
    covered = [stats.t_interval(row).low <= 1.0 <= stats.t_interval(row).high for row in samples]
    assert 0.94 <= np.mean(covered) <= 0.96
    # the normal quantile in its place covers visibly less with 5 values (about 0.88)
    z_half = 1.96 * samples.std(1, ddof=1) / np.sqrt(5)
    assert np.mean(np.abs(samples.mean(1) - 1.0) < z_half) < 0.90


def test_pairs_needed_follows_the_textbook_formula():
    # (1.960 + 0.842)^2 = 7.85: a difference of one spread needs 8 pairs, of half a spread 32
    assert stats.pairs_needed(1.0, 1.0) == 8
    assert stats.pairs_needed(2.0, -1.0) == 32
    assert stats.pairs_needed(0.0, 1.0) == 2
    with pytest.raises(ConfigError, match="difference must not be 0"):
        stats.pairs_needed(1.0, 0.0)
    with pytest.raises(ConfigError, match="power must lie between 0 and 1"):
        stats.pairs_needed(1.0, 1.0, power=1.0)


def test_bad_input_gets_one_clear_line():
    with pytest.raises(ConfigError, match="at least 2 values, got 1"):
        stats.t_interval([1.0])
    with pytest.raises(ConfigError, match="confidence must lie between 0 and 1"):
        stats.t_critical(3, 1.0)
    with pytest.raises(ConfigError, match="degrees of freedom must be >= 1"):
        stats.t_critical(0)
