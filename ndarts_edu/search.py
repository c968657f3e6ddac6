r"""Bilevel architecture search: DARTS, and NoisyDARTS when the skip noise is on.

DARTS solves

.. math::  \min_\alpha L_{val}(w^*(\alpha), \alpha)
           \quad \text{s.t.} \quad w^*(\alpha) = \arg\min_w L_{train}(w, \alpha)

by alternating, on every step, one architecture step on a batch of the *valid* half and one
weight step on a batch of the *train* half (the training images split 50/50).

- First order: the architecture gradient is :math:`\nabla_\alpha L_{val}(w, \alpha)`.
- Second order: it is taken at the unrolled weights
  :math:`w' = w - \xi \nabla_w L_{train}(w, \alpha)`,

  .. math::  \nabla_\alpha L_{val}(w', \alpha)
             - \xi\, \nabla^2_{\alpha, w} L_{train}(w, \alpha)\, \nabla_{w'} L_{val}(w', \alpha)

  with the Hessian-vector product by central finite differences,
  :math:`\big(\nabla_\alpha L_{train}(w^+, \alpha) - \nabla_\alpha L_{train}(w^-, \alpha)\big)
  / 2\epsilon`, :math:`w^\pm = w \pm \epsilon \nabla_{w'} L_{val}`,
  :math:`\epsilon = 0.01 / \lVert\nabla_{w'} L_{val}\rVert`.
  The weights are moved in place and restored, never copied into a second model.

The network is in training mode for both steps, so the skip noise is drawn afresh in each (the
second-order step holds one draw for its passes on the train batch: ``unrolled_gradients``); it is
in eval mode (no noise) for the validation accuracy, with batch-norm statistics re-estimated
without noise (``evaluate``). A search records plain data (``history``)
and hands it to callbacks, so live plots, the command line and saved files all see the same thing.

This module is the algorithm: the two steps, one step of both (``train_one_step``), the close of
an epoch (``finish_epoch``) and a plain loop (``loop``). Running it with a status, checkpoints,
``result.json`` and Ctrl-C is ``runs``; the settings are ``config.SearchConfig``. One search
across several devices (``torchrun``) is ``distributed``: a ``Replicas`` object whose hooks here
(``shard``, ``mean``) take this rank's share of each batch and average each gradient over the
ranks before it is used; in one process they are the identity.
"""
import contextlib
import math
import time

import torch
import torch.nn.functional as F

from . import derive, repro, runs
from .distributed import ONE_PROCESS
from .config import SearchConfig, cosine_schedule
from .data import Batches, ImageData, load_dataset, pick_device, split_search
from .errors import ConfigError, SearchDiverged, check_number
from .mixed import zero_one_loss
from .network import SuperNet, batch_starts, kept_batchnorm_statistics, recalibrate_batchnorm
from .network import evaluate as evaluate_model
from .noise import hold_draws


def _rounded(rows, digits=6):
    return [[round(float(v), digits) for v in row] for row in rows.tolist()]


class Search:
    """One search: the supernet, its two optimizers, the data halves, the history.

    ``Search(config).run()`` does it all; ``arch_step`` and ``weight_step`` are public so a
    notebook can take the steps by hand. ``replicas``: a ``distributed.Replicas`` for one rank of
    a data-parallel search (``distributed.from_environment()`` under torchrun); then the steps
    take this rank's share of a batch, and ``train_one_step`` hands it out.
    """

    def __init__(self, config=None, data=None, replicas=None):
        # Every rule about the settings is checked here, once, before anything is loaded or built.
        self.config = (config or SearchConfig()).validate()
        c = self.config
        self.replicas = replicas or ONE_PROCESS
        self.replicas.check(c)
        self.threads = repro.set_threads(c.threads)
        repro.seed_everything(c.seed)
        self.device = self.replicas.bind(pick_device(c.device))
        if data is None:
            # CIFAR-10 is fetched through torchvision when its folder is missing (a GPU notebook).
            data = load_dataset(c.dataset, c.data_dir, c.image_size, limit=c.limit, download=True)
        elif not isinstance(data, ImageData):
            raise ConfigError(f"data must be an ndarts_edu.data.ImageData, "
                              f"got {type(data).__name__}")
        self.data_name = data.name
        # The training images in two halves: w learns on one, alpha on the other.
        (xw, yw), (xa, ya) = split_search(data.train_images, data.train_labels, c.train_portion)
        self.train_batches = Batches(xw, yw, c.batch_size, self.device, seed=c.seed,
                                     augment=c.augment)
        self.valid_batches = Batches(xa, ya, c.batch_size, self.device, seed=c.seed + 1,
                                     augment=c.augment)
        self.steps_per_epoch = min(len(self.train_batches), len(self.valid_batches))

        self.model = SuperNet(in_channels=data.shape[0], num_classes=data.num_classes,
                              channels=c.channels, layers=c.layers, nodes=c.nodes, space=c.space,
                              weighting=c.weighting, stem_multiplier=c.stem_multiplier,
                              noise_on=c.noise_on, skip_drop_path=c.skip_drop_path,
                              fused=c.fused)
        self.model = self.model.to(self.device).use_channels_last()
        self.model.set_noise(c.noise_lambda, c.noise_kind, c.noise_mean)
        # the same model on every rank (one seed); from here each rank draws its own noise
        self.replicas.seed_draws(c.seed)
        self.op_names = list(self.model.op_names)
        self.weight_params = self.model.weight_parameters()
        self.arch_params = self.model.arch_parameters()
        # w: SGD with momentum (its learning rate follows lr_at); alpha: Adam, as DARTS.
        self.w_optimizer = torch.optim.SGD(self.weight_params, c.w_lr, momentum=c.w_momentum,
                                           weight_decay=c.w_weight_decay)
        self.a_optimizer = torch.optim.Adam(self.arch_params, c.alpha_lr,
                                            betas=tuple(c.alpha_betas),
                                            weight_decay=c.alpha_weight_decay)
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.history = {"steps": [], "epochs": []}
        self.world_sizes = [[0, self.replicas.world_size]]  # [first step, ranks] of each stretch
        self.seconds = 0.0
        self.status, self.message = "new", ""
        self.sums = self._zero_sums()
        self.enter_epoch()

    # -- schedules --------------------------------------------------------------------------
    def lr_at(self, epoch):
        """The weight learning rate of ``epoch``: cosine annealing from ``w_lr`` to ``w_lr_min``."""
        c = self.config
        return cosine_schedule(epoch, c.epochs, c.w_lr, c.w_lr_min)

    def enter_epoch(self):
        """Set the current epoch's learning rate and noise scale (1, or a cosine decay to 0)."""
        c = self.config
        for group in self.w_optimizer.param_groups:
            group["lr"] = self.lr_at(self.epoch)
        self.model.set_noise(scale=cosine_schedule(self.epoch, c.epochs)
                             if c.noise_decay == "cosine" else 1.0)

    @property
    def lr(self):
        return self.w_optimizer.param_groups[0]["lr"]

    # -- the two steps ----------------------------------------------------------------------
    def _valid_objective(self, x, y):
        """``L_val``: the cross-entropy on a batch of the valid half (plus FairDARTS's zero-one
        loss, when the weighting is sigmoid)."""
        loss = F.cross_entropy(self.model(x), y)
        if self.config.weighting == "sigmoid" and self.config.zero_one_weight > 0:
            # L_val + w_01 * L_01(alpha): one mean over both cell types' weights (FairDARTS), not
            # one per cell type (twice that)
            loss = loss + self.config.zero_one_weight * zero_one_loss(self.arch_params)
        return loss

    def arch_gradients(self, x_train, y_train, x_valid, y_valid):
        """The architecture gradient of this step, first or second order (module docstring)."""
        self.model.train()
        if self.config.order == 1:
            # grad_alpha L_val(w, alpha): the weights as they are
            loss = self._valid_objective(x_valid, y_valid)
            # data-parallel: the mean over the ranks (distributed; the identity in one process)
            *grads, loss = self.replicas.mean([*torch.autograd.grad(loss, self.arch_params),
                                               loss.detach()])
            return grads, loss
        # grad_alpha L_val(w', alpha) at the unrolled weights w', with xi = the weights' lr
        return self.unrolled_gradients(x_train, y_train, x_valid, y_valid, xi=self.lr)

    def unrolled_gradients(self, x_train, y_train, x_valid, y_valid, xi):
        """DARTS's second-order gradient, with the weights moved in place and then restored.

        Common random numbers: the three passes on the train batch (the gradient at ``w`` that
        unrolls the weights, and the finite differences at ``w+`` and ``w-``) see one draw of the
        noise and of the skip drop-path masks, ``n1``; the pass on the valid batch draws its own,
        ``n2``. The gradient is then the exact derivative of one sample of the unrolled objective,
        ``L_val(w - xi grad_w L_train(w, alpha; n1), alpha; n2)``: the Hessian term differentiates
        the very ``L_train`` that moved the weights. With a fresh draw in each finite-difference
        pass (DARTS's ``architect.py`` as it stands; it has no noise), ``g(w+) - g(w-)`` would hold
        the difference of two noise draws, O(lambda), divided by ``2 eps`` (0.01 / ||v||): an error
        larger than the Hessian term itself (``benchmarks/hvp_noise.py``). NoisyDARTS's reference
        code searches first order only; its copy of DARTS's second-order step would not run (its
        ``_loss`` lacks the ``epoch`` argument there), so there is no reference choice to follow.
        """
        c, W, A = self.config, self.weight_params, self.arch_params
        with torch.no_grad():
            backup = [w.detach().clone() for w in W]
        # Each graph is dropped as soon as its gradient is taken (``del``, ``detach``): one kept
        # alive still held ~0.55 GB of a 4.9 GB pass (16 ch, 8 cells, batch 32) through the next.
        # w' = w - xi (grad_w L_train(w, alpha; n1) + wd w + momentum buf): one SGD step, as DARTS
        with hold_draws(self.model) as train_draws:
            grads = torch.autograd.grad(F.cross_entropy(self.model(x_train), y_train), W)
        grads = self.replicas.mean(grads)  # data-parallel: the mean over the ranks
        with torch.no_grad():
            for w, g in zip(W, grads):
                buffer = self.w_optimizer.state.get(w, {}).get("momentum_buffer")
                step = g + c.w_weight_decay * w
                if buffer is not None:
                    step = step + c.w_momentum * buffer
                w.sub_(xi * step)
        del grads
        # d_alpha = grad_alpha L_val(w', alpha; n2),  d_w = grad_w' L_val(w', alpha; n2)
        valid_loss = self._valid_objective(x_valid, y_valid)  # outside the hold: fresh draws n2
        *grads, valid_loss = self.replicas.mean([*torch.autograd.grad(valid_loss, A + W),
                                                 valid_loss.detach()])
        d_alpha, d_w = grads[: len(A)], grads[len(A):]
        # hvp ~ grad^2_{alpha, w} L_train(w, alpha; n1) d_w, with n1 again at w+ and at w-
        with hold_draws(self.model, train_draws):
            hvp = self.hessian_vector_product(x_train, y_train, d_w, at=backup)
        # grad_alpha L_val(w', alpha) - xi hvp
        return [da - xi * h for da, h in zip(d_alpha, hvp)], valid_loss

    def hessian_vector_product(self, x, y, vector, at=None):
        r""":math:`\nabla^2_{\alpha, w} L_{train}(w, \alpha)\, v` by central differences (DARTS):

        .. math::  \big(\nabla_\alpha L(w + \epsilon v, \alpha)
                   - \nabla_\alpha L(w - \epsilon v, \alpha)\big) / 2\epsilon,
                   \qquad \epsilon = 0.01 / \lVert v \rVert

        ``at``: the weights ``w`` (tensors like ``weight_params``; default: the current ones). The
        weights are moved in place and left at ``w``. The two passes draw the noise as the model
        does: afresh, unless the call is inside ``noise.hold_draws`` (see ``unrolled_gradients``).
        """
        W, A = self.weight_params, self.arch_params
        with torch.no_grad():
            at = [w.detach().clone() for w in W] if at is None else at
        eps = 0.01 / torch.cat([v.reshape(-1) for v in vector]).norm().clamp_min(1e-12)

        def alpha_grad(sign):
            with torch.no_grad():
                for w, base, v in zip(W, at, vector):
                    w.copy_(base + sign * eps * v)
            return torch.autograd.grad(F.cross_entropy(self.model(x), y), A)

        # data-parallel: both passes' means over the ranks, in one all-reduce
        both = self.replicas.mean([*alpha_grad(+1), *alpha_grad(-1)])
        g_plus, g_minus = both[:len(A)], both[len(A):]
        with torch.no_grad():
            for w, base in zip(W, at):
                w.copy_(base)
        return [(p - m) / (2 * eps) for p, m in zip(g_plus, g_minus)]

    def arch_step(self, x_train, y_train, x_valid, y_valid):
        """One Adam step on ``alpha``; returns the validation loss it saw (noise on)."""
        grads, loss = self.arch_gradients(x_train, y_train, x_valid, y_valid)
        self._check_finite("architecture", float(loss))
        for a, g in zip(self.arch_params, grads):
            a.grad = g
        # g = grad_alpha + wd alpha;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        # alpha = alpha - alpha_lr m_hat / (sqrt(v_hat) + eps)   (Adam, bias-corrected m_hat, v_hat)
        with self._undone_if_alpha_overflows():
            self.a_optimizer.step()
        return float(loss)

    def weight_step(self, x, y):
        """One SGD step on the weights (``alpha`` fixed); returns (loss, correct predictions)."""
        self.model.train()
        # L_train(w, alpha) on a batch of the train half, fresh noise on the skip ops
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum()
        # g = grad_w L_train(w, alpha), scaled down to norm grad_clip if it is longer;
        # data-parallel: the means over the ranks of g, the loss and the count, before the clip
        *grads, loss, correct = self.replicas.mean([*torch.autograd.grad(loss, self.weight_params),
                                                    loss.detach(), correct.float()])
        self._check_finite("weight", float(loss))
        for w, g in zip(self.weight_params, grads):
            w.grad = g
        torch.nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip)
        # buf = momentum buf + g + wd w;  w = w - lr buf
        self.w_optimizer.step()
        return float(loss), round(float(correct) * self.replicas.world_size)

    # -- safety nets: a non-finite number stops the search, the parameters stay the last good ones
    def _check_finite(self, which, loss):
        """Stop before a non-finite loss reaches the parameters, so they stay the last good ones."""
        if not math.isfinite(loss):
            raise self._diverged(f"the {which} step's loss became {loss}")

    @contextlib.contextmanager
    def _undone_if_alpha_overflows(self):
        """Around an Adam step: Adam can overflow (a huge ``alpha_lr``) though the loss was
        finite; then ``alpha`` is put back, so that it stays usable, and the search stops."""
        before = [a.detach().clone() for a in self.arch_params]
        yield
        if not all(bool(torch.isfinite(a).all()) for a in self.arch_params):
            with torch.no_grad():
                for a, b in zip(self.arch_params, before):
                    a.copy_(b)
            raise self._diverged("the architecture parameters became non-finite")

    def _diverged(self, what, where=None):
        """The error for a non-finite value: what, where, and the settings that usually cause it."""
        c = self.config
        where = where or f"at step {self.step + 1} (epoch {self.epoch + 1})"
        return SearchDiverged(
            f"{what} {where}: lower the learning rates (w_lr={c.w_lr}, alpha_lr={c.alpha_lr}) "
            f"or the noise (noise_lambda={c.noise_lambda}, noise_mean={c.noise_mean})")

    # -- measurement ------------------------------------------------------------------------
    def evaluate(self, batches=None, recalibrate=True):
        """Loss and accuracy of the supernet in eval mode (no noise) on the architecture half.

        ``recalibrate=True``: with batch-norm statistics re-estimated without noise on the weight
        half (``network.recalibrate_batchnorm``, the images unaugmented, in order, no random draw);
        the search's own running statistics are put back afterwards, so measuring changes nothing
        and a resumed search stays bit-identical. ``False``: with the statistics the search
        gathered under noise (the "raw" figure, which at a large noise measures that mismatch).

        Data-parallel, each rank re-estimates on every ``R``-th batch and measures every ``R``-th
        image; the ranks then combine their parts, weighted by their size (``Replicas.mean``).
        """
        batches, parts = batches or self.valid_batches, self.replicas
        # an eval-mode pass leaves the statistics as they are: only a re-estimation needs them kept
        with kept_batchnorm_statistics(self.model) if recalibrate else contextlib.nullcontext():
            if recalibrate:
                starts = batch_starts(len(self.train_batches.images), self.config.batch_size)
                mine = parts.part(starts)
                recalibrate_batchnorm(self.model, self.train_batches.images,
                                      self.config.batch_size, mine)
                parts.mean_batchnorm_statistics(self.model, weight=len(mine) / len(starts))
            images, labels = parts.part(batches.images), parts.part(batches.labels)
            measured = evaluate_model(self.model, images, labels) if len(labels) else (0, 0)
            loss_and_accuracy = parts.mean_numbers(measured,
                                                   weight=len(labels) / len(batches.labels))
        self.model.train()
        return loss_and_accuracy

    def weights(self):
        """``{"normal": rows, "reduce": rows}`` of ``f(alpha)`` as plain lists."""
        return {k: _rounded(v.cpu()) for k, v in self.model.weights().items()}

    def alphas(self):
        """``{"normal": rows, "reduce": rows}`` of ``alpha`` as plain lists."""
        return {k: _rounded(v.detach().cpu()) for k, v in self.model.alphas().items()}

    def threshold(self):
        """FairDARTS's threshold on a kept op's weight (sigmoid); ``None``: DARTS's top-2 rule."""
        return self.config.fair_threshold if self.config.weighting == "sigmoid" else None

    def genotype(self):
        return derive.derive_genotype(self.weights(), self.op_names, self.threshold())

    def skip_share(self):
        return derive.skip_share(self.weights()["normal"], self.op_names)

    # -- the loop ---------------------------------------------------------------------------
    @staticmethod
    def _zero_sums():
        return {"loss": 0.0, "valid_loss": 0.0, "correct": 0, "seen": 0, "steps": 0}

    def train_one_step(self):
        """An architecture step and a weight step; records and returns the step's record."""
        # this rank's share of each batch (data-parallel; the whole batch in one process)
        x_train, y_train = self.replicas.shard(*self.train_batches.next())
        x_valid, y_valid = self.replicas.shard(*self.valid_batches.next())
        valid_loss = self.arch_step(x_train, y_train, x_valid, y_valid)
        loss, correct = self.weight_step(x_train, y_train)
        self.replicas.mean_batchnorm_statistics(self.model)  # every rank the same running stats
        self.step += 1
        self.step_in_epoch += 1
        s = self.sums
        s["loss"] += loss
        s["valid_loss"] += valid_loss
        s["correct"] += correct
        s["seen"] += len(y_train) * self.replicas.world_size
        s["steps"] += 1
        record = {"step": self.step,
                  "epoch": round(self.epoch + self.step_in_epoch / self.steps_per_epoch, 4),
                  "train_loss": round(loss, 6), "valid_loss": round(valid_loss, 6)}
        every = self.config.record_every
        if every and self.step % every == 0:
            record["weights"] = self.weights()
            self.history["steps"].append(record)
        return record

    def finish_epoch(self):
        """Close the epoch: measure, record, and move the schedules to the next epoch."""
        s = self.sums
        raw_loss, raw_accuracy = self.evaluate(recalibrate=False)
        valid_loss, valid_accuracy = self.evaluate()
        for loss in (raw_loss, valid_loss):
            if not math.isfinite(loss):  # e.g. batch-norm statistics overflowed: checkpoint none
                raise self._diverged(f"the validation loss (eval mode) became {loss}",
                                     f"at the end of epoch {self.epoch + 1} (step {self.step})")
        weights = self.weights()
        cell = derive.derive_cell(weights["normal"], self.op_names, self.threshold())
        noise = self.model.noise_modules()
        record = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": round(self.lr, 8),
            "noise_scale": round(noise[0].scale, 6) if noise else 0.0,
            "train_loss": round(s["loss"] / max(s["steps"], 1), 6),
            "train_accuracy": round(s["correct"] / max(s["seen"], 1), 6),
            "arch_loss": round(s["valid_loss"] / max(s["steps"], 1), 6),
            "valid_loss": round(valid_loss, 6),
            "valid_accuracy": round(valid_accuracy, 6),
            # the same with the batch-norm statistics of the search (gathered under noise): evaluate
            "valid_loss_raw": round(raw_loss, 6),
            "valid_accuracy_raw": round(raw_accuracy, 6),
            "skip_share": derive.skip_share(weights["normal"], self.op_names),
            "op_shares": derive.op_shares(weights["normal"], self.op_names),
            "genotype_skips": derive.genotype_skips(cell),
            "seconds": round(self.seconds, 3),
            "weights": weights,
        }
        self.history["epochs"].append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.sums = self._zero_sums()
        if self.epoch < self.config.epochs:
            self.enter_epoch()
        return record

    @property
    def done(self):
        return self.epoch >= self.config.epochs

    def loop(self, on_step=None, on_epoch=None, stop=None):
        """Step until ``config.epochs`` are done or ``stop`` (a ``threading.Event``) is set.

        ``on_step(record)`` after every step, ``on_epoch(record)`` after every epoch's close; the
        time in steps and closes (not in the callbacks) adds up in ``seconds``.
        """
        while not self.done and not (stop is not None and stop.is_set()):
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
                if on_epoch:
                    on_epoch(record)

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
                self.enter_epoch()

    # -- the run and its files: doors into ``runs`` ------------------------------------------
    def run(self, on_step=None, on_epoch=None, stop=None, out_dir=None, epochs=None):
        """Search until ``config.epochs`` (or ``epochs``), a stop, a Ctrl-C or a divergence.

        ``on_step(record)`` and ``on_epoch(record)`` get plain dicts; ``stop`` is a
        ``threading.Event`` checked after every step. With ``out_dir`` a checkpoint is written
        after every epoch and on any stop, and ``result.json`` at the end. Returns ``result()``.
        """
        return runs.run(self, on_step, on_epoch, stop, out_dir, epochs)

    def result(self):
        """Everything a reader needs, as plain data (what ``result.json`` holds)."""
        return runs.result(self)

    def state_dict(self):
        """Everything needed to continue exactly: tensors and plain data only (safe to load)."""
        return runs.state_dict(self)

    def load_state_dict(self, state):
        """Continue from a ``state_dict``; one of another configuration raises ``ConfigError``."""
        runs.load_state_dict(self, state)

    @classmethod
    def resume(cls, out_dir, data=None, device=None, replicas=None):
        """Rebuild a search from ``out_dir/checkpoint.pt``, ready to ``run`` on."""
        return runs.resume(cls, out_dir, data, device, replicas)


def run_search(config=None, data=None, **kwargs):
    """``Search(config, data).run(**kwargs)``: one whole search, its result as plain data."""
    return Search(config, data).run(**kwargs)
