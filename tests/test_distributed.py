"""One search across two ranks (ndarts_edu.distributed), started by torchrun as a user starts it.

The ranks are real processes joined on gloo (CPU) by ``python -m torch.distributed.run`` (the
``torchrun`` command); ``tests/distributed_ranks.py`` is what each runs. With
``NDARTS_TEST_DEVICE=cuda`` the ranks and the references run on CUDA (NCCL; as many ranks as GPUs,
at most 2), and the tests skip where there is no CUDA.

How the gradient is compared. Batch norm normalises each rank's share by its own statistics
(distributed's docstring says why), so a 2-rank step over 2 x B images computes the single-process
step over those 2B images with each batch normalised in two "ghost batches" of B: that is the
reference (``ghost_batch_norm``), taken by the same ``Search.arch_gradients`` in one process. Both
are float32 computations of the same number in different orders of summation, so each is off from
the exact value by float32 rounding; the tolerance is measured, not guessed: the same reference in
float64 stands for the exact value, and the data-parallel gradient must be within 3 times the
single-process float32 gradient's own distance from it. (Measured on this CPU: 9e-7 relative for
the first order, 5e-6 for the second, whose finite difference divides rounding by ``2 eps``; rank
0's gradient of its own share, not averaged, is 0.64 and 1.24 away.) Against ordinary batch norm
over all 2B images the data-parallel gradient differs by 0.28 and 0.62: what per-rank statistics
change.
"""
import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch

import distributed_ranks as ranks
from ndarts_edu import cli
from ndarts_edu.distributed import Replicas, from_environment
from ndarts_edu.errors import ConfigError
from ndarts_edu.network import batchnorm_layers
from ndarts_edu.presets import preset_config
from ndarts_edu.search import Search

pytestmark = pytest.mark.slow

DEVICE = os.environ.get("NDARTS_TEST_DEVICE", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_device = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                  reason="NDARTS_TEST_DEVICE=cuda, but this machine has no CUDA")
WORLD_SIZE = min(2, torch.cuda.device_count()) if DEVICE.startswith("cuda") else 2


def torchrun(*args, cwd, timeout=300):
    """``torchrun --standalone --nproc-per-node WORLD_SIZE ARGS`` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", str(WORLD_SIZE), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory):
    """What each rank of ``distributed_ranks.py`` reported, and the folder it wrote into."""
    out = tmp_path_factory.mktemp("ranks")
    done = torchrun(os.path.join(ROOT, "tests", "distributed_ranks.py"), out, cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)], out


@contextlib.contextmanager
def ghost_batch_norm(model, parts):
    """Inside, each batch norm in training mode normalises ``parts`` equal slices of its batch by
    their own statistics: what ``parts`` ranks compute, in one process."""
    layers = batchnorm_layers(model)
    for m in layers:
        plain = m.forward
        m.forward = lambda x, plain=plain, m=m: (
            torch.cat([plain(part) for part in x.chunk(parts)]) if m.training else plain(x))
    try:
        yield model
    finally:
        for m in layers:
            del m.forward


def _flat(tensors):
    return torch.cat([t.detach().reshape(-1).double().cpu() for t in tensors])


def relative(a, b):
    return float((_flat(a) - _flat(b)).norm() / _flat(b).norm())


def single_process(order, dtype, parts, weight_step=False):
    """One process, the same global batch of 2B as the ranks took: the architecture gradient of
    ``order`` (or, ``weight_step``, the change of the weights in one weight step)."""
    search = Search(ranks.config(DEVICE, WORLD_SIZE, order=order, fused=False), ranks.tiny_data())
    search.model.to(dtype)
    x_train, y_train, x_valid, y_valid = (t.to(dtype) if t.is_floating_point() else t
                                          for t in ranks.fixed_batches(search, WORLD_SIZE))
    with ghost_batch_norm(search.model, parts):
        if not weight_step:
            return search.arch_gradients(x_train, y_train, x_valid, y_valid)[0]
        before = [w.detach().clone() for w in search.weight_params]
        search.weight_step(x_train, y_train)
        return [w.detach() - b for w, b in zip(search.weight_params, before)]


def assert_equal_states(a, b):
    for part in ("model", "w_optimizer", "a_optimizer"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            x, y = a[part][key], b[part][key]
            if isinstance(x, dict):
                assert all(torch.equal(x[n], y[n]) for n in x), (part, key)
            else:
                assert torch.equal(x, y), (part, key)
    assert without_seconds(a["history"]) == without_seconds(b["history"])


def without_seconds(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]]


# -- the ranks stay equal --------------------------------------------------------------------------
@needs_device
def test_every_rank_ends_with_the_same_alpha_weights_and_optimizer_state(ranks_out):
    reports, _ = ranks_out
    first = reports[0]["noisy_search"]
    assert first["history"]["epochs"], "the search ran no epoch"
    for other in reports[1:]:  # noise, second order and drop-path on: the draws differ per rank
        assert_equal_states(first, other["noisy_search"])
        for order in (1, 2):
            assert all(torch.equal(x, y) for x, y in zip(reports[0][f"arch_grad_{order}"],
                                                         other[f"arch_grad_{order}"]))


@needs_device
@pytest.mark.parametrize("order", [1, 2])
def test_a_step_over_2b_images_on_two_ranks_is_one_process_step_over_the_2b(ranks_out, order):
    reports, _ = ranks_out
    dp = reports[0][f"arch_grad_{order}"]
    exact = single_process(order, torch.float64, parts=WORLD_SIZE)
    rounding = relative(single_process(order, torch.float32, parts=WORLD_SIZE), exact)
    error = relative(dp, exact)
    print(f"order {order}: data-parallel vs float64 {error:.2e}, one process float32 vs float64 "
          f"{rounding:.2e}")
    assert error <= 3 * rounding
    if WORLD_SIZE > 1:  # what per-rank batch norm changes: far outside rounding
        full_batch = relative(dp, single_process(order, torch.float32, parts=1))
        print(f"order {order}: against batch norm over the whole batch {full_batch:.2e}")
        assert full_batch > 1000 * rounding


@needs_device
def test_the_weight_step_over_2b_images_on_two_ranks_is_one_process_step(ranks_out):
    reports, _ = ranks_out
    start = Search(ranks.config(DEVICE, WORLD_SIZE, fused=False), ranks.tiny_data()).weight_params
    dp = [w - s.detach().cpu() for w, s in zip(reports[0]["weights_after_step"], start)]
    exact = single_process(1, torch.float64, WORLD_SIZE, weight_step=True)
    rounding = relative(single_process(1, torch.float32, WORLD_SIZE, weight_step=True), exact)
    assert relative(dp, exact) <= 3 * rounding


# -- files: rank 0 writes, a resume continues ----------------------------------------------------
@needs_device
def test_rank_0_alone_writes_and_records_the_number_of_ranks(ranks_out):
    _, out = ranks_out
    result = json.loads((out / "run0" / "result.json").read_text())
    assert result["status"] == "finished"
    assert result["world_size"] == WORLD_SIZE and result["world_sizes"] == [[0, WORLD_SIZE]]
    assert (out / "run0" / "checkpoint.pt").exists()
    assert not any((out / f"run{r}").exists() for r in range(1, WORLD_SIZE))


@needs_device
def test_stopped_and_resumed_with_as_many_ranks_equals_a_run_straight_through(ranks_out):
    reports, _ = ranks_out
    for report in reports:
        assert report["paused_epochs"] == 1
        assert_equal_states(report["straight"], report["resumed"])


@needs_device
def test_a_checkpoint_of_two_ranks_resumes_in_one_process(ranks_out):
    _, out = ranks_out
    half = ranks.tiny_data()
    half.train_images, half.train_labels = half.train_images[:128], half.train_labels[:128]
    search = Search.resume(str(out / "paused0"), data=half)
    result = search.run()
    assert result["status"] == "finished" and result["epochs_done"] == 2
    resumed_with_one = [] if WORLD_SIZE == 1 else [[2, 1]]  # one GPU: the ranks were one too
    assert result["world_size"] == 1
    assert result["world_sizes"] == [[0, WORLD_SIZE]] + resumed_with_one


@needs_device
def test_torchrun_runs_the_command_line_search_end_to_end(tmp_path):
    done = torchrun("-m", "ndarts_edu", "search", "--preset", "quick", "--epochs", "1",
                    "--device", DEVICE, "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "finished" and result["world_size"] == WORLD_SIZE
    assert result["steps_done"] == 11 and result["config"]["batch_size"] == 64
    assert done.stdout.count("finished:") == 1  # rank 0 alone prints


# -- settings, checked where they enter -----------------------------------------------------------
def test_a_batch_that_does_not_split_evenly_over_the_ranks_is_refused():
    with pytest.raises(ConfigError, match="batch_size 64 does not split evenly over 3 ranks"):
        Replicas(0, 3).check(preset_config("quick"))


def test_torchrun_environment_is_read_and_checked():
    assert from_environment({}) is None
    assert from_environment({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None
    replicas = from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (replicas.rank, replicas.world_size, replicas.writes) == (1, 2, False)
    for bad in ({"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}):
        with pytest.raises(ConfigError):
            from_environment(bad)


def test_a_device_that_ranks_cannot_share_is_refused():
    with pytest.raises(ConfigError, match="cpu .gloo. or cuda .NCCL."):
        Replicas(0, 2).bind(torch.device("mps"))


def test_many_searches_under_torchrun_are_refused_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["compare", "--preset", "quick", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torchrun runs one search across devices" in err
