r"""The architecture gradient of one noisy mixed edge: the paper's derivation, computed.

**The paper's steps** (Chu & Zhang, NoisyDARTS). On one edge, with the noise ``n`` added to the
skip branch before its weight ``f(alpha_skip)``:

.. math::  L = g(y), \qquad y = f(\alpha_{skip})\,(x + n), \qquad
           n \sim \mathcal N(\mu, \sigma^2),\ \sigma = \lambda\,\mathrm{std}(x)

The noise carries no gradient, so the chain rule gives (``paper_skip_gradient``)

.. math::  \frac{\partial L}{\partial \alpha_{skip}}
           = \frac{\partial L}{\partial y}\, f'(\alpha_{skip})\,(x + n)

and, holding ``dL/dy`` at its noise-free value ``dL/dy*`` (first order),

.. math::  \mathbb E\Big[\frac{\partial L}{\partial \alpha_{skip}}\Big]
           \approx \frac{\partial L}{\partial y^*}\,
           f'(\alpha_{skip})\,\big(\mathbb E[x] + \mathbb E[n]\big)

so the noisy gradient is unbiased only if :math:`\mu = 0`; otherwise it is off by
:math:`\langle \partial L/\partial y^*, \mu\rangle f'(\alpha_{skip})` (``mean_shift_bias``).

**Added for teaching** (standard calculus, not the paper's text). On a real mixed edge
:math:`y = \sum_k f_k(\alpha)\,\tilde o_k` with :math:`\tilde o_{skip} = x + n`, every logit sees
the noisy skip branch through the Jacobian of ``f`` (``weight_jacobian``, ``alpha_gradient``):

.. math::  \frac{\partial L}{\partial \alpha_j}
           = \sum_k \Big\langle \frac{\partial L}{\partial y}, \tilde o_k \Big\rangle
           \frac{\partial f_k}{\partial \alpha_j}, \qquad
           \frac{\partial f_k}{\partial \alpha_j} = f_k(\delta_{kj} - f_j) \text{ (softmax)}, \quad
           \delta_{kj} f_k (1 - f_k) \text{ (sigmoid)}

With :math:`\mu = 0`, a second-order expansion of ``g`` gives the smoothed loss (``smoothed_loss``),
and, since the law of ``n`` does not depend on ``alpha``, the expected gradient is its gradient:
a bias of order :math:`\sigma^2` (``second_order_bias``):

.. math::  \mathbb E_n[L] \approx L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} \nabla^2_y g,
           \qquad
           \mathbb E_n[\nabla_\alpha L] - \nabla_\alpha L \approx
           \nabla_\alpha \Big[\tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} \nabla^2_y g\Big]

The part of the gradient linear in ``n`` gives its variance (``variance_rule``):

.. math::  \mathrm{Var}\Big[\frac{\partial L}{\partial \alpha_{skip}}\Big]
           \approx f'(\alpha_{skip})^2\,\sigma^2\,
           \Big\lVert \frac{\partial L}{\partial y^*} \Big\rVert^2

It leaves out that ``dL/dy`` itself moves with ``n`` (a term of size ``f_skip * Hessian * x``).

``OneEdge`` is the set-up: a real ``MixedOp``, a fixed input and a small ``g`` (a cross-entropy
after a linear layer). ``noisy_gradients`` draws the Monte Carlo samples, ``z_score`` compares their
mean with a prediction (checks assert ``|z| < Z_CHECK = 5``, which fails by chance once in 1.7
million runs); ``edge_search`` runs the architecture competition on one edge.
"""
import math

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, check_number
from .mixed import MixedOp, edge_weights
from .ops import SKIP, space_ops


def ops_with_skip(space):
    """The op names of ``space`` (see ``ops.space_ops``), which must include the skip op studied
    here."""
    op_names = space_ops(space)
    if SKIP not in op_names:
        raise ConfigError(f"the noise sits on {SKIP!r}, which space {space!r} lacks: "
                          f"{list(op_names)}")
    return op_names


# -- the closed forms ---------------------------------------------------------------------------
def weight_jacobian(alpha, weighting="softmax"):
    r"""``J[k, j]`` :math:`= \partial f_k / \partial \alpha_j` for one edge's logits ``alpha``
    (shape ``[K]``)."""
    f = edge_weights(alpha, weighting)
    if weighting == "softmax":
        return torch.diag(f) - torch.outer(f, f)  # f_k (delta_kj - f_j)
    return torch.diag(f * (1 - f))  # each sigmoid sees its own logit only


def alpha_gradient(dL_dy, branches, alpha, weighting="softmax"):
    r""":math:`\partial L/\partial \alpha_j
    = \sum_k \langle \partial L/\partial y, \tilde o_k\rangle\, J_{kj}`.

    ``branches``: the op outputs :math:`\tilde o_k` stacked ``[K, *y.shape]``, skip branch *with*
    its noise.
    """
    inner = (dL_dy * branches).flatten(1).sum(1)  # <dL/dy, o_k> for every op k
    return inner @ weight_jacobian(alpha, weighting)


def paper_skip_gradient(dL_dy, noisy_skip, f_prime):
    r"""The paper's step 2: :math:`\partial L/\partial \alpha_{skip}
    = \partial L/\partial y \cdot f'(\alpha_{skip}) \cdot (x + n)`."""
    return f_prime * (dL_dy * noisy_skip).sum()


def hessian_trace(loss_fn, y):
    r""":math:`\operatorname{tr} \nabla^2_y g = \sum_i \partial^2 g / \partial y_i^2`, exactly:
    one backward per coordinate of ``y``."""
    y = y.detach().requires_grad_()
    grad = torch.autograd.grad(loss_fn(y), y, create_graph=True)[0].flatten()
    return sum(torch.autograd.grad(grad[i], y, retain_graph=True)[0].flatten()[i]
               for i in range(grad.numel()))


# -- the set-up: one real mixed edge and g ------------------------------------------------------
class OneEdge:
    r"""One mixed edge with a loss on top:
    :math:`L(\alpha, n) = g\big(\sum_k f_k(\alpha)\, o_k(x) + f_{skip}(\alpha)\, n\big)`.

    ``g(y)`` is a cross-entropy after a linear layer on the flattened ``y``, on fixed labels.
    The op outputs ``o_k(x)`` do not depend on ``alpha``, so they are computed once (``branches``);
    the noise is drawn by the edge's own ``NoisySkip``.
    """

    def __init__(self, mixed, head, x, labels, alpha, weighting="softmax"):
        self.mixed, self.head, self.x, self.labels = mixed, head, x, labels
        self.alpha, self.weighting = alpha, weighting
        self.skip = mixed.op_names.index(SKIP)
        with torch.no_grad():
            outputs = [torch.zeros_like(x) for _ in mixed.op_names]  # `none` stays zeros
            for k, op in zip(mixed.computed, mixed.ops):
                outputs[k] = op(x)
        self.branches = torch.stack(outputs)  # [K, *x.shape]

    def output(self, alpha, noise=None):
        """``y``; ``alpha`` ``[..., K]`` and ``noise`` ``[..., *x.shape]`` may carry a leading
        draws axis."""
        f = edge_weights(alpha, self.weighting)
        y = (f @ self.branches.flatten(1)).unflatten(-1, self.x.shape)  # sum_k f_k o_k(x)
        if noise is not None:
            y = y + f[..., self.skip].reshape(*f.shape[:-1], 1, 1, 1, 1) * noise
        return y

    def loss(self, y):
        """``g(y)``: mean cross-entropy over the batch, one value per leading draw."""
        logits = self.head(y.flatten(-3))
        picked = logits.log_softmax(-1).gather(
            -1, self.labels.expand(logits.shape[:-1]).unsqueeze(-1))
        return -picked.squeeze(-1).mean(-1)

    def loss_hessian_trace(self, y):
        r""":math:`\operatorname{tr}\nabla^2_y g` in closed form:
        :math:`\nabla^2_z \mathrm{CE} = \mathrm{diag}(p) - pp^\top` at the logits
        :math:`z = Wy + b`, so per sample
        :math:`\sum_i p_i \lVert W_i\rVert^2 - \lVert W^\top p\rVert^2`."""
        p = self.head(y.flatten(-3)).softmax(-1)
        W = self.head.weight
        return (p @ W.pow(2).sum(1) - (p @ W).pow(2).sum(-1)).mean(-1)

    def sigma(self, noise_lambda):
        """The noise std ``lambda * std(x)`` that ``NoisySkip`` uses on this edge's skip branch."""
        return noise_lambda * self.branches[self.skip].std()

    def draw_noise(self, noise_lambda, draws, mean=0.0, kind="gaussian"):
        """``draws`` independent draws of ``n`` from the edge's ``NoisySkip``, stacked
        ``[draws, *x.shape]``."""
        self.mixed.noise.configure(noise_lambda, kind, mean)
        return torch.stack([self.mixed.noise.sample(self.branches[self.skip])
                            for _ in range(draws)])

    def dL_dy(self, alpha=None, noise=None):
        """``dL/dy`` at ``alpha`` (default: the edge's) and ``noise`` (default: none, so ``y*``)."""
        y = self.output(self.alpha if alpha is None else alpha, noise).detach().requires_grad_()
        return torch.autograd.grad(self.loss(y), y)[0]


def one_edge(space="darts7", channels=4, size=4, batch=8, classes=3, weighting="softmax", seed=0,
             dtype=torch.float64):
    """A ``OneEdge`` with a fresh ``MixedOp`` (training mode), random input, labels and head,
    alpha ~ 1e-3 N(0, 1)."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left alone
        torch.manual_seed(seed)
        # Only alpha's gradient is studied here: the op weights and the head stay fixed.
        mixed = MixedOp(channels, 1, ops_with_skip(space)).to(dtype).train().requires_grad_(False)
        head = nn.Linear(channels * size * size, classes).to(dtype).requires_grad_(False)
        x = torch.randn(batch, channels, size, size, dtype=dtype)
        labels = torch.randint(0, classes, (batch,))
        alpha = 1e-3 * torch.randn(len(mixed.op_names), dtype=dtype)  # DARTS's initialisation
        return OneEdge(mixed, head, x, labels, alpha, weighting)


# -- autograd on the real MixedOp --------------------------------------------------------------
def mixed_op_forward(edge, noise_lambda, alpha):
    """``y`` from one forward of the edge's real ``MixedOp`` with the noise on (skip only), and the
    op outputs it used: ``branches`` ``[K, *x.shape]``, the skip branch with the very noise drawn
    (caught by a hook on ``NoisySkip``)."""
    noisy_skip = []
    hook = edge.mixed.noise.register_forward_hook(
        lambda module, inputs, output: noisy_skip.append(output.detach()))
    edge.mixed.noise.configure(noise_lambda, "gaussian", 0.0)
    try:
        y = edge.mixed(edge.x, edge_weights(alpha, edge.weighting))
    finally:
        hook.remove()
    branches = edge.branches.clone()
    branches[edge.skip] = noisy_skip[0]
    return y, branches


def mixed_op_gradient(edge, noise_lambda, alpha=None):
    """``(dL/dalpha, dL/dy, branches)`` by autograd through one noisy forward of the real
    ``MixedOp``."""
    alpha = (edge.alpha if alpha is None else alpha).detach().requires_grad_()
    y, branches = mixed_op_forward(edge, noise_lambda, alpha)
    dL_dalpha, dL_dy = torch.autograd.grad(edge.loss(y), [alpha, y])
    return dL_dalpha, dL_dy, branches


# -- Monte Carlo over the noise ------------------------------------------------------------------
def clean_gradient(edge, alpha=None):
    r""":math:`\nabla_\alpha L` without noise."""
    alpha = (edge.alpha if alpha is None else alpha).detach().requires_grad_()
    return torch.autograd.grad(edge.loss(edge.output(alpha)), alpha)[0]


def noisy_gradients(edge, noise_lambda, draws, mean=0.0, kind="gaussian", antithetic=False):
    r""":math:`\nabla_\alpha L(\alpha, n_d)` for ``draws`` noise draws, by autograd: ``[draws, K]``.

    One backward gives every draw's gradient: draw ``d`` has its own copy of ``alpha``.
    ``antithetic``: each row is the mean over a pair ``(n, -n)``, which cancels every odd power of
    ``n`` exactly and leaves the even part, the second-order bias (needs ``mean == 0``).
    """
    if antithetic and mean != 0:
        raise ConfigError(f"antithetic draws mirror zero-mean noise; got noise mean {mean!r}")
    noise = edge.draw_noise(noise_lambda, draws, mean, kind)
    if antithetic:
        noise = torch.cat([noise, -noise])
    alpha = edge.alpha.expand(len(noise), -1).clone().requires_grad_()
    grads = torch.autograd.grad(edge.loss(edge.output(alpha, noise)).sum(), alpha)[0]
    return (grads[:draws] + grads[draws:]) / 2 if antithetic else grads


def noisy_losses(edge, noise_lambda, draws, alpha=None):
    """``L(alpha, n_d)`` for ``draws`` zero-mean Gaussian draws: ``[draws]``."""
    alpha = edge.alpha if alpha is None else alpha
    with torch.no_grad():
        return edge.loss(edge.output(alpha, edge.draw_noise(noise_lambda, draws)))


def mean_interval(samples, z=1.96):
    """Mean over the first axis and the half-width of its 95 % interval, ``z * std / sqrt(n)``.

    For a picture, not for a check: the true mean falls outside a 95 % interval one time in 20.
    A check uses ``z_score`` with a wide margin (``Z_CHECK``).
    """
    return samples.mean(0), z * standard_error(samples)


# A Monte Carlo check asserts |z| < Z_CHECK: by chance alone, with Gaussian tails, it fails once in
# 1.7 million runs (two_sided_tail(5) = 5.7e-7); at 1.96 (a 95 % interval) it would fail 1 in 20.
Z_CHECK = 5.0


def standard_error(samples):
    """The standard error of the mean over the first axis, ``std / sqrt(n)``."""
    return samples.std(0) / math.sqrt(len(samples))


def z_score(samples, expected):
    r"""``(mean - expected) / standard_error``: about :math:`\mathcal N(0, 1)` when the samples'
    true mean is ``expected`` (many samples: the central limit theorem), far from 0 otherwise."""
    return (samples.mean(0) - expected) / standard_error(samples)


def two_sided_tail(z):
    """``P(|Z| > z)`` for a standard normal ``Z``: the false-failure rate of ``|z_score| < z``."""
    return math.erfc(z / math.sqrt(2.0))


def loglog_slope(xs, ys):
    """Least-squares slope of ``log ys`` against ``log xs``: the ``p`` in ``ys ~ xs ** p``."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0])


# -- the predictions ---------------------------------------------------------------------------
def skip_f_prime(edge, alpha=None):
    r""":math:`f'(\alpha_{skip}) = \partial f_{skip} / \partial \alpha_{skip}` (softmax:
    :math:`f(1-f)`, sigmoid too)."""
    alpha = edge.alpha if alpha is None else alpha
    return weight_jacobian(alpha, edge.weighting)[edge.skip, edge.skip]


def mean_shift_bias(edge, noise_mean, alpha=None):
    r"""The paper's step 3 with :math:`\mathbb E[n] = \mu \ne 0`:
    :math:`\langle \partial L/\partial y^*, \mu\rangle\, J_{skip, j}` for every logit ``j``."""
    alpha = edge.alpha if alpha is None else alpha
    return noise_mean * edge.dL_dy(alpha).sum() * weight_jacobian(alpha, edge.weighting)[edge.skip]


def smoothing_term(edge, noise_lambda, alpha):
    r""":math:`\tfrac{\sigma^2}{2} f_{skip}(\alpha)^2 \operatorname{tr}\nabla^2_y g(y(\alpha))`,
    differentiable in ``alpha``."""
    f_skip = edge_weights(alpha, edge.weighting)[..., edge.skip]
    return (0.5 * (f_skip * edge.sigma(noise_lambda)) ** 2
            * edge.loss_hessian_trace(edge.output(alpha)))


def smoothed_loss(edge, noise_lambda, alpha=None):
    r"""The second-order prediction of :math:`\mathbb E_n[L]`:
    :math:`L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr}\nabla^2_y g`."""
    alpha = edge.alpha if alpha is None else alpha
    with torch.no_grad():
        return edge.loss(edge.output(alpha)) + smoothing_term(edge, noise_lambda, alpha)


def second_order_bias(edge, noise_lambda, alpha=None):
    r""":math:`\mathbb E_n[\nabla_\alpha L] - \nabla_\alpha L
    \approx \nabla_\alpha\big[\tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr}\nabla^2_y g\big]`."""
    alpha = (edge.alpha if alpha is None else alpha).detach().requires_grad_()
    return torch.autograd.grad(smoothing_term(edge, noise_lambda, alpha), alpha)[0]


def variance_rule(edge, noise_lambda, alpha=None):
    r""":math:`f'(\alpha_{skip})^2\,\sigma^2\,\lVert \partial L/\partial y^* \rVert^2`: the
    first-order variance of :math:`\partial L/\partial \alpha_{skip}`."""
    alpha = edge.alpha if alpha is None else alpha
    return ((skip_f_prime(edge, alpha) * edge.sigma(noise_lambda)) ** 2
            * edge.dL_dy(alpha).pow(2).sum())


# -- the competition on one edge ---------------------------------------------------------------
def edge_search(noise_lambda, steps=200, space="s2", channels=4, size=4, batch=16, classes=4,
                samples=256, alpha_lr=0.03, weight_lr=0.05, seed=0):
    """Bilevel search on one ``MixedOp`` plus a linear head: per step an Adam step on ``alpha``
    (valid batch) and an SGD step on the weights (train batch), the noise on in both.

    The labels are a fixed linear function of the edge's input, a task that the skip op solves on
    its own from step one, as it helps a deep supernet from step one. Returns plain data:
    ``{"op_names", "skip", "weights": [[f_k per op] per step]}``.
    """
    check_number("noise_lambda", noise_lambda, minimum=0.0)
    check_number("steps", steps, minimum=1, integer=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mixed = MixedOp(channels, 1, ops_with_skip(space)).train()
        mixed.noise.configure(noise_lambda)
        head = nn.Linear(channels * size * size, classes)
        teacher = torch.randn(classes, channels * size * size)
        x_train, x_valid = torch.randn(2, samples, channels, size, size)
        y_train, y_valid = ((x.flatten(1) @ teacher.T).argmax(1) for x in (x_train, x_valid))
        alpha = (1e-3 * torch.randn(len(mixed.op_names))).requires_grad_()
        weights = list(mixed.parameters()) + list(head.parameters())
        alpha_opt = torch.optim.Adam([alpha], lr=alpha_lr, betas=(0.5, 0.999))
        weight_opt = torch.optim.SGD(weights, lr=weight_lr, momentum=0.9)
        loss = nn.CrossEntropyLoss()
        history = []
        for _ in range(steps):
            pick_valid, pick_train = torch.randint(0, samples, (2, batch))
            # architecture step: only alpha's gradient is needed, so autograd skips the op weights
            valid_loss = loss(head(mixed(x_valid[pick_valid], edge_weights(alpha)).flatten(1)),
                              y_valid[pick_valid])
            alpha.grad = torch.autograd.grad(valid_loss, alpha)[0]
            alpha_opt.step()
            # weight step, at the new alpha, with fresh noise
            train_loss = loss(head(mixed(x_train[pick_train],
                                         edge_weights(alpha).detach()).flatten(1)),
                              y_train[pick_train])
            for parameter, grad in zip(weights, torch.autograd.grad(train_loss, weights)):
                parameter.grad = grad
            weight_opt.step()
            history.append(edge_weights(alpha).detach().tolist())
    return {"op_names": list(mixed.op_names), "skip": mixed.op_names.index(SKIP),
            "weights": history}
