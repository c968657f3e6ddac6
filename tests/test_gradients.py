"""The gradient derivation of notebook 02, checked as unit tests of ``ndarts_edu.gradients``.

Each check of the notebook is here too, on the same edge (seed 0, float64). The Monte Carlo
checks seed torch first, so they are deterministic; their tolerances are the notebook's.
"""
import json

import pytest
import torch

from ndarts_edu import gradients
from ndarts_edu.errors import ConfigError
from ndarts_edu.mixed import edge_weights

LAMBDAS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def edge():
    return gradients.one_edge(seed=0)


@pytest.fixture(scope="module")
def sweep(edge):
    """2000 draws of dL/dalpha_skip per lambda, as in the notebook."""
    torch.manual_seed(0)
    return {lam: gradients.noisy_gradients(edge, lam, 2000)[:, edge.skip] for lam in LAMBDAS}


# -- step 1: the set-up ------------------------------------------------------------------------
def test_the_mixed_op_computes_the_weighted_sum_with_noise_on_skip(edge):
    torch.manual_seed(1)
    y, branches = gradients.mixed_op_forward(edge, 0.2, edge.alpha)
    weighted_sum = (edge_weights(edge.alpha)[:, None, None, None, None] * branches).sum(0)
    assert torch.allclose(y, weighted_sum, rtol=1e-12, atol=1e-14)
    noise = branches[edge.skip] - edge.x
    assert abs(noise.std() / edge.sigma(0.2) - 1) < 0.1
    others = [k for k in range(len(branches)) if k != edge.skip]
    assert torch.equal(branches[others], edge.branches[others])  # noise on the skip branch only


def test_output_with_a_draws_axis_equals_one_draw_at_a_time(edge):
    torch.manual_seed(2)
    noise = edge.draw_noise(0.5, 3)
    batched = edge.loss(edge.output(edge.alpha, noise))
    one_by_one = torch.stack([edge.loss(edge.output(edge.alpha, n)) for n in noise])
    assert batched.shape == (3,)
    assert torch.allclose(batched, one_by_one, rtol=1e-12)


def test_draw_noise_uses_the_noisy_skip_settings(edge):
    torch.manual_seed(3)
    noise = edge.draw_noise(0.3, 200, mean=0.5)
    assert noise.shape == (200, *edge.x.shape)
    assert abs(noise.mean() - 0.5) < 0.01
    assert abs(noise.std() / edge.sigma(0.3) - 1) < 0.02


def test_an_edge_needs_a_skip_op():
    with pytest.raises(ConfigError, match="skip_connect"):
        gradients.one_edge(space=["sep_conv_3x3", "avg_pool_3x3"])


def test_building_an_edge_leaves_the_global_random_stream_alone():
    torch.manual_seed(4)
    expected = torch.rand(3)
    torch.manual_seed(4)
    gradients.one_edge(seed=7)
    assert torch.equal(torch.rand(3), expected)


# -- step 2: the closed forms ------------------------------------------------------------------
@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
def test_weight_jacobian_is_the_jacobian_of_the_edge_weights(weighting):
    alpha = torch.randn(5, dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(lambda a: edge_weights(a, weighting), alpha)
    assert torch.allclose(gradients.weight_jacobian(alpha, weighting), expected, rtol=1e-12, atol=1e-15)


def test_paper_formula_equals_autograd_on_the_skip_term_alone(edge):
    torch.manual_seed(5)
    noisy_skip = edge.x + edge.draw_noise(0.2, 1)[0]
    alpha = edge.alpha.clone().requires_grad_()
    by_autograd = torch.autograd.grad(edge.loss(edge_weights(alpha)[edge.skip] * noisy_skip), alpha)[0][edge.skip]
    y = (edge_weights(edge.alpha)[edge.skip] * noisy_skip).requires_grad_()
    dL_dy = torch.autograd.grad(edge.loss(y), y)[0]
    by_formula = gradients.paper_skip_gradient(dL_dy, noisy_skip, gradients.skip_f_prime(edge))
    assert relative_error(by_formula, by_autograd) < 1e-6


@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
def test_closed_form_equals_autograd_through_the_real_mixed_op(weighting):
    edge = gradients.one_edge(seed=0, weighting=weighting)
    torch.manual_seed(6)
    for noise_lambda in [0.0, 0.2, 1.0]:
        by_autograd, dL_dy, branches = gradients.mixed_op_gradient(edge, noise_lambda)
        by_formula = gradients.alpha_gradient(dL_dy, branches, edge.alpha, weighting)
        assert relative_error(by_formula, by_autograd) < 1e-6


def test_the_paper_term_is_the_whole_skip_gradient_for_sigmoid_only():
    torch.manual_seed(7)
    for weighting, exact in [("sigmoid", True), ("softmax", False)]:
        edge = gradients.one_edge(seed=0, weighting=weighting)
        by_autograd, dL_dy, branches = gradients.mixed_op_gradient(edge, 0.2)
        paper_term = gradients.paper_skip_gradient(dL_dy, branches[edge.skip], gradients.skip_f_prime(edge))
        assert (relative_error(paper_term, by_autograd[edge.skip]) < 1e-6) == exact, weighting


def test_a_wrong_closed_form_is_caught(edge):
    # Dropping the softmax's off-diagonal terms (treating it like a sigmoid) breaks the check.
    torch.manual_seed(8)
    by_autograd, dL_dy, branches = gradients.mixed_op_gradient(edge, 0.2)
    f = edge_weights(edge.alpha)
    diagonal_only = (dL_dy * branches).flatten(1).sum(1) * f * (1 - f)
    assert relative_error(diagonal_only, by_autograd) > 1e-3


def test_hessian_trace_closed_form_equals_the_exact_trace(edge):
    y = edge.output(edge.alpha)
    assert relative_error(edge.loss_hessian_trace(y), gradients.hessian_trace(edge.loss, y)) < 1e-10


# -- step 3: unbiased to first order, biased at second order and with a mean ---------------------
def test_zero_mean_noise_is_unbiased_within_the_interval_at_small_lambda(edge, sweep):
    clean = gradients.clean_gradient(edge)[edge.skip]
    for lam in [0.05, 0.1]:
        mean, half = gradients.mean_interval(sweep[lam])
        assert abs(mean - clean) <= half, lam


def test_plain_monte_carlo_sees_the_bias_at_large_lambda(edge, sweep):
    clean = gradients.clean_gradient(edge)[edge.skip]
    for lam in [1.0, 2.0]:
        mean, half = gradients.mean_interval(sweep[lam])
        assert abs(mean - clean) > half, lam


def test_second_order_bias_matches_antithetic_pairs_and_grows_like_lambda_squared(edge):
    torch.manual_seed(9)
    clean = gradients.clean_gradient(edge)
    measured = []
    for lam in [0.1, 0.2, 0.5, 1.0]:
        mean, half = gradients.mean_interval(gradients.noisy_gradients(edge, lam, 500, antithetic=True))
        predicted = gradients.second_order_bias(edge, lam)
        assert abs(mean - clean - predicted)[edge.skip] < 0.1 * abs(predicted[edge.skip]), lam
        assert abs(mean - clean)[edge.skip] > half[edge.skip], lam
        measured.append(float(abs(mean - clean)[edge.skip]))
    assert abs(gradients.loglog_slope([0.1, 0.2, 0.5, 1.0], measured) - 2) < 0.15


def test_a_nonzero_mean_gives_a_first_order_bias(edge):
    torch.manual_seed(10)
    clean = gradients.clean_gradient(edge)[edge.skip]
    for noise_mean in [0.5, -0.5]:
        mean, half = gradients.mean_interval(gradients.noisy_gradients(edge, 0.2, 2000, mean=noise_mean)[:, edge.skip])
        predicted = gradients.mean_shift_bias(edge, noise_mean)[edge.skip]
        assert abs(mean - clean) > 10 * half, noise_mean
        assert abs((mean - clean) / predicted - 1) < 0.25, noise_mean


def test_antithetic_draws_need_zero_mean_noise(edge):
    with pytest.raises(ConfigError, match="zero-mean"):
        gradients.noisy_gradients(edge, 0.2, 10, mean=0.5, antithetic=True)


# -- step 4: the variance ------------------------------------------------------------------------
def test_variance_grows_like_lambda_squared_as_the_rule_predicts(edge, sweep):
    variance = [float(sweep[lam].var()) for lam in LAMBDAS]
    assert abs(gradients.loglog_slope(LAMBDAS, variance) - 2) < 0.15
    for lam, v in zip(LAMBDAS, variance):
        assert abs(v / float(gradients.variance_rule(edge, lam)) - 1) < 0.15, lam


def test_loglog_slope_recovers_a_power():
    xs = [0.1, 0.3, 1.0, 3.0]
    assert gradients.loglog_slope(xs, [5 * x**2 for x in xs]) == pytest.approx(2.0)
    assert gradients.loglog_slope(xs, [x**0.5 for x in xs]) == pytest.approx(0.5)


# -- step 6: smoothing ---------------------------------------------------------------------------
def test_the_loss_under_noise_is_the_smoothed_loss(edge):
    torch.manual_seed(11)
    gaps = []
    for t in [-2.0, 0.0, 2.0]:
        alpha = edge.alpha.clone()
        alpha[edge.skip] += t
        mean, half = gradients.mean_interval(gradients.noisy_losses(edge, 1.0, 1000, alpha))
        clean = edge.loss(edge.output(alpha))
        predicted = gradients.smoothed_loss(edge, 1.0, alpha)
        gap = predicted - clean
        assert gap > 0
        assert abs(mean - predicted) <= half + 0.1 * gap, t
        gaps.append(float(gap))
    assert gaps == sorted(gaps)  # the penalty grows with the skip weight


def test_the_second_order_bias_is_the_slope_of_the_smoothing_term(edge):
    # d/dt of (sigma^2 / 2) f_skip^2 tr H along alpha_skip, by central differences.
    step = 1e-5
    plus, minus = edge.alpha.clone(), edge.alpha.clone()
    plus[edge.skip] += step
    minus[edge.skip] -= step
    slope = (gradients.smoothing_term(edge, 0.5, plus) - gradients.smoothing_term(edge, 0.5, minus)) / (2 * step)
    assert relative_error(slope, gradients.second_order_bias(edge, 0.5)[edge.skip]) < 1e-6


# -- step 5: the competition on one edge ----------------------------------------------------------
def test_edge_search_returns_plain_data():
    run = gradients.edge_search(0.2, steps=3, seed=0)
    assert json.loads(json.dumps(run)) == run
    assert run["op_names"][run["skip"]] == "skip_connect"
    assert len(run["weights"]) == 3
    assert all(abs(sum(row) - 1) < 1e-6 for row in run["weights"])


def test_noise_keeps_skip_from_taking_the_edge():
    final = {}
    for lam in [0.0, 1.0]:
        run = gradients.edge_search(lam, steps=150, seed=0)
        final[lam] = sum(row[run["skip"]] for row in run["weights"][-50:]) / 50
    assert final[0.0] > 0.8
    assert final[1.0] < final[0.0] - 0.3


def test_edge_search_rejects_bad_settings():
    with pytest.raises(ConfigError, match="skip_connect"):
        gradients.edge_search(0.2, steps=5, space=["sep_conv_3x3", "max_pool_3x3"])
    with pytest.raises(ConfigError):
        gradients.edge_search(-0.1, steps=5)
    with pytest.raises(ConfigError):
        gradients.edge_search(0.2, steps=0)
