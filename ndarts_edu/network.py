"""The DARTS search cell and the supernet that stacks it.

A cell takes the outputs of the two previous cells, ``c_{k-2}`` and ``c_{k-1}`` (nodes 0 and 1),
and computes ``nodes`` intermediate nodes; node ``i`` sums one mixed op from every earlier node,
so the cell has ``2 + 3 + ... + (nodes + 1)`` edges (14 for 4 nodes), numbered node by node:
node 0's 2 incoming edges, then node 1's 3, and so on. The cell's output concatenates the
intermediate nodes.

The supernet is a stem, ``layers`` cells (reduction cells at 1/3 and 2/3 of the depth double the
channels and halve the resolution) and a linear classifier. All normal cells share one
``alpha_normal`` (edges x ops), all reduction cells ``alpha_reduce``: these are the architecture
parameters, kept apart from the weights so that the bilevel search can give them their own
optimizer.
"""
import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, check_choice, check_number
from .fused import FusedCell
from .mixed import WEIGHTINGS, MixedOp, edge_weights
from .noise import HeldDraws, NoisySkip
from .ops import FactorizedReduce, ReLUConvBN, space_ops

CELL_TYPES = ("normal", "reduce")


def check_channels(channels):
    """``channels`` if it is a whole number >= 2 and even, else ``ConfigError``."""
    check_number("channels", channels, minimum=2, integer=True)
    if channels % 2:
        raise ConfigError(f"channels must be even (the factorized reduce splits them in two), "
                          f"got {channels}")
    return channels


def edges_per_cell(nodes):
    """Number of edges of a cell with ``nodes`` intermediate nodes: 2 + 3 + ... + (nodes + 1)."""
    return sum(2 + i for i in range(nodes))


def edge_inputs(nodes):
    """For each edge in order, ``(node, input)``: the intermediate node it feeds and the state it
    reads (0, 1 = cell inputs)."""
    return [(i, j) for i in range(nodes) for j in range(2 + i)]


def reduction_layers(layers):
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth, as in DARTS (none below 3
    cells)."""
    return sorted({layers // 3, 2 * layers // 3}) if layers >= 3 else []


def cell_stack(in_channels, channels, layers, stem_multiplier, make_cell):
    """DARTS's macro structure, shared by the supernet and the derived network (``train.Network``).

    A stem of ``stem_multiplier * channels`` channels, then ``layers`` cells, each reading the two
    previous outputs; a reduction cell doubles ``C``. ``make_cell(C_prev_prev, C_prev, C, reduction,
    reduction_prev)`` builds one cell, whose ``multiplier`` (nodes concatenated) sets its output
    channels. Returns ``(stem, cells, out_channels)``.
    """
    C_curr = stem_multiplier * channels
    stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                         nn.BatchNorm2d(C_curr))
    C_prev_prev, C_prev, C_curr = C_curr, C_curr, channels
    reductions = reduction_layers(layers)
    cells = nn.ModuleList()
    reduction_prev = False
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            C_curr *= 2
        cell = make_cell(C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
    return stem, cells, C_prev


class SearchCell(nn.Module):
    """One cell of the supernet: every earlier node feeds every later one through a ``MixedOp``."""

    def __init__(self, nodes, C_prev_prev, C_prev, C, reduction, reduction_prev, op_names,
                 **mixed_kwargs):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.multiplier = nodes  # the output concatenates every intermediate node
        # Bring both inputs to C channels and the same resolution.
        self.preprocess0 = (
            FactorizedReduce(C_prev_prev, C, affine=False)
            if reduction_prev
            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        )
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1, op_names, **mixed_kwargs)
            for _, j in edge_inputs(nodes)
        )

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            node = sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class SuperNet(nn.Module):
    """The DARTS supernet: stem, ``layers`` search cells, global pooling, classifier.

    Args:
        in_channels: channels of the input images (any number: 1 for digits, 3 for CIFAR-10).
        num_classes: classes of the task.
        channels: ``C``, the channels of the first cells (16 in DARTS's search).
        layers: number of cells (8 in DARTS's search).
        nodes: intermediate nodes per cell (4 in DARTS).
        space: a space name from ``ops.SPACES`` or a list of op names.
        weighting: ``"softmax"`` (DARTS, NoisyDARTS) or ``"sigmoid"`` (FairDARTS).
        stem_multiplier: the stem outputs ``stem_multiplier * channels`` channels (3 in DARTS).
        noise_on, skip_drop_path: passed to every ``MixedOp``.
        fused: compute the cells with ``fused.FusedCell`` (the same modules and results, faster);
            ``False`` runs each cell's own ``forward``, the readable path. Can be switched at any
            time.
    """

    def __init__(self, in_channels=3, num_classes=10, channels=16, layers=8, nodes=4, space="darts",
                 weighting="softmax", stem_multiplier=3, noise_on="skip", skip_drop_path=0.0,
                 fused=True):
        super().__init__()
        for name, value in [("in_channels", in_channels), ("layers", layers), ("nodes", nodes),
                            ("stem_multiplier", stem_multiplier)]:
            check_number(name, value, minimum=1, integer=True)
        check_channels(channels)
        check_number("num_classes", num_classes, minimum=2, integer=True)
        check_number("skip_drop_path", skip_drop_path, minimum=0.0, maximum=0.99)
        self.op_names = space_ops(space)
        self.weighting = check_choice("weighting", weighting, WEIGHTINGS)
        self.nodes = nodes
        self.channels_last = False  # use_channels_last() turns it on

        def make_cell(C_prev_prev, C_prev, C, reduction, reduction_prev):
            return SearchCell(nodes, C_prev_prev, C_prev, C, reduction, reduction_prev,
                              self.op_names, noise_on=noise_on, skip_drop_path=skip_drop_path)

        self.stem, self.cells, C_prev = cell_stack(in_channels, channels, layers, stem_multiplier,
                                                   make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.fused = bool(fused)
        # A plain list, not a ModuleList: the fast path owns no parameters, it reads the cells' own.
        self.fast_cells = [FusedCell(cell, edge_inputs(nodes)) for cell in self.cells]

        shape = (edges_per_cell(nodes), len(self.op_names))
        # DARTS initialises alpha near zero (1e-3 * N(0, 1)); FairDARTS at exactly zero.
        init = 0.0 if weighting == "sigmoid" else 1e-3
        self.alpha_normal = nn.Parameter(init * torch.randn(shape))
        self.alpha_reduce = nn.Parameter(init * torch.randn(shape))

    def use_channels_last(self, enabled=True):
        """Store activations channels-last: the small depthwise convolutions run about 1.5x faster
        on CPU that way (``benchmarks/bench_search.py``); results change in the last bits only."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    # -- parameters -----------------------------------------------------------------------
    def arch_parameters(self):
        """The architecture parameters ``alpha`` (normal, reduce)."""
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self):
        """Every parameter except ``alpha``: what the weight step trains."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alphas(self):
        """``{"normal": alpha_normal, "reduce": alpha_reduce}`` as tensors."""
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce}

    def weights(self):
        """``{"normal": f(alpha_normal), "reduce": f(alpha_reduce)}``, detached."""
        with torch.no_grad():
            return {kind: edge_weights(a, self.weighting) for kind, a in self.alphas().items()}

    # -- noise ----------------------------------------------------------------------------
    def noise_modules(self):
        return [m for m in self.modules() if isinstance(m, NoisySkip)]

    def set_noise(self, noise_lambda=None, kind=None, mean=None, scale=None):
        """Set the noise of every edge (``None`` leaves a setting as it is)."""
        for module in self.noise_modules():
            module.configure(noise_lambda, kind, mean)
            if scale is not None:
                module.scale = float(scale)

    # -- forward --------------------------------------------------------------------------
    def forward(self, x):
        weights = {kind: edge_weights(a, self.weighting) for kind, a in self.alphas().items()}
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        s0 = s1 = self.stem(x)
        for cell, fast in zip(self.cells, self.fast_cells):
            run = fast if self.fused and fast.usable() else cell
            s0, s1 = s1, run(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))


@torch.no_grad()
def evaluate(model, images, labels, batch_size=256):
    """Loss and accuracy of ``model`` in eval mode (no noise, no drop-path), in batches.

    The supernet's validation accuracy (``Search.evaluate``) and a derived network's test accuracy
    (``train.train_genotype``) both come from here; ``model`` is left in eval mode.
    """
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss / len(labels), correct / len(labels)


# -- batch-norm statistics for a noise-free evaluation ------------------------------------------
def batchnorm_layers(model):
    """The batch norms of ``model`` that keep running statistics (eval mode normalises by them)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def batch_starts(n, batch_size):
    """Where each batch of ``batch_size`` of ``n`` images starts, a last partial batch left out
    when there is a full one (as the search's batches do)."""
    return list(range(0, n - n % batch_size if n >= batch_size else n, batch_size))


@torch.no_grad()
def recalibrate_batchnorm(model, images, batch_size, starts=None):
    r"""Re-estimate every batch norm's running statistics without noise, for an eval without noise.

    A search gathers the running statistics in training mode, with the skip noise on: there the
    skip branch carries :math:`x + n`, of variance :math:`(1 + \lambda^2)\,\mathrm{Var}(x)` and
    mean shifted by :math:`\mu`, and every layer after it sees that. Eval mode turns the noise off
    but normalises with those statistics, so the supernet it measures is not the one it trained
    (at lambda 1.5, or mu = 1, its accuracy can drop to chance). So, before measuring:

    - reset the statistics and average over batches with equal weights (``momentum=None``);
    - forward ``images`` in their order, ``batch_size`` at a time (a last, partial batch is left out
      when there is a full one, as the search's batches do), in training mode, so each batch norm
      normalises with its batch statistics as in the search, but with the noise and the skip
      drop-path off (the ``HeldDraws`` modules in eval mode), and without a gradient.

    No random number is drawn, nothing but the running statistics changes, and the model is left in
    the mode it was in. ``images``: a tensor on the model's device, without augmentation.
    ``starts``: the batches to take (default: all, ``batch_starts``; one rank of a data-parallel
    search takes its part of them).
    """
    layers = batchnorm_layers(model)
    momenta = [m.momentum for m in layers]
    was_training = model.training
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
        model.train()
        for m in model.modules():
            if isinstance(m, HeldDraws):  # NoisySkip, DropPath: the identity in eval mode
                m.eval()
        for start in batch_starts(len(images), batch_size) if starts is None else starts:
            model(images[start:start + batch_size])
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return model


@contextlib.contextmanager
def kept_batchnorm_statistics(model):
    """Inside, the batch norms' running statistics may change (``recalibrate_batchnorm``); on exit
    they are as they were, bit for bit, so that measuring leaves a search exactly where it was."""
    layers = batchnorm_layers(model)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in layers]
    try:
        yield model
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(layers, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
