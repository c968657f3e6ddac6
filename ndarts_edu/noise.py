r"""Noise for the skip connection: the one idea of NoisyDARTS.

In training mode ``NoisySkip`` returns

.. math::  \tilde o_{skip}(x) = x + n, \qquad n \sim \mathcal N\big(\mu, (\lambda\,\mathrm{std}(x))^2\big)

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
- ``scale``: a multiplier set by the search for a decay schedule (``cosine_scale``).
"""
import math

import torch
from torch import nn

from .errors import check_choice, check_number

NOISE_KINDS = ("gaussian", "uniform", "multiplicative")
NOISE_DECAYS = ("none", "cosine")


class NoisySkip(nn.Module):
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

    def forward(self, x):
        if not self.active:
            return x
        return x + self.sample(x)

    @torch.no_grad()
    def sample(self, x):
        """One draw of the additive noise ``n`` for input ``x`` (no gradient by construction)."""
        lam, mu = self.noise_lambda * self.scale, self.mean * self.scale
        if self.kind == "multiplicative":
            # x * m = x + x * (m - 1): returned as the additive part so forward stays x + n.
            return x * (torch.randn_like(x) * lam + mu)
        sigma = lam * x.std()
        if self.kind == "gaussian":
            return torch.randn_like(x) * sigma + mu
        half_width = math.sqrt(3.0) * sigma  # U(-a, a) has std a / sqrt(3)
        return (torch.rand_like(x) * 2 - 1) * half_width + mu

    def extra_repr(self):
        return f"noise_lambda={self.noise_lambda}, kind={self.kind!r}, mean={self.mean}"


def cosine_scale(epoch, epochs):
    """Noise multiplier at the start of ``epoch`` (0-based) for a cosine decay to 0 over ``epochs``."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))
