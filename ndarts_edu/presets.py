"""Named settings: what the command line and the notebooks start from.

- ``cpu`` (the default): the teaching scale, calibrated so that plain DARTS collapses to skip
  connections and NoisyDARTS does not, on the embedded digits, in about a minute on one CPU core.
- ``quick``: the same search, smaller and shorter: for tests and a first look (seconds).
- ``paper``: the reference code's search on CIFAR-10 (``PAPER_FACTS.md``): for a GPU. With the
  reference code's drop-path of 0.3 on the skip branch during search (its ``model_search.Network``
  default, which the paper's equations do not mention). One deviation: the reference drops the skip
  path in its validation pass too (its ``drop_path`` ignores the mode); here drop-path, like the
  noise, acts in training mode only.

Each preset has the search settings and ``noise_lambda``, the NoisyDARTS noise level that
``compare`` sets against DARTS (noise 0).

How ``cpu`` was calibrated (``tools/calibrate.py``; the grid is ``docs/calibration/grid_cpu.json``,
the README's numbers come from it and from the shipped sweep by ``tools/readme_numbers.py``). The
reference search takes about 10,000 architecture steps (50 epochs of 195); the digits give 110
(10 epochs of 11). So alpha learns fast (0.1 instead of 3e-4: an early lead is locked in within
the budget, as in the paper's long searches) and the weights slowly (0.01 instead of 0.025 to
0.05: with fast weights the convolutions learn the easy digits within a few epochs and skip's
lead fades). On seeds 10 to 14, which the calibration (seeds 0 and 1) never saw, DARTS collapses
(skip_share 0.71 to 0.86) and the noise that stops it is ``lambda = 1.5``, the smallest level of
the shipped sweep that does in 4 of 5 seeds: 0.5 does not touch the collapse and 1.0 stops it in
2 of 5. That is far above the paper's 0.2 and above the 1.0 this package aimed for: 110 steps
leave the noise's variance little time to act. Settings with distorted digits (``augment =
"distort"``, a task that never runs out) collapsed less or cured at a larger accuracy cost; none
of the grid met every goal at once (README). The threads are pinned to 1: results change with
the thread count, and one thread keeps a core free for the notebook.
"""
from .errors import check_choice
from .config import SearchConfig

PRESETS = {
    "cpu": {
        "description": "teaching scale: digits, s3 space, 5 cells of 8 channels, 1 CPU thread",
        "noise_lambda": 1.5,
        "calibration": "plain_e10_w0.01_a0.1",  # its name in docs/calibration/grid_cpu.json
        "config": dict(dataset="digits", space="s3", layers=5, channels=8, nodes=4, epochs=10,
                       batch_size=64, w_lr=0.01, alpha_lr=0.1, threads=1),
    },
    "quick": {
        "description": ("a first look in seconds: digits, s3, 3 cells of 4 channels, 2 nodes, "
                        "2 epochs"),
        "noise_lambda": 1.5,
        "config": dict(dataset="digits", space="s3", layers=3, channels=4, nodes=2, epochs=2,
                       batch_size=64, w_lr=0.01, alpha_lr=0.1, threads=1),
    },
    "paper": {
        "description": ("the NoisyDARTS reference search: CIFAR-10, 7 ops, 8 cells of 16 channels, "
                        "50 epochs (GPU)"),
        "noise_lambda": 0.2,
        "config": dict(dataset="cifar10", data_dir="data", augment="crop_flip", space="darts7",
                       layers=8, channels=16, nodes=4, epochs=50, batch_size=128, w_lr=0.05,
                       w_lr_min=0.001,
                       w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0, alpha_lr=3e-4,
                       alpha_betas=(0.5, 0.999), alpha_weight_decay=1e-3, skip_drop_path=0.3,
                       record_every=0),
    },
}


def preset_config(name="cpu", **overrides):
    """The ``SearchConfig`` of a preset, with ``overrides`` applied (``None`` values are
    ignored)."""
    check_choice("preset", name, list(PRESETS))
    values = dict(PRESETS[name]["config"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SearchConfig.from_dict(values)


def preset_noise(name="cpu"):
    """The NoisyDARTS noise level of a preset."""
    check_choice("preset", name, list(PRESETS))
    return PRESETS[name]["noise_lambda"]
