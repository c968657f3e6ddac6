# %% [markdown]
# # NoisyDARTS, a short course
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/00_index.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/00_index.ipynb)
#
# Differentiable architecture search (DARTS) relaxes the choice of an operation on every edge of a
# cell into a softmax-weighted mix, $\sum_k \mathrm{softmax}(\alpha)_k\, o_k(x)$, and learns $\alpha$
# by gradient descent. Left alone it fills the cell with skip connections, and the network it derives
# is poor. **NoisyDARTS** (Chu & Zhang, BMVC 2021) adds unbiased Gaussian noise to the skip op's
# output during the search only: the expected gradient is unchanged, but skip has to earn its weight.
#
# The notebooks below teach that idea from the ground up, with the package `ndarts_edu`. Each one
# states its claims as `assert` cells: a notebook that runs to the end has checked them.

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

# %% [markdown]
# ## The course
#
# | notebook | what it teaches | CPU (2 cores) | GPU |
# |---|---|---|---|
# | [01_skip_domination.ipynb](01_skip_domination.ipynb) | Skip domination: DARTS fills its cells with skip connections, and a little noise on the skip op stops it. The noise slider on a precomputed sweep, then a live run. | about 1.5 min | the same |
# | [02_noisy_skip_gradient.ipynb](02_noisy_skip_gradient.ipynb) | Why noise helps: the paper's gradient derivation on one real mixed edge, step by step, each step checked with numbers (unbiased noise, variance, bias of a nonzero mean). | under 1 min | the same |
# | [03_supernet_search.ipynb](03_supernet_search.ipynb) | The machine itself: the supernet, a cell, a mixed edge, one weight step and one architecture step by hand (first and second order), then DARTS and NoisyDARTS live, and the derived cells. | about 1.5 min | hours: the `paper` preset on CIFAR-10 |
# | [04_ablations.ipynb](04_ablations.ipynb) | Which noise cures the collapse: its level, Gaussian against uniform and multiplicative, biased means, skip-only against every op, and FairDARTS's sigmoid, over seeds. | under 30 s (precomputed; about 20 min to recompute) | the same |
# | [05_what_collapse_costs.ipynb](05_what_collapse_costs.ipynb) | What the collapse costs: the derived cells of DARTS and NoisyDARTS, and a random cell, trained from scratch with the same budget, over seeds. | about 1 min | the same |
#
# Times are for a run at the notebook's default settings (Restart & Run All), measured with
# `pytest --nbval` on a 2-core machine (the searches use one core). On a CPU the searches use the
# `cpu` preset on the handwritten digits shipped with the package (no download); on a GPU, notebook
# 03 switches to the reference settings on CIFAR-10 when it can download it.
#
# Launch one directly:
#
# - `01_skip_domination.ipynb`: [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/01_skip_domination.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/01_skip_domination.ipynb)
# - `02_noisy_skip_gradient.ipynb`: [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/02_noisy_skip_gradient.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/02_noisy_skip_gradient.ipynb)
# - `03_supernet_search.ipynb`: [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/03_supernet_search.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/03_supernet_search.ipynb)
# - `04_ablations.ipynb`: [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/04_ablations.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/04_ablations.ipynb)
# - `05_what_collapse_costs.ipynb`: [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/not_yet_published/ndarts_edu/blob/main/notebooks/05_what_collapse_costs.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/not_yet_published/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/05_what_collapse_costs.ipynb)

# %% [markdown]
# ## Running it yourself
#
# On a fresh machine with Python 3.11 to 3.13:
#
# ```bash
# git clone https://github.com/not_yet_published/ndarts_edu && cd ndarts_edu
# pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   # CPU-only torch (skip where you want CUDA)
# pip install -r requirements.txt                                              # the package (-e .) and Jupyter
# jupyter lab notebooks/00_index.ipynb
# pytest --nbval                                                               # the tests, every notebook included
# ```
#
# On Colab, the first code cell of every notebook installs the package (and does nothing anywhere
# else); choose a GPU runtime to use one. On Binder everything is installed already (CPU only, 1 to
# 2 GB of memory: the notebooks stay well inside it).
#
# ## Check your setup
#
# The next cells check that the package, its embedded data and the plotting libraries are here, and
# say which device the searches will use.

# %%
import importlib
from pathlib import Path

import torch

import ndarts_edu
from ndarts_edu.data import load_dataset, pick_device
from ndarts_edu.presets import PRESETS

data = load_dataset("digits")
versions = {name: importlib.import_module(name).__version__ for name in ("torch", "plotly", "ipywidgets", "anywidget")}
print(f"ndarts_edu {ndarts_edu.__version__};", ", ".join(f"{k} {v}" for k, v in versions.items()))
print(f"device for the searches: {pick_device('auto')} ({torch.get_num_threads()} CPU threads available to torch)")
print(f"embedded data: {data.name}, {len(data.train_labels)} training and {len(data.test_labels)} test images of shape {data.shape}")
for name, preset in PRESETS.items():
    print(f"preset {name!r}: {preset['description']}")

# %%
# the embedded digits are all there: 1,797 images of 10 classes, no download needed
assert len(data.train_labels) + len(data.test_labels) == 1797 and data.num_classes == 10
assert {"cpu", "quick", "paper"} <= set(PRESETS)

# %%
# the course map lists every notebook of the course, and nothing that is not there
# (on Colab only the open notebook is on disk, so there is nothing to compare)
COURSE = ['01_skip_domination.ipynb', '02_noisy_skip_gradient.ipynb', '03_supernet_search.ipynb', '04_ablations.ipynb', '05_what_collapse_costs.ipynb']
here = sorted(path.name for path in Path.cwd().glob("[0-9][0-9]_*.ipynb"))
if here:
    assert sorted(COURSE) == [name for name in here if not name.startswith("00_")], here
print("notebooks here:", here or "none (only the open notebook is on disk)")

# %% [markdown]
# ## Where to go from here
#
# - The paper: Xiangxiang Chu and Bo Zhang, *Noisy Differentiable Architecture Search*, BMVC 2021
#   (arXiv 2005.03566); its code: `xiaomi-automl/NoisyDARTS`.
# - DARTS: Hanxiao Liu, Karen Simonyan and Yiming Yang, *DARTS: Differentiable Architecture Search*,
#   ICLR 2019. FairDARTS: Xiangxiang Chu et al., *Fair DARTS*, ECCV 2020.
# - The command line runs the same searches without Jupyter: `python -m ndarts_edu --help`.
