r"""Statistics for claims that hold on any machine: paired differences and their t-interval.

A small CPU experiment (a search, a training) moves with its seed and with the CPU it runs on, so
a claim about it is a claim about a mean over seeds, stated with its uncertainty. With ``n``
values :math:`d_1, \dots, d_n` (here usually paired differences, method A minus method B with the
same seed) the 95 % confidence interval of their mean is Student's

.. math::  \bar d \pm t_{0.975,\, n-1}\, \frac{s}{\sqrt n}, \qquad
           s^2 = \frac{1}{n-1} \sum_i (d_i - \bar d)^2

It covers the true mean in 95 % of experiments when the :math:`d_i` are independent draws of one
roughly normal distribution; pairing (the same seed for both methods) removes what the two share.
A claim "A beats B" holds when the interval lies above 0, by a margin: on another CPU or with
other seeds the interval moves by about its own width, so a lower end just above 0 is no claim.

Plain Python (``math``, ``statistics``): no scipy. ``gradients.mean_interval`` and
``gradients.z_score`` are the Monte Carlo counterparts, over tensors of thousands of draws, where
the normal quantile is exact enough; with a handful of seeds the t quantile is needed.
"""
import math
import statistics
from dataclasses import dataclass

from .errors import ConfigError, check_number


def t_two_sided_coverage(t, df):
    r""":math:`P(|T| < t)` for Student's :math:`T` with ``df`` degrees of freedom (a whole number).

    Closed forms (Abramowitz & Stegun 26.7.3, 26.7.4), with :math:`\theta = \arctan(t/\sqrt{df})`:
    odd ``df``: :math:`\frac{2}{\pi}\big(\theta + \sin\theta\,(\cos\theta + \frac{2}{3}\cos^3\theta
    + \dots + \frac{2 \cdot 4 \cdots (df-3)}{1 \cdot 3 \cdots (df-2)}\cos^{df-2}\theta)\big)`;
    even ``df``: :math:`\sin\theta\,(1 + \frac{1}{2}\cos^2\theta + \dots
    + \frac{1 \cdot 3 \cdots (df-3)}{2 \cdot 4 \cdots (df-2)}\cos^{df-2}\theta)`.
    """
    df = int(check_number("degrees of freedom", df, minimum=1, integer=True))
    t = abs(float(t))
    theta = math.atan(t / math.sqrt(df))
    cos, sin = math.cos(theta), math.sin(theta)
    if df % 2:
        term, total = cos, cos if df > 1 else 0.0
        for k in range(3, df - 1, 2):  # the terms up to cos^(df-2), each from the one before
            term *= cos * cos * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):
        term *= cos * cos * (k - 1) / k
        total += term
    return sin * total


def t_critical(df, confidence=0.95):
    """The ``t`` with ``P(|T| < t) = confidence`` (2.776 for 4 degrees of freedom at 95 %)."""
    confidence = check_number("confidence", confidence)
    if not 0 < confidence < 1:
        raise ConfigError("confidence must lie between 0 and 1 (both left out), "
                          f"got {confidence!r}")
    low, high = 0.0, 1.0
    while t_two_sided_coverage(high, df) < confidence:
        high *= 2
    for _ in range(200):  # bisection: the coverage rises with t
        middle = (low + high) / 2
        low, high = ((middle, high) if t_two_sided_coverage(middle, df) < confidence
                     else (low, middle))
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


@dataclass(frozen=True)
class Interval:
    """A mean with its t-interval: ``low <= mean <= high`` at ``confidence``, from ``n`` values."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def above(self, value, margin=0.0):
        """Whether the whole interval lies above ``value + margin``."""
        return self.low > value + margin

    def within(self, bound):
        """Whether the whole interval lies inside ``[-bound, bound]``."""
        return -bound <= self.low and self.high <= bound

    def __str__(self):
        return (f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
                f"({self.confidence:.0%} t-interval, n = {self.n})")


def t_interval(values, confidence=0.95):
    r"""The mean of ``values`` and its t-interval, :math:`\bar d \pm t_{n-1}\, s / \sqrt n`."""
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ConfigError(f"a confidence interval needs at least 2 values, got {len(values)}")
    mean = statistics.mean(values)
    half = (t_critical(len(values) - 1, confidence) * statistics.stdev(values)
            / math.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half, len(values), confidence)


def paired_differences(a, b):
    """``[x - y for x, y in zip(a, b)]``: the same seed's value under method A minus under B."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b):
        raise ConfigError("paired values need the same number on each side, "
                          f"got {len(a)} and {len(b)}")
    return [x - y for x, y in zip(a, b)]


def paired_interval(a, b, confidence=0.95):
    """The t-interval of the mean paired difference A - B (``paired_differences``)."""
    return t_interval(paired_differences(a, b), confidence)


def pairs_needed(spread, difference, confidence=0.95, power=0.8):
    r"""About how many pairs an experiment needs to see a true mean difference ``difference``: its
    interval at ``confidence`` then lies clear of 0 in a share ``power`` of experiments, when one
    pair's difference has the standard deviation ``spread``. The normal approximation

    .. math::  n \approx \Big(\frac{(z_{1 - a/2} + z_{power})\, s}{d}\Big)^2, \qquad
               a = 1 - confidence

    (a few pairs more with the t quantile, which matters only when the answer is small).
    """
    spread = check_number("spread", spread, minimum=0.0)
    difference = abs(check_number("difference", difference))
    if difference == 0:
        raise ConfigError("difference must not be 0: no number of pairs shows a difference of 0")
    for name, value in (("confidence", confidence), ("power", power)):
        if not 0 < check_number(name, value) < 1:
            raise ConfigError(f"{name} must lie between 0 and 1 (both left out), got {value!r}")
    normal = statistics.NormalDist()
    z = normal.inv_cdf(1 - (1 - confidence) / 2) + normal.inv_cdf(power)
    return max(2, math.ceil((z * spread / difference) ** 2))


__all__ = ["Interval", "pairs_needed", "paired_differences", "paired_interval", "t_critical",
           "t_interval", "t_two_sided_coverage"]
