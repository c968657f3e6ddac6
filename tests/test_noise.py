"""NoisySkip: the noise's distribution, where it is off, and that no gradient flows through it.

Statistical checks draw ``N`` samples and allow 5 standard errors of the estimate:
the mean's is ``sigma / sqrt(N)``, the std's is ``sigma * sqrt((kurtosis - 1) / (4 N))``
(kurtosis 3 for a Gaussian, 9/5 for a uniform), so a correct sampler fails about once in 10^6 runs.
"""
import math

import pytest
import torch

from ndarts_edu.errors import ConfigError
from ndarts_edu.config import cosine_schedule as cosine_scale
from ndarts_edu.noise import NOISE_KINDS, NoisySkip

N = 200_000
KURTOSIS = {"gaussian": 3.0, "uniform": 9.0 / 5.0}


def _input(seed=0):
    g = torch.Generator().manual_seed(seed)
    # std 3, mean 1: a noise scaled by lambda alone (not by std(x)) would be off by a factor 3.
    return (torch.randn(N // 100, 4, 5, 5, generator=g) * 3.0 + 1.0).double()


def _draw(module, x, seed=1):
    torch.manual_seed(seed)
    module.train()
    return module(x) - x


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
@pytest.mark.parametrize("mu", [0.0, 0.5, -1.0])
def test_additive_noise_mean_and_std(kind, mu):
    lam = 0.2
    x = _input()
    n = _draw(NoisySkip(lam, kind, mu), x)
    sigma = lam * float(x.std())
    assert n.numel() == N
    mean_se = sigma / math.sqrt(N)
    std_se = sigma * math.sqrt((KURTOSIS[kind] - 1) / (4 * N))
    assert abs(float(n.mean()) - mu) < 5 * mean_se
    assert abs(float(n.std()) - sigma) < 5 * std_se


def test_uniform_and_gaussian_have_their_own_shapes():
    lam = 0.2
    x = _input()
    sigma = lam * float(x.std())
    half_width = math.sqrt(3.0) * sigma
    u = _draw(NoisySkip(lam, "uniform"), x)
    assert float(u.abs().max()) <= half_width * (1 + 1e-9)
    g = _draw(NoisySkip(lam, "gaussian"), x)
    # P(|Z| > sqrt 3) = 0.0833 for a Gaussian; 5 binomial standard errors.
    p = math.erfc(math.sqrt(1.5))
    share = float((g.abs() > half_width).double().mean())
    assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_multiplicative_noise_std_is_lambda_times_abs_x(mu):
    lam = 0.3
    g = torch.Generator().manual_seed(0)
    signs = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0)
    x = (signs * (0.5 + 4 * torch.rand(N, generator=g))).double().reshape(N // 100, 4, 5, 5)
    n = _draw(NoisySkip(lam, "multiplicative", mu), x)
    # n = x * (m - 1), m ~ N(1 + mu, lam^2): n / x ~ N(mu, lam^2) whatever |x| is.
    ratio = n / x
    assert abs(float(ratio.mean()) - mu) < 5 * lam / math.sqrt(N)
    assert abs(float(ratio.std()) - lam) < 5 * lam * math.sqrt(2 / (4 * N))
    # In distribution: big |x| gets proportionally big noise.
    big, small = x.abs() > 3, x.abs() < 1
    assert float(n[big].std()) > 3 * float(n[small].std())
    zeros = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    assert torch.equal(_draw(NoisySkip(lam, "multiplicative", mu), zeros), zeros)


def test_mean_only_noise_is_a_constant_shift():
    x = _input()[:4]
    n = _draw(NoisySkip(0.0, "gaussian", 0.5), x)
    assert torch.allclose(n, torch.full_like(n, 0.5))


def test_fresh_noise_at_every_forward():
    x = _input()[:4]
    m = NoisySkip(0.2).train()
    assert not torch.equal(m(x), m(x))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_no_noise_in_eval_mode(kind):
    x = _input()[:4]
    m = NoisySkip(0.5, kind, 1.0).eval()
    assert m(x) is x
    assert not m.active


def test_no_noise_at_lambda_zero_and_zero_mean():
    x = _input()[:4]
    m = NoisySkip(0.0).train()
    assert not m.active and m(x) is x


def test_scale_multiplies_lambda_and_mean():
    lam, mu = 0.2, 1.0
    x = _input()
    m = NoisySkip(lam, "gaussian", mu)
    m.scale = 0.5
    n = _draw(m, x)
    sigma = 0.5 * lam * float(x.std())
    assert abs(float(n.mean()) - 0.5 * mu) < 5 * sigma / math.sqrt(N)
    assert abs(float(n.std()) - sigma) < 5 * sigma * math.sqrt(2 / (4 * N))
    m.scale = 0.0
    assert not m.active


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_no_gradient_through_the_noise(kind):
    x = torch.randn(8, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    m = NoisySkip(0.5, kind, 0.3).train()
    m(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_std_of_x_is_not_differentiated():
    """d/dx sum(w * (x + n)) = w exactly; a noise built from a differentiable std(x) would add a term."""
    lam = 0.5
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64, generator=g).requires_grad_()
    w = torch.randn(6, 3, 4, 4, dtype=torch.float64, generator=g)
    y = NoisySkip(lam).train()(x)
    (grad,) = torch.autograd.grad((w * y).sum(), x)
    assert torch.equal(grad, w)
    # The manual computation with std(x) left in the graph, same draw z = n / (lam std(x)):
    z = ((y - x) / (lam * x.std())).detach()
    (manual,) = torch.autograd.grad((w * (x + z * lam * x.std())).sum(), x)
    assert not torch.allclose(manual, w)  # so the check above can tell the two apart
    expected_extra = (w * z).sum() * lam * torch.autograd.functional.jacobian(lambda t: t.std(), x.detach())
    assert torch.allclose(manual - w, expected_extra)


def test_cosine_scale_endpoints():
    assert cosine_scale(0, 50) == 1.0
    assert cosine_scale(25, 50) == pytest.approx(0.5)
    assert cosine_scale(50, 50) == pytest.approx(0.0, abs=1e-15)
    assert cosine_scale(80, 50) == pytest.approx(0.0, abs=1e-15)  # stays off after the decay
    values = [cosine_scale(e, 10) for e in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x"])
def test_configure_rejects_bad_lambda_and_keeps_the_old_one(bad):
    m = NoisySkip(0.2)
    with pytest.raises(ConfigError, match="noise_lambda"):
        m.configure(noise_lambda=bad)
    assert m.noise_lambda == 0.2
    with pytest.raises(ConfigError):
        NoisySkip(bad)


def test_configure_rejects_unknown_kind_and_bad_mean():
    m = NoisySkip(0.2)
    with pytest.raises(ConfigError, match="laplace"):
        m.configure(kind="laplace")
    with pytest.raises(ConfigError, match="mean"):
        m.configure(mean=float("nan"))
    assert (m.kind, m.mean) == ("gaussian", 0.0)
    m.configure(0.1, "uniform", -0.5)
    assert (m.noise_lambda, m.kind, m.mean) == (0.1, "uniform", -0.5)


def test_hold_draws_repeats_the_first_draw_and_ends_with_the_context():
    from ndarts_edu.noise import hold_draws

    skip = NoisySkip(0.5).train()
    x = torch.randn(8, 3, 4, 4)
    with hold_draws(skip):
        first, second = skip(x) - x, skip(x) - x
        # a different input of the same shape gets the same noise n (an additive constant to autograd)
        third = skip(2 * x) - 2 * x
    assert torch.equal(first, second) and torch.allclose(first, third, atol=1e-6)
    assert not torch.equal(skip(x) - x, first)  # fresh draws again outside
    with hold_draws(skip):
        assert not torch.equal(skip(x) - x, first)  # a new context draws anew


def test_hold_draws_refuses_another_shape():
    from ndarts_edu.noise import hold_draws

    skip = NoisySkip(0.5).train()
    with hold_draws(skip), pytest.raises(RuntimeError, match="same shapes"):
        skip(torch.randn(8, 3, 4, 4))
        skip(torch.randn(4, 3, 4, 4))


def test_held_draws_can_be_replayed_after_fresh_forwards_and_contexts_nest():
    from ndarts_edu.noise import hold_draws

    skip = NoisySkip(0.5).train()
    x = torch.randn(8, 3, 4, 4)
    with hold_draws(skip) as draws:
        held = skip(x) - x
    fresh = skip(x) - x  # outside: a fresh draw, and the held one is left alone
    with hold_draws(skip, draws):
        assert torch.equal(skip(x) - x, held)
        with hold_draws(skip):
            inner = skip(x) - x
            assert not torch.equal(inner, held) and torch.equal(skip(x) - x, inner)
        assert torch.equal(skip(x) - x, held)  # the outer draws again after the inner context
    assert not torch.equal(fresh, held)
