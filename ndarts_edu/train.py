r"""Train a derived cell from scratch: the network DARTS builds once the search is over.

The search ends with a genotype (``derive``): for each intermediate node of a cell, two
``[op, input]`` pairs. DARTS then throws the supernet away, stacks that one discrete cell into a
new network and trains it from random weights. Its test accuracy is the number papers report, and
it is where a collapsed cell shows what it costs: a skip connection has no parameters, so a normal
cell of skips is a network that barely computes.

Here each node is the plain sum of its ops (no mixed op, no ``alpha``, no noise):

.. math::  x_i = \sum_{(o, j) \in \text{node } i} o(x_j)

and the cell outputs the concatenation of its ``*_concat`` nodes. Batch norms are affine again,
pools are bare (the search's batch norm after a pool belongs to its mixed op, as in DARTS), and
drop-path (DARTS's regulariser of the final network) is an option. Every cell compared is trained
with the same budget: the same ``TrainConfig``, only the genotype differs.

A genotype is plain data, as ``derive.derive_genotype`` returns it::

    {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [2, 3, 4, 5]}

with the pairs in node order, two per node. A cell with fewer (FairDARTS's threshold can drop an
op) needs the node spelled out: ``[op, input, node]``. Inputs and nodes are numbered as states of
the cell: 0 and 1 are the two cell inputs, 2 is the first intermediate node.
"""
import math
import random
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn

from . import derive, repro
from .config import TrainConfig, cosine_schedule
from .data import Batches, ImageData, load_dataset, pick_device
from .errors import ConfigError, read_json
from .mixed import drop_path
from .network import CELL_TYPES, cell_stack, evaluate
from .ops import NONE, OPS, ReLUConvBN, FactorizedReduce, make_op

TRAIN_FORMAT = "ndarts_edu.train/1"


# -- the genotype, checked -------------------------------------------------------------------------
def check_genotype(genotype):
    """Return the genotype with every cell as ``[op, input, node]`` triples; raise ``ConfigError``
    if it is not one.

    Accepts what ``derive`` writes (pairs, two per node) and cells with the node given.
    """
    if not isinstance(genotype, dict):
        raise ConfigError("a genotype must be a dict with 'normal' and 'reduce' cells, "
                          f"got {type(genotype).__name__}")
    missing = [kind for kind in CELL_TYPES if kind not in genotype]
    if missing:
        raise ConfigError(f"genotype has no {' or '.join(repr(m) for m in missing)} cell; "
                          f"it has keys {sorted(genotype)}")
    checked = {}
    for kind in CELL_TYPES:
        cell = _check_cell(kind, genotype[kind])
        last = max(node for _, _, node in cell)
        concat = genotype.get(f"{kind}_concat", list(range(2, last + 1)))
        if not isinstance(concat, (list, tuple)) or not concat or \
                any(not isinstance(n, int) or not 2 <= n <= last for n in concat):
            raise ConfigError(f"{kind}_concat must list node numbers from 2 to {last}, "
                              f"got {concat!r}")
        checked[kind], checked[f"{kind}_concat"] = cell, sorted(set(concat))
    return checked


def _check_cell(kind, cell):
    if not isinstance(cell, (list, tuple)) or not cell:
        raise ConfigError(f"the {kind} cell must be a non-empty list of [op, input] pairs, "
                          f"got {cell!r}")
    if any(not isinstance(e, (list, tuple)) or len(e) not in (2, 3) for e in cell):
        raise ConfigError(f"every entry of the {kind} cell must be [op, input] or "
                          f"[op, input, node], got {cell!r}")
    if len({len(e) for e in cell}) > 1:
        raise ConfigError(f"the {kind} cell mixes [op, input] pairs and [op, input, node] triples")
    if len(cell[0]) == 2:
        if len(cell) % 2:
            raise ConfigError(f"the {kind} cell has {len(cell)} [op, input] pairs; pairs come two "
                              "per node (give [op, input, node] triples for a cell with fewer)")
        cell = derive.with_nodes(cell)
    checked = []
    for k, (op, source, node) in enumerate(cell):
        if op not in OPS or op == NONE:
            allowed = ", ".join(name for name in OPS if name != NONE)
            raise ConfigError(f"unknown op {op!r} in the {kind} cell (entry {k}); "
                              f"allowed: {allowed}")
        if not isinstance(node, int) or isinstance(node, bool) or node < 2:
            raise ConfigError(f"node {node!r} of the {kind} cell (entry {k}) must be a whole "
                              "number >= 2")
        if not isinstance(source, int) or isinstance(source, bool) or not 0 <= source < node:
            raise ConfigError(f"input {source!r} of node {node} in the {kind} cell (entry {k}) "
                              f"must be a whole number from 0 to {node - 1} (an earlier node)")
        checked.append([op, source, node])
    return sorted(checked, key=lambda e: e[2])


def read_genotype_file(path):
    """``(genotype, search_config)`` from a JSON file: a search's ``result.json`` or a bare
    genotype.

    ``search_config`` is the search's settings (a dict) for a ``result.json``, ``None`` for a bare
    genotype.
    """
    data = read_json(path, "genotype file")
    search_config = None
    if isinstance(data, dict) and "genotype" in data:
        search_config = data.get("config") if isinstance(data.get("config"), dict) else None
        data = data["genotype"]
    try:
        return check_genotype(data), search_config
    except ConfigError as error:
        raise ConfigError(f"{path!r}: {error}") from None


def load_genotype(path):
    """The genotype in a JSON file (a search's ``result.json`` or a genotype itself)."""
    return read_genotype_file(path)[0]


def random_genotype(op_names, nodes=4, seed=0):
    """A random cell for reference: each node draws 2 distinct inputs and an op for each, uniformly.

    ``none`` is never drawn (a derived cell never has it). Both cells draw from the same generator.
    """
    ops = [name for name in op_names if name != NONE]
    if not ops:
        raise ConfigError(f"a random cell needs an op other than 'none', got {list(op_names)}")
    rng = random.Random(seed)
    genotype = {}
    for kind in CELL_TYPES:
        cell = []
        for node in range(nodes):
            for source in sorted(rng.sample(range(2 + node), 2)):
                cell.append([rng.choice(ops), source])
        genotype[kind], genotype[f"{kind}_concat"] = cell, list(range(2, 2 + nodes))
    return genotype


# -- the discrete network --------------------------------------------------------------------------
class Cell(nn.Module):
    """One discrete cell: each node sums its ops; the cell concatenates its ``concat`` nodes.

    A node left without inputs (FairDARTS's threshold can do that) is dropped, with every op that
    reads it, so that the channel count is known when the network is built.
    """

    def __init__(self, cell, concat, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        alive, edges = {0, 1}, []
        for node in sorted({node for _, _, node in cell}):
            inputs = [(op, source) for op, source, n in cell if n == node and source in alive]
            if inputs:
                alive.add(node)
                edges += [(op, source, node) for op, source in inputs]
        self.concat = [n for n in concat if n in alive]
        if not self.concat:
            raise ConfigError(f"no node of the cell {cell!r} computes anything (concat {concat!r})")
        self.edges = [(source, node) for _, source, node in edges]
        self.ops = nn.ModuleList(make_op(op, C, 2 if reduction and source < 2 else 1, affine=True)
                                 for op, source, _ in edges)
        self.multiplier = len(self.concat)

    def forward(self, s0, s1, drop_prob=0.0):
        # x_0, x_1: the two previous cells' outputs, brought to C channels
        states = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}
        for (source, node), op in zip(self.edges, self.ops):
            h = op(states[source])
            # Drop-path on every op but an identity skip (DARTS: dropping a skip would drop the
            # input).
            if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                h = drop_path(h, drop_prob)
            # x_i = sum_{(o, j) in node i} o(x_j)
            states[node] = states[node] + h if node in states else h
        # the cell's output: its concat nodes, stacked along the channels
        return torch.cat([states[n] for n in self.concat], dim=1)


class Network(nn.Module):
    """DARTS's final network: stem, ``layers`` copies of the derived cells (reduction at 1/3 and
    2/3), classifier."""

    def __init__(self, genotype, in_channels=3, num_classes=10, channels=16, layers=8,
                 stem_multiplier=3):
        super().__init__()
        genotype = check_genotype(genotype)

        def make_cell(C_prev_prev, C_prev, C, reduction, reduction_prev):
            kind = "reduce" if reduction else "normal"
            return Cell(genotype[kind], genotype[f"{kind}_concat"], C_prev_prev, C_prev, C,
                        reduction, reduction_prev)

        self.stem, self.cells, C_prev = cell_stack(in_channels, channels, layers, stem_multiplier,
                                                   make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.drop_prob = 0.0

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_prob)
        return self.classifier(self.global_pooling(s1).flatten(1))


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# -- training --------------------------------------------------------------------------------------
def train_genotype(genotype, config=None, data=None, on_epoch=None, stop=None, test_sets=None):
    """Build ``Network(genotype)`` and train it from scratch; return what happened as plain data.

    The result holds the genotype, the settings, the parameter count, one record per epoch and the
    final ``test_accuracy`` (on the test set, never used for training). ``on_epoch(record)`` gets
    each epoch's record; ``stop`` (a ``threading.Event``) ends the run after the current epoch.
    ``test_sets``: more test sets, ``{name: (images, labels)}`` (``data.distorted_test_set``),
    measured once the training ends, in ``result["test_accuracies"]`` (with ``"test"``).
    """
    genotype = check_genotype(genotype)
    config = (config or TrainConfig()).validate()
    threads = repro.set_threads(config.threads)
    repro.seed_everything(config.seed)
    device = pick_device(config.device)
    if data is None:
        data = load_dataset(config.dataset, config.data_dir, config.image_size, limit=config.limit,
                            download=True)
    elif not isinstance(data, ImageData):
        raise ConfigError(f"data must be an ndarts_edu.data.ImageData, got {type(data).__name__}")
    stop = stop or threading.Event()

    model = Network(genotype, in_channels=data.shape[0], num_classes=data.num_classes,
                    channels=config.channels, layers=config.layers,
                    stem_multiplier=config.stem_multiplier).to(device)
    optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    batches = Batches(data.train_images, data.train_labels, config.batch_size, device,
                      seed=config.seed, augment=config.augment)
    test_images, test_labels = data.test_images.to(device), data.test_labels.to(device)
    test_sets = {name: (x.to(device), y.to(device)) for name, (x, y) in (test_sets or {}).items()}
    history, seconds, status = [], 0.0, "finished"
    for epoch in range(config.epochs):
        if stop.is_set():
            status = "stopped"
            break
        started = time.perf_counter()
        lr = cosine_schedule(epoch, config.epochs, config.lr, config.lr_min)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # DARTS raises drop-path linearly over the epochs.
        model.drop_prob = config.drop_path * epoch / config.epochs
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for _ in range(len(batches)):
            x, y = batches.next()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not math.isfinite(float(loss.detach())):
                raise ConfigError(f"training diverged at epoch {epoch + 1} (loss {float(loss)}): "
                                  f"lower lr={config.lr}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        test_loss, test_accuracy = evaluate(model, test_images, test_labels)
        seconds += time.perf_counter() - started
        record = {"epoch": epoch + 1, "lr": round(lr, 8), "train_loss": round(loss_sum / seen, 6),
                  "train_accuracy": round(correct / seen, 6), "test_loss": round(test_loss, 6),
                  "test_accuracy": round(test_accuracy, 6), "seconds": round(seconds, 3)}
        history.append(record)
        if on_epoch:
            on_epoch(record)
    accuracies = {}
    if history:
        accuracies = {"test": history[-1]["test_accuracy"],
                      **{name: round(evaluate(model, x, y)[1], 6)
                         for name, (x, y) in test_sets.items()}}
    return {
        "format": TRAIN_FORMAT,
        "status": status,
        "genotype": genotype,
        "config": {**config.to_dict(), "device": str(device), "threads": threads},
        "data": data.name,
        "environment": repro.environment(device),
        "params": count_parameters(model),
        "epochs_done": len(history),
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "test_accuracies": accuracies,
        "seconds": round(seconds, 3),
        "history": history,
    }
