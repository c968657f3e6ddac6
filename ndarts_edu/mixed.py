r"""The mixed op: one edge of the supernet, every candidate op at once.

DARTS relaxes the choice of an op on edge (i, j) into a weighted sum

.. math::  \bar o(x) = \sum_{k \ne skip} f(\alpha)_k\, o_k(x)
           + f(\alpha)_{skip}\, \big(o_{skip}(x) + n\big)

with ``f = softmax`` over the edge's logits ``alpha`` (DARTS: the ops compete, their weights sum
to 1) or ``f = sigmoid`` per op (FairDARTS: each op has its own weight in (0, 1), they cooperate).
NoisyDARTS adds the noise ``n`` to the skip branch *before* its weight (``noise.NoisySkip``).

``MixedOp`` takes the weights ``f(alpha)`` as an argument: the network owns ``alpha`` and computes
the weights of all edges of a cell type in one call (``edge_weights``).
"""
import torch
from torch import nn

from .errors import check_choice
from .noise import HeldDraws, NoisySkip
from .ops import NONE, POOLS, SKIP, make_op

WEIGHTINGS = ("softmax", "sigmoid")
NOISE_TARGETS = ("skip", "all")


def edge_weights(alpha, weighting="softmax"):
    """``f(alpha)`` row by row: softmax over each edge's ops (DARTS) or an element-wise sigmoid
    (FairDARTS)."""
    if weighting == "softmax":
        return torch.softmax(alpha, dim=-1)
    if weighting == "sigmoid":
        return torch.sigmoid(alpha)
    check_choice("weighting", weighting, WEIGHTINGS)


def zero_one_loss(alphas):
    r"""FairDARTS's zero-one loss :math:`L_{01} = -\frac1N \sum_i (\sigma(\alpha_i) - 0.5)^2`.

    Pushes every sigmoid weight away from 0.5, towards 0 or 1, so that the threshold rule of
    ``derive`` has a clear answer. ``alphas``: one tensor or several (the normal and the reduction
    cell's): one mean over all their ``N`` entries, as FairDARTS's ``ConvSeparateLoss`` takes it
    over the concatenated sigmoids of both cell types. The search adds it to the validation loss
    with a weight (FairDARTS: 10).
    """
    alphas = [alphas] if torch.is_tensor(alphas) else list(alphas)
    return -(torch.sigmoid(torch.cat([a.reshape(-1) for a in alphas])) - 0.5).pow(2).mean()


def drop_path(x, drop_prob):
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS's
    drop-path)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class DropPath(HeldDraws, nn.Module):
    """``drop_path`` as a module, so that ``noise.hold_draws`` can hold its masks too."""

    def __init__(self, drop_prob):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if not self.training or self.drop_prob <= 0:
            return x
        keep = 1.0 - self.drop_prob
        mask = self._draw(x[:, :1, :1, :1], lambda like: torch.empty_like(like).bernoulli_(keep))
        return x * mask / keep


def _search_op(name, C, stride):
    """The op as the search uses it: a pool gets a batch norm after it (DARTS's model_search.py),
    so that its scale matches the convolutions' in the weighted sum; a derived network's is bare."""
    op = make_op(name, C, stride)
    if name in POOLS:
        return nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op


class MixedOp(nn.Module):
    """All candidate ops of one edge and their weighted sum.

    Args:
        C: channels in and out.
        stride: 1, or 2 on the edges that leave a reduction cell's inputs.
        op_names: the space's op names, in the column order of ``alpha``.
        noise_on: ``"skip"`` (NoisyDARTS) or ``"all"`` (the ablation that perturbs every op).
        skip_drop_path: drop-path probability on the skip branch in training (the reference
            code uses 0.3; the paper's equations have none, so the default is 0).
    """

    def __init__(self, C, stride, op_names, noise_on="skip", skip_drop_path=0.0):
        super().__init__()
        self.op_names = tuple(op_names)
        self.noise_on = check_choice("noise target", noise_on, NOISE_TARGETS)
        self.skip_drop = DropPath(skip_drop_path)
        # `none` outputs zeros: it only matters through the softmax, so it is never computed.
        self.computed = [k for k, name in enumerate(self.op_names) if name != NONE]
        self.ops = nn.ModuleList(_search_op(self.op_names[k], C, stride) for k in self.computed)
        self.noise = NoisySkip()

    def forward(self, x, weights):
        # o(x) = sum_k f(alpha)_k o_k(x), over the ops but `none` (its o_k(x) = 0)
        out = 0
        for k, op in zip(self.computed, self.ops):
            y = op(x)
            is_skip = self.op_names[k] == SKIP
            # o_skip(x) + n: the noise before the weight (on every op with noise_on="all")
            if is_skip or self.noise_on == "all":
                y = self.noise(y, slot=k)  # one draw per op, also when hold_draws holds them
            # drop-path on the skip branch, training only (the reference code's 0.3; default off)
            if is_skip:
                y = self.skip_drop(y)
            # + f(alpha)_k o_k(x)
            out = out + weights[k] * y
        return out
