r"""Noise for the skip connection: the one idea of NoisyDARTS.

In training mode ``NoisySkip`` returns

.. math::  \tilde o_{skip}(x) = x + n, \qquad
           n \sim \mathcal N\big(\mu, (\lambda\,\mathrm{std}(x))^2\big)

element-wise, with ``std(x)`` one scalar over the whole tensor of this forward call and
``lambda = noise_lambda``. Neither ``n`` nor ``std(x)`` carries a gradient: to autograd the
noise is a constant added to ``x``, so ``d(x + n)/dx = 1`` and the architecture gradient becomes
``dL/dalpha_skip = dL/dy * f'(alpha_skip) * (x + n)`` (see ``gradients``).

Fresh noise is drawn at every forward in training mode, so it is on in both the weight step and
the architecture step; in eval mode (validation, the derived network) ``NoisySkip`` is the identity.

The paper's ablations are options:

- ``kind="gaussian"`` (the paper), ``"uniform"`` (same mean and std: ``U(-sqrt(3) s, sqrt(3) s)``;
  the reference code uses an absolute variance instead, here the std scales with ``std(x)`` so
  that the kinds compare at equal ``noise_lambda``), ``"multiplicative"`` (``x * m``,
  ``m ~ N(1 + mean, noise_lambda^2)``, so the perturbation's std is ``noise_lambda * |x|``).
- ``mean``: a biased noise (the paper tries +-0.5 and +-1.0); absolute, not scaled by ``std(x)``.
- ``scale``: a multiplier set by the search for a decay schedule (``config.cosine_schedule``).

``hold_draws(model)`` freezes the draws: inside it every forward sees the noise (and the skip
drop-path masks) of the first one. DARTS's second-order step needs that: its finite difference
``(g(w+) - g(w-)) / 2 eps`` of two forwards would otherwise divide the difference of two
independent noise draws by a tiny ``2 eps`` (common random numbers). ``hold_draws`` returns the
held draws; ``hold_draws(model, draws)`` replays them later, after forwards that drew afresh.
"""
import contextlib
import math

import torch
from torch import nn

from .errors import check_choice, check_number

NOISE_KINDS = ("gaussian", "uniform", "multiplicative")
NOISE_DECAYS = ("none", "cosine")


class HeldDraws:
    """A module whose random draw can be held: fresh on every call, or, inside ``hold_draws``,
    the first call's draw again (the module must then see inputs of one shape).

    A module called more than once per forward (one noise module for every op of an edge, with
    ``noise_on="all"``) names each call's ``slot``, so that each call keeps a draw of its own.
    """

    _draws = None  # inside hold_draws: the held draws {(module, slot): tensor}, shared by the model

    def _draw(self, x, draw, slot=None):
        if self._draws is None:
            return draw(x)
        held = self._draws.get((self, slot))
        if held is None:
            held = self._draws[self, slot] = draw(x)
        elif held.shape != x.shape:
            raise RuntimeError(f"held draws of shape {tuple(held.shape)} cannot serve an input of "
                               f"shape {tuple(x.shape)}: inside hold_draws every forward needs "
                               "the same shapes")
        return held


@contextlib.contextmanager
def hold_draws(model, draws=None):
    """Common random numbers: inside, every forward of ``model`` repeats the first forward's draws.

    Yields the held draws (a dict, filled by the first forward). Pass them as ``draws`` to a later
    ``hold_draws`` to replay them: forwards in between, outside any hold, draw afresh and leave them
    alone. Contexts nest: the inner one's draws apply inside it, the outer one's again after it.
    """
    draws = {} if draws is None else draws
    modules = [m for m in model.modules() if isinstance(m, HeldDraws)]
    outer = [m._draws for m in modules]
    for m in modules:
        m._draws = draws
    try:
        yield draws
    finally:
        for m, previous in zip(modules, outer):
            m._draws = previous


class NoisySkip(HeldDraws, nn.Module):
    """Adds noise to its input in training mode; the identity in eval mode.

    Args:
        noise_lambda: ``lambda``, the noise std relative to ``std(x)`` (0 turns it off).
        kind: ``"gaussian"``, ``"uniform"`` or ``"multiplicative"``.
        mean: ``mu``, the noise mean (0 for the unbiased noise of the paper).
    """

    def __init__(self, noise_lambda=0.0, kind="gaussian", mean=0.0):
        super().__init__()
        self.configure(noise_lambda, kind, mean)
        self.scale = 1.0

    def configure(self, noise_lambda=None, kind=None, mean=None):
        """Change the noise settings in place (a live slider calls this between steps)."""
        if noise_lambda is not None:
            self.noise_lambda = check_number("noise_lambda", noise_lambda, minimum=0.0)
        if kind is not None:
            self.kind = check_choice("noise kind", kind, NOISE_KINDS)
        if mean is not None:
            self.mean = check_number("noise mean", mean)

    @property
    def active(self):
        return self.training and self.scale > 0 and (self.noise_lambda > 0 or self.mean != 0)

    def forward(self, x, slot=None):
        """``x + n``; ``slot`` tells apart the calls of one forward (see ``HeldDraws``)."""
        # eval mode (or no noise): o_skip(x) = x
        if not self.active:
            return x
        # training mode: o_skip(x) = x + n, n drawn afresh (or held, inside hold_draws)
        return x + self._draw(x, self.sample, slot)

    @torch.no_grad()
    def sample(self, x):
        """One draw of the additive noise ``n`` for input ``x`` (no gradient by construction)."""
        # lambda, mu: scaled by the decay schedule (scale = 1 without one)
        lam, mu = self.noise_lambda * self.scale, self.mean * self.scale
        # Drawn in the default memory format: on a channels-last x, randn_like(x) would draw one
        # number at a time, 6 times slower on a CPU (same distribution either way).
        like = dict(size=x.shape, dtype=x.dtype, device=x.device)
        if self.kind == "multiplicative":
            # x * m = x + x * (m - 1): returned as the additive part so forward stays x + n.
            # n = x (m - 1),  m ~ N(1 + mu, lambda^2)
            return x * (torch.randn(**like) * lam + mu)
        # sigma = lambda std(x), one scalar over the whole tensor
        sigma = lam * x.std()
        if self.kind == "gaussian":
            # n ~ N(mu, sigma^2)
            return torch.randn(**like) * sigma + mu
        # n ~ mu + U(-a, a), a = sqrt(3) sigma: the same std, since U(-a, a) has std a / sqrt(3)
        half_width = math.sqrt(3.0) * sigma
        return (torch.rand(**like) * 2 - 1) * half_width + mu

    def extra_repr(self):
        return f"noise_lambda={self.noise_lambda}, kind={self.kind!r}, mean={self.mean}"

