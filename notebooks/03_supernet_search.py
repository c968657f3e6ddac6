# %% [markdown]
# # Supernet search, one step at a time
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/03_supernet_search.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/03_supernet_search.ipynb)
#
# Notebooks 01 and 02 showed *that* DARTS fills its cells with skip connections and *why* a little
# noise on the skip op changes the gradient. This one opens the machine itself: the supernet, one of
# its cells, one mixed edge, and the two steps of the bilevel search, taken by hand (first order,
# then DARTS's second-order "unrolled" step). Then it runs whole searches, DARTS and NoisyDARTS side
# by side with a live view, and derives and draws the cells they found.
#
# **Where it runs.** The device and the preset are chosen for you and printed below. On a CPU
# (Binder, a laptop) it runs the `cpu` preset on the digits shipped with the package, for 3 epochs
# (`EPOCHS` below): the two searches take about half a minute, on one core; notebook 01 runs them to
# the preset's full 10 epochs. On a GPU where CIFAR-10 can be downloaded
# (Colab with a GPU runtime) it runs the `paper` preset: the real DARTS space (7 ops, 8 cells of 16
# channels) at the reference code's settings, whose full search is 50 epochs. The paper puts one
# such NoisyDARTS search at 0.25 GPU-days (about 6 hours); this notebook runs two for `EPOCHS`
# epochs, a first look. (The GPU time is the paper's figure, not measured with this package.)
#
# All the code is in the library (`ndarts_edu`); the notebook prints it with `inspect.getsource`
# rather than keeping a second copy.

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

import torch
import torch.nn.functional as F

from ndarts_edu import derive, experiments, repro, stats, viz, widgets
from ndarts_edu.data import load_dataset, pick_device
from ndarts_edu.errors import ConfigError
from ndarts_edu.mixed import MixedOp, edge_weights
from ndarts_edu.network import edge_inputs, edges_per_cell
from ndarts_edu.ops import SKIP
from ndarts_edu.presets import PRESETS, preset_config, preset_noise
from ndarts_edu.search import Search

SEED = 10      # every search below uses it (a seed of the shipped sweep): Run All tells one story
EPOCHS = 3  # the race's first epochs (its schedules set for 3); None: the preset's own number
repro.seed_everything(SEED)


def show(*functions):
    # Print the library's code, so that what you read is what runs.
    print("\n\n".join(inspect.getsource(function) for function in functions))


# %% [markdown]
# ## The device and the preset
#
# `pick_device("auto")` takes CUDA, then Apple's MPS, then the CPU. On CUDA the notebook tries to
# fetch CIFAR-10 (about 170 MB, through torchvision) and then uses the `paper` preset; if the download
# is not possible it stays with the embedded digits and the `cpu` preset, on the GPU.

# %%
device = pick_device("auto")
PRESET, data = "cpu", None
if device.type == "cuda":
    try:
        data = load_dataset("cifar10", preset_config("paper").data_dir, download=True)
        PRESET = "paper"
    except ConfigError as error:
        print(f"CIFAR-10 cannot be loaded here ({error})")
config = preset_config(PRESET, seed=SEED, epochs=EPOCHS)
if data is None:
    data = load_dataset(config.dataset, config.data_dir, config.image_size)
repro.set_threads(config.threads)  # the preset pins the CPU threads: results depend on their number
print(f"device: {device}; preset: {PRESET!r} ({PRESETS[PRESET]['description']})")
print(f"data: {data.name}, {len(data.train_labels)} training images of shape {data.shape}, "
      f"{len(data.test_labels)} test images; {config.epochs} epochs; NoisyDARTS noise lambda {preset_noise(PRESET)}")

# %% [markdown]
# ## The supernet
#
# The supernet stacks `layers` cells; the ones at 1/3 and 2/3 of the depth are *reduction* cells
# (stride 2, twice the channels). Every cell has `nodes` intermediate nodes, and every node sums one
# **mixed edge** from each earlier state: the two cell inputs $c_{k-2}, c_{k-1}$ and the nodes before
# it. All normal cells share one matrix of architecture logits $\alpha_{normal}$ (edges $\times$
# ops), all reduction cells share $\alpha_{reduce}$. These are the only things the search is after;
# everything else is an ordinary weight $w$.
#
# We build the search with no noise (plain DARTS) and look inside.

# %%
search = Search(config.replace(noise_lambda=0.0), data=data)
model = search.model
ops = search.op_names
print("cells:", ["reduce" if cell.reduction else "normal" for cell in model.cells])
print(f"{model.nodes} nodes per cell -> {edges_per_cell(model.nodes)} mixed edges, each with the ops {list(ops)}")
print("edges (input -> node):", ", ".join(f"{viz.state_name(j)}->{i}" for i, j in edge_inputs(model.nodes)))
print(f"alpha_normal {tuple(model.alpha_normal.shape)} and alpha_reduce {tuple(model.alpha_reduce.shape)}")
n_weights = sum(p.numel() for p in search.weight_params)
n_alpha = sum(a.numel() for a in search.arch_params)
print(f"{n_weights:,} weights w, {n_alpha} architecture parameters alpha")

# %%
# alpha is one row per edge, one column per op; it is kept apart from the weights, for its own optimizer
assert tuple(model.alpha_normal.shape) == (edges_per_cell(model.nodes), len(ops))
weight_ids = {id(p) for p in search.weight_params}
assert not weight_ids & {id(a) for a in search.arch_params}
assert len(weight_ids) + len(search.arch_params) == len(list(model.parameters()))

# %% [markdown]
# ## One mixed edge
#
# A mixed edge holds every candidate op and returns their weighted sum,
# $\bar o(x) = \sum_k f(\alpha)_k\, o_k(x)$, with $f$ the softmax over the edge's row of $\alpha$.
# (NoisyDARTS adds its noise to the skip op's output inside this sum; `none` outputs zeros, so it is
# never computed, but it still takes its share of the softmax.)

# %%
edge = model.cells[0].edges[0]
print(edge)
show(MixedOp.forward)

# %% [markdown]
# Let us catch the real input of that edge during a forward pass (a forward hook), and recompute
# its output by hand from the op outputs and the weights $f(\alpha)$.

# %%
caught = {}
hook = edge.register_forward_hook(lambda module, args, out: caught.update(x=args[0], out=out))
x_train, y_train = search.train_batches.next()
model.eval()  # no noise, batch-norm statistics fixed: the same input gives the same output
with torch.no_grad():
    model(x_train[:16])
    weights = edge_weights(model.alpha_normal, "softmax")[0]
    by_hand = sum(weights[k] * op(caught["x"]) for k, op in zip(edge.computed, edge.ops))
hook.remove()
model.train()
for k, name in enumerate(ops):
    print(f"{name:>14}: f(alpha) = {weights[k]:.4f}")

# %%
# the mixed edge is exactly the weighted sum; at the start every op has about the same weight, 1/|ops|
assert torch.allclose(by_hand, caught["out"], atol=1e-6)
assert torch.allclose(weights, torch.full_like(weights, 1 / len(ops)), atol=0.01)

# %% [markdown]
# ## One weight step, by hand
#
# DARTS alternates two steps. The **weight step** is plain SGD on a batch of the *train* half of
# the data, with $\alpha$ held fixed:  $w \leftarrow w - \eta \nabla_w L_{train}(w, \alpha)$.

# %%
show(Search.weight_step)
x_valid, y_valid = search.valid_batches.next()
alpha_before = [a.detach().clone() for a in search.arch_params]
w_before = [w.detach().clone() for w in search.weight_params]
loss, correct = search.weight_step(x_train, y_train)
print(f"train loss {loss:.3f}, {correct} of {len(y_train)} right")

# %%
# alpha did not move; the weights did
assert all(torch.equal(a, b) for a, b in zip(search.arch_params, alpha_before))
assert any(not torch.equal(w, b) for w, b in zip(search.weight_params, w_before))

# %% [markdown]
# ## One architecture step, first order
#
# The **architecture step** moves $\alpha$ (Adam) on a batch of the *valid* half, with the weights
# held fixed. First order, the gradient is simply $\nabla_\alpha L_{val}(w, \alpha)$: how the
# validation loss changes with each op's logit, through the softmax.

# %%
show(Search.arch_gradients, Search.arch_step)

# %%
grads, valid_loss = search.arch_gradients(x_train, y_train, x_valid, y_valid)
alpha_before = [a.detach().clone() for a in search.arch_params]
w_before = [w.detach().clone() for w in search.weight_params]
search.arch_step(x_train, y_train, x_valid, y_valid)
step = model.alpha_normal.detach() - alpha_before[0]
skip = ops.index(SKIP)
print(f"valid loss {float(valid_loss):.3f}")
print("dL_val/d alpha_skip, normal cell, edge by edge:", [f"{g:+.1e}" for g in grads[0][:, skip].tolist()])
print("how alpha_skip moved:                          ", [f"{d:+.1e}" for d in step[:, skip].tolist()])

# %%
# the weights did not move; alpha did, against its gradient. Adam's first step is about
# alpha_lr * sign of the gradient, whatever the gradient's size: every logit moves by about alpha_lr.
assert all(torch.equal(w, b) for w, b in zip(search.weight_params, w_before))
clear = grads[0].abs() > 1e-4  # (a gradient this small could be outweighed by Adam's weight decay)
moved = step[clear]
assert clear.any() and (moved.sign() == -grads[0][clear].sign()).all()
assert torch.allclose(moved.abs(), torch.full_like(moved, config.alpha_lr), rtol=0.05)

# %% [markdown]
# ## Second order: the unrolled step
#
# First order pretends the weights are already optimal for the current $\alpha$. DARTS's
# second-order step looks one weight step ahead: it takes the gradient at the *unrolled* weights
# $w' = w - \xi \nabla_w L_{train}(w, \alpha)$, and the chain rule through $w'$ adds a term,
#
# $$\nabla_\alpha L_{val}(w', \alpha) \;-\; \xi\, \nabla^2_{\alpha, w} L_{train}(w, \alpha)\, \nabla_{w'} L_{val}(w', \alpha).$$
#
# The second derivative is never formed. Its product with the vector $v = \nabla_{w'} L_{val}$ is a
# central finite difference of two ordinary gradients, at $w^\pm = w \pm \epsilon v$:
# $\big(\nabla_\alpha L_{train}(w^+) - \nabla_\alpha L_{train}(w^-)\big) / 2\epsilon$. So a second-order
# step costs about three times the forward and backward passes of a first-order one. The library moves
# the weights in place and puts them back, rather than copying the network.

# %%
show(Search.unrolled_gradients)

# %%
w_before = [w.detach().clone() for w in search.weight_params]
model.train()
first = torch.autograd.grad(F.cross_entropy(model(x_valid), y_valid), search.arch_params)
second, _ = search.unrolled_gradients(x_train, y_train, x_valid, y_valid, xi=search.lr)
flat_first, flat_second = torch.cat([g.flatten() for g in first]), torch.cat([g.flatten() for g in second])
cosine = float(F.cosine_similarity(flat_first, flat_second, dim=0))
print(f"cosine(first-order gradient, second-order gradient) = {cosine:.3f}; "
      f"norms {flat_first.norm():.2e} and {flat_second.norm():.2e}")

# %%
# the unrolled step leaves the weights exactly as they were, and gives a different but related gradient
assert all(torch.equal(w, b) for w, b in zip(search.weight_params, w_before))
assert not torch.allclose(flat_first, flat_second)
assert cosine > 0

# %% [markdown]
# The presets search first order, as the NoisyDARTS reference code does (`order=2` in
# `SearchConfig` or `--order 2` on the command line switches). The paper's table puts DARTS second
# order at 97.24 % on CIFAR-10 against 97.00 % first order, for about 2.7 times the search cost.
#
# ## Whole searches, live: DARTS next to NoisyDARTS
#
# `Search.run` repeats the two steps for every batch, epoch after epoch. Below, two searches with
# the same seed take turns step by step in a background thread: DARTS (no noise) on the left,
# NoisyDARTS (Gaussian noise on the skip op, $\sigma = \lambda\,\mathrm{std}(x)$) on the right. Each
# panel row is one edge of the normal cell, each line one op's weight $f(\alpha)$; skip is the thick
# red line. Press **Stop** to end early; the next cell waits for the run, so run it once the searches
# are done (Restart & Run All does that by itself).

# %%
live = widgets.LiveComparison(preset=PRESET, seed=SEED, epochs=EPOCHS)
live.start()
live

# %%
live.join()  # waits for both searches
darts, noisy = live.results
print(experiments.format_table([darts, noisy]))
print(f"on {device}: DARTS took {darts['seconds']:.0f} s, NoisyDARTS {noisy['seconds']:.0f} s")

# %% [markdown]
# The *skip share* is the fraction of the normal cell's edges whose strongest op is skip (the
# `none` op left out): where the search is heading. Here it is epoch by epoch.

# %%
viz.skip_share_by_epoch([darts, noisy], titles=["DARTS", "NoisyDARTS"])

# %% [markdown]
# One seed is one draw: another seed can tell a weaker story, and another CPU moves a search (its
# sums round differently, and a search amplifies that step by step: the weights of one search end up
# to 0.75 apart on another CPU, its skip share one edge). So the claim "without noise
# skip takes more of the cell" is checked over the shipped sweep's seeds, paired seed by seed, with
# its 95 % interval; and these two live searches, when their settings are in the sweep (the `cpu`
# preset at its own length, a seed of the sweep), are checked to tell the story those searches tell
# there (skip share, derived cell, accuracy), within the bounds measured across CPUs.

# %%
assert darts["status"] == noisy["status"] == "finished"
sweep = experiments.load_sweep()
share = {(r["noise_lambda"], r["seed"]): r["skip_share"] for r in sweep["runs"]}
gap = stats.paired_interval([share[0.0, s] for s in sweep["seeds"]],
                            [share[preset_noise("cpu"), s] for s in sweep["seeds"]])
print(f"skip share, DARTS minus NoisyDARTS, same seed, over the sweep's seeds: {gap}")
assert gap.above(0, margin=0.25), "over the seeds, DARTS leaves skip far more edges than NoisyDARTS"

for result in (darts, noisy):
    point = experiments.sweep_point(sweep, result["config"])
    if point is None:
        print(f"{viz.run_title(result)}: not in the shipped sweep (another seed, preset or length)")
        continue
    gaps = experiments.reproduction_gaps(point, result)
    assert not gaps, f"{viz.run_title(result)} does not reproduce the shipped search: {gaps}"
    print(f"{viz.run_title(result)}: skip share {result['skip_share']:.2f} here, "
          f"{point['skip_share']:.2f} in the sweep: the same story, within another CPU's bounds")

# %% [markdown]
# ## The derived cells
#
# The search ends by keeping, for every node, the two incoming edges whose best op (not `none`) has
# the largest weight, and on each that op (`derive.derive_cell`). That discrete cell, the *genotype*,
# is all that survives the search: notebook 05 trains it from scratch.

# %%
viz.final_weights([darts, noisy], titles=["DARTS", "NoisyDARTS"])

# %%
print("DARTS normal cell:     ", darts["genotype"]["normal"])
print("NoisyDARTS normal cell:", noisy["genotype"]["normal"])
viz.cell_graphs([darts["genotype"], noisy["genotype"]], titles=["DARTS", "NoisyDARTS"])

# %% [markdown]
# The same genotype as DARTS's `genotypes.py` writes it, to paste into code built on DARTS
# (its `train.py` trains the network from it):

# %%
print(derive.darts_genotype_string(noisy["genotype"]))

# %% [markdown]
# ## The noise exists only while searching
#
# The noise is drawn afresh in every training-mode forward pass, so it is on in both the weight step
# and the architecture step; in eval mode (the validation accuracy, and the derived network) every
# `NoisySkip` is the identity.

# %%
noisy_model = live.searches[1].model
noisy_model.train()
on_in_training = [m.active for m in noisy_model.noise_modules()]
noisy_model.eval()
on_in_eval = [m.active for m in noisy_model.noise_modules()]
noisy_model.train()
print(f"{len(on_in_training)} noisy skip ops: active in training {all(on_in_training)}, in eval {any(on_in_eval)}")
assert all(on_in_training) and not any(on_in_eval)

# %% [markdown]
# ## Next
#
# - [04_ablations.ipynb](04_ablations.ipynb): which noise cures the collapse (level, kind, mean,
#   where), and FairDARTS's other cure, over several seeds.
# - [05_what_collapse_costs.ipynb](05_what_collapse_costs.ipynb): the derived cells trained from
#   scratch: what the collapse costs in test accuracy.
# - The same searches from a terminal: `python -m ndarts_edu compare --seeds 10 11 12`; on a GPU
#   `python -m ndarts_edu search --preset paper --noise-lambda 0.2 --device cuda`.
