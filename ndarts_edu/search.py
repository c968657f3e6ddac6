r"""Bilevel architecture search: DARTS, and NoisyDARTS when the skip noise is on.

DARTS solves

.. math::  \min_\alpha L_{val}(w^*(\alpha), \alpha) \quad \text{s.t.} \quad w^*(\alpha) = \arg\min_w L_{train}(w, \alpha)

by alternating, on every step, one architecture step on a batch of the *valid* half and one
weight step on a batch of the *train* half (the training images split 50/50).

- First order: the architecture gradient is :math:`\nabla_\alpha L_{val}(w, \alpha)`.
- Second order: it is taken at the unrolled weights :math:`w' = w - \xi \nabla_w L_{train}(w, \alpha)`,

  .. math::  \nabla_\alpha L_{val}(w', \alpha) - \xi\, \nabla^2_{\alpha, w} L_{train}(w, \alpha)\, \nabla_{w'} L_{val}(w', \alpha)

  with the Hessian-vector product by central finite differences,
  :math:`\big(\nabla_\alpha L_{train}(w^+, \alpha) - \nabla_\alpha L_{train}(w^-, \alpha)\big) / 2\epsilon`,
  :math:`w^\pm = w \pm \epsilon \nabla_{w'} L_{val}`, :math:`\epsilon = 0.01 / \lVert\nabla_{w'} L_{val}\rVert`.
  The weights are moved in place and restored, never copied into a second model.

The network is in training mode for both steps, so the skip noise is drawn afresh in each; it is
in eval mode (no noise) for the validation accuracy. A search records plain data (``history``)
and hands it to callbacks, so live plots, the command line and saved files all see the same thing.
"""
import contextlib
import dataclasses
import json
import math
import os
import pickle
import signal
import threading
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import derive, repro
from .data import Batches, ImageData, load_dataset, pick_device, split_search
from .errors import ConfigError, check_choice, check_number
from .mixed import WEIGHTINGS, NOISE_TARGETS, zero_one_loss
from .network import SuperNet
from .noise import NOISE_DECAYS, NOISE_KINDS, cosine_scale
from .ops import space_ops

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
RESULT_FORMAT = "ndarts_edu.result/1"
CHECKPOINT_KEYS = ("config", "model", "w_optimizer", "a_optimizer", "train_batches", "valid_batches", "rng",
                   "progress", "history")


@dataclass
class SearchConfig:
    """Every setting of a search. Defaults are DARTS's, at the CPU teaching scale of ``presets``."""

    # data
    dataset: str = "digits"
    data_dir: str = None
    image_size: int = None
    train_portion: float = 0.5
    augment: bool = False
    limit: int = None
    # supernet
    space: str = "s3"
    layers: int = 5
    channels: int = 8
    nodes: int = 4
    stem_multiplier: int = 3
    weighting: str = "softmax"
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
        """Check every setting; raise ``ConfigError`` naming the first bad one."""
        space_ops(self.space)
        check_choice("dataset", self.dataset, ("digits", "cifar10", "folder"))
        check_choice("weighting", self.weighting, WEIGHTINGS)
        check_choice("noise kind", self.noise_kind, NOISE_KINDS)
        check_choice("noise target", self.noise_on, NOISE_TARGETS)
        check_choice("noise decay", self.noise_decay, NOISE_DECAYS)
        check_choice("order", self.order, (1, 2))
        check_number("noise_lambda", self.noise_lambda, minimum=0.0)
        check_number("noise_mean", self.noise_mean)
        for name in ("epochs", "batch_size", "layers", "nodes", "stem_multiplier"):
            check_number(name, getattr(self, name), minimum=1, integer=True)
        check_number("channels", self.channels, minimum=2, integer=True)
        # grad_clip 0 would scale every weight gradient to zero: the weights would never move.
        for name in ("w_lr", "alpha_lr", "grad_clip"):
            check_number(name, getattr(self, name), minimum=0.0, strict=True)
        for name in ("w_lr_min", "w_momentum", "w_weight_decay", "alpha_weight_decay", "zero_one_weight",
                     "skip_drop_path"):
            check_number(name, getattr(self, name), minimum=0.0)
        check_number("train_portion", self.train_portion, minimum=0.0, maximum=1.0, strict=True)
        check_number("record_every", self.record_every, minimum=0, integer=True)
        check_number("seed", self.seed, minimum=0, integer=True)
        if self.threads is not None:
            check_number("threads", self.threads, minimum=1, integer=True)
        if len(tuple(self.alpha_betas)) != 2:
            raise ConfigError(f"alpha_betas must be two numbers, got {self.alpha_betas!r}")
        pick_device(self.device)
        return self

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["alpha_betas"] = list(self.alpha_betas)
        return d

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        values = dict(values)
        if "alpha_betas" in values:
            values["alpha_betas"] = tuple(values["alpha_betas"])
        return cls(**values)

    def replace(self, **changes):
        """A copy with some settings changed (unknown names raise ``ConfigError``)."""
        return SearchConfig.from_dict({**self.to_dict(), **changes})


class SearchDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the likely causes.

    Raised by ``Search.run`` with ``result``: the search's result (status ``"diverged"``, the history so far).
    """

    result = None


def _rounded(rows, digits=6):
    return [[round(float(v), digits) for v in row] for row in rows.tolist()]


class Search:
    """One search: the supernet, its two optimizers, the data halves, the history.

    ``Search(config).run()`` does it all; ``arch_step`` and ``weight_step`` are public so a
    notebook can take the steps by hand.
    """

    def __init__(self, config=None, data=None):
        self.config = (config or SearchConfig()).validate()
        c = self.config
        self.threads = repro.set_threads(c.threads)
        repro.seed_everything(c.seed)
        self.device = pick_device(c.device)
        if data is None:
            # CIFAR-10 is fetched through torchvision when its folder is missing (a GPU notebook, Colab).
            data = load_dataset(c.dataset, c.data_dir, c.image_size, limit=c.limit, download=True)
        elif not isinstance(data, ImageData):
            raise ConfigError(f"data must be an ndarts_edu.data.ImageData, got {type(data).__name__}")
        self.data_name = data.name
        (xw, yw), (xa, ya) = split_search(data.train_images, data.train_labels, c.train_portion)
        self.train_batches = Batches(xw, yw, c.batch_size, self.device, seed=c.seed, augment=c.augment)
        self.valid_batches = Batches(xa, ya, c.batch_size, self.device, seed=c.seed + 1, augment=c.augment)
        self.steps_per_epoch = min(len(self.train_batches), len(self.valid_batches))

        self.model = SuperNet(in_channels=data.shape[0], num_classes=data.num_classes, channels=c.channels,
                              layers=c.layers, nodes=c.nodes, space=c.space, weighting=c.weighting,
                              stem_multiplier=c.stem_multiplier, noise_on=c.noise_on,
                              skip_drop_path=c.skip_drop_path).to(self.device).use_channels_last()
        self.model.set_noise(c.noise_lambda, c.noise_kind, c.noise_mean)
        self.op_names = list(self.model.op_names)
        self.weight_params = self.model.weight_parameters()
        self.arch_params = self.model.arch_parameters()
        self.w_optimizer = torch.optim.SGD(self.weight_params, c.w_lr, momentum=c.w_momentum,
                                           weight_decay=c.w_weight_decay)
        self.a_optimizer = torch.optim.Adam(self.arch_params, c.alpha_lr, betas=tuple(c.alpha_betas),
                                            weight_decay=c.alpha_weight_decay)
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.history = {"steps": [], "epochs": []}
        self.seconds = 0.0
        self.status, self.message = "new", ""
        self._sums = self._zero_sums()
        self._enter_epoch()

    # -- schedules --------------------------------------------------------------------------
    def lr_at(self, epoch):
        """Cosine annealing of the weight learning rate from ``w_lr`` to ``w_lr_min`` over the epochs."""
        c = self.config
        return c.w_lr_min + 0.5 * (c.w_lr - c.w_lr_min) * (1 + math.cos(math.pi * epoch / c.epochs))

    def _enter_epoch(self):
        for group in self.w_optimizer.param_groups:
            group["lr"] = self.lr_at(self.epoch)
        scale = cosine_scale(self.epoch, self.config.epochs) if self.config.noise_decay == "cosine" else 1.0
        self.model.set_noise(scale=scale)

    @property
    def lr(self):
        return self.w_optimizer.param_groups[0]["lr"]

    # -- the two steps ----------------------------------------------------------------------
    def _valid_objective(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        if self.config.weighting == "sigmoid" and self.config.zero_one_weight > 0:
            loss = loss + self.config.zero_one_weight * sum(zero_one_loss(a) for a in self.arch_params)
        return loss

    def arch_gradients(self, x_train, y_train, x_valid, y_valid):
        """The architecture gradient of this step, first or second order (see the module docstring)."""
        self.model.train()
        if self.config.order == 1:
            loss = self._valid_objective(x_valid, y_valid)
            return list(torch.autograd.grad(loss, self.arch_params)), loss.detach()
        return self.unrolled_gradients(x_train, y_train, x_valid, y_valid, xi=self.lr)

    def unrolled_gradients(self, x_train, y_train, x_valid, y_valid, xi):
        """DARTS's second-order gradient, with the weights moved in place and then restored."""
        c, W, A = self.config, self.weight_params, self.arch_params
        with torch.no_grad():
            backup = [w.detach().clone() for w in W]
        # Each graph is dropped as soon as its gradient is taken (``del``, ``detach``): one kept alive
        # still held ~0.55 GB of a 4.9 GB pass (16 ch, 8 cells, batch 32) through the next pass.
        grads = torch.autograd.grad(F.cross_entropy(self.model(x_train), y_train), W)
        with torch.no_grad():
            # w' = w - xi * (grad + momentum * buffer + weight_decay * w): one SGD step, as DARTS.
            for w, g in zip(W, grads):
                buffer = self.w_optimizer.state.get(w, {}).get("momentum_buffer")
                step = g + c.w_weight_decay * w
                if buffer is not None:
                    step = step + c.w_momentum * buffer
                w.sub_(xi * step)
        del grads
        valid_loss = self._valid_objective(x_valid, y_valid)
        grads = torch.autograd.grad(valid_loss, A + W)
        valid_loss = valid_loss.detach()
        d_alpha, d_w = list(grads[: len(A)]), grads[len(A):]
        eps = 0.01 / torch.cat([g.reshape(-1) for g in d_w]).norm().clamp_min(1e-12)

        def train_alpha_grad(sign):
            with torch.no_grad():
                for w, b, g in zip(W, backup, d_w):
                    w.copy_(b + sign * eps * g)
            return torch.autograd.grad(F.cross_entropy(self.model(x_train), y_train), A)

        g_plus, g_minus = train_alpha_grad(+1), train_alpha_grad(-1)
        with torch.no_grad():
            for w, b in zip(W, backup):
                w.copy_(b)
        hvp = [(p - m) / (2 * eps) for p, m in zip(g_plus, g_minus)]
        return [da - xi * h for da, h in zip(d_alpha, hvp)], valid_loss

    def arch_step(self, x_train, y_train, x_valid, y_valid):
        """One Adam step on ``alpha``; returns the validation loss it saw (noise on)."""
        grads, loss = self.arch_gradients(x_train, y_train, x_valid, y_valid)
        self._check_finite("architecture", float(loss))
        for a, g in zip(self.arch_params, grads):
            a.grad = g
        before = [a.detach().clone() for a in self.arch_params]
        self.a_optimizer.step()
        if not all(bool(torch.isfinite(a).all()) for a in self.arch_params):
            # Adam can overflow (a huge alpha_lr) though the loss was finite: undo, so alpha stays usable.
            with torch.no_grad():
                for a, b in zip(self.arch_params, before):
                    a.copy_(b)
            raise self._diverged("the architecture parameters became non-finite")
        return float(loss)

    def weight_step(self, x, y):
        """One SGD step on the weights (``alpha`` fixed); returns (loss, correct predictions)."""
        self.model.train()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self._check_finite("weight", float(loss.detach()))
        grads = torch.autograd.grad(loss, self.weight_params)
        for w, g in zip(self.weight_params, grads):
            w.grad = g
        torch.nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip)
        self.w_optimizer.step()
        return float(loss.detach()), int((logits.argmax(1) == y).sum())

    def _check_finite(self, which, loss):
        """Stop before a non-finite loss reaches the parameters, so they stay the last good ones."""
        if not math.isfinite(loss):
            raise self._diverged(f"the {which} step's loss became {loss}")

    def _diverged(self, what, where=None):
        """The error for a non-finite value: what, where, and the settings that usually cause it."""
        c = self.config
        where = where or f"at step {self.step + 1} (epoch {self.epoch + 1})"
        return SearchDiverged(
            f"{what} {where}: lower the learning rates (w_lr={c.w_lr}, alpha_lr={c.alpha_lr}) or the noise "
            f"(noise_lambda={c.noise_lambda}, noise_mean={c.noise_mean})")

    # -- measurement ------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batches=None):
        """Loss and accuracy of the supernet in eval mode (no noise) on the architecture half."""
        batches = batches or self.valid_batches
        self.model.eval()
        loss, correct, n = 0.0, 0, len(batches.labels)
        for start in range(0, n, 256):
            x, y = batches.images[start:start + 256], batches.labels[start:start + 256]
            logits = self.model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        self.model.train()
        return loss / n, correct / n

    def weights(self):
        """``{"normal": rows, "reduce": rows}`` of ``f(alpha)`` as plain lists."""
        return {k: _rounded(v.cpu()) for k, v in self.model.weights().items()}

    def alphas(self):
        return {k: _rounded(v.detach().cpu()) for k, v in self.model.alphas().items()}

    def _threshold(self):
        return self.config.fair_threshold if self.config.weighting == "sigmoid" else None

    def genotype(self):
        return derive.derive_genotype(self.weights(), self.op_names, self._threshold())

    def skip_share(self):
        return derive.skip_share(self.weights()["normal"], self.op_names)

    # -- the loop ---------------------------------------------------------------------------
    @staticmethod
    def _zero_sums():
        return {"loss": 0.0, "valid_loss": 0.0, "correct": 0, "seen": 0, "steps": 0}

    def train_one_step(self):
        """An architecture step and a weight step; records and returns the step's record."""
        x_train, y_train = self.train_batches.next()
        x_valid, y_valid = self.valid_batches.next()
        valid_loss = self.arch_step(x_train, y_train, x_valid, y_valid)
        loss, correct = self.weight_step(x_train, y_train)
        self.step += 1
        self.step_in_epoch += 1
        s = self._sums
        s["loss"] += loss
        s["valid_loss"] += valid_loss
        s["correct"] += correct
        s["seen"] += len(y_train)
        s["steps"] += 1
        record = {"step": self.step, "epoch": round(self.epoch + self.step_in_epoch / self.steps_per_epoch, 4),
                  "train_loss": round(loss, 6), "valid_loss": round(valid_loss, 6)}
        every = self.config.record_every
        if every and self.step % every == 0:
            record["weights"] = self.weights()
            self.history["steps"].append(record)
        return record

    def finish_epoch(self):
        """Close the epoch: measure, record, and move the schedules to the next epoch."""
        s = self._sums
        valid_loss, valid_accuracy = self.evaluate()
        if not math.isfinite(valid_loss):  # e.g. batch-norm statistics that overflowed: checkpoint none of it
            raise self._diverged(f"the validation loss (eval mode) became {valid_loss}",
                                 f"at the end of epoch {self.epoch + 1} (step {self.step})")
        weights = self.weights()
        cell = derive.derive_cell(weights["normal"], self.op_names, self._threshold())
        record = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": round(self.lr, 8),
            "noise_scale": round(self.model.noise_modules()[0].scale, 6) if self.model.noise_modules() else 0.0,
            "train_loss": round(s["loss"] / max(s["steps"], 1), 6),
            "train_accuracy": round(s["correct"] / max(s["seen"], 1), 6),
            "arch_loss": round(s["valid_loss"] / max(s["steps"], 1), 6),
            "valid_loss": round(valid_loss, 6),
            "valid_accuracy": round(valid_accuracy, 6),
            "skip_share": derive.skip_share(weights["normal"], self.op_names),
            "genotype_skips": derive.genotype_skips(cell),
            "seconds": round(self.seconds, 3),
            "weights": weights,
        }
        self.history["epochs"].append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self._sums = self._zero_sums()
        if self.epoch < self.config.epochs:
            self._enter_epoch()
        return record

    @property
    def done(self):
        return self.epoch >= self.config.epochs

    def run(self, on_step=None, on_epoch=None, stop=None, out_dir=None, epochs=None):
        """Search until ``config.epochs`` (or ``epochs``), a stop, a Ctrl-C or a divergence.

        ``on_step(record)`` and ``on_epoch(record)`` get plain dicts; ``stop`` is a
        ``threading.Event`` checked after every step. With ``out_dir`` a checkpoint is written
        after every epoch and on any stop, and ``result.json`` at the end. Returns ``result()``.
        """
        if epochs is not None:
            self.extend(epochs)
        stop = stop or threading.Event()
        restore_sigint = _stop_on_sigint(stop)
        self.status, self.message = "running", ""
        try:
            while not self.done and not stop.is_set():
                started = time.perf_counter()
                try:
                    record = self.train_one_step()
                finally:
                    self.seconds += time.perf_counter() - started
                if on_step:
                    on_step(record)
                if self.step_in_epoch >= self.steps_per_epoch:
                    started = time.perf_counter()
                    record = self.finish_epoch()
                    self.seconds += time.perf_counter() - started
                    if out_dir:
                        self.save_checkpoint(out_dir)
                    if on_epoch:
                        on_epoch(record)
            self.status = "finished" if self.done else "stopped"
            if self.status == "stopped":
                self.message = f"stopped at step {self.step} (epoch {self.epoch + 1}, step {self.step_in_epoch} of it)"
                if out_dir:
                    self.save_checkpoint(out_dir)
        except SearchDiverged as error:
            self.status, self.message = "diverged", str(error)
            error.result = self.result()  # the history so far, also for callers of run_search
            if out_dir:  # keep the last good checkpoint (the last epoch's); save what was learnt
                self.save_result(out_dir)
            raise
        except KeyboardInterrupt:
            # A second Ctrl-C lands mid-step: no checkpoint of that, the last one stays the consistent one.
            self.status = "interrupted"
            self.message = f"interrupted during step {self.step + 1}; a resume continues from the last checkpoint"
            if out_dir:
                self.save_result(out_dir)
            raise
        finally:
            restore_sigint()
        if out_dir:
            self.save_result(out_dir)
        return self.result()

    def extend(self, epochs):
        """Continue to ``epochs`` in all.

        The cosine schedules (the weight learning rate, ``lr_at``, and the noise when
        ``noise_decay="cosine"``) are planned over ``config.epochs``, so they are planned anew for
        the new length: the remaining epochs follow the longer curve, and the learning rate jumps up
        where the run is extended. A 2-epoch run extended to 4 therefore equals a 4-epoch run only
        when both schedules are flat (``w_lr_min == w_lr``, ``noise_decay="none"``); to pause a
        run and continue it exactly, plan it at its full length and stop it (``stop``, Ctrl-C).
        """
        epochs = int(check_number("epochs", epochs, minimum=1, integer=True))
        if epochs < self.epoch:
            raise ConfigError(f"epochs {epochs} is fewer than the {self.epoch} already done")
        if epochs != self.config.epochs:
            self.config = self.config.replace(epochs=epochs)
            if not self.done:
                self._enter_epoch()

    # -- results and checkpoints ------------------------------------------------------------
    def result(self):
        """Everything a reader needs, as plain data (what ``result.json`` holds)."""
        weights = self.weights()
        genotype = derive.derive_genotype(weights, self.op_names, self._threshold())
        last = self.history["epochs"][-1] if self.history["epochs"] else {}
        config = self.config.to_dict()
        config["device"] = str(self.device)
        config["threads"] = self.threads
        return {
            "format": RESULT_FORMAT,
            "status": self.status,
            "message": self.message,
            "config": config,
            "data": self.data_name,
            "environment": repro.environment(self.device),
            "ops": self.op_names,
            "alphas": self.alphas(),
            "weights": weights,
            "genotype": genotype,
            "skip_share": derive.skip_share(weights["normal"], self.op_names),
            "genotype_skips": derive.genotype_skips(genotype["normal"]),
            "epochs_done": self.epoch,
            "steps_done": self.step,
            "valid_accuracy": last.get("valid_accuracy"),
            "seconds": round(self.seconds, 3),
            "history": self.history,
        }

    def save_result(self, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        return atomic_write_json(os.path.join(out_dir, RESULT), self.result())

    def state_dict(self):
        """Everything needed to continue exactly: tensors and plain data only (safe to load)."""
        return {
            "format": RESULT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.a_optimizer.state_dict(),
            "train_batches": self.train_batches.state_dict(),
            "valid_batches": self.valid_batches.state_dict(),
            "rng": repro.rng_state(),
            "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                         "seconds": self.seconds, "sums": dict(self._sums)},
            "history": self.history,
        }

    def load_state_dict(self, state):
        """Continue from a ``state_dict``; one of another configuration raises ``ConfigError``."""
        self._check_fits(state)
        # The batches first: they refuse a state drawn from other data before anything else changes.
        self.train_batches.load_state_dict(state["train_batches"])
        self.valid_batches.load_state_dict(state["valid_batches"])
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        repro.set_rng_state(state["rng"])
        p = state["progress"]
        self.epoch, self.step_in_epoch, self.step = p["epoch"], p["step_in_epoch"], p["step"]
        self.seconds, self._sums = p["seconds"], dict(p["sums"])
        self.history = state["history"]
        # The schedules of the current epoch, and the noise settings, follow from the config.
        self.model.set_noise(self.config.noise_lambda, self.config.noise_kind, self.config.noise_mean)
        if not self.done:
            lr = [g["lr"] for g in self.w_optimizer.param_groups]
            self._enter_epoch()
            if self.step_in_epoch:  # mid-epoch: keep the epoch's learning rate as it was
                for g, value in zip(self.w_optimizer.param_groups, lr):
                    g["lr"] = value

    def _check_fits(self, state):
        """Refuse a state whose model does not fit this search, naming why, before anything is overwritten."""
        missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
        if missing:
            raise ConfigError(f"the checkpoint lacks {', '.join(missing)}")
        saved, here = state["model"], self.model.state_dict()
        if not isinstance(saved, dict):
            raise ConfigError(f"the checkpoint's model is a {type(saved).__name__}, not a dict of tensors")

        def shape(tensors, name):
            return tuple(getattr(tensors.get(name), "shape", ()))

        wrong = sorted(set(saved) ^ set(here)) or [name for name in here if shape(saved, name) != shape(here, name)]
        if not wrong:
            return
        name = wrong[0]
        detail = (f"{name} has shape {shape(saved, name)} there, {shape(here, name)} here"
                  if name in saved and name in here else f"{name} is in only one of the two models")
        theirs, ours = state.get("config") or {}, self.config.to_dict()
        differ = [f"{key} {theirs[key]!r} there, {ours[key]!r} here" for key in ours
                  if key in theirs and theirs[key] != ours[key] and key not in ("epochs", "device", "threads")]
        cause = (f"it is from another configuration ({'; '.join(differ)})" if differ
                 else "its model does not match the configuration saved with it")
        raise ConfigError(f"the checkpoint does not fit this search: {cause}; {detail}")

    def save_checkpoint(self, out_dir):
        """Write ``out_dir/checkpoint.pt`` atomically (write, then rename)."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, CHECKPOINT)
        with _replacing(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    @classmethod
    def resume(cls, out_dir, data=None, device=None):
        """Rebuild a search from ``out_dir/checkpoint.pt``, ready to ``run`` on."""
        state = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
        try:
            config = SearchConfig.from_dict(state["config"])
            if device is not None:
                config = config.replace(device=device)
            search = cls(config, data=data)
            search.load_state_dict(state)
        except ConfigError as error:
            raise ConfigError(f"cannot resume from {out_dir!r}: {error}") from None
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
            raise ConfigError(f"checkpoint in {out_dir!r} does not fit its own configuration "
                              f"({type(error).__name__}: {' '.join(str(error).split())})") from None
        return search


def load_checkpoint(path):
    """Load a checkpoint safely (``weights_only=True``: tensors and plain data, never code)."""
    if not os.path.exists(path):
        raise ConfigError(f"no checkpoint at {path!r}")
    try:
        with warnings.catch_warnings():  # a corrupt file can make torch warn too: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text here advises weights_only=False: not for a student
        raise ConfigError(f"refused to load checkpoint {path!r}: it holds something other than tensors and "
                          "plain data (loading it could run code), or it is corrupt") from None
    except Exception as error:  # truncated or corrupt
        first = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot load checkpoint {path!r}: the file is truncated or corrupt ({first})") from None
    if not isinstance(state, dict) or state.get("format") != RESULT_FORMAT:
        raise ConfigError(f"{path!r} is not an ndarts_edu search checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing or not isinstance(state["config"], dict):
        raise ConfigError(f"checkpoint {path!r} is incomplete (missing or malformed: {', '.join(missing) or 'config'})")
    return state


@contextlib.contextmanager
def _replacing(path):
    """Yield a temporary name to write; rename it to ``path`` when done, remove it on any failure."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:  # an error or a Ctrl-C mid-write: the old file stays whole, no stray temp file
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (write, then rename)."""
    with _replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, allow_nan=False)
    return path


def _stop_on_sigint(stop):
    """While a search runs in the main thread, Ctrl-C asks it to stop after the current step.

    A second Ctrl-C interrupts at once. Returns a function that restores the previous handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGINT, previous)


def run_search(config=None, data=None, **kwargs):
    """``Search(config, data).run(**kwargs)``: one whole search, its result as plain data."""
    return Search(config, data).run(**kwargs)
