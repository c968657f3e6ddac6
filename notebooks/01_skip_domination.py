# %% [markdown]
# # Skip domination: why DARTS collapses, and how a little noise prevents it
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/01_skip_domination.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/01_skip_domination.ipynb)
#
# DARTS searches for a network by letting every candidate operation of every edge compete through
# a softmax. Left alone, the competition is often won by the operation that does nothing at all:
# the skip connection. The searched cell then has few convolutions and the final network is weak.
# This is called *skip domination*, or the collapse of DARTS. NoisyDARTS (Chu & Zhang, BMVC 2021)
# adds zero-mean Gaussian noise to the skip connection's output during the search, and the skip
# connection stops winning.
#
# In this notebook:
#
# 1. **DARTS in five minutes**: a mixed edge, the softmax competition, and why skip has an unfair advantage.
# 2. **The noise slider**: how much of the cell skip takes, for noise levels from 0 upwards. The
#    numbers come from searches made in advance, so the slider answers at once.
# 3. **A live run**: DARTS and NoisyDARTS searched side by side while you watch, with a Stop button.
# 4. **The derived cells** and their skip connections.
#
# Every claim is checked by an `assert` cell, so a run that reaches the end means the claims held.
# Restart & Run All needs nothing typed; the live run of section 3 takes one to two minutes on 2 CPU cores.

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
from IPython.display import display

from ndarts_edu import experiments, repro, stats, viz, widgets
from ndarts_edu.derive import derive_genotype, genotype_skips
from ndarts_edu.experiments import load_sweep, sweep_summary
from ndarts_edu.mixed import MixedOp, edge_weights
from ndarts_edu.noise import NoisySkip
from ndarts_edu.ops import SKIP, SPACES
from ndarts_edu.presets import PRESETS, preset_config, preset_noise

PRESET = 'cpu'  # the teaching preset; "quick" gives a first look in seconds
SWEEP = None  # None: the noise sweep shipped with the package

repro.seed_everything(0)  # Restart & Run All tells the same story every time
repro.set_threads(preset_config(PRESET).threads)  # small CPU results depend on the thread count
print(f"preset {PRESET!r}: {PRESETS[PRESET]['description']}")


def show(*objects):
    # Print the library's own code, so the notebook never holds a second copy of it.
    print("\n\n".join(inspect.getsource(o) for o in objects))


# %% [markdown]
# ## 1. DARTS in five minutes
#
# ### A mixed edge
# A cell is a small graph: each edge $(i, j)$ could hold any of a few operations (a separable
# convolution, a skip connection, "none", ...). DARTS does not choose: it computes them all and mixes
# their outputs with weights $f(\alpha)$, where $\alpha$ are the edge's *architecture parameters*:
#
# $$\bar o(x) = \sum_k f(\alpha)_k\, o_k(x), \qquad f(\alpha)_k = \frac{e^{\alpha_k}}{\sum_j e^{\alpha_j}}$$
#
# The search trains the network's weights on one half of the data and $\alpha$ on the other half,
# alternately. At the end, each edge keeps its strongest operation. Here is the library's mixed
# edge (its noise line is NoisyDARTS's change, coming below):

# %%
show(MixedOp.forward)

# %%
ops = SPACES["s3"]  # the space of the CPU presets: none, skip_connect, sep_conv_3x3
edge = MixedOp(4, stride=1, op_names=ops)
x = torch.randn(8, 4, 8, 8)

alpha = torch.zeros(len(ops))  # DARTS starts near 0: every op gets the same weight
print(dict(zip(ops, edge_weights(alpha).tolist())))
assert torch.allclose(edge_weights(alpha), torch.full((len(ops),), 1 / len(ops)))

all_on_skip = torch.tensor([1.0 if name == SKIP else 0.0 for name in ops])
assert torch.equal(edge(x, all_on_skip), x)  # with all the weight on skip, the edge passes x through

# %% [markdown]
# ### The softmax competition
# The weights of an edge always sum to 1, so when one operation gains, every other one loses. This
# is why DARTS is called an *exclusive* competition (FairDARTS replaces the softmax with a sigmoid per
# operation to make them cooperate instead).

# %%
alpha = torch.zeros(len(ops))
alpha[ops.index(SKIP)] = 1.0  # raise the skip logit
weights = edge_weights(alpha)
print(dict(zip(ops, [round(v, 3) for v in weights.tolist()])))
assert abs(float(weights.sum()) - 1) < 1e-6
for name, weight in zip(ops, weights.tolist()):  # skip gains, every other op loses
    assert weight > 1 / 3 if name == SKIP else weight < 1 / 3

# %% [markdown]
# ### Why skip has an unfair advantage
# The skip connection has no parameters to learn: its output is useful from the very first step,
# and it carries gradients straight through the network, as in a ResNet. A convolution has to be
# trained before its output helps. The architecture gradient rewards whatever lowers the validation
# loss *now*, so early in the search it tends to favour skip. A larger skip weight then leaves a
# smaller share for the convolution (its output is scaled down, and so is the gradient its weights
# get), and it falls further behind. The rich get richer, and the search ends with a cell of skips.
#
# NoisyDARTS perturbs the free ride. During the search, and only then, the skip branch outputs
# $x + n$ with $n \sim \mathcal N(0, \sigma^2)$ and $\sigma = \lambda \cdot \mathrm{std}(x)$. The noise has mean 0,
# so the architecture gradient stays unbiased on average (notebook 02 redoes that derivation), but
# skip is no longer a clean path that wins by default. In evaluation mode, and in the final network,
# there is no noise.

# %%
show(NoisySkip.forward, NoisySkip.sample)

# %%
skip = NoisySkip(noise_lambda=0.5)
x = torch.randn(64, 16, 8, 8) * 3.0
skip.train()
n = skip(x) - x  # the noise drawn on this forward
print(f"std(n) / std(x) = {float(n.std() / x.std()):.3f}, mean(n) = {float(n.mean()):+.4f}")
assert abs(float(n.std() / x.std()) - 0.5) < 0.02  # sigma = lambda * std(x)
assert abs(float(n.mean())) < 0.05  # zero mean
skip.eval()
assert torch.equal(skip(x), x)  # no noise outside the search

# %% [markdown]
# ## 2. The noise slider
#
# How much noise does it take? The package ships a *noise sweep*: the same search repeated for
# several seeds at each of a grid of noise levels $\lambda$, from 0 (plain DARTS) to beyond the level
# where skip stops dominating. It was made by the package's own command,
#
#     python -m ndarts_edu sweep --preset cpu --out runs/sweep
#
# so you can remake it (or a bigger one) yourself. The slider below only reads those saved numbers,
# so it answers at once. For each $\lambda$ it shows
#
# - left: the **skip share**, the fraction of the normal cell's edges on which skip is the strongest
#   operation, mean (line) and each seed (dots), with the spread over seeds (band);
# - middle: the mean skip weight $f(\alpha_{skip})$ during the search, for each seed (red), against
#   DARTS (grey);
# - right: the final weights of the normal cell, edge by edge.
#
# Without a widget frontend (GitHub, a static viewer) you see nothing move; this is what it looks
# like at $\lambda = 0$ and at the preset's noise level:
#
# ![the sweep at noise 0: skip wins most edges](../docs/images/01_sweep_noise_0.png)
# ![the sweep at the default noise: skip wins few edges](../docs/images/01_sweep_default_noise.png)
#
# The same slider without Jupyter: [`docs/noise_slider.html`](../docs/noise_slider.html) is one
# self-contained page (plotly.js inside, about 5 MB) that scrubs these numbers in any web browser,
# offline; download it and open it from disk (JupyterLab shows HTML files without their scripts
# until you press "Trust HTML"), or on GitHub Pages, https://not_yet_published.github.io/ndarts_edu/noise_slider.html,
# once the repository publishes `docs/` there.

# %%
sweep = load_sweep(SWEEP)
print(f"{len(sweep['runs'])} searches with the {sweep['preset']!r} preset: noise levels "
      f"{', '.join(f'{lam:g}' for lam in sweep['noise_lambdas'])}; seeds {sweep['seeds']}")
for row in sweep_summary(sweep):
    print(f"lambda {row['noise_lambda']:<4g} skip share {row['skip_share_mean']:.0%} "
          f"({row['skip_share_min']:.0%} to {row['skip_share_max']:.0%}), "
          f"{row['genotype_skips_mean']:.1f} skips in the derived cell, accuracy {row['valid_accuracy_mean']:.1%}")

# %%
explorer = widgets.NoiseSweepExplorer(sweep)
explorer

# %% [markdown]
# Drag the slider. At $\lambda = 0$ skip is the strongest operation on most edges; as the noise grows,
# the red curve falls and the convolutions keep their edges. Choose a seed to see that a single
# search can differ from the mean: this is why the sweep has several. Too much noise is not free either:
# watch the accuracy in the line under the slider.
#
# The two claims of this notebook, checked on the sweep through the slider itself
# (`set_noise` is what a drag does):

# %%
DEFAULT_NOISE = preset_noise(sweep["preset"])  # the NoisyDARTS level of the preset that made the sweep

explorer.set_noise(0.0)
darts = explorer.summary()
explorer.set_noise(DEFAULT_NOISE)
noisy = explorer.summary()
print(f"noise 0: skip strongest on {darts['skip_share_mean']:.0%} of the edges; "
      f"noise {DEFAULT_NOISE:g}: {noisy['skip_share_mean']:.0%}")

assert darts["skip_share_mean"] > 0.5, "at noise 0, skip dominates: it is the strongest op on most edges"
assert noisy["skip_share_mean"] < 0.5, "at the default noise, skip does not dominate"
assert noisy["skip_share_mean"] < darts["skip_share_mean"]

# Seed by seed: how many more edges skip wins without noise than with it, the same seed paired.
# The claim is about the mean over seeds, with its 95 % interval: single seeds differ.
share = {(r["noise_lambda"], r["seed"]): r["skip_share"] for r in sweep["runs"]}
gap = stats.paired_interval([share[0.0, s] for s in sweep["seeds"]],
                            [share[DEFAULT_NOISE, s] for s in sweep["seeds"]])
print(f"skip share, DARTS minus NoisyDARTS, same seed: {gap}")
assert gap.above(0), "over the sweep's seeds, DARTS leaves skip more edges than NoisyDARTS"

# %% [markdown]
# ## 3. Watch it happen: DARTS and NoisyDARTS side by side
#
# The cell below starts two searches of the `cpu` preset from the same seed: DARTS (no noise) and
# NoisyDARTS (the noise of the slider next to the buttons). They take turns, one step each, in a
# background thread, so the notebook stays responsive. Each small plot is one edge of the normal
# cell: the weight of each operation over the steps, skip in red. With the notebook's seed, watch
# the red lines rise on the left and not on the right. Another seed (the seed box) can tell a
# weaker story: one search is one draw, which is why the sweep above has several seeds per level.
#
# - **Stop** ends the run after the current round (one step of each search); **Run** starts it
#   again from scratch, with the noise, kind, mean and seed shown.
# - The figure is redrawn about twice a second; the search keeps one CPU core free for the notebook.
# - Without a widget frontend, or with `NDARTS_EDU_LIVE=static` set before starting Jupyter, the
#   figure is a plain plot that is replaced in place.

# %%
race = widgets.LiveComparison(PRESET, seed=sweep["seeds"][0])  # a seed of the shipped sweep
display(race)
race.start()  # returns at once: the searches run in a background thread

# %% [markdown]
# The next cell waits for the run to end (`race.join()`), so that the cells after it read finished
# results. **While a cell waits, Jupyter does not deliver button clicks**: under Restart & Run All
# the plot keeps updating but Stop has no effect until the run ends. To play with Stop, run the
# notebook cell by cell and press Stop before you run the next cell (then press Run to finish a run).

# %%
race.join()
results = race.results
for result in results:
    print(f"{viz.run_title(result)}: {result['status']} in {result['seconds']:.0f} s, skip strongest on "
          f"{result['skip_share']:.0%} of the edges, {result['genotype_skips']} skip(s) in the derived normal cell")
assert all(r["status"] == "finished" for r in results), "the run was stopped: press Run, wait, then run this cell"
darts_run, noisy_run = results  # DARTS: no noise at all; NoisyDARTS: the noise of the slider, one seed
assert darts_run["config"]["noise_lambda"] == 0 and darts_run["config"]["noise_mean"] == 0
assert noisy_run["config"]["noise_lambda"] == race.noise_slider.value
assert darts_run["config"]["seed"] == noisy_run["config"]["seed"] == race.seed_box.value
# the noise acts in training only: the NoisyDARTS supernet measures its accuracy without it
noisy_model = race.searches[1].model
if noisy_run["config"]["noise_lambda"] > 0:
    assert all(m.active for m in noisy_model.train().noise_modules())
assert not any(m.active for m in noisy_model.eval().noise_modules())
noisy_model.train()

# %% [markdown]
# One seed's race is an anecdote, and the numbers of a search also move with the CPU (another
# processor rounds its sums differently, and a search amplifies that step by step: measured on an
# AVX-512 machine and with torch's portable kernels, the weights $f(\alpha)$ of one search end up to
# 0.75 apart, while the skip share moves by one edge). What can be checked, for any machine, is that the live run tells the
# story its search tells in the shipped sweep: with the notebook's settings (the `cpu` preset, the
# sweep's first seed) the two searches are in it, and their skip shares, derived cells and
# accuracies come out within the bounds measured across CPUs (`experiments.reproduction_gaps`; with
# another seed or preset the cell below says there is nothing to compare). Taking turns in one
# thread changes nothing: each search draws its own random numbers (`widgets.LiveComparison` says
# how).

# %%
points = [experiments.sweep_point(sweep, r["config"]) for r in results]
if None in points:
    print("these settings (seed, noise, preset) are not in the shipped sweep: nothing to compare")
else:
    for result, point in zip(results, points):
        gaps = experiments.reproduction_gaps(point, result)
        assert not gaps, f"{viz.run_title(result)} does not reproduce the shipped search: {gaps}"
        print(f"{viz.run_title(result)}: skip share {result['skip_share']:.2f} here, "
              f"{point['skip_share']:.2f} in the sweep; {result['genotype_skips']} skip(s) in the "
              f"derived cell here, {point['genotype_skips']} in the sweep")
    print(f"the live run tells the story of the sweep's seed {results[0]['config']['seed']}, "
          f"within what another CPU moves it")

# %% [markdown]
# ## 4. The derived cells
#
# At the end of a search each node of the cell keeps its two strongest incoming edges, and each kept
# edge its strongest operation other than "none" (the rule of DARTS):

# %%
from ndarts_edu.derive import derive_cell

show(derive_cell)

# %%
titles = [viz.run_title(r) for r in results]
viz.cell_graphs([r["genotype"] for r in results], titles)

# %%
viz.final_weights(results, titles=titles)

# %%
# The cells are derived from the saved weights alone: the same rule on the plain data gives the same cells.
for result in results:
    assert derive_genotype(result["weights"], result["ops"]) == result["genotype"]
    assert result["genotype_skips"] == genotype_skips(result["genotype"]["normal"])

# Over all seeds of the sweep, the derived cells keep fewer skips with noise than without.
print(f"derived normal cell, mean over {darts['seeds']} seeds: {darts['genotype_skips_mean']:.1f} skips at noise 0, "
      f"{noisy['genotype_skips_mean']:.1f} at noise {DEFAULT_NOISE:g}")
assert noisy["genotype_skips_mean"] <= darts["genotype_skips_mean"]

# %% [markdown]
# ## What next
#
# - Change `PRESET` to `"quick"` at the top for a run in seconds, or try another noise **kind**
#   (uniform, multiplicative) or a nonzero **mean** in the live panel: the paper's ablations. A
#   biased mean makes the gradient biased (notebook 02 shows why).
# - The same searches from a terminal: `python -m ndarts_edu compare --preset cpu --seeds 10 11 12`.
# - The saved `result.json` of a command-line search draws exactly like the live run:
#   `viz.alpha_competition([json.load(open("runs/search/result.json"))])`.
# - The numbers of the paper are from CIFAR-10 with 7 operations and $\lambda = 0.2$; this notebook's
#   small digits search needs its own, larger $\lambda$ (the preset's), which is why it ships a sweep.
