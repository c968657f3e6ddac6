"""The bilevel search: the second-order gradient against autograd, which step moves what, repeatability."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ndarts_edu.mixed import zero_one_loss
from ndarts_edu.noise import NoisySkip, cosine_scale
from ndarts_edu.search import Search


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def _snapshot(search):
    return ([p.detach().clone() for p in search.weight_params], [a.detach().clone() for a in search.arch_params])


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _changed(a, b):
    return [not torch.equal(x, y) for x, y in zip(a, b)]


def _smooth_activations(module):
    """ReLU -> SiLU everywhere: finite differences need a differentiable network (see below)."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.SiLU())
        else:
            _smooth_activations(child)


def _exact_unrolled_gradient(search, x_train, y_train, x_valid, y_valid, xi):
    """d/dalpha L_val(w'(alpha), alpha), w'(alpha) = w - xi (grad_w L_train(w, alpha) + wd w + momentum buf),
    by autograd through the weight step (create_graph=True): the exact second-order DARTS gradient."""
    c, model = search.config, search.model
    weight_ids = {id(p) for p in search.weight_params}
    named = dict(model.named_parameters())
    w_names = [n for n, p in named.items() if id(p) in weight_ids]
    a_names = [n for n, p in named.items() if id(p) not in weight_ids]
    W, A = [named[n] for n in w_names], [named[n] for n in a_names]
    assert A == search.arch_params
    grads = torch.autograd.grad(F.cross_entropy(model(x_train), y_train), W, create_graph=True)
    unrolled = [w.detach() - xi * (g + c.w_weight_decay * w.detach()
                                   + c.w_momentum * search.w_optimizer.state[w]["momentum_buffer"])
                for w, g in zip(W, grads)]

    def valid_loss(weights):
        params = {**dict(zip(w_names, weights)), **dict(zip(a_names, A))}
        return F.cross_entropy(functional_call(model, params, (x_valid,)), y_valid)

    total = torch.autograd.grad(valid_loss(unrolled), A)
    first_order_part = torch.autograd.grad(valid_loss([w.detach() for w in unrolled]), A)
    return _flat(total), _flat(first_order_part)


@pytest.mark.parametrize("xi", [0.05, 0.5])
def test_second_order_gradient_matches_autograd(tiny_config, tiny_data, xi):
    """Float64, no noise (fresh noise per forward would make the gradient random), fixed batches, BN in train mode.

    The network's ReLUs are swapped for SiLUs: the finite-difference Hessian-vector product moves the
    weights by 0.01 (DARTS's radius), which in a 4-channel net crosses ReLU kinks and then differs from
    the Hessian by O(1) (the kinks, not the unrolling, would be under test).
    """
    search = Search(tiny_config.replace(order=2, noise_lambda=0.0), data=tiny_data)
    _smooth_activations(search.model)
    search.model.double()
    x_train, y_train = search.train_batches.next()
    x_valid, y_valid = search.valid_batches.next()
    x_train, x_valid = x_train.double(), x_valid.double()
    search.weight_step(x_train, y_train)  # so that the unrolled step has a momentum buffer
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for a in search.arch_params:  # away from uniform weights, so every term matters
            a.normal_(0.0, 0.5, generator=generator)
    search.model.train()
    got, _ = search.unrolled_gradients(x_train, y_train, x_valid, y_valid, xi=xi)
    search.model.train()
    exact, first_order = _exact_unrolled_gradient(search, x_train, y_train, x_valid, y_valid, xi)
    got = _flat(got)
    assert got.dtype == torch.float64
    hessian_term = exact - first_order
    assert hessian_term.norm() > 0.05 * exact.norm()  # the second-order term is not negligible here
    assert (got - exact).norm() < 1e-3 * exact.norm()
    assert (got - exact).norm() < 1e-2 * hessian_term.norm()


def test_arch_gradients_order_2_unrolls_with_the_learning_rate(tiny_config, tiny_data):
    search = Search(tiny_config.replace(order=2, noise_lambda=0.0), data=tiny_data)
    batches = (*search.train_batches.next(), *search.valid_batches.next())
    search.weight_step(*batches[:2])
    by_lr, _ = search.arch_gradients(*batches)
    direct, _ = search.unrolled_gradients(*batches, xi=search.lr)
    assert torch.allclose(_flat(by_lr), _flat(direct), rtol=1e-5, atol=1e-8)
    search.config = search.config.replace(order=1)
    first, _ = search.arch_gradients(*batches)
    assert not torch.allclose(_flat(first), _flat(by_lr))


def test_unrolled_gradients_restore_the_weights_exactly(tiny_config, tiny_data):
    search = Search(tiny_config.replace(order=2, noise_lambda=0.2), data=tiny_data)
    batches = (*search.train_batches.next(), *search.valid_batches.next())
    search.weight_step(*batches[:2])
    params_before = list(search.model.parameters())
    weights, alphas = _snapshot(search)
    buffers = [search.w_optimizer.state[w]["momentum_buffer"].clone() for w in search.weight_params]
    search.model.train()
    grads, loss = search.unrolled_gradients(*batches, xi=0.5)
    assert [g.shape for g in grads] == [a.shape for a in search.arch_params]
    assert all(torch.isfinite(g).all() for g in grads) and torch.isfinite(loss)
    assert list(search.model.parameters()) == params_before  # the same tensors, no copy swapped in
    assert _same(weights, [w.detach() for w in search.weight_params])
    assert _same(alphas, [a.detach() for a in search.arch_params])
    assert _same(buffers, [search.w_optimizer.state[w]["momentum_buffer"] for w in search.weight_params])
    assert all(a.grad is None for a in search.arch_params)


@pytest.mark.parametrize("order", [1, 2])
def test_arch_step_changes_only_alpha(tiny_config, tiny_data, order):
    search = Search(tiny_config.replace(order=order, noise_lambda=0.2), data=tiny_data)
    batches = (*search.train_batches.next(), *search.valid_batches.next())
    search.weight_step(*batches[:2])
    weights, alphas = _snapshot(search)
    loss = search.arch_step(*batches)
    assert isinstance(loss, float) and loss > 0
    assert _same(weights, [w.detach() for w in search.weight_params])
    assert all(_changed(alphas, [a.detach() for a in search.arch_params]))


def test_weight_step_changes_only_weights(tiny_config, tiny_data):
    search = Search(tiny_config.replace(noise_lambda=0.2), data=tiny_data)
    x, y = search.train_batches.next()
    weights, alphas = _snapshot(search)
    loss, correct = search.weight_step(x, y)
    assert loss > 0 and 0 <= correct <= len(y)
    assert _same(alphas, [a.detach() for a in search.arch_params])
    changed = _changed(weights, [w.detach() for w in search.weight_params])
    assert sum(changed) > 0.9 * len(changed)


def test_noise_is_on_in_both_steps_and_off_in_evaluation(tiny_config, tiny_data):
    search = Search(tiny_config.replace(noise_lambda=0.2), data=tiny_data)
    seen = []
    for m in search.model.noise_modules():
        m.register_forward_hook(lambda mod, inp, out: seen.append(mod.active))
    batches = (*search.train_batches.next(), *search.valid_batches.next())
    search.model.eval()
    search.arch_step(*batches)
    search.model.eval()
    search.weight_step(*batches[:2])
    assert seen and all(seen)
    seen.clear()
    search.evaluate()
    assert seen and not any(seen)
    # fresh noise in every forward: the same batch gives another architecture gradient
    g1, _ = search.arch_gradients(*batches)
    g2, _ = search.arch_gradients(*batches)
    assert not torch.equal(_flat(g1), _flat(g2))
    search.model.set_noise(0.0)
    g1, _ = search.arch_gradients(*batches)
    g2, _ = search.arch_gradients(*batches)
    assert torch.equal(_flat(g1), _flat(g2))


def test_zero_one_loss_is_added_for_fairdarts(tiny_config, tiny_data):
    search = Search(tiny_config.replace(weighting="sigmoid", zero_one_weight=10.0), data=tiny_data)
    with torch.no_grad():
        for a in search.arch_params:
            a.normal_()
    x, y = search.valid_batches.next()
    search.model.train()
    expected = F.cross_entropy(search.model(x), y) + 10.0 * sum(zero_one_loss(a) for a in search.arch_params)
    assert torch.allclose(search._valid_objective(x, y), expected)


def test_schedules(tiny_config, tiny_data):
    search = Search(tiny_config.replace(epochs=2, noise_lambda=0.3, noise_decay="cosine", w_lr=0.1, w_lr_min=0.01),
                    data=tiny_data)
    assert search.lr_at(0) == pytest.approx(0.1) and search.lr_at(2) == pytest.approx(0.01)
    assert search.lr == pytest.approx(0.1)
    assert all(m.scale == 1.0 for m in search.model.noise_modules())
    for _ in range(search.steps_per_epoch):
        search.train_one_step()
    record = search.finish_epoch()
    assert record["epoch"] == 1 and record["step"] == search.steps_per_epoch
    assert search.lr == pytest.approx(search.lr_at(1))
    assert all(m.scale == pytest.approx(cosine_scale(1, 2)) for m in search.model.noise_modules())
    assert all(m.noise_lambda == 0.3 for m in search.model.noise_modules() if isinstance(m, NoisySkip))


def _history(config, data):
    history = Search(config, data=data).run()["history"]
    for record in history["epochs"]:
        record.pop("seconds")  # wall-clock time: the only field that may differ
    return history


def test_same_seed_same_history_other_seed_other_history(tiny_config, tiny_data):
    config = tiny_config.replace(noise_lambda=0.5, seed=3)
    first = _history(config, tiny_data)
    assert len(first["steps"]) == 4 and len(first["epochs"]) == 1
    assert first == _history(config, tiny_data)
    other = _history(config.replace(seed=4), tiny_data)
    assert other != first
    assert other["steps"][0]["weights"] != first["steps"][0]["weights"]


def test_run_records_steps_and_epochs(tiny_config, tiny_data):
    result = Search(tiny_config.replace(record_every=2), data=tiny_data).run()
    assert result["status"] == "finished" and result["epochs_done"] == 1 and result["steps_done"] == 4
    assert [s["step"] for s in result["history"]["steps"]] == [2, 4]
    epoch = result["history"]["epochs"][0]
    assert 0 <= epoch["valid_accuracy"] <= 1 and 0 <= epoch["skip_share"] <= 1
    assert len(result["weights"]["normal"]) == 5 and len(result["genotype"]["normal"]) == 4
