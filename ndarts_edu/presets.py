"""Named settings: what the command line and the notebooks start from.

- ``cpu`` (the default): the teaching scale, calibrated so that plain DARTS collapses to skip
  connections and NoisyDARTS does not, on the embedded digits, in about a minute on one CPU core.
- ``quick``: the same search, smaller and shorter: for tests and a first look (seconds).
- ``paper``: the reference code's search on CIFAR-10 (``PAPER_FACTS.md``): for a GPU.

Each preset has the search settings and ``noise_lambda``, the NoisyDARTS noise level that
``compare`` sets against DARTS (noise 0).

How ``cpu`` was calibrated (``README.md`` has the figures). The reference search takes about
10,000 architecture steps (50 epochs of 195); the digits give 110 (10 epochs of 11). So the
architecture learning rate is scaled up (1e-2 instead of 3e-4) for alpha to move as far, and the
weights learn at FairDARTS's 0.005 instead of 0.05: with fast weights the convolutions learn the
easy digits within a few epochs and the early lead of skip fades; with slow ones skip's lead feeds
itself and holds, as in the paper's long searches. The noise that then stops the collapse is
``lambda = 1.5``, the smallest of the shipped sweep's grid that does (1.0 does not), far above the
paper's 0.2: 110 steps leave the noise's variance little time to act, so it has to be large, and at
that size it also slows the supernet's own training (its accuracy drops). The threads are pinned
to 1: results change with the thread count, and one thread keeps a core free for the notebook.
"""
from .errors import check_choice
from .search import SearchConfig

PRESETS = {
    "cpu": {
        "description": "teaching scale: digits, s3 space, 5 cells of 8 channels, 1 CPU thread",
        "noise_lambda": 1.5,
        "config": dict(dataset="digits", space="s3", layers=5, channels=8, nodes=4, epochs=10,
                       batch_size=64, w_lr=0.005, alpha_lr=1e-2, threads=1),
    },
    "quick": {
        "description": "a first look in seconds: digits, s3, 3 cells of 4 channels, 2 nodes, 2 epochs",
        "noise_lambda": 1.5,
        "config": dict(dataset="digits", space="s3", layers=3, channels=4, nodes=2, epochs=2,
                       batch_size=64, w_lr=0.005, alpha_lr=1e-2, threads=1),
    },
    "paper": {
        "description": "the NoisyDARTS reference search: CIFAR-10, 7 ops, 8 cells of 16 channels, 50 epochs (GPU)",
        "noise_lambda": 0.2,
        "config": dict(dataset="cifar10", data_dir="data", augment=True, space="darts7", layers=8,
                       channels=16, nodes=4, epochs=50, batch_size=128, w_lr=0.05, w_lr_min=0.001,
                       w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0, alpha_lr=3e-4,
                       alpha_betas=(0.5, 0.999), alpha_weight_decay=1e-3, record_every=0),
    },
}


def preset_config(name="cpu", **overrides):
    """The ``SearchConfig`` of a preset, with ``overrides`` applied (``None`` values are ignored)."""
    check_choice("preset", name, list(PRESETS))
    values = dict(PRESETS[name]["config"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SearchConfig.from_dict(values)


def preset_noise(name="cpu"):
    """The NoisyDARTS noise level of a preset."""
    check_choice("preset", name, list(PRESETS))
    return PRESETS[name]["noise_lambda"]
