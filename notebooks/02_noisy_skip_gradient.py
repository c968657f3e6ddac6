# %% [markdown]
# # The noisy skip gradient, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/02_noisy_skip_gradient.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/02_noisy_skip_gradient.ipynb)
#
# NoisyDARTS adds Gaussian noise to the skip connection of every mixed edge during the search. The
# paper argues that this noise leaves the architecture gradient unbiased on average, while it stops
# the skip connection from winning every edge. This notebook redoes that derivation on one real
# mixed edge of `ndarts_edu` and checks every step with numbers.
#
# What comes from where:
#
# - **Paper**: the set-up $L = g(y)$, $y = f(\alpha_{skip})\,(x + n)$, the gradient formula, the
#   unbiasedness argument (steps 1 to 3 of Chu & Zhang, *Noisy Differentiable Architecture Search*),
#   and the biased-noise ablation.
# - **Added for teaching**: the softmax Jacobian for every logit, the second-order bias, the variance,
#   the competition on one edge, and the smoothing argument. The smoothing argument is the
#   textbook one (Bishop, 1995). The paper's own proof is not reproduced here.
#
# Every claim is followed by an `assert`, so a run that reaches the end means the claims held. The
# code lives in `ndarts_edu.gradients`. The cells show it with `inspect.getsource` rather than
# copying it.

# %%
# On Colab only: install the package and what its figures need, keeping Colab's own ipywidgets.
import sys
if "google.colab" in sys.modules:
    import ipywidgets
    PACKAGE = "ndarts_edu[figures] @ git+https://github.com/not_yet_published/ndarts_edu"
    KEEP = f"ipywidgets=={ipywidgets.__version__}"  # Colab's own (7.x), loaded at kernel start
    get_ipython().run_line_magic("pip", f'install -q "{PACKAGE}" "{KEEP}"')
    from google.colab import output
    output.enable_custom_widget_manager()  # Colab's manager for third-party widgets (anywidget)
    # plotly's FigureWidget has open rendering bugs on Colab, so the figures there are plain plots
    # redrawn in place. To try the live widgets instead, uncomment this line and run the cell again:
    # import os; os.environ["NDARTS_EDU_LIVE"] = "widget"

# %%
import inspect
import time

import numpy as np
import plotly.graph_objects as go
import torch

from ndarts_edu import gradients, viz
from ndarts_edu.mixed import edge_weights

torch.manual_seed(0)      # Restart & Run All tells the same story every time
torch.set_num_threads(1)  # tiny tensors: one thread is as fast, and leaves the machine responsive


def show(*functions):
    # Print the library's own code, so the notebook never holds a second copy of it.
    print("\n".join(inspect.getsource(function) for function in functions))


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max())


# %% [markdown]
# ## 1. The set-up *(paper, step 1)*
#
# The paper looks at the skip branch of one edge on its own:
#
# $$L = g(y), \qquad y = f(\alpha_{skip})\,(x + n), \qquad n \sim \mathcal N(0, \sigma^2), \quad \sigma = \lambda\,\mathrm{std}(x)$$
#
# Here $f$ is the edge's weighting (softmax over the edge's logits in DARTS) and $g$ is everything
# after the edge. The noise is element-wise, and $\mathrm{std}(x)$ is one number for the whole
# tensor. When $n$ is small, $y \approx y^* = f(\alpha_{skip})\,x$.
#
# Our edge is a real `MixedOp` with the 7 ops of the NoisyDARTS code (`darts7`). Its input is a
# batch of 8 random inputs, each 4 channels by 4×4 pixels, in float64. The loss $g$ is a
# cross-entropy after a linear layer on the flattened $y$, on fixed random labels. The full edge
# computes
#
# $$y = \sum_k f_k(\alpha)\, o_k(x) + f_{skip}(\alpha)\, n, \qquad f = \mathrm{softmax}(\alpha)$$
#
# and the paper's $y$ is its skip term alone. The op outputs $o_k(x)$ do not depend on $\alpha$, so
# `OneEdge` computes them once.

# %%
edge = gradients.one_edge(seed=0)
noise_lambda = 0.2  # the paper's main setting
print("ops:      ", edge.mixed.op_names)
print("f(alpha): ", edge_weights(edge.alpha).numpy().round(4))
print(f"sigma = lambda * std(x) = {edge.sigma(noise_lambda):.4f} at lambda = {noise_lambda}")
show(gradients.OneEdge.output, gradients.OneEdge.loss)

# %% [markdown]
# First check: the sum above is what the library's `MixedOp` computes. One noisy forward of the
# real edge catches its skip branch $x + n$ with a hook, then compares it with the sum.

# %%
y_mixed_op, branches = gradients.mixed_op_forward(edge, noise_lambda, edge.alpha)
y_sum = (edge_weights(edge.alpha)[:, None, None, None, None] * branches).sum(0)
noise = branches[edge.skip] - edge.x
print(f"max |MixedOp - sum| = {(y_mixed_op - y_sum).abs().max():.1e}")
print(f"std(n) / (lambda std(x)) = {noise.std() / edge.sigma(noise_lambda):.3f}")

# %%
assert torch.allclose(y_mixed_op, y_sum, rtol=1e-12, atol=1e-14)
assert abs(noise.std() / edge.sigma(noise_lambda) - 1) < 0.1  # 512 draws: about 3 % spread

# %% [markdown]
# ## 2. The gradient in closed form *(paper, step 2)*
#
# The noise carries no gradient, because `NoisySkip` draws it outside autograd. So the chain rule
# through $y = f(\alpha_{skip})\,(x + n)$ gives
#
# $$\frac{\partial L}{\partial \alpha_{skip}} = \Big\langle \frac{\partial L}{\partial y},\; f'(\alpha_{skip})\,(x + n) \Big\rangle$$
#
# The paper writes a product. With tensors it is a sum over every element, an inner product. For
# softmax, $f'(\alpha_{skip}) = \partial f_{skip} / \partial \alpha_{skip} = f_{skip}(1 - f_{skip})$.

# %%
show(gradients.paper_skip_gradient)

# %%
alpha = edge.alpha.clone().requires_grad_()
noisy_skip = edge.x + edge.draw_noise(noise_lambda, 1)[0]  # x + n, one fixed draw
loss = edge.loss(edge_weights(alpha)[edge.skip] * noisy_skip)  # the paper's y: the skip term alone
by_autograd = torch.autograd.grad(loss, alpha)[0][edge.skip]

y = (edge_weights(edge.alpha)[edge.skip] * noisy_skip).requires_grad_()
dL_dy = torch.autograd.grad(edge.loss(y), y)[0]
by_formula = gradients.paper_skip_gradient(dL_dy, noisy_skip, gradients.skip_f_prime(edge))
print(f"autograd {by_autograd:.12f}   paper's formula {by_formula:.12f}")

# %%
assert relative_error(by_formula, by_autograd) < 1e-6

# %% [markdown]
# ### Every logit sees the noise *(added for teaching)*
#
# On the full edge, $y = \sum_k f_k(\alpha)\,\tilde o_k$, where $\tilde o_{skip} = x + n$ and
# $\tilde o_k = o_k(x)$ for the other ops. Softmax couples the logits through its Jacobian:
#
# $$\frac{\partial f_k}{\partial \alpha_j} = f_k(\delta_{kj} - f_j)
# \quad\Longrightarrow\quad
# \frac{\partial L}{\partial \alpha_j} = \sum_k \Big\langle \frac{\partial L}{\partial y}, \tilde o_k \Big\rangle\, f_k(\delta_{kj} - f_j)$$
#
# Two things follow:
#
# - For $j = skip$, the result is the paper's term
#   $f_{skip}(1 - f_{skip})\,\langle \partial L / \partial y,\, x + n\rangle$ minus a cross term from
#   the other ops, $f_{skip} \sum_{k \ne skip} f_k \langle \partial L / \partial y, o_k \rangle$.
# - Every other logit also receives the noisy branch, through the term
#   $-f_{skip} f_j\,\langle \partial L / \partial y,\, x + n\rangle$.
#
# FairDARTS weights each op with its own sigmoid, $f_k = \sigma(\alpha_k)$. Its Jacobian is
# diagonal, $\delta_{kj}\,f_k(1 - f_k)$, so there the paper's formula is the whole gradient.

# %%
show(gradients.weight_jacobian, gradients.alpha_gradient)

# %% [markdown]
# Five noisy forwards of the real `MixedOp` follow, each with a fresh noise draw. For each one,
# autograd and the closed form are compared for every logit. The gradient of the skip logit is
# also split into the paper's term and the cross term.

# %%
f = edge_weights(edge.alpha)
others = [k for k in range(len(f)) if k != edge.skip]
closed_form_errors, splits = [], []
for draw in range(5):
    by_autograd, dL_dy, branches = gradients.mixed_op_gradient(edge, noise_lambda)
    by_formula = gradients.alpha_gradient(dL_dy, branches, edge.alpha)
    closed_form_errors.append(relative_error(by_formula, by_autograd))
    paper_term = gradients.paper_skip_gradient(dL_dy, branches[edge.skip], gradients.skip_f_prime(edge))
    cross_term = -f[edge.skip] * sum(f[k] * (dL_dy * branches[k]).sum() for k in others)
    splits.append((by_autograd[edge.skip], paper_term, cross_term))
    print(f"draw {draw}: closed form vs autograd {closed_form_errors[-1]:.1e};  dL/dalpha_skip "
          f"{by_autograd[edge.skip]:+.5f} = paper's term {paper_term:+.5f} + cross term {cross_term:+.5f}")

# %%
assert max(closed_form_errors) < 1e-6
assert all(abs(total - (paper + cross)) < 1e-12 for total, paper, cross in splits)

fair_edge = gradients.one_edge(seed=0, weighting="sigmoid")  # FairDARTS
by_autograd, dL_dy, branches = gradients.mixed_op_gradient(fair_edge, noise_lambda)
assert relative_error(gradients.alpha_gradient(dL_dy, branches, fair_edge.alpha, "sigmoid"), by_autograd) < 1e-6
paper_term = gradients.paper_skip_gradient(dL_dy, branches[fair_edge.skip], gradients.skip_f_prime(fair_edge))
assert relative_error(paper_term, by_autograd[fair_edge.skip]) < 1e-6  # exact: no cross term with sigmoids

# %% [markdown]
# The cross term is not small. With seven ops at equal weight it removes most of the paper's term,
# so under softmax the paper's formula is the skip branch's own share of the gradient, not the whole
# gradient. The cross term has no $n$ in it, yet it still moves from draw to draw, because
# $\partial L / \partial y$ depends on the noise.
#
# The chart shows the gradient of every logit without noise, and for three noise draws at
# $\lambda = 0.2$. The noise moves the gradient of every logit, not only the skip logit.

# %%
clean = gradients.clean_gradient(edge)
fig = go.Figure([go.Bar(name="no noise", x=edge.mixed.op_names, y=clean.numpy())])
for draw in range(3):
    fig.add_bar(name=f"noise draw {draw + 1}", x=edge.mixed.op_names,
                y=gradients.mixed_op_gradient(edge, noise_lambda)[0].numpy())
fig.update_layout(title=f"∂L/∂α_j for every op on the edge, λ = {noise_lambda}",
                  yaxis_title="∂L/∂α_j", height=380)
fig.show()

# %% [markdown]
# ## 3. Unbiased on average *(paper, step 3)*
#
# Take the expectation over $n$, and keep $\partial L / \partial y$ fixed at its noise-free value
# $\partial L / \partial y^*$. This is a first-order argument:
#
# $$\mathbb E\Big[\frac{\partial L}{\partial \alpha_{skip}}\Big] \approx \Big\langle \frac{\partial L}{\partial y^*},\; f'(\alpha_{skip})\,\big(x + \mathbb E[n]\big) \Big\rangle$$
#
# With $\mathbb E[n] = 0$, the noisy gradient equals the noise-free gradient on average. To check
# this we draw the noise 2000 times for each $\lambda$, average the gradients, and put a 95 %
# interval around the mean, $\bar g \pm 1.96\, s / \sqrt{D}$. One backward pass gives all 2000
# gradients, because every draw has its own copy of $\alpha$:

# %%
show(gradients.noisy_gradients)

# %%
lambdas = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
draws = 2000
skip = edge.skip
clean_skip = float(clean[skip])
sweep = {lam: gradients.noisy_gradients(edge, lam, draws)[:, skip] for lam in lambdas}
mc_mean, mc_half = {}, {}
print(f"noise-free dL/dalpha_skip = {clean_skip:+.6f}")
for lam, samples in sweep.items():
    mean, half = gradients.mean_interval(samples)
    mc_mean[lam], mc_half[lam] = float(mean), float(half)
    print(f"lambda {lam:4}: mean - noise-free = {mean - clean_skip:+.2e}, 95 % half-width {half:.2e}, "
          f"ratio {(mean - clean_skip) / half:+.2f}")

# %% [markdown]
# At small $\lambda$ the noise-free gradient lies inside the interval, as the paper's step 3
# says. The ratio column grows with $\lambda$, however. By $\lambda = 1$ the mean is clearly outside
# its interval.

# %%
for lam in [0.05, 0.1]:
    assert abs(mc_mean[lam] - clean_skip) <= mc_half[lam], lam
for lam in [1.0, 2.0]:
    assert abs(mc_mean[lam] - clean_skip) > mc_half[lam], lam

# %% [markdown]
# ### Where the first-order argument breaks *(added for teaching)*
#
# Step 3 froze $\partial L / \partial y$ at $y^*$. It moves with the noise, though. With
# $y = y^* + f_{skip}\,n$ and $H = \nabla^2_y g$:
#
# $$\frac{\partial L}{\partial y} \approx \frac{\partial L}{\partial y^*} + f_{skip}\, H n$$
#
# Multiplied by $f'(\alpha_{skip})(x + n)$, this gives the term $f_{skip} f'\, n^\top H n$. Its mean
# is $f_{skip} f' \sigma^2 \operatorname{tr} H$, which is not zero. The shortest way to collect
# every term of order $\sigma^2$ (the third derivative of $g$ adds one more) uses a simple fact: the
# law of $n$ does not depend on $\alpha$, so the expected gradient is the gradient of the expected
# loss. A second-order Taylor expansion gives
#
# $$\mathbb E_n[L] \approx L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H
# \quad\Longrightarrow\quad
# \mathbb E_n[\nabla_\alpha L] - \nabla_\alpha L \approx \nabla_\alpha \Big[\tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H\Big]$$
#
# The bias grows like $\sigma^2 \propto \lambda^2$. The Monte Carlo interval grows only like
# $\lambda / \sqrt D$. So at small $\lambda$ the bias hides inside the interval, and at large
# $\lambda$ it shows.
#
# Measuring a bias that is far smaller than the noise needs a trick: **antithetic pairs**. Average
# the gradient at $n$ with the gradient at $-n$. Every odd power of $n$ cancels exactly, including
# the large first-order noise. What remains is the even part, which is the bias, with a far
# smaller spread.

# %%
show(gradients.smoothing_term, gradients.second_order_bias)

# %%
pairs = 500
bias, bias_half, predicted = {}, {}, {}
for lam in lambdas:
    mean, half = gradients.mean_interval(gradients.noisy_gradients(edge, lam, pairs, antithetic=True)[:, skip])
    bias[lam], bias_half[lam] = float(mean) - clean_skip, float(half)
    predicted[lam] = float(gradients.second_order_bias(edge, lam)[skip])
    print(f"lambda {lam:4}: bias {bias[lam]:.3e} +- {bias_half[lam]:.1e}   predicted {predicted[lam]:.3e}")
bias_slope = gradients.loglog_slope(lambdas, [abs(b) for b in bias.values()])
print(f"log-log slope of |bias| against lambda: {bias_slope:.3f}")

# %%
for lam in lambdas[:-1]:  # O(sigma^4) terms take over at lambda = 2
    assert abs(bias[lam] - predicted[lam]) < 0.1 * abs(predicted[lam]), lam
    assert bias[lam] - bias_half[lam] > 0  # the bias is there, even where plain Monte Carlo cannot see it
assert abs(bias_slope - 2) < 0.15

# %%
fig = go.Figure()
fig.add_scatter(x=lambdas, y=[abs(bias[lam]) for lam in lambdas], mode="markers", name="bias (antithetic pairs)",
                error_y=dict(type="data", array=[bias_half[lam] for lam in lambdas]))
fig.add_scatter(x=lambdas, y=[abs(predicted[lam]) for lam in lambdas], mode="lines",
                name="prediction: ∇ of σ²/2 f_skip² tr H")
fig.add_scatter(x=lambdas, y=[mc_half[lam] for lam in lambdas], mode="lines", line=dict(dash="dot"),
                name=f"95 % half-width of plain Monte Carlo, {draws} draws")
fig.update_layout(title="The bias grows like λ², the Monte Carlo interval like λ",
                  xaxis=dict(type="log", title="λ"), yaxis=dict(type="log", title="|bias| of ∂L/∂α_skip"),
                  height=420)
fig.show()

# %% [markdown]
# At the paper's $\lambda = 0.2$, the bias is about 2 % of the gradient. The first-order argument
# is a good one there. It stops being good once $\lambda$ approaches 1, which is one reason the
# paper keeps $\lambda$ small.

# %%
print(f"bias / |noise-free gradient| at lambda = 0.2: {abs(bias[0.2] / clean_skip):.2%}")
assert abs(bias[0.2] / clean_skip) < 0.05

# %% [markdown]
# ### A biased noise *(the paper's ablation)*
#
# If $\mathbb E[n] = \mu \ne 0$, step 3 leaves a **first-order** term that more draws cannot remove:
#
# $$\mathbb E\Big[\frac{\partial L}{\partial \alpha_{skip}}\Big] - \frac{\partial L}{\partial \alpha_{skip}} \approx \Big\langle \frac{\partial L}{\partial y^*},\, \mu \Big\rangle\, f'(\alpha_{skip}) = \mu\, f'(\alpha_{skip}) \sum_i \frac{\partial L}{\partial y^*_i}$$
#
# The paper's ablation tried $\mu = \pm 0.5$ and $\pm 1$. In `NoisySkip` the mean is absolute,
# not scaled by $\mathrm{std}(x)$. Below, $\mu = \pm 0.5$ on top of $\lambda = 0.2$.

# %%
show(gradients.mean_shift_bias)
mean_bias, mean_half, mean_predicted = {}, {}, {}
for noise_mean in [0.5, -0.5]:
    mean, half = gradients.mean_interval(gradients.noisy_gradients(edge, 0.2, draws, mean=noise_mean)[:, skip])
    mean_bias[noise_mean], mean_half[noise_mean] = float(mean) - clean_skip, float(half)
    mean_predicted[noise_mean] = float(gradients.mean_shift_bias(edge, noise_mean)[skip])
    print(f"mu {noise_mean:+}: bias {mean_bias[noise_mean]:+.2e} +- {mean_half[noise_mean]:.1e}   "
          f"paper's first-order term {mean_predicted[noise_mean]:+.2e}")

# %%
for noise_mean in [0.5, -0.5]:
    assert abs(mean_bias[noise_mean]) > 10 * mean_half[noise_mean]  # detected, far outside the interval
    assert abs(mean_bias[noise_mean] / mean_predicted[noise_mean] - 1) < 0.25  # and mostly the paper's term

# %% [markdown]
# The remaining gap between the two columns is of order $\mu^2$. It comes from $\partial L / \partial y$
# moving with the shift, which is the same mechanism as the second-order bias above. That is why the
# $+\mu$ and $-\mu$ biases differ in size.
#
# ## 4. The variance *(added for teaching)*
#
# The part of the gradient that is linear in $n$ is $\langle \partial L / \partial y^*,\, f'(\alpha_{skip})\, n \rangle$.
# For i.i.d. $n$ with variance $\sigma^2$, $\mathrm{Var}\,\langle a, n\rangle = \sigma^2 \lVert a \rVert^2$, so
#
# $$\mathrm{Var}\Big[\frac{\partial L}{\partial \alpha_{skip}}\Big] \approx f'(\alpha_{skip})^2\, \sigma^2\, \Big\lVert \frac{\partial L}{\partial y^*} \Big\rVert^2 \;\propto\; \lambda^2$$
#
# On log-log axes this is a line with slope 2. The rule leaves out that $\partial L / \partial y$
# also moves with $n$, a term of size $f_{skip} H x$. That term is small on this edge, where
# $f_{skip} = 1/7$.

# %%
show(gradients.variance_rule)
variance = {lam: float(samples.var()) for lam, samples in sweep.items()}
rule = {lam: float(gradients.variance_rule(edge, lam)) for lam in lambdas}
variance_slope = gradients.loglog_slope(lambdas, list(variance.values()))
for lam in lambdas:
    print(f"lambda {lam:4}: variance {variance[lam]:.3e}, rule {rule[lam]:.3e}, ratio {variance[lam] / rule[lam]:.3f}")
print(f"log-log slope of the variance against lambda: {variance_slope:.3f}")

# %%
assert abs(variance_slope - 2) < 0.15
for lam in lambdas:
    assert abs(variance[lam] / rule[lam] - 1) < 0.15, lam

# %%
fig = go.Figure()
fig.add_scatter(x=lambdas, y=list(variance.values()), mode="markers", name=f"variance over {draws} draws")
fig.add_scatter(x=lambdas, y=list(rule.values()), mode="lines", name="f′(α_skip)² σ² ‖∂L/∂y‖²")
fig.update_layout(title=f"Variance of ∂L/∂α_skip: log-log slope {variance_slope:.2f}",
                  xaxis=dict(type="log", title="λ"), yaxis=dict(type="log", title="variance"), height=400)
fig.show()

# %% [markdown]
# The noise is unbiased on average, yet large on every single step. At the paper's $\lambda = 0.2$,
# the standard deviation of one noisy gradient is a good fraction of the gradient itself:

# %%
noise_to_signal = variance[0.2] ** 0.5 / abs(clean_skip)
print(f"std of one noisy dL/dalpha_skip / |noise-free gradient| at lambda = 0.2: {noise_to_signal:.2f}")
assert noise_to_signal > 0.25


# %% [markdown]
# ### See it: the gradient's histogram as λ moves
#
# Move the slider. The histogram shows $\partial L / \partial \alpha_{skip}$ over 1000 noise draws.
# The same standard normals are reused at every $\lambda$, so the spread visibly scales with
# $\lambda$, while the mean stays on the noise-free gradient (dashed line). Each redraw computes the
# draws afresh, well within a second. Without a widget frontend (a static view, or nbval),
# you get a fixed figure with three values of $\lambda$.

# %%
def skip_gradient_samples(noise_lambda, draws=1000):
    # The same standard normals at every lambda (a fixed seed, leaving the global stream alone).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return gradients.noisy_gradients(edge, noise_lambda, draws)[:, skip].numpy()


spread = skip_gradient_samples(1.0).std()
x_range = [clean_skip - 4 * spread, clean_skip + 4 * spread]
# plotly's FigureWidget where it renders (anywidget installed, not Colab: see viz.live_mode); the
# samples go to plotly as plain lists (Colab's frontend draws no numpy arrays)
live = viz.live_mode() == "widget"

if live:
    import ipywidgets as widgets

    fig = viz.figure_widget(go.Figure(go.Histogram(x=skip_gradient_samples(0.2).tolist(), nbinsx=40,
                                                   name="noisy")))
    slider = widgets.FloatSlider(value=0.2, min=0.0, max=1.0, step=0.05, description="λ")

    def redraw(change):
        samples = skip_gradient_samples(change["new"])
        with fig.batch_update():
            fig.data[0].x = samples.tolist()
            fig.layout.title.text = f"∂L/∂α_skip over 1000 draws, λ = {change['new']:.2f}, std {samples.std():.4f}"

    slider.observe(redraw, names="value")
    fig.layout.title.text = "∂L/∂α_skip over 1000 draws, λ = 0.20"
    panel = widgets.VBox([slider, fig])
else:
    fig = go.Figure([go.Histogram(x=skip_gradient_samples(lam).tolist(), nbinsx=40, name=f"λ = {lam}", opacity=0.6)
                     for lam in [0.1, 0.2, 0.5]])
    fig.update_layout(barmode="overlay", title="∂L/∂α_skip over 1000 draws")
    panel = fig
fig.add_vline(x=clean_skip, line_dash="dash", annotation_text="noise-free")
fig.update_layout(xaxis=dict(range=x_range, title="∂L/∂α_skip"), height=380)
panel

# %%
if live:  # the slider redraws within a second
    started = time.perf_counter()
    slider.value = 0.8
    assert time.perf_counter() - started < 1.0
    assert np.allclose(fig.data[0].x, skip_gradient_samples(0.8))
    slider.value = 0.2

# %% [markdown]
# ## 5. What the noise does to the competition *(added for teaching)*
#
# The algebra says two things. The noise adds variance $\propto \lambda^2$ to every architecture
# step. It also adds a small systematic push of order $\lambda^2$, the gradient of
# $\tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H$. Section 6 shows that this term is a penalty
# on $f_{skip}^2$. On our edge its gradient for $\alpha_{skip}$ is positive (section 3), so gradient
# descent pushes the skip weight down.
#
# To see what that does to a search, we run a few hundred steps of first-order bilevel DARTS on one
# edge with two ops, skip against `sep_conv_3x3` (RobustDARTS's space S2), plus a linear head. Each
# step takes one Adam step on $\alpha$ and one SGD step on the weights, with the noise on in both.
# The labels are a fixed linear function of the input. The skip op solves that task by itself from
# step one, just as it helps a deep supernet from step one, before the convolutions have learnt
# anything.

# %%
search_lambdas = [0.0, 0.2, 1.0]
started = time.perf_counter()
runs = {lam: gradients.edge_search(lam, steps=200, seed=0) for lam in search_lambdas}
skip_weight = {lam: np.array(run["weights"])[:, run["skip"]] for lam, run in runs.items()}
print(f"{len(search_lambdas)} searches of 200 steps in {time.perf_counter() - started:.1f} s")
fig = go.Figure([go.Scatter(y=skip_weight[lam], mode="lines", name=f"λ = {lam}") for lam in search_lambdas])
fig.update_layout(title="Skip weight f_skip on one edge (skip vs sep_conv_3x3)", xaxis_title="architecture step",
                  yaxis=dict(title="f_skip", range=[0, 1]), height=400)
fig.show()

# %%
final = {lam: skip_weight[lam][-50:].mean() for lam in search_lambdas}  # the last 50 steps
print({lam: round(float(w), 3) for lam, w in final.items()})
assert final[0.0] > 0.8                  # without noise, skip takes the edge
assert final[1.0] < final[0.0] - 0.3     # strong noise keeps it in check

# %% [markdown]
# Without noise, skip runs away with the edge, which is the collapse in miniature. With $\lambda = 1$
# the convolution keeps a fair share. The paper's $\lambda = 0.2$ changes little in 200 steps on a
# single edge. Its $\lambda^2$ effects are about 25 times smaller than at $\lambda = 1$, and in the
# paper they add up over 50 epochs, 14 edges per cell and a deep supernet. One edge and one seed
# show the mechanism, not the paper's numbers.
#
# ## 6. Smoothing *(the textbook argument, added for teaching)*
#
# A classic result (Bishop, 1995, *Training with noise is equivalent to Tikhonov regularization*)
# says that training with small zero-mean input noise minimises a smoothed loss. Expand $g$ to
# second order around $h$:
#
# $$\mathbb E_n\big[g(h + n)\big] \approx g(h) + \tfrac{\sigma^2}{2} \operatorname{tr} \nabla^2 g(h)$$
#
# On our edge the noise enters $y$ as $f_{skip}\, n$, so
#
# $$\mathbb E_n[L] \approx L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} \nabla^2_y g$$
#
# This is the same term whose gradient was the bias in section 3. It charges the skip weight
# squared, which links it to section 5.
#
# **This is the textbook argument, not the paper's.** The paper claims a proof that the noise
# smooths the loss landscape. Its exact statement could not be checked for this package, and it is
# not reproduced here.
#
# For $g$ a cross-entropy after a linear layer $z = W y + b$, the Hessian in $z$ is
# $\mathrm{diag}(p) - p p^\top$. So $\operatorname{tr} \nabla^2_y g$ has a closed form, which the
# first cell checks against the exact trace (one backward pass per coordinate of $y$).

# %%
show(gradients.OneEdge.loss_hessian_trace)
y_clean = edge.output(edge.alpha)
trace_closed_form = edge.loss_hessian_trace(y_clean)
trace_exact = gradients.hessian_trace(edge.loss, y_clean)
print(f"tr H: closed form {trace_closed_form:.10f}, exact {trace_exact:.10f}")
assert relative_error(trace_closed_form, trace_exact) < 1e-10

# %% [markdown]
# Now walk along one direction, the skip logit $\alpha_{skip} + t$, and compare three things: the
# clean loss, the loss averaged over 1000 noise draws (with its 95 % interval), and the prediction
# $L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H$. The walk uses $\lambda = 1$ so that
# the gap is visible. At $\lambda = 0.2$ the gap is 25 times smaller.

# %%
smooth_lambda = 1.0
steps_t = np.linspace(-3, 3, 13)
clean_loss, noisy_mean, noisy_half, prediction = [], [], [], []
for t in steps_t:
    alpha_t = edge.alpha.clone()
    alpha_t[skip] += t
    mean, half = gradients.mean_interval(gradients.noisy_losses(edge, smooth_lambda, 1000, alpha_t))
    clean_loss.append(float(edge.loss(edge.output(alpha_t))))
    noisy_mean.append(float(mean))
    noisy_half.append(float(half))
    prediction.append(float(gradients.smoothed_loss(edge, smooth_lambda, alpha_t)))
clean_loss, noisy_mean, noisy_half, prediction = map(np.array, (clean_loss, noisy_mean, noisy_half, prediction))

fig = go.Figure()
fig.add_scatter(x=steps_t, y=clean_loss, mode="lines", name="clean loss L")
fig.add_scatter(x=steps_t, y=noisy_mean, mode="markers", name="mean loss over 1000 noise draws",
                error_y=dict(type="data", array=noisy_half))
fig.add_scatter(x=steps_t, y=prediction, mode="lines", line=dict(dash="dash"), name="L + σ²/2 f_skip² tr H")
fig.update_layout(title=f"The loss under noise (λ = {smooth_lambda}) along α_skip + t",
                  xaxis_title="t", yaxis_title="loss", height=420)
fig.show()

# %%
gap = prediction - clean_loss
assert np.all(gap > 0)            # tr H >= 0: a cross-entropy after a linear layer is convex in y
assert np.all(np.diff(gap) > 0)   # the penalty grows with the skip weight
assert np.all(np.abs(noisy_mean - prediction) <= noisy_half + 0.1 * gap)  # within the interval, up to O(sigma^4)

# %% [markdown]
# ## Summary
#
# | step | claim | checked by |
# |---|---|---|
# | 1 *(paper)* | the edge computes $\sum_k f_k\, o_k(x) + f_{skip}\, n$ | `MixedOp` equals the sum |
# | 2 *(paper)* | $\partial L / \partial \alpha_{skip} = \langle \partial L / \partial y,\, f'(\alpha_{skip})(x + n)\rangle$ | equals autograd, relative error $< 10^{-6}$ |
# | 2 *(teaching)* | the softmax Jacobian spreads the noisy branch to every logit; with sigmoids (FairDARTS) the paper's formula is exact | equals autograd on the real `MixedOp` |
# | 3 *(paper)* | zero-mean noise: unbiased to first order | Monte Carlo mean inside its 95 % interval at small $\lambda$ |
# | 3 *(teaching)* | second-order bias $\nabla_\alpha[\tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H]$, slope 2 in $\lambda$ | antithetic pairs, within 10 % |
# | 3 *(paper's ablation)* | a mean $\mu \ne 0$ gives a first-order bias | far outside the interval, within 25 % of $\mu f' \sum \partial L / \partial y^*$ |
# | 4 *(teaching)* | $\mathrm{Var} \approx f'^2 \sigma^2 \lVert \partial L / \partial y \rVert^2$ | log-log slope $2 \pm 0.15$, rule within 15 % |
# | 5 *(teaching)* | noise keeps skip from taking the edge | skip weight with and without noise |
# | 6 *(textbook)* | $\mathbb E_n[L] \approx L + \tfrac{\sigma^2}{2} f_{skip}^2 \operatorname{tr} H$ | Monte Carlo against the prediction |
#
# A good exercise with pen and paper: redo step 2 for the logit of `sep_conv_3x3`, then find the
# term through which the skip noise reaches it.
