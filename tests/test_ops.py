"""The candidate ops: shapes at stride 1 and 2 (odd sizes too), and the search spaces."""
import pytest
import torch
from torch import nn

from ndarts_edu.errors import ConfigError
from ndarts_edu.mixed import MixedOp
from ndarts_edu.ops import (NONE, OPS, POOLS, SKIP, SPACES, FactorizedReduce, Zero, make_op,
                            space_ops)

C = 4


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("size", [8, 7, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_sets_resolution(name, size, stride):
    op = make_op(name, C, stride)
    x = torch.randn(3, C, size, size)
    y = op(x)
    expected = size if stride == 1 else (size + 1) // 2  # ceil(size / 2), odd sizes included
    assert y.shape == (3, C, expected, expected)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", [n for n in OPS if n != NONE])
def test_search_ops_have_no_affine_batch_norm(name):
    # During search the architecture weights alone scale each op's output.
    edge = MixedOp(C, 2, (name,))  # at stride 2 the skip is a factorized reduce, with its own BN
    norms = [m for m in edge.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms, f"{name} has no batch norm"
    assert all(not m.affine for m in norms)


@pytest.mark.parametrize("name", POOLS)
def test_pools_are_bare_and_get_a_batch_norm_in_the_search_only(name):
    """DARTS: the search's MixedOp puts a BN(affine=False) after each pool (model_search.py); the
    ops of its final network (operations.py), which the derived network builds, are bare pools."""
    final = make_op(name, C, 1, affine=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in final.modules())
    (op,) = MixedOp(C, 1, (name,)).ops
    assert isinstance(op, nn.Sequential) and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d))
    assert isinstance(op[1], nn.BatchNorm2d) and not op[1].affine and len(op) == 2


def test_none_outputs_zeros_at_both_strides():
    x = torch.randn(2, C, 7, 7)
    assert torch.equal(Zero(1)(x), torch.zeros_like(x))
    assert torch.equal(Zero(2)(x), torch.zeros(2, C, 4, 4))


def test_skip_is_identity_at_stride_1_and_factorized_reduce_at_stride_2():
    x = torch.randn(2, C, 6, 6)
    assert torch.equal(make_op(SKIP, C, 1)(x), x)
    assert isinstance(make_op(SKIP, C, 2), FactorizedReduce)


def test_factorized_reduce_reads_both_pixel_grids():
    # The second convolution reads the odd grid: changing only pixel (1, 1) must change the output.
    fr = FactorizedReduce(C, C).eval()
    x = torch.randn(1, C, 6, 6)
    x2 = x.clone()
    x2[:, :, 1, 1] += 5.0
    assert not torch.allclose(fr(x), fr(x2))


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(3, 5)


def test_make_op_rejects_unknown_op_and_stride():
    with pytest.raises(ConfigError, match="conv_7x7"):
        make_op("conv_7x7", C, 1)
    with pytest.raises(ConfigError, match="stride"):
        make_op(SKIP, C, 3)


def test_spaces():
    assert len(SPACES["darts"]) == 8 and SPACES["darts"][0] == NONE
    assert len(SPACES["darts7"]) == 7 and NONE not in SPACES["darts7"]
    assert space_ops("s3") == (NONE, SKIP, "sep_conv_3x3")
    assert space_ops([SKIP, "avg_pool_3x3"]) == (SKIP, "avg_pool_3x3")


@pytest.mark.parametrize("bad", ["s9", [], [SKIP, SKIP], [NONE], ["conv_9x9"]])
def test_space_ops_rejects_bad_spaces(bad):
    with pytest.raises(ConfigError):
        space_ops(bad)
