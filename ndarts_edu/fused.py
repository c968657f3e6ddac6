r"""The fast path of a search cell: what ``SearchCell`` and ``MixedOp`` compute, state by state.

``SearchCell.forward`` reads edge by edge: node ``i`` sums ``MixedOp_(i,j)(state_j)`` over the
earlier states ``j``, and each ``MixedOp`` runs its ops one by one. That is the code to read. It
also recomputes what it already has: every state feeds several edges (in a 4-node cell the two
inputs feed 4 edges each, node 0 feeds 3, node 1 two, node 2 one), and on each of them the same
ops run on the same input, op by op, in calls too small to keep a CPU busy. ``FusedCell``
computes the same cell from the same modules, one *state* at a time: all the edges that leave a
state are computed together, and each node adds up its edges in the readable path's order.

The tricks, and why each is exact:

- **One ReLU per state.** Every convolution op of every edge (and the factorized reduce) starts
  with ``ReLU`` of the same input: computed once.
- **Shared skip and pools.** skip is the input itself on every edge. A pool has no parameters, so
  it is computed once; in training mode the affine-free BatchNorm after it normalises with the
  batch's own statistics, so its output too is the same for every edge: computed once, with the
  first edge's module. The other edges' running statistics still get their own update
  (``torch.batch_norm_update_stats``, the very update ``F.batch_norm`` makes, on the same input),
  and their ``num_batches_tracked`` counts up. In eval mode each edge normalises with its own
  running statistics (one BatchNorm per edge on the shared pooled input).
- **Stacked convolutions.** The convolutions of the edges leaving one state differ only in their
  weights. Their weights are read from the edges' own modules and concatenated on every forward
  (small tensors; autograd splits the gradient back onto each module's parameter), so one
  depthwise convolution with ``groups = edges * C`` runs them all on the input repeated along
  the channels, one grouped 1x1 convolution (``groups = edges``) does the pointwise ones, one
  BatchNorm the normalisations (BatchNorm is per channel, so each edge's channels get their
  own statistics; the running statistics are gathered from the edges' modules and written back).
  The same for the two 1x1 convolutions of the factorized reduce.
- **Dilated convolutions without dilation.** A 2-dilated "same" convolution at stride 1 sees only
  pixels of its own parity: it is an ordinary convolution on each of the four sub-grids
  ``x[:, :, a::2, b::2]`` (padding halved). The four are stacked along the batch, and the whole
  ``dil_conv`` (depthwise, 1x1, BatchNorm: the BatchNorm sees the same pixels, only reordered) runs
  there before the result is put back on the grid. At stride 2 it reads the even sub-grid only,
  for any size. This is worth it because the weight gradient of a dilated depthwise convolution is
  slow in the CPU's convolution library (3 to 5 times its undilated one); odd sizes at stride 1
  keep the dilated call.

``none`` is never computed (as in ``MixedOp``). Noise and drop-path come from each edge's own
``NoisySkip`` and ``DropPath`` modules, called as in ``MixedOp``: once per edge and noisy op, the
noise with the op's ``slot``. Each edge and op draws its own; the draws come in another order
than the readable path's (state by state, not edge by edge), so fresh draws differ between the
paths, but the draws that ``noise.hold_draws`` holds (keyed by module and slot) serve both: held in
one path, replayed in the other, they give the same numbers. The batch norms are the edges' own,
their running statistics written back after each stacked call, with the momentum each module has
at the time (``momentum=None``, the cumulative average of ``network.recalibrate_batchnorm``,
included). The sums run in the readable path's order, so the outputs differ from it only where a
stacked library call rounds differently (``tests/test_fused.py``: float64 agreement to ~1e-12,
float32 to ~1e-5).

A cell is computed this way only if it is built of the DARTS ops of ``ops`` (``plan`` checks)
and no hook is registered on its modules (hooks see the readable path's calls; the fast path makes
other calls): otherwise ``SuperNet`` calls the cell itself.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

from .noise import HeldDraws
from .ops import SKIP, DilConv, FactorizedReduce, SepConv

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class NotFusable(Exception):
    """The cell has something the fast path does not know: the cell runs its own forward."""


def _kind(op):
    """What an op is, for the fast path: ``identity``, ``reduce``, ``pool``, ``sep`` or ``dil``."""
    if isinstance(op, nn.Identity):
        return "identity"
    if isinstance(op, FactorizedReduce):
        _check_relu(op.relu)
        return "reduce"
    if isinstance(op, SepConv):
        _check_relu(op[0][0]), _check_relu(op[1][0])
        return "sep"
    if isinstance(op, DilConv):
        _check_relu(op[0])
        return "dil"
    if (isinstance(op, nn.Sequential) and len(op) == 2
            and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d))
            and isinstance(op[1], nn.BatchNorm2d)):
        return "pool"
    raise NotFusable(f"unknown op {type(op).__name__}")


def _relu_places(cell):
    """``(parent, key)`` of every ReLU of the cell's edges that the fast path computes itself."""
    for edge in cell.edges:
        for op in edge.ops:
            if isinstance(op, FactorizedReduce):
                yield op, "relu"
            elif isinstance(op, SepConv):
                yield op[0], 0
                yield op[1], 0
            elif isinstance(op, DilConv):
                yield op, 0


def _child(parent, key):
    return parent[key] if isinstance(key, int) else getattr(parent, key)


def _check_relu(module):
    """The fast path computes the ReLUs itself (one per state): they must be ReLUs."""
    if type(module) is not nn.ReLU:
        raise NotFusable(f"an activation is a {type(module).__name__}, not a ReLU")


def _check_bns(bns):
    """Affine-free batch norms with running statistics and one ``eps`` (the momentum is read at
    each call: ``network.recalibrate_batchnorm`` sets it to ``None`` for a while)."""
    first = bns[0]
    for bn in bns:
        if bn.affine or not bn.track_running_stats or bn.eps != first.eps:
            raise NotFusable("batch norms with other settings than the search's")


def _update_factors(bns):
    """Each batch norm's factor for its running statistics in this training forward, as
    ``nn.BatchNorm2d`` takes it: its ``momentum``, or with ``momentum=None`` (a cumulative average)
    ``1 / n`` for its ``n``-th batch, ``n`` counted by ``num_batches_tracked``."""
    return [bn.momentum if bn.momentum is not None else 1.0 / (int(bn.num_batches_tracked) + 1)
            for bn in bns]


def _same_conv(convs):
    """The settings shared by a group of convolutions (they may differ only in their weights)."""
    keys = [(c.kernel_size, c.stride, c.padding, c.dilation, c.groups, c.in_channels,
             c.out_channels, c.bias is None, c.padding_mode) for c in convs]
    if len(set(keys)) != 1 or convs[0].bias is not None or convs[0].padding_mode != "zeros":
        raise NotFusable("edges of one state with different convolutions")
    return convs[0]


class FusedCell:
    """Computes ``cell(s0, s1, weights)`` of a ``SearchCell`` the fast way, from the cell's own
    modules.

    ``reads``: for each edge, the node it feeds and the state it reads (``network.edge_inputs``).
    Holds references to the cell's modules only (no tensors): the parameters, buffers and
    devices are always the cell's own. ``usable`` says whether it may run now.
    """

    def __init__(self, cell, reads):
        self.cell, self.reads = cell, reads
        self._replan()

    def _replan(self):
        try:
            self.states, self.error = self._plan(self.cell, self.reads), None
        except NotFusable as why:
            self.states, self.error = None, str(why)
        # the hook dictionaries of every module whose forward the fast path skips (it calls the
        # noise and drop-path modules): a hook registered later lands in one of them
        self._hooks = [getattr(m, name) for m in self.cell.modules() if not isinstance(m, HeldDraws)
                       for name in _HOOKS]
        # where the ReLUs are that the fast path computes itself: (parent, index or name)
        self._relus = [(parent, key) for parent, key in _relu_places(self.cell)]

    @staticmethod
    def _plan(cell, reads):
        """For each state: the edges that read it (edge index, node) and, per op, its modules.

        ``reads`` is ``network.edge_inputs(cell.nodes)``: the (node, state) of each edge.
        """
        edges = list(cell.edges)
        first = edges[0]
        for edge in edges:
            if edge.op_names != first.op_names or edge.computed != first.computed \
                    or edge.noise_on != first.noise_on:
                raise NotFusable("edges with different ops")
        states = []
        for j in range(cell.nodes + 1):  # the last node feeds no edge
            leaving = [(e, i) for e, (i, source) in enumerate(reads) if source == j]
            mods = [edges[e] for e, _ in leaving]
            ops = []
            for p in range(len(first.computed)):
                group = [m.ops[p] for m in mods]
                kind = _kind(group[0])
                if any(_kind(op) != kind for op in group):
                    raise NotFusable("edges of one state with different ops")
                if kind == "pool":
                    pools = [op[0] for op in group]
                    if len({(type(q), q.kernel_size, q.stride, q.padding,
                             getattr(q, "count_include_pad", None), getattr(q, "ceil_mode", None),
                             getattr(q, "dilation", 1)) for q in pools}) != 1:
                        raise NotFusable("edges of one state with different pools")
                    _check_bns([op[1] for op in group])
                elif kind == "reduce":
                    _same_conv([op.conv_1 for op in group]), _same_conv([op.conv_2 for op in group])
                    _check_bns([op.bn for op in group])
                elif kind in ("sep", "dil"):
                    for stage in (group if kind == "dil" else [op[0] for op in group],
                                  [] if kind == "dil" else [op[1] for op in group]):
                        if stage:
                            _same_conv([s[1] for s in stage]), _same_conv([s[2] for s in stage])
                            _check_bns([s[3] for s in stage])
                ops.append((kind, group))
            # "rows": the edges' indices as a tensor, one per device (made on first use)
            states.append({"edges": leaving, "mixed": mods, "ops": ops, "rows": {}})
        return states

    def usable(self):
        """Planned, and no hook anywhere in the cell (hooks expect the readable path's calls).

        An activation swapped in since the plan (``setattr`` on its parent) is seen here: the
        cell is planned again and, not being made of ReLUs any more, runs its own forward.
        """
        if self.states is not None and any(type(_child(p, k)) is not nn.ReLU
                                           for p, k in self._relus):
            self._replan()
        if (self.states is None or _module._global_forward_hooks
                or _module._global_forward_pre_hooks):
            return False
        return not any(self._hooks)

    def __call__(self, s0, s1, weights):
        cell = self.cell
        states = [cell.preprocess0(s0), cell.preprocess1(s1)]
        nodes = [None] * cell.nodes
        for j, plan in enumerate(self.states):
            rows = plan["rows"].get(weights.device)
            if rows is None:
                rows = plan["rows"][weights.device] = torch.tensor([e for e, _ in plan["edges"]],
                                                                   device=weights.device)
            mixed = self._mixed_outputs(states[j], plan, weights.index_select(0, rows))
            # node = sum over its edges, in SearchCell's order (the states in order)
            for (_, i), out in zip(plan["edges"], mixed.chunk(len(plan["edges"]), dim=1)):
                nodes[i] = out if nodes[i] is None else nodes[i] + out
            if j >= 1:  # node j - 1 has all its edges now: it becomes state j + 1
                states.append(nodes[j - 1])
        return torch.cat(states[2:], dim=1)

    def _mixed_outputs(self, h, plan, w):
        """``MixedOp_e(h, w[e])`` of every edge ``e`` leaving state ``h``, channel-stacked.

        ``w``: the edges' rows of ``f(alpha)``. Each op's outputs come shared (one tensor for all
        edges) or stacked; the noise and drop-path of each edge are applied as in ``MixedOp``.
        """
        edges, names = plan["mixed"], plan["mixed"][0].op_names
        noise_all = edges[0].noise_on == "all"
        terms = []
        outputs = self._op_outputs(h, plan, None if noise_all else w)
        for (y, shared, weighted), k in zip(outputs, edges[0].computed):
            is_skip = names[k] == SKIP
            if is_skip or noise_all:
                parts = [y] * len(edges) if shared else list(y.chunk(len(edges), dim=1))
                # one draw per edge and op, under MixedOp's slot (held draws serve both paths)
                noisy = [edge.noise(part, slot=k) for edge, part in zip(edges, parts)]
                if is_skip:
                    noisy = [edge.skip_drop(part) for edge, part in zip(edges, noisy)]
                if not (shared and all(part is y for part in noisy)):
                    y, shared = torch.cat(noisy, dim=1), False
            terms.append((y, shared, None if weighted else w[:, k]))
        return _weighted_sum(terms)

    def _op_outputs(self, h, plan, w=None):
        """For each computed op: ``(y, shared, weighted)``, its outputs on all edges leaving state
        ``h``: one tensor for every edge (``shared``) or the edges' outputs stacked along the
        channels.

        With ``w`` (the edges' weights), the convolution ops come ``weighted``: their last
        BatchNorm scales each edge's channels by the edge's weight of the op,
        ``BN(x) * w = (x - mean) / std * w``, one kernel instead of two (forward and backward).
        """
        relu, repeated = None, {}
        outputs = []
        for (kind, group), k in zip(plan["ops"], plan["mixed"][0].computed):
            scale = None if w is None else w[:, k]
            if kind == "identity":
                outputs.append((h, True, False))
                continue
            if kind == "pool":
                outputs.append((*_shared_pool(h, group), False))
                continue
            if relu is None:
                relu = F.relu(h)
            if kind == "reduce":
                outputs.append((_stacked_reduce(relu, group), False, False))
            elif kind == "sep":
                y = _stacked_dil_conv(relu, [op[0] for op in group], repeated)
                y = _stacked_dil_conv(F.relu(y), [op[1] for op in group], scale=scale)
                outputs.append((y, False, scale is not None))
            else:
                outputs.append((_stacked_dil_conv(relu, group, repeated, scale=scale), False,
                                scale is not None))
        return outputs


def _weighted_sum(terms):
    """``sum_k w_k[e] * y_k[e]`` for every edge ``e`` at once, in ``MixedOp``'s order of the ops.

    ``terms``: ``(y, shared, w_k)``, ``y`` of ``C`` channels (shared: repeated for each edge) or
    ``E * C`` (stacked), ``w_k`` the ``E`` edges' weights (``None``: ``y`` is weighted already).
    One multiply and one add per op, not per op and edge, each weight repeated over its edge's
    channels: a per-channel factor, which the multiply and its gradients vectorise in either
    memory format. Returns the ``(N, E * C, H, W)`` stack.
    """
    out = None
    for y, shared, w in terms:
        if w is not None:
            E = len(w)
            factor = w.repeat_interleave(y.shape[1] // (1 if shared else E)).view(1, -1, 1, 1)
            y = (torch.cat([y] * E, dim=1) if shared and E > 1 else y) * factor
        out = y if out is None else out + y
    return out


# -- the pieces ------------------------------------------------------------------------------
def _shared_pool(h, group):
    """``op(h)`` of every edge's ``Sequential(pool, BatchNorm2d)``: the pool once; in training the
    BN once.

    Returns ``(y, shared)`` as ``FusedCell._op_outputs``."""
    pooled = group[0][0](h)
    bns = [op[1] for op in group]
    if not bns[0].training:  # eval: each edge's own running statistics
        return torch.cat([bn(pooled) for bn in bns], dim=1), False
    factors = _update_factors(bns[1:])
    out = bns[0](pooled)
    with torch.no_grad():
        for bn, factor in zip(bns[1:], factors):
            torch.batch_norm_update_stats(pooled, bn.running_mean, bn.running_var, factor)
            bn.num_batches_tracked.add_(1)
    return out, True


def _stacked_batch_norm(x, bns, scale=None):
    """The affine-free BatchNorms ``bns`` of channel-stacked edges (``C`` channels each), in one
    call.

    ``scale``: one number per edge that multiplies its output (``None``: 1).
    """
    first, C = bns[0], bns[0].num_features
    weight = None if scale is None else scale.repeat_interleave(C)
    factors = _update_factors(bns) if first.training else [0.0]
    if len(set(factors)) > 1:  # the edges' statistics at different counts: one call per edge
        out = torch.cat([F.batch_norm(part, bn.running_mean, bn.running_var,
                                      None if weight is None else weight[e * C:(e + 1) * C], None,
                                      True, factor, bn.eps)
                         for e, (part, bn, factor) in enumerate(zip(x.split(C, 1), bns, factors))],
                        dim=1)
        _add_one_each([bn.num_batches_tracked for bn in bns])
        return out
    means = torch.cat([bn.running_mean for bn in bns])
    variances = torch.cat([bn.running_var for bn in bns])
    out = F.batch_norm(x, means, variances, weight, None, first.training, factors[0], first.eps)
    if first.training:  # F.batch_norm updated the gathered statistics: give each edge its own back
        with torch.no_grad():
            _copy_each([bn.running_mean for bn in bns] + [bn.running_var for bn in bns],
                       list(means.split(C)) + list(variances.split(C)))
            _add_one_each([bn.num_batches_tracked for bn in bns])
    return out


def _copy_each(targets, sources):
    """``t.copy_(s)`` for each pair, in one call where torch has it (``_foreach_copy_``,
    torch >= 2.1)."""
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(targets, sources)
    else:
        for target, source in zip(targets, sources):
            target.copy_(source)


def _add_one_each(counters):
    """``c.add_(1)`` for each counter, in one call (``_foreach_add_``)."""
    if hasattr(torch, "_foreach_add_"):
        torch._foreach_add_(counters, 1)
    else:
        for counter in counters:
            counter.add_(1)


def _stacked_dil_conv(x, group, repeated=None, scale=None):
    """``DilConv`` (depthwise, 1x1, BN) of every edge in ``group``, channel-stacked (also half a
    ``SepConv``).

    ``x`` is either the state's ``ReLU(h)``, shared by the edges (then ``repeated`` keeps its
    repeats for the state's other ops), or (``repeated=None``) already stacked, one block per edge.
    ``scale``: one number per edge multiplying its output (in the BatchNorm).
    """
    E = len(group)
    dw = group[0][1]
    dw_weight = torch.cat([op[1].weight for op in group])
    pw_weight = torch.cat([op[2].weight for op in group])
    bns = [op[3] for op in group]
    k, stride, pad, dil = dw.kernel_size[0], dw.stride[0], dw.padding[0], dw.dilation[0]
    H, W = x.shape[-2:]

    def stacked(key, make):
        """The input of the stacked depthwise convolution: ``make()``, repeated once per edge."""
        if repeated is None:
            return make()
        if key not in repeated:
            repeated[key] = torch.cat([make()] * E, dim=1) if E > 1 else make()
        return repeated[key]

    if _symmetric(dw) and dil == 2 and pad % 2 == 0 and stride == 2:
        # y[i] = sum_t w_t x[2i + 2t - pad] = sum_t w_t x_even[i + t - pad/2]: the even sub-grid,
        # undilated.
        x = stacked("even", lambda: x[:, :, ::2, ::2])
        y = depthwise_conv(x, dw_weight, 1, pad // 2)
        return _stacked_batch_norm(F.conv2d(y, pw_weight, None, 1, 0, 1, E), bns, scale)
    if _symmetric(dw) and dil == 2 and stride == 1 and pad == k - 1 and H % 2 == 0 and W % 2 == 0:
        # A "same" 2-dilated convolution at stride 1: an undilated one on each parity sub-grid.
        x = stacked("grids", lambda: _sub_grids(x))
        y = depthwise_conv(x, dw_weight, 1, pad // 2)
        return _from_sub_grids(_stacked_batch_norm(F.conv2d(y, pw_weight, None, 1, 0, 1, E), bns,
                                                   scale))
    x = stacked("plain", lambda: x)
    if dil == 1 and _symmetric(dw):
        y = depthwise_conv(x, dw_weight, stride, pad)
    else:  # odd sizes at stride 1 keep the dilated call
        y = F.conv2d(x, dw_weight, None, dw.stride, dw.padding, dw.dilation, x.shape[1])
    return _stacked_batch_norm(F.conv2d(y, pw_weight, None, 1, 0, 1, E), bns, scale)


def _symmetric(conv):
    """A square kernel with the same stride, padding and dilation along both axes."""
    return (conv.kernel_size[0] == conv.kernel_size[1] and conv.stride[0] == conv.stride[1]
            and conv.padding[0] == conv.padding[1] and conv.dilation[0] == conv.dilation[1])


def depthwise_conv(x, weight, stride, padding):
    """A depthwise convolution (``groups`` = channels, no dilation, no bias).

    On an input smaller than the kernel, the CPU's convolution library (oneDNN) computes the
    weight gradient by a generic matrix-product path, 5 to 20 times slower than its depthwise
    kernel: there ``_SmallInputDepthwise`` takes that gradient in 3x3 pieces instead.
    """
    if min(x.shape[-2:]) >= weight.shape[-1]:
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])
    return _SmallInputDepthwise.apply(x, weight, stride, padding)


class _SmallInputDepthwise(torch.autograd.Function):
    """``F.conv2d(x, weight, stride, padding, groups=C)`` with the weight gradient from 3x3 blocks
    of taps.

    The weight gradient is, tap by tap, a sum over the output pixels of ``grad * input``: it
    splits exactly into 3x3 blocks of taps, each the weight gradient of a 3x3 convolution without
    padding on the explicitly padded input cut at the block's offset (an input the library's
    depthwise kernel takes). The forward and the input gradient are the library's own. The
    weight gradient is skipped when this backward pass does not need it (an architecture step),
    as the library's convolution does: ``torch._C._will_engine_execute_node`` (a private torch
    function, so it is looked up with a fallback that always computes it) says whether the
    stacked weights' node will run.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.weight_node = stride, padding, weight.grad_fn
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        s, p, C = ctx.stride, ctx.padding, x.shape[1]
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, [s, s], [p, p],
                                                         [1, 1], False, [0, 0], C,
                                                         [True, False, False])[0]
        if ctx.needs_input_grad[1] and _will_run(ctx.weight_node):
            grad_weight = _depthwise_weight_grad(x, grad, weight.shape[-1], s, p)
        return grad_x, grad_weight, None, None


def _will_run(node):
    """Whether the autograd engine will run ``node`` in the current backward pass (True if
    unsure)."""
    check = getattr(torch._C, "_will_engine_execute_node", None)
    return node is None or check is None or check(node)


def _depthwise_weight_grad(x, grad, K, stride, padding):
    """The weight gradient ``(C, 1, K, K)`` of a depthwise KxK convolution, from 3x3 blocks of
    taps."""
    C = x.shape[1]
    x = F.pad(x, (padding,) * 4) if padding else x
    span_h, span_w = (stride * (n - 1) + 3 for n in grad.shape[-2:])  # what a 3x3 block reads
    block = grad.new_empty(1).expand(C, 1, 3, 3)
    starts = sorted(set(range(0, K - 2, 3)) | {K - 3})  # 3-tap blocks that cover 0..K-1
    # tap t comes from the last block that starts at or before it
    pieces = [(a, [t - a for t in range(K) if max(b for b in starts if b <= t) == a])
              for a in starts]
    rows = []
    for a, rows_of_a in pieces:
        row = []
        for b, cols_of_b in pieces:
            window = x[:, :, a:a + span_h, b:b + span_w]
            g = torch.ops.aten.convolution_backward(grad, window, block, None, [stride, stride],
                                                    [0, 0], [1, 1], False, [0, 0], C,
                                                    [False, True, False])[1]
            row.append(g[:, :, rows_of_a[0]:rows_of_a[-1] + 1, cols_of_b[0]:cols_of_b[-1] + 1])
        rows.append(torch.cat(row, dim=3) if len(row) > 1 else row[0])
    return torch.cat(rows, dim=2) if len(rows) > 1 else rows[0]


def _sub_grids(x):
    """``(N, C, H, W)``, H and W even -> ``(4N, C, H/2, W/2)``: the sub-grids
    ``x[:, :, a::2, b::2]``."""
    return torch.cat([x[:, :, a::2, b::2] for a in (0, 1) for b in (0, 1)], dim=0)


def _from_sub_grids(y):
    """The inverse of ``_sub_grids``, in the memory format of ``y``."""
    n, C, h, w = y.shape
    n //= 4
    if y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
        grid = y.permute(0, 2, 3, 1).reshape(2, 2, n, h, w, C).permute(2, 3, 0, 4, 1, 5)
        return grid.reshape(n, 2 * h, 2 * w, C).permute(0, 3, 1, 2)
    grid = y.reshape(2, 2, n, C, h, w).permute(2, 3, 4, 0, 5, 1)
    return grid.reshape(n, C, 2 * h, 2 * w)


def _stacked_reduce(relu, group):
    """``FactorizedReduce`` of every edge in ``group`` on ``relu = ReLU(h)``: two stacked 1x1
    convolutions."""
    first = group[0]
    shifted = F.pad(relu[:, :, 1:, 1:], (0, 1, 0, 1))
    a = F.conv2d(relu, torch.cat([op.conv_1.weight for op in group]), None, first.conv_1.stride)
    b = F.conv2d(shifted, torch.cat([op.conv_2.weight for op in group]), None, first.conv_2.stride)
    half = first.conv_1.out_channels
    # each edge's channels as its own FactorizedReduce concatenates them: its conv_1, then its
    # conv_2
    y = torch.cat([part for pair in zip(a.split(half, 1), b.split(half, 1)) for part in pair],
                  dim=1)
    return _stacked_batch_norm(y, [op.bn for op in group])
