"""The GPU path: searches on CUDA repeat with the determinism switches, and agree with the CPU.

Marked ``cuda``: they run with ``NDARTS_TEST_DEVICE=cuda`` on a machine with CUDA (what
benchmarks/gpu_check.sh does) and skip elsewhere. The other tests that take ``tiny_config`` run on
CUDA then too; these are the ones that only mean something there.
"""
import pytest
import torch

from ndarts_edu import repro
from ndarts_edu.search import Search

pytestmark = pytest.mark.cuda


def _flat(tensors):
    return torch.cat([t.detach().reshape(-1).double().cpu() for t in tensors])


def relative(a, b):
    return float((_flat(a) - _flat(b)).norm() / _flat(b).norm())


def test_a_search_on_cuda_repeats_bit_for_bit_with_the_switches_on(tiny_config, tiny_data):
    config = tiny_config.replace(noise_lambda=1.5, order=2, skip_drop_path=0.3, device="cuda")
    switches = repro.make_deterministic()
    first, second = Search(config, tiny_data).run(), Search(config, tiny_data).run()
    for result in (first, second):
        result.pop("seconds")
        for epoch in result["history"]["epochs"]:
            epoch.pop("seconds")
    assert first == second
    assert first["environment"]["cuda_determinism"] == switches
    assert first["environment"]["gpu"] and first["config"]["device"].startswith("cuda")


@pytest.mark.parametrize("order", [1, 2])
def test_the_architecture_gradient_on_cuda_is_the_cpus_within_rounding(tiny_config, tiny_data,
                                                                       order):
    """Without TF32 (cuDNN's default lets convolutions round to 10 mantissa bits on Ampere and
    later), CUDA's float32 gradient is within 10 times the CPU's own float32 rounding of the exact
    (float64) one; with TF32 the distance is printed."""
    def gradient(device, dtype):
        search = Search(tiny_config.replace(device=device, order=order), tiny_data)
        search.model.to(dtype)
        batch = [search.train_batches.images[:32], search.train_batches.labels[:32],
                 search.valid_batches.images[:32], search.valid_batches.labels[:32]]
        batch = [t.to(dtype) if t.is_floating_point() else t for t in batch]
        return search.arch_gradients(*batch)[0]

    exact = gradient("cpu", torch.float64)
    rounding = relative(gradient("cpu", torch.float32), exact)
    tf32 = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        with_tf32 = relative(gradient("cuda", torch.float32), exact)
        torch.backends.cudnn.allow_tf32 = False
        without = relative(gradient("cuda", torch.float32), exact)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    print(f"order {order}: cpu float32 {rounding:.2e}, cuda float32 {without:.2e}, "
          f"cuda with TF32 {with_tf32:.2e} (relative to float64)")
    assert without <= 10 * rounding
