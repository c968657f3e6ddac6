"""Shared fixtures: a tiny search configuration, tiny data sets, one torch thread.

One thread for the whole test session: small CPU searches change with the thread count (the order
of floating-point sums in the kernels), and the tests compare runs for exact equality.

``NDARTS_TEST_DEVICE=cuda`` runs the searches of ``tiny_config`` (and tests/test_distributed.py) on
CUDA, with the determinism switches on (``repro.make_deterministic``): what benchmarks/gpu_check.sh
does on a GPU machine. Tests marked ``cuda`` run only then.
"""
import os

import pytest
import torch

from ndarts_edu import repro
from ndarts_edu.data import ImageData, digits
from ndarts_edu.search import SearchConfig

torch.set_num_threads(1)
TEST_DEVICE = os.environ.get("NDARTS_TEST_DEVICE", "cpu")
if TEST_DEVICE.startswith("cuda") and torch.cuda.is_available():
    repro.make_deterministic()

from tiny import TINY  # noqa: E402  (a module of its own: tests/browser has a conftest too)


@pytest.fixture
def tiny_config():
    """A search of the tiny supernet, 1 epoch, on CPU with 1 thread (seconds, not minutes)."""
    return SearchConfig(dataset="digits", epochs=1, batch_size=32, threads=1, device=TEST_DEVICE,
                        seed=0, **TINY)


@pytest.fixture(scope="session")
def digits_data():
    """The embedded digits, loaded once."""
    return digits()


@pytest.fixture(scope="session")
def tiny_data(digits_data):
    """256 training digits (4 steps of 32 per half) and 64 test digits: a 1-epoch search in about a second."""
    d = digits_data
    return ImageData("digits-tiny", d.train_images[:256].clone(), d.train_labels[:256].clone(),
                     d.test_images[:64].clone(), d.test_labels[:64].clone(), num_classes=10)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip unless NDARTS_TEST_DEVICE=cuda on a machine with CUDA."""
    if TEST_DEVICE.startswith("cuda") and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs NDARTS_TEST_DEVICE=cuda and a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


def random_data(n=64, channels=3, size=8, classes=10, seed=0):
    """Random images and labels as an ImageData (for shapes and timings, not for learning)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, channels, size, size, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return ImageData("random", images, labels, images[: n // 4].clone(), labels[: n // 4].clone(), classes)


@pytest.fixture
def make_random_data():
    return random_data
