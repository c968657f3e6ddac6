"""The supernet: cell wiring, reduction cells, any input shape, parameter groups, the noise switch."""
import pytest
import torch

from ndarts_edu.errors import ConfigError
from ndarts_edu.mixed import MixedOp
from ndarts_edu.network import SuperNet, edge_inputs, edges_per_cell, reduction_layers
from ndarts_edu.noise import NoisySkip
from ndarts_edu.ops import SKIP, SPACES, FactorizedReduce

from tiny import TINY


def test_edge_count_and_order():
    assert edges_per_cell(4) == 14
    assert edges_per_cell(2) == 5
    assert edge_inputs(2) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert len(edge_inputs(4)) == 14 and edge_inputs(4)[-5:] == [(3, j) for j in range(5)]


def test_alpha_and_cell_shapes_for_4_nodes():
    net = SuperNet(1, 10, channels=4, layers=3, nodes=4, space="darts")
    assert net.alpha_normal.shape == net.alpha_reduce.shape == (14, 8)
    assert all(len(cell.edges) == 14 for cell in net.cells)


@pytest.mark.parametrize("layers, expected", [(8, [2, 5]), (5, [1, 3]), (3, [1, 2]), (2, [])])
def test_reduction_placement(layers, expected):
    assert reduction_layers(layers) == expected
    net = SuperNet(1, 10, channels=4, layers=layers, nodes=2, space="s3")
    assert [i for i, cell in enumerate(net.cells) if cell.reduction] == expected


def test_reduction_cells_halve_resolution_and_double_channels():
    net = SuperNet(3, 10, channels=4, layers=5, nodes=2, space="s3")
    shapes = []
    for cell in net.cells:
        cell.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape[1:])))
    net(torch.randn(2, 3, 16, 16))
    # 2 nodes concatenated: 2 * C channels; C doubles and H, W halve at cells 1 and 3.
    assert shapes == [(8, 16, 16), (16, 8, 8), (16, 8, 8), (32, 4, 4), (32, 4, 4)]
    # in a reduction cell, the edges that read the cell inputs have stride 2 (skip = factorized reduce)
    reduce_cell = net.cells[1]
    for (node, source), edge in zip(edge_inputs(2), reduce_cell.edges):
        skip = edge.ops[edge.computed.index(edge.op_names.index(SKIP))]
        assert isinstance(skip, FactorizedReduce) == (source < 2)
    assert not any(isinstance(m, FactorizedReduce) for e in net.cells[0].edges for m in e.modules())


@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32), (2, 7), (1, 5)])
def test_any_input_channels_and_size(channels, size):
    net = SuperNet(channels, 7, **TINY)
    out = net(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_darts_space_smoke_3_channels_32x32():
    net = SuperNet(3, 10, channels=4, layers=3, nodes=2, space="darts")
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_arch_and_weight_parameters_are_disjoint_and_complete():
    net = SuperNet(1, 10, **TINY)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch == {id(net.alpha_normal), id(net.alpha_reduce)}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 2


def test_gradient_reaches_both_alphas():
    net = SuperNet(1, 10, **TINY)
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    assert net.alpha_normal.grad.abs().sum() > 0 and net.alpha_reduce.grad.abs().sum() > 0


def test_alpha_init():
    torch.manual_seed(0)
    soft = SuperNet(1, 10, weighting="softmax", **TINY)
    assert 0 < soft.alpha_normal.abs().max() < 1e-2
    fair = SuperNet(1, 10, weighting="sigmoid", **TINY)
    assert torch.equal(fair.alpha_normal, torch.zeros_like(fair.alpha_normal))
    assert torch.allclose(fair.weights()["normal"], torch.full((5, 3), 0.5))


def test_set_noise_reaches_every_edge():
    net = SuperNet(1, 10, **TINY)
    modules = net.noise_modules()
    edges = [m for m in net.modules() if isinstance(m, MixedOp)]
    assert len(edges) == 3 * edges_per_cell(2)
    assert set(map(id, modules)) == {id(e.noise) for e in edges}
    net.set_noise(0.3, "uniform", 0.1, scale=0.5)
    assert all((m.noise_lambda, m.kind, m.mean, m.scale) == (0.3, "uniform", 0.1, 0.5) for m in modules)
    net.set_noise(scale=1.0)  # None leaves the rest as it was
    assert all((m.noise_lambda, m.kind, m.scale) == (0.3, "uniform", 1.0) for m in modules)
    with pytest.raises(ConfigError):
        net.set_noise(-1.0)


def test_train_and_eval_switch_the_noise():
    torch.manual_seed(0)
    net = SuperNet(1, 10, **TINY)
    x = torch.randn(4, 1, 8, 8)
    net.set_noise(0.0)
    net.train()
    clean = net(x)
    assert torch.equal(net(x), clean)  # train mode without noise is deterministic
    net.set_noise(0.5)
    assert all(m.active for m in net.noise_modules())
    noisy = net(x)
    assert not torch.allclose(noisy, clean)
    net.eval()
    assert not any(m.active for m in net.noise_modules())
    assert torch.equal(net(x), net(x))
    net.set_noise(0.0)
    evaluated = net(x)
    net.set_noise(0.5)
    assert torch.equal(net(x), evaluated)  # eval mode ignores the noise setting
    net.train()
    assert all(m.active for m in net.noise_modules())


@pytest.mark.parametrize("kwargs", [dict(channels=5), dict(channels=0), dict(space="s7"), dict(weighting="relu"),
                                    dict(layers=0), dict(num_classes=1), dict(noise_on="x")])
def test_bad_settings_raise_config_error(kwargs):
    settings = dict(in_channels=1, num_classes=10, **TINY)
    settings.update(kwargs)
    with pytest.raises(ConfigError):
        SuperNet(**settings)


def test_op_names_follow_the_space():
    assert SuperNet(1, 10, **{**TINY, "space": "darts7"}).op_names == SPACES["darts7"]
    net = SuperNet(1, 10, **{**TINY, "space": [SKIP, "avg_pool_3x3"]})
    assert net.alpha_normal.shape == (5, 2)
    assert sum(isinstance(m, NoisySkip) for m in net.modules()) == 15


def test_channels_last_is_off_by_default_and_changes_only_the_last_bits():
    torch.manual_seed(0)
    net = SuperNet(3, 10, **TINY).eval()
    assert net.channels_last is False
    x = torch.randn(4, 3, 9, 9)
    plain = net(x)
    net.use_channels_last()
    assert net.channels_last and net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(net(x), plain, atol=1e-5, rtol=1e-4)
    net.use_channels_last(False)
    assert net.channels_last is False and net.stem[0].weight.is_contiguous()
