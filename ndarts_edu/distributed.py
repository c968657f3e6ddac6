r"""One search across several devices: data-parallel, started by ``torchrun``.

``torchrun --nproc-per-node N -m ndarts_edu search ...`` starts N processes (ranks) of one search.
Every rank holds the whole supernet, ``alpha`` and both optimizers, draws the same global batches
(``data.Batches`` has its own generator, seeded alike on every rank) and computes on its share of
each: rank ``r`` of ``R`` takes images ``r B/R .. (r+1) B/R - 1`` of a batch of ``B``. Each
gradient is then averaged over the ranks before it is used,

.. math::  g = \frac1R \sum_{r} \nabla \frac{R}{B} \sum_{i \in \text{share}_r} \ell_i
             = \nabla \frac1B \sum_{i=1}^{B} \ell_i ,

the gradient of the whole batch's mean loss (equal shares), so every rank applies the same update
to the same numbers and all of them hold the same weights and the same ``alpha`` after every step,
bit for bit. That is: the first order's ``grad_alpha L_val``; in the second order the gradient that
unrolls the weights (``w' = w - xi grad_w L_train``), the valid pass's ``grad_alpha, grad_w'``
(whose mean sets the finite difference's ``eps``) and both finite-difference passes at ``w+`` and
``w-``; and the weight step's ``grad_w`` (clipped after the mean: the norm of the whole batch's).
The losses and the count of correct predictions are averaged with them, so the records and the
divergence checks agree on every rank.

**Why not DistributedDataParallel.** DDP averages gradients in hooks that run while
``loss.backward()`` fills ``.grad``; it does not work with ``torch.autograd.grad`` (its
documentation says so), and the search takes every gradient with ``torch.autograd.grad``: the
architecture gradient is taken for ``alpha`` alone, the second order takes four of them in one step
and moves the weights in place between them. So the averaging is written out here: one flat
all-reduce per gradient taken (``Replicas.mean``).

**Batch norm: per rank.** In training mode each rank normalises by the statistics of its own share
(``B/R`` images), as DDP does by default: the search with ``R`` ranks is the single-process search
with each batch normalised in ``R`` "ghost batches" of ``B/R`` (noisier statistics for small
shares), so its numbers depend on ``R``. Synchronised statistics (``torch.nn.SyncBatchNorm``) would
make it the single-process search itself, but torch's SyncBatchNorm refuses CPU tensors (gloo), so
the CPU path could not be the same code, and it adds two collectives per batch norm per pass (the
``darts`` supernet has hundreds). The running statistics (what eval mode and the "raw" accuracy
use) are averaged over the ranks after every step: the running average is linear in the batch
statistics, so this is the running average of the ranks' mean statistics, and every rank, and so
every checkpoint, holds the same.

**Noise: per rank.** Each rank draws its own skip noise (and drop-path masks): its generators are
seeded from ``(seed, rank)`` once the model is built (the model itself from ``seed`` alone, alike
on every rank). With one shared stream the ranks' shares would get the same noise tensor, a
correlation no single-process search has. ``std(x)`` in ``n ~ N(0, (lambda std(x))^2)`` is taken
over the rank's own share (``noise.NoisySkip`` stays unaware of ranks, and the forward has no
collective): an estimate of the same scale from ``B/R`` images instead of ``B``.

**The close of an epoch is shared too.** Each rank re-estimates the batch-norm statistics without
noise on every ``R``-th batch of the weight half and measures every ``R``-th image of the valid
half; the parts are combined weighted by their size (``Replicas.mean(weight=)``), so the figures
are one process's up to rounding and each rank does ``1/R`` of the measuring.

Rank 0 alone writes ``result.json`` and checkpoints (``runs``); a checkpoint keeps every rank's
generator states, so a resume with as many ranks continues exactly. A resume with another number
of ranks (1 included) continues with the same weights, ``alpha``, optimizers, batch order and
history, and fresh per-rank noise streams seeded from ``(seed, rank, step)``; it is not
bit-identical to an uninterrupted run (the ghost batches change), and ``result.json`` records it in
``world_sizes``. A stop (Ctrl-C) is agreed on by all ranks after each step, so all of them stop
after the same one.

Backends: gloo on the CPU, NCCL on CUDA (rank ``r`` on ``cuda:LOCAL_RANK``); the same code.
"""
import functools
import os

import numpy as np
import torch
import torch.distributed as dist

from . import repro
from .errors import ConfigError, one_line
from .network import batchnorm_layers

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets for each process


class OneProcess:
    """A search in one process: every hook of ``Replicas`` is the identity here."""

    rank, world_size = 0, 1
    writes = True  # this process writes result.json and checkpoints
    backend = None

    def check(self, config):
        pass

    def bind(self, device):
        return device

    def seed_draws(self, seed, step=None):
        pass

    def shard(self, x, y):
        return x, y

    def part(self, items):
        return items

    def mean(self, tensors, weight=None):
        return list(tensors)

    def mean_numbers(self, numbers, weight=None):
        return tuple(numbers)

    def mean_batchnorm_statistics(self, model, weight=None):
        pass

    def agreed(self, stop):
        return stop

    def rng_states(self):
        return None

    def restore_rng(self, states, seed, step):
        pass

    def leave(self):
        pass

    def __repr__(self):
        return "OneProcess()"


ONE_PROCESS = OneProcess()


class Replicas(OneProcess):
    """The ranks of one data-parallel search (module docstring): rank ``rank`` of ``world_size``.

    ``bind`` joins the process group; every other hook is then a collective that all ranks call
    at the same point of the search.
    """

    def __init__(self, rank, world_size, local_rank=None):
        self.rank, self.world_size = int(rank), int(world_size)
        self.local_rank = self.rank if local_rank is None else int(local_rank)
        self.writes = self.rank == 0
        self.device = None

    # -- entering ------------------------------------------------------------------------------
    def check(self, config):
        """The rule data parallelism adds to a search's settings: equal shares of every batch."""
        if config.batch_size % self.world_size:
            raise ConfigError(f"batch_size {config.batch_size} does not split evenly over "
                              f"{self.world_size} ranks: each takes an equal share of every batch "
                              f"(give a multiple of {self.world_size})")

    def bind(self, device):
        """This rank's device (``cuda`` becomes ``cuda:LOCAL_RANK``), with the process group
        joined on the backend for it: NCCL on CUDA, gloo on the CPU."""
        if device.type == "cuda":
            if device.index is not None and device.index != self.local_rank:
                raise ConfigError(f"device {str(device)!r}: under torchrun each rank takes the GPU "
                                  "of its LOCAL_RANK; give --device cuda (or auto)")
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ConfigError(f"rank {self.rank} has LOCAL_RANK {self.local_rank}, but this "
                                  f"machine has {count} GPU(s): start at most {count} processes "
                                  "on it (--nproc-per-node)")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"
        elif device.type == "cpu":
            backend = "gloo"
        else:
            raise ConfigError(f"device {str(device)!r}: a search across ranks runs on cpu (gloo) "
                              "or cuda (NCCL)")
        if not dist.is_initialized():  # the address and port come from torchrun (env://)
            try:
                dist.init_process_group(backend, rank=self.rank, world_size=self.world_size,
                                        device_id=device if backend == "nccl" else None)
            except (RuntimeError, ValueError) as error:  # no rendezvous: not a settings problem
                raise ConnectionError(f"rank {self.rank} of {self.world_size} could not join the "
                                      f"others ({backend}): {one_line(error)}") from None
        if dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
            raise ConfigError(f"the process group has rank {dist.get_rank()} of "
                              f"{dist.get_world_size()}, not {self.rank} of {self.world_size}")
        self.device, self.backend = device, dist.get_backend()
        return device

    def seed_draws(self, seed, step=None):
        """Seed this rank's own generators (noise, drop-path) from ``(seed, rank[, step])``."""
        entropy = [int(seed), self.rank] + ([] if step is None else [int(step)])
        repro.seed_everything(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    # -- every step ----------------------------------------------------------------------------
    def shard(self, x, y):
        """This rank's share of a global batch: rows ``rank B/R`` to ``(rank + 1) B/R - 1``."""
        share = len(y) // self.world_size
        if share * self.world_size != len(y):
            raise ConfigError(f"a batch of {len(y)} images does not split evenly over "
                              f"{self.world_size} ranks")
        part = slice(self.rank * share, (self.rank + 1) * share)
        return x[part], y[part]

    def part(self, items):
        """This rank's part of a sequence (batches, images) measured by parts: every ``R``-th."""
        return items[self.rank::self.world_size]

    def mean(self, tensors, weight=None):
        """The mean over the ranks of each tensor, in one all-reduce of one flat buffer.

        ``weight``: this rank's part of the whole (the parts add up to 1): the weighted mean
        ``sum_r weight_r t_r`` of parts of unequal size. Every rank gets the same bits: the
        all-reduce hands each the same sum."""
        tensors = list(tensors)
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
        flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
        if weight is not None:
            flat *= weight
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        if weight is None:
            flat /= self.world_size
        out, start = [], 0
        for t in tensors:
            out.append(flat[start:start + t.numel()].view(t.shape).to(t.dtype))
            start += t.numel()
        return out

    def mean_numbers(self, numbers, weight=None):
        """``mean`` of plain numbers (a loss and an accuracy), as floats."""
        values = torch.tensor([float(v) for v in numbers], dtype=torch.float64, device=self.device)
        return tuple(self.mean([values], weight)[0].tolist())

    def mean_batchnorm_statistics(self, model, weight=None):
        """Average the batch norms' running statistics over the ranks (module docstring)."""
        buffers = [b for m in batchnorm_layers(model) for b in (m.running_mean, m.running_var)]
        if buffers:
            with torch.no_grad():
                for buffer, mean in zip(buffers, self.mean(buffers, weight)):
                    buffer.copy_(mean)

    def agreed(self, stop):
        """``stop`` as all ranks see it: set as soon as it is set on any rank."""
        return _AgreedStop(stop, self.device)

    # -- checkpoints ---------------------------------------------------------------------------
    def rng_states(self):
        """Every rank's generator states, in rank order (a collective: all ranks call it)."""
        states = [None] * self.world_size
        dist.all_gather_object(states, repro.rng_state())
        return states

    def restore_rng(self, states, seed, step):
        """This rank's generators from a checkpoint: its own states when the checkpoint has one
        per rank of this many; fresh ones from ``(seed, rank, step)`` otherwise."""
        if states is not None and len(states) == self.world_size:
            repro.set_rng_state(states[self.rank])
        else:
            self.seed_draws(seed, step)

    def leave(self):
        if dist.is_initialized():
            dist.destroy_process_group()

    def __repr__(self):
        return f"Replicas(rank={self.rank}, world_size={self.world_size})"


class _AgreedStop:
    """A ``threading.Event`` read by all ranks together: ``is_set`` is a collective (max)."""

    def __init__(self, event, device):
        self.event, self.device = event, device

    def set(self):
        self.event.set()

    def is_set(self):
        flag = torch.tensor([float(self.event.is_set())], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def from_environment(environ=None):
    """The ranks that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``), or ``None`` in a process that is not one of several."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world_size = int(environ.get("RANK", 0)), int(environ["WORLD_SIZE"])
        local_rank = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        values = ", ".join(f"{k}={environ.get(k)!r}" for k in ENVIRONMENT)
        raise ConfigError(f"torchrun's environment must hold whole numbers, got {values}") from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ConfigError(f"RANK {rank} of WORLD_SIZE {world_size} (LOCAL_RANK {local_rank}) is "
                          "not a rank of that world")
    return Replicas(rank, world_size, local_rank) if world_size > 1 else None
