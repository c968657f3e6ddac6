"""MixedOp: the weighted sum, `none` never computed, the two weightings, FairDARTS's loss, where the noise goes."""
import math

import pytest
import torch

from ndarts_edu.errors import ConfigError
from ndarts_edu.mixed import MixedOp, edge_weights, zero_one_loss
from ndarts_edu.noise import NoisySkip
from ndarts_edu.ops import NONE, SKIP, SPACES, Zero

C = 4
DARTS = SPACES["darts"]


def _x(size=6, seed=0):
    return torch.randn(4, C, size, size, generator=torch.Generator().manual_seed(seed))


def _one_hot(op_names, name, value=1.0):
    w = torch.zeros(len(op_names))
    w[op_names.index(name)] = value
    return w


def test_none_is_not_computed():
    m = MixedOp(C, 1, DARTS)
    assert len(m.ops) == len(DARTS) - 1
    assert not any(isinstance(mod, Zero) for mod in m.modules())
    assert m.computed == list(range(1, len(DARTS)))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
def test_output_is_the_weighted_sum_of_the_ops(stride, weighting):
    torch.manual_seed(0)
    m = MixedOp(C, stride, DARTS).eval()  # eval: batch norms use running stats, no noise
    x = _x(7)
    weights = edge_weights(torch.randn(len(DARTS)), weighting)
    expected = sum(weights[k] * m.ops[i](x) for i, k in enumerate(m.computed))  # none adds 0
    out = m(x, weights)
    assert out.shape == expected.shape == (4, C, 4 if stride == 2 else 7, 4 if stride == 2 else 7)
    assert torch.allclose(out, expected, atol=1e-6)
    # A large weight on `none` only shrinks the others: the output is unchanged for fixed other weights.
    w2 = weights.clone()
    w2[DARTS.index(NONE)] = 100.0
    assert torch.allclose(m(x, w2), expected, atol=1e-6)


def test_only_none_with_weight_gives_zeros():
    m = MixedOp(C, 1, SPACES["s3"]).eval()
    assert torch.equal(m(_x(), _one_hot(SPACES["s3"], NONE)), torch.zeros(4, C, 6, 6))


def test_softmax_rows_sum_to_one():
    alpha = torch.randn(14, 8) * 3
    w = edge_weights(alpha, "softmax")
    assert torch.allclose(w.sum(-1), torch.ones(14))
    assert torch.allclose(w[3], torch.exp(alpha[3]) / torch.exp(alpha[3]).sum())


def test_sigmoid_weights_are_independent():
    alpha = torch.randn(5, 3)
    w = edge_weights(alpha, "sigmoid")
    assert torch.allclose(w, 1 / (1 + torch.exp(-alpha)))
    alpha2 = alpha.clone()
    alpha2[2, 1] += 4.0
    w2 = edge_weights(alpha2, "sigmoid")
    changed = (w2 != w)
    assert changed[2, 1] and changed.sum() == 1  # raising one op's logit leaves every other weight alone
    # whereas softmax couples the ops of an edge
    assert (edge_weights(alpha2, "softmax")[2] != edge_weights(alpha, "softmax")[2]).all()


def test_edge_weights_rejects_unknown_weighting():
    with pytest.raises(ConfigError, match="tanh"):
        edge_weights(torch.zeros(2, 2), "tanh")


def test_zero_one_loss_by_hand():
    alpha = torch.tensor([[0.0, math.log(3)], [-math.log(3), 0.0]])
    # sigmoids 0.5, 0.75, 0.25, 0.5: squared distances 0, 1/16, 1/16, 0; mean 1/32
    assert float(zero_one_loss(alpha)) == pytest.approx(-1 / 32)
    assert float(zero_one_loss(torch.zeros(3, 4))) == 0.0
    # far from 0.5 the loss approaches -1/4
    assert float(zero_one_loss(torch.tensor([50.0, -50.0]))) == pytest.approx(-0.25)
    # two cell types: ONE mean over all 8 sigmoids (FairDARTS), not the sum of two means
    assert float(zero_one_loss([alpha, torch.zeros(2, 2)])) == pytest.approx(-1 / 64)


def test_noise_enters_the_skip_branch_before_its_weight():
    """A noise of constant mean 1 (lambda 0): before the weight gives w * (x + 1), after it w * x + 1."""
    names = SPACES["s3"]
    m = MixedOp(C, 1, names)
    m.noise.configure(0.0, "gaussian", 1.0)
    x, w = _x(), 0.25
    weights = _one_hot(names, SKIP, w)
    assert torch.allclose(m.train()(x, weights), w * (x + 1))
    assert torch.equal(m.eval()(x, weights), w * x)


def test_noise_after_the_factorized_reduce_in_reduction_edges():
    names = SPACES["s3"]
    m = MixedOp(C, 2, names).train()
    m.noise.configure(0.0, "gaussian", 1.0)
    skip = m.ops[m.computed.index(names.index(SKIP))]
    x, w = _x(7), 0.5
    assert torch.allclose(m(x, _one_hot(names, SKIP, w)), w * (skip(x) + 1))


@pytest.mark.parametrize("noise_on", ["skip", "all"])
def test_which_branches_are_perturbed(noise_on):
    """Each computed op alone (one-hot weights), train mode, mean-1 noise: who gets the +1?"""
    m = MixedOp(C, 1, DARTS, noise_on=noise_on).train()  # batch norms use batch stats: deterministic
    x = _x()
    for name in DARTS:
        if name == NONE:
            continue
        weights = _one_hot(DARTS, name)
        m.noise.configure(mean=0.0)
        clean = m(x, weights)
        m.noise.configure(mean=1.0)
        shift = m(x, weights) - clean
        perturbed = noise_on == "all" or name == SKIP
        assert torch.allclose(shift, torch.full_like(shift, 1.0 if perturbed else 0.0), atol=1e-6), name


def test_train_eval_only_changes_the_skip_branch_with_noise_on_skip():
    """With Gaussian noise on the skip: two train-mode forwards differ only through the skip branch."""
    m = MixedOp(C, 1, DARTS).train()
    m.noise.configure(0.5)
    x = _x()
    for name in DARTS[1:]:
        weights = _one_hot(DARTS, name)
        a, b = m(x, weights), m(x, weights)
        assert torch.equal(a, b) != (name == SKIP), name
    m.eval()
    weights = _one_hot(DARTS, SKIP)
    assert torch.equal(m(x, weights), m(x, weights)) and torch.equal(m(x, weights), x)


def test_noise_on_all_perturbs_every_computed_op_randomly():
    m = MixedOp(C, 1, DARTS, noise_on="all").train()
    m.noise.configure(0.5)
    x = _x()
    for name in DARTS[1:]:
        weights = _one_hot(DARTS, name)
        assert not torch.equal(m(x, weights), m(x, weights)), name


def test_one_noise_module_per_edge():
    m = MixedOp(C, 1, DARTS)
    assert sum(isinstance(mod, NoisySkip) for mod in m.modules()) == 1


def test_skip_drop_path_drops_whole_samples_in_training_only():
    names = SPACES["s2"]
    torch.manual_seed(0)
    m = MixedOp(C, 1, names, skip_drop_path=0.5)
    x = _x().repeat(16, 1, 1, 1)  # 64 samples
    out = m.train()(x, _one_hot(names, SKIP))
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.isclose(out, 2 * x).flatten(1).all(1)  # kept samples rescaled by 1 / (1 - p)
    assert (dropped | kept).all() and dropped.any() and kept.any()
    assert torch.equal(m.eval()(x, _one_hot(names, SKIP)), x)


def test_unknown_noise_target():
    with pytest.raises(ConfigError, match="noise target"):
        MixedOp(C, 1, DARTS, noise_on="conv")


def test_hold_draws_holds_noise_and_drop_path_masks_of_every_edge():
    from ndarts_edu.noise import hold_draws

    edge = MixedOp(4, 1, ("skip_connect", "sep_conv_3x3"), skip_drop_path=0.5).train()
    edge.noise.configure(noise_lambda=0.3)
    x, w = torch.randn(16, 4, 6, 6), torch.tensor([0.6, 0.4])
    with hold_draws(edge):
        a, b = edge(x, w), edge(x, w)
    assert torch.equal(a, b)
    assert not torch.equal(edge(x, w), a)  # outside: fresh noise and masks


def test_hold_draws_keeps_one_draw_per_op_when_the_noise_is_on_every_op():
    """``noise_on="all"``: one noise module serves every op of the edge; held, each has its own."""
    from ndarts_edu.noise import hold_draws

    names = ("skip_connect", "avg_pool_3x3")
    edge = MixedOp(4, 1, names, noise_on="all").train()
    edge.noise.configure(noise_lambda=0.0, mean=0.0)
    x = torch.randn(16, 4, 6, 6)
    clean = {name: edge(x, _one_hot(names, name)) for name in names}
    edge.noise.configure(noise_lambda=0.5)
    with hold_draws(edge):
        both = edge(x, torch.ones(2))  # the first forward draws for both ops
        shift = {name: edge(x, _one_hot(names, name)) - clean[name] for name in names}
        expected = sum(clean[name] + shift[name] for name in names)
        assert torch.allclose(both, expected, atol=1e-6)
    assert not torch.allclose(shift[names[0]], shift[names[1]])  # two draws, not one reused
