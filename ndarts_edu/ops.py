"""The DARTS candidate operations and the search spaces built from them.

Every op maps ``C`` channels to ``C`` channels; at ``stride=2`` it halves height and width.
During search the batch norms have no affine parameters (``affine=False``), as in DARTS,
so that the architecture weights alone decide how much each op contributes.

Spaces by name:

- ``darts``: the 8 ops of DARTS (Liu et al., 2019), ``none`` included.
- ``darts7``: the 7 ops of the NoisyDARTS reference code (no ``none``).
- ``s1``...``s4``: not all of RobustDARTS's spaces (Zela et al., 2020) are here, only the
  two whose op sets are the same on every edge: ``s2`` (skip, sep_conv_3x3) and ``s3``
  (none, skip, sep_conv_3x3).
"""
import torch
from torch import nn

from .errors import ConfigError, check_choice

SKIP = "skip_connect"
NONE = "none"


class Zero(nn.Module):
    """The ``none`` op: outputs zeros (DARTS uses it as a learned 'no edge')."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Skip at stride 2: two 1x1 convolutions on offset grids, concatenated.

    Halves height and width without throwing away every other pixel column.
    Odd sizes are padded so both halves have the same shape.
    """

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        if C_out % 2:
            raise ValueError("FactorizedReduce needs an even number of output channels, "
                             f"got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, batch norm: the preprocessing of cell inputs and the stem's pattern."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """Dilated depthwise-separable convolution: ReLU, depthwise (dilated), pointwise, BN."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Separable convolution as in DARTS: a DilConv (dilation 1) applied twice, stride on the
    first."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine),
        )


def _pool(kind, stride):
    """A bare pool, as in DARTS's ``operations.py`` (the final network's). The search's mixed op
    adds a batch norm after it (``mixed.MixedOp``, DARTS's ``model_search.py``)."""
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


POOLS = ("max_pool_3x3", "avg_pool_3x3")

OPS = {
    NONE: lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: _pool("max", stride),
    "avg_pool_3x3": lambda C, stride, affine: _pool("avg", stride),
    SKIP: lambda C, stride, affine: (nn.Identity() if stride == 1
                                     else FactorizedReduce(C, C, affine)),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}
"""Op name -> constructor ``(C, stride, affine) -> nn.Module``, in DARTS's order."""

SPACES = {
    "darts": tuple(OPS),
    "darts7": tuple(name for name in OPS if name != NONE),
    "s2": (SKIP, "sep_conv_3x3"),
    "s3": (NONE, SKIP, "sep_conv_3x3"),
}
"""Search space name -> the op names on every edge (the column order of ``alpha``)."""


def make_op(name, C, stride, affine=False):
    """Build the op called ``name`` for ``C`` channels at ``stride`` (1 or 2)."""
    check_choice("op", name, list(OPS))
    check_choice("stride", stride, [1, 2])
    return OPS[name](C, stride, affine)


def space_ops(space):
    """The op names of a search space: a name from ``SPACES`` or a list of op names."""
    if isinstance(space, str):
        return SPACES[check_choice("space", space, list(SPACES))]
    ops = tuple(space)
    if not ops:
        raise ConfigError("a search space needs at least one op, got an empty list")
    for name in ops:
        check_choice("op", name, list(OPS))
    if len(set(ops)) != len(ops):
        raise ConfigError(f"a search space lists an op twice: {list(ops)}")
    if ops == (NONE,):
        raise ConfigError("a search space of only 'none' computes nothing; add another op")
    return ops
