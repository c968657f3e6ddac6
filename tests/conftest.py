"""Shared fixtures: a tiny search configuration, tiny data sets, one torch thread.

One thread for the whole test session: small CPU searches change with the thread count (the order
of floating-point sums in the kernels), and the tests compare runs for exact equality.
"""
import pytest
import torch

from ndarts_edu.data import ImageData, digits
from ndarts_edu.search import SearchConfig

torch.set_num_threads(1)

from tiny import TINY  # noqa: E402  (a module of its own: tests/browser has a conftest too)


@pytest.fixture
def tiny_config():
    """A search of the tiny supernet, 1 epoch, on CPU with 1 thread (seconds, not minutes)."""
    return SearchConfig(dataset="digits", epochs=1, batch_size=32, threads=1, device="cpu", seed=0, **TINY)


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


def random_data(n=64, channels=3, size=8, classes=10, seed=0):
    """Random images and labels as an ImageData (for shapes and timings, not for learning)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, channels, size, size, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return ImageData("random", images, labels, images[: n // 4].clone(), labels[: n // 4].clone(), classes)


@pytest.fixture
def make_random_data():
    return random_data
