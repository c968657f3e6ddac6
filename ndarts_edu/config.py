"""The settings: every setting of a search (``SearchConfig``) and of a derived network's training
(``TrainConfig``), as plain dataclasses.

Defaults are DARTS's, at the CPU teaching scale of ``presets``. ``validate()`` holds every rule
about the settings and raises ``ConfigError`` naming the first bad one; ``Search`` and
``train_genotype`` call it once, before anything is loaded or built, and the parts they build
trust what it let through. (The building blocks a notebook makes by hand, ``NoisySkip``,
``MixedOp``, ``SuperNet``, ``load_dataset``, ``pick_device``, keep their own checks.)
``to_dict`` / ``from_dict`` give the plain data that ``result.json`` records, and ``replace`` a
copy with some settings changed.

``cosine_schedule`` is the one curve every schedule of these settings follows.
"""
import dataclasses
import math
from dataclasses import dataclass

from .data import check_augment, check_dataset, pick_device
from .errors import ConfigError, check_choice, check_number
from .mixed import NOISE_TARGETS, WEIGHTINGS
from .network import check_channels
from .noise import NOISE_DECAYS, NOISE_KINDS
from .ops import space_ops


# Settings that choose how a search is computed, not what it computes: ``fused`` runs the same
# search on the fast path (the same numbers up to rounding, as another thread count gives). Saved
# results that differ only in them are results of the same search (``searched``).
HOW_COMPUTED = ("fused",)


def searched(settings):
    """A config dict (``to_dict``) without the settings of ``HOW_COMPUTED``: what a search computes,
    for telling whether two saved searches are the same one (anything else is returned as it is)."""
    if not isinstance(settings, dict):
        return settings
    return {k: v for k, v in settings.items() if k not in HOW_COMPUTED}


def cosine_schedule(epoch, epochs, start=1.0, end=0.0):
    r"""The value at the start of ``epoch`` (0-based) of a cosine curve from ``start`` to ``end``
    over ``epochs`` (and ``end`` after them):

    .. math::  v_e = v_{end} + \tfrac12 (v_{start} - v_{end}) \big(1 + \cos(\pi\, e / E)\big)

    It sets the search's weight learning rate (``w_lr`` to ``w_lr_min``, DARTS's cosine annealing),
    the derived network's (``lr`` to ``lr_min``) and the noise's decay (1 to 0,
    ``noise_decay="cosine"``).
    """
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


class _Settings:
    """What both configurations share: plain data in and out, and copies with changes."""

    _what = "setting"  # the word the unknown-setting error uses

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {cls._what}(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes):
        """A copy with some settings changed (unknown names raise ``ConfigError``)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def _check_run(self):
        """The rules of the run settings, which both configurations have."""
        check_number("seed", self.seed, minimum=0, integer=True)
        if self.threads is not None:
            check_number("threads", self.threads, minimum=1, integer=True)
        pick_device(self.device)


@dataclass
class SearchConfig(_Settings):
    """Every setting of a search. Defaults are DARTS's, at the CPU teaching scale of ``presets``."""

    # data
    dataset: str = "digits"
    data_dir: str = None
    image_size: int = None
    train_portion: float = 0.5
    augment: str = "none"  # data.AUGMENTS (True, as older files say: "crop_flip")
    limit: int = None
    # supernet
    space: str = "s3"
    layers: int = 5
    channels: int = 8
    nodes: int = 4
    stem_multiplier: int = 3
    weighting: str = "softmax"
    fused: bool = True  # compute the cells with fused.FusedCell (faster, the same within rounding)
    # noise (NoisyDARTS); noise_lambda = 0 is plain DARTS
    noise_lambda: float = 0.0
    noise_kind: str = "gaussian"
    noise_mean: float = 0.0
    noise_on: str = "skip"
    noise_decay: str = "none"
    skip_drop_path: float = 0.0
    # optimisation
    epochs: int = 10
    batch_size: int = 64
    order: int = 1
    w_lr: float = 0.05
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_betas: tuple = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    zero_one_weight: float = 0.0
    fair_threshold: float = 0.85
    # run
    seed: int = 0
    device: str = "auto"
    threads: int = None
    record_every: int = 1

    def validate(self):
        """Check every setting; raise ``ConfigError`` naming the first bad one. Returns ``self``."""
        check_dataset(self.dataset, self.data_dir, self.image_size, self.limit)
        check_augment(self.augment)
        check_number("train_portion", self.train_portion, minimum=0.0, maximum=1.0, strict=True)
        # the supernet
        space_ops(self.space)
        for name in ("layers", "nodes", "stem_multiplier"):
            check_number(name, getattr(self, name), minimum=1, integer=True)
        check_channels(self.channels)
        check_choice("weighting", self.weighting, WEIGHTINGS)
        if not isinstance(self.fused, bool):
            raise ConfigError(f"fused must be true or false, got {self.fused!r}")
        # the noise
        check_number("noise_lambda", self.noise_lambda, minimum=0.0)
        check_choice("noise kind", self.noise_kind, NOISE_KINDS)
        check_number("noise_mean", self.noise_mean)
        check_choice("noise target", self.noise_on, NOISE_TARGETS)
        check_choice("noise decay", self.noise_decay, NOISE_DECAYS)
        check_number("skip_drop_path", self.skip_drop_path, minimum=0.0, maximum=0.99)
        # the optimisation
        check_choice("order", self.order, (1, 2))
        for name in ("epochs", "batch_size"):
            check_number(name, getattr(self, name), minimum=1, integer=True)
        # grad_clip 0 would scale every weight gradient to zero: the weights would never move.
        for name in ("w_lr", "alpha_lr", "grad_clip"):
            check_number(name, getattr(self, name), minimum=0.0, strict=True)
        for name in ("w_lr_min", "w_momentum", "w_weight_decay", "alpha_weight_decay",
                     "zero_one_weight"):
            check_number(name, getattr(self, name), minimum=0.0)
        betas = tuple(self.alpha_betas)
        if len(betas) != 2 or not all(0 <= check_number("alpha_betas", b) < 1 for b in betas):
            raise ConfigError(f"alpha_betas must be two numbers in [0, 1) (Adam's decay rates), "
                              f"got {self.alpha_betas!r}")
        check_number("fair_threshold", self.fair_threshold, minimum=0.0, maximum=1.0)
        # the run
        check_number("record_every", self.record_every, minimum=0, integer=True)
        self._check_run()
        return self

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["alpha_betas"] = list(self.alpha_betas)
        return d

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        if "alpha_betas" in values:
            values["alpha_betas"] = tuple(values["alpha_betas"])
        return super().from_dict(values)


@dataclass
class TrainConfig(_Settings):
    """The budget every derived cell gets. ``from_search`` takes it from a search's settings."""

    _what = "training setting"

    dataset: str = "digits"
    data_dir: str = None
    image_size: int = None
    limit: int = None
    augment: str = "none"  # data.AUGMENTS (True, as older files say: "crop_flip")
    layers: int = 5
    channels: int = 8
    stem_multiplier: int = 3
    epochs: int = 10
    batch_size: int = 64
    # DARTS's recipe for the final network: SGD, lr 0.025 annealed to 0 (cosine), momentum 0.9
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    drop_path: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = None

    def validate(self):
        """Check every setting; raise ``ConfigError`` naming the first bad one. Returns ``self``."""
        check_dataset(self.dataset, self.data_dir, self.image_size, self.limit)
        check_augment(self.augment)
        for name in ("epochs", "batch_size", "layers", "stem_multiplier"):
            check_number(name, getattr(self, name), minimum=1, integer=True)
        check_channels(self.channels)
        for name in ("lr", "grad_clip"):  # grad_clip 0 would scale every gradient to zero
            check_number(name, getattr(self, name), minimum=0.0, strict=True)
        for name in ("lr_min", "momentum", "weight_decay"):
            check_number(name, getattr(self, name), minimum=0.0)
        check_number("drop_path", self.drop_path, minimum=0.0, maximum=0.99)
        self._check_run()
        return self

    def replace(self, **changes):
        """A copy with the settings of ``changes`` that are not ``None`` changed."""
        return super().replace(**{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_search(cls, search_config, **overrides):
        """The data, network size, batch size and epochs of a search (a ``SearchConfig`` or its
        dict).

        The optimiser is not the search's: the search's weight learning rate is tuned for the
        tug of war with ``alpha``, the derived network is trained with DARTS's recipe for the final
        network (the class defaults). It trains on the whole training set (both halves the search
        split) and is tested on the held-out test set, which the search never saw.
        """
        s = search_config.to_dict() if hasattr(search_config, "to_dict") else dict(search_config)
        missing = sorted({"dataset", "layers", "channels", "epochs", "batch_size"} - set(s))
        if missing:
            raise ConfigError(f"the search settings lack {', '.join(missing)}: "
                              "not a search's config")
        values = {"dataset": s["dataset"], "data_dir": s.get("data_dir"),
                  "image_size": s.get("image_size"), "limit": s.get("limit"),
                  "augment": s.get("augment", False), "layers": s["layers"],
                  "channels": s["channels"], "stem_multiplier": s.get("stem_multiplier", 3),
                  "epochs": s["epochs"], "batch_size": s["batch_size"], "seed": s.get("seed", 0),
                  "threads": s.get("threads")}
        return cls(**values).replace(**overrides)
