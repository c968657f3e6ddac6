"""The fast path (``fused.FusedCell``) computes what the readable path (``SearchCell``, ``MixedOp``) does.

Both paths run on one model (the same modules and parameters): the readable path first inside
``noise.hold_draws``, then the fast path from the same state in the same context, so both see the
same noise and drop-path masks.

Tolerances. In float64 the two paths differ only in the order of floating-point sums inside the
library's kernels (stacked convolutions, a BatchNorm over stacked channels, the sub-grid reordering
of the dilated convolutions): a relative error of ~1e-14 (measured), bounded by ``n * 2**-53`` for
sums of ``n <= 10**5`` terms. The tests allow ``RTOL = 1e-9``: five orders of magnitude above
that, seven below what a wrong weight, op or edge changes (``>= 1e-2``). In float32, the
precision the search runs at, the outputs agree to ~1e-7 (tested at 1e-5); its gradients are
not a sharp test (see ``test_float32_outputs_match``).
"""
import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ndarts_edu import fused
from ndarts_edu import search as search_module
from ndarts_edu.fused import FusedCell, depthwise_conv
from ndarts_edu.network import (SuperNet, batchnorm_layers, kept_batchnorm_statistics,
                                recalibrate_batchnorm)
from ndarts_edu.noise import hold_draws
from ndarts_edu.ops import SPACES
from ndarts_edu.search import Search

RTOL = 1e-9


def _net(space="darts", channels_last=False, noise=0.5, drop=0.3, nodes=4, **kwargs):
    torch.manual_seed(0)
    # 3 cells: a normal cell, then two reduction cells (stride-2 edges and a factorized reduce input)
    net = SuperNet(3, 10, channels=4, layers=3, nodes=nodes, space=space, skip_drop_path=drop, **kwargs)
    net = net.double().use_channels_last(channels_last)
    net.set_noise(noise)
    with torch.no_grad():  # away from uniform weights, so that every op matters
        for alpha in net.arch_parameters():
            alpha.normal_(0.0, 1.0)
    return net.train()


def _both_paths(net, x, passes=1):
    """Outputs, gradients (weights and alpha) and the state after ``passes`` training forwards,
    readable then fast from the same state, with the same noise."""
    start = copy.deepcopy(net.state_dict())
    labels = torch.arange(len(x)) % 10
    results = []
    with hold_draws(net):
        for fast in (False, True):
            net.load_state_dict(start)
            net.fused = fast
            for _ in range(passes):
                out = net(x)
            grads = torch.autograd.grad(F.cross_entropy(out, labels), list(net.parameters()))
            results.append((out, grads, copy.deepcopy(net.state_dict())))
    return results


def _close(a, b, rtol=RTOL):
    """``|a - b| <= rtol * max|a|``, elementwise, for tensors of any dtype."""
    a, b = a.double(), b.double()
    return bool(((a - b).abs() <= rtol * a.abs().max().clamp_min(1e-300)).all())


def _assert_same(readable, fast):
    (out_r, grads_r, state_r), (out_f, grads_f, state_f) = readable, fast
    assert _close(out_r, out_f)
    assert all(_close(g, h) for g, h in zip(grads_r, grads_f))
    assert state_r.keys() == state_f.keys()
    assert all(_close_statistics(state_r[k], state_f[k]) for k in state_r)  # BN statistics, counters


def _close_statistics(a, b):
    """``_close``, or within ``RTOL`` of each other on the scale of the statistics (~1): a batch
    mean that is 0 but for rounding (a pool over a normalised 2x2 state) has nothing to scale by."""
    return _close(a, b) or bool((a.double() - b.double()).abs().max() <= RTOL)


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [8, 7])
def test_outputs_and_gradients_match(space, channels_last, size):
    """Every space, stride 1 and 2 (the reduction cells), even and odd sizes (7 -> 7, 4, 2), noise
    and drop-path on with the same draws, both memory formats."""
    net = _net(space, channels_last)
    assert all(cell.usable() for cell in net.fast_cells), [cell.error for cell in net.fast_cells]
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    readable, fast = _both_paths(net, x)
    _assert_same(readable, fast)
    alpha_grads = fast[1][:2]
    assert all(g.abs().max() > 0 for g in alpha_grads)  # the architecture gradients are there


def test_the_draws_are_the_edges_own():
    """Without hold_draws the two paths draw independently: a test that the noise reaches the fast path."""
    net = _net("s2", noise=1.0, drop=0.0)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    net.fused = True
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)
    net.set_noise(0.0)
    assert torch.equal(net(x), net(x))


def test_running_statistics_after_several_training_forwards_and_eval_mode():
    net = _net("darts", channels_last=True)
    x = torch.randn(4, 3, 9, 9, dtype=torch.float64)  # odd: 9, 5, 3
    readable, fast = _both_paths(net, x, passes=3)
    _assert_same(readable, fast)
    net.load_state_dict(fast[2])
    net.eval()
    with torch.no_grad():
        net.fused = False
        out_r = net(x)
        net.fused = True
        out_f = net(x)
    assert _close(out_r, out_f)
    tracked = [v for k, v in fast[2].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == 3 for v in tracked)


def test_noise_on_every_op_and_two_nodes():
    net = _net("darts7", noise_on="all", nodes=2)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    _assert_same(*_both_paths(net, x))


@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_outputs_match(channels_last):
    """At the search's precision and size: the outputs (the gradients are compared in float64 above:
    in float32 a near-tie of a max-pool or a ReLU input near 0 can flip either path's gradient
    locally, seen as 1e-3 jumps against float64 for the readable path as often as for the fast)."""
    torch.manual_seed(0)
    net = SuperNet(3, 10, channels=8, layers=5, space="darts").use_channels_last(channels_last)
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        net.fused = False
        readable = net(x)
        net.fused = True
        fast = net(x)
    assert _close(readable, fast, rtol=1e-5)  # ~1e-7 measured


def test_batchnorm_recalibration_is_the_same_on_both_paths():
    """``network.recalibrate_batchnorm`` (momentum None: a cumulative average over the batches, the
    noise off) writes the same statistics into the edges' own batch norms on either path, and
    ``kept_batchnorm_statistics`` puts back what was there."""
    net = _net("darts", channels_last=True, noise=1.0)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        net(x)  # statistics gathered with the noise on
    layers = batchnorm_layers(net)
    # every batch norm of every edge is among them (the fast path has none of its own)
    assert len(layers) == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    images = torch.randn(20, 3, 8, 8, dtype=torch.float64)  # batches of 8, 8 (the last 4 left out)
    before = copy.deepcopy(net.state_dict())
    states, outputs = [], []
    for fast in (False, True):
        net.fused = fast
        with kept_batchnorm_statistics(net):
            recalibrate_batchnorm(net, images, batch_size=8)
            states.append(copy.deepcopy(net.state_dict()))
            net.eval()
            with torch.no_grad():
                outputs.append(net(x))
            net.train()
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    readable, fast = states
    assert all(_close_statistics(readable[k], fast[k]) for k in readable)
    assert not all(_close(readable[k], before[k]) for k in readable)  # the statistics did change
    assert all(int(v) == 2 for k, v in fast.items() if k.endswith("num_batches_tracked"))
    assert all(m.momentum == 0.1 for m in layers)
    assert _close(*outputs)


def test_batch_norms_at_different_counts_with_a_cumulative_average():
    """momentum None with edges of one state at different counts: each edge its own ``1 / n``."""
    net = _net("darts", noise=0.0, drop=0.0)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    for m in batchnorm_layers(net):
        m.momentum = None
    cell = net.cells[0]
    for edge, count in ((cell.edges[0], 3), (cell.edges[2], 7)):  # two edges that read state 0
        for m in edge.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.num_batches_tracked.fill_(count)
    _assert_same(*_both_paths(net, x, passes=2))


def _search_in_float64(config, data):
    search = Search(config, data=data)
    search.model.double()
    for batches in (search.train_batches, search.valid_batches):
        batches.images = batches.images.double()
    return search


@pytest.mark.parametrize("order", [1, 2])
def test_search_steps_give_the_same_alphas(tiny_config, tiny_data, order):
    """Two steps of each path from the same start, no noise (nothing random in a step)."""
    config = tiny_config.replace(space="darts", order=order, noise_lambda=0.0, alpha_lr=3e-3)
    alphas = {}
    for fast in (False, True):
        search = _search_in_float64(config.replace(fused=fast), tiny_data)
        assert search.model.fused is fast
        start = [a.detach().clone() for a in search.arch_params]
        for _ in range(2):
            search.train_one_step()
        alphas[fast] = [a.detach().clone() for a in search.arch_params]
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(alphas[False], start))  # the alphas did move
    assert all(_close(a, b, rtol=1e-7) for a, b in zip(alphas[False], alphas[True]))


@pytest.mark.parametrize("order", [1, 2])
def test_one_noisy_search_step_with_the_same_draws(tiny_config, tiny_data, order, monkeypatch):
    """An architecture step with noise and skip drop-path on: the same gradients from the same draws.

    The valid pass's draws are held by the test's ``hold_draws`` for both paths. In second order
    the step holds its own draws ``n1`` (its ``hold_draws(model)``: the unrolling pass, then
    replayed at ``w+`` and ``w-``): those the readable path draws are recorded and given to the
    fast path's step, which must find every draw it needs there (it draws nothing new).
    """
    search = _search_in_float64(tiny_config.replace(space="darts", order=order, noise_lambda=1.0,
                                                    skip_drop_path=0.2), tiny_data)
    batches = (*search.train_batches.next(), *search.valid_batches.next())
    search.weight_step(*batches[:2])  # a momentum buffer for the unrolled step
    start = copy.deepcopy(search.model.state_dict())
    real_hold, fresh, replay = search_module.hold_draws, [], []

    @contextlib.contextmanager
    def recording_hold(model, draws=None):
        if draws is None:  # the step's own n1: new in the readable path, its n1 in the fast path
            draws = replay.pop(0) if replay else {}
            fresh.append(draws)
        with real_hold(model, draws) as held:
            yield held

    monkeypatch.setattr(search_module, "hold_draws", recording_hold)
    results = []
    with hold_draws(search.model) as valid_draws:
        for fast in (False, True):
            search.model.load_state_dict(start)
            search.model.fused = fast
            replay[:] = fresh
            sizes = [len(d) for d in [valid_draws, *fresh]]
            results.append(search.arch_gradients(*batches))
        # the fast path found every draw it needed among the held ones: it added none
        assert [len(d) for d in [valid_draws, *fresh[:len(sizes) - 1]]] == sizes
        assert len(fresh) == (2 if order == 2 else 0) and valid_draws and all(fresh)
        (g_r, loss_r), (g_f, loss_f) = results
        assert _close(loss_r, loss_f)
        assert all(_close(a, b, rtol=1e-7) for a, b in zip(g_r, g_f))
        if order == 2:  # the draws n1 matter: other ones give another gradient
            search.model.load_state_dict(start)
            other, _ = search.arch_gradients(*batches)
            assert not all(_close(a, b, rtol=1e-3) for a, b in zip(g_f, other))


def test_the_switch(tiny_config, tiny_data, monkeypatch):
    calls = []
    real_call = FusedCell.__call__
    monkeypatch.setattr(FusedCell, "__call__", lambda self, *args: calls.append(1) or real_call(self, *args))
    x = torch.randn(2, 3, 8, 8)
    SuperNet(3, 10, channels=4, layers=3, space="s3", fused=False)(x)
    assert not calls
    SuperNet(3, 10, channels=4, layers=3, space="s3")(x)
    assert len(calls) == 3  # on by default, every cell
    assert Search(tiny_config, data=tiny_data).model.fused
    assert not Search(tiny_config.replace(fused=False), data=tiny_data).model.fused
    with pytest.raises(Exception, match="fused must be true or false"):
        tiny_config.replace(fused="yes").validate()


def test_hooks_and_swapped_modules_fall_back_to_the_readable_path():
    net = _net("s3")
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    seen = []
    hook = net.cells[0].edges[0].register_forward_hook(lambda module, inputs, output: seen.append(output))
    net(x)
    assert len(seen) == 1 and not net.fast_cells[0].usable() and net.fast_cells[1].usable()
    hook.remove()
    assert net.fast_cells[0].usable()
    net.cells[1].edges[2].ops[1][0][0] = nn.SiLU()  # an activation swapped: the fast path has ReLUs only
    assert not net.fast_cells[1].usable() and "SiLU" in net.fast_cells[1].error


def test_state_dict_and_copies_are_the_readable_modules():
    net = _net("darts", drop=0.0)
    assert net.state_dict().keys() == SuperNet(3, 10, channels=4, layers=3, space="darts",
                                               fused=False).state_dict().keys()
    twin = copy.deepcopy(net)
    assert all(fast.cell is cell for fast, cell in zip(twin.fast_cells, twin.cells))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    net.set_noise(0.0)
    twin.set_noise(0.0)
    assert _close(net(x), twin(x))


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 3, 4, 4), 5, 1), ((2, 3, 2, 2), 3, 1), ((2, 3, 3, 2), 5, 2), ((1, 2, 1, 1), 5, 1),
    ((2, 3, 4, 4), 7, 1), ((2, 2, 8, 8), 5, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_depthwise_conv_on_small_inputs(shape, kernel, stride, dtype):
    x = torch.randn(*shape, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(shape[1], 1, kernel, kernel, dtype=dtype, requires_grad=True)
    padding = (kernel - 1) // 2
    expected = F.conv2d(x, w, None, stride, padding, 1, shape[1])
    got = depthwise_conv(x, w, stride, padding)
    grad = torch.randn_like(expected)
    rtol = RTOL if dtype == torch.float64 else 1e-5
    assert _close(expected, got, rtol)
    for a, b in zip(torch.autograd.grad(expected, (x, w), grad), torch.autograd.grad(got, (x, w), grad)):
        assert _close(a, b, rtol)


def test_depthwise_weight_gradient_only_when_asked(monkeypatch):
    calls = []
    real = fused._depthwise_weight_grad
    monkeypatch.setattr(fused, "_depthwise_weight_grad", lambda *args: calls.append(1) or real(*args))
    x = torch.randn(2, 3, 2, 2, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, requires_grad=True)
    stacked = torch.cat([w[:2], w[2:]])  # like the fast path's weights: made by an op, not a leaf
    torch.autograd.grad(depthwise_conv(x, stacked, 1, 1).sum(), x)
    assert not calls  # an architecture step: no weight gradient is computed
    torch.autograd.grad(depthwise_conv(x, stacked, 1, 1).sum(), w)
    assert len(calls) == 1
