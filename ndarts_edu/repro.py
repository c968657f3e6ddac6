"""Reproducibility: one function seeds everything, one records what produced a result.

Small CPU searches change with the number of torch threads (the order of floating-point sums in
the convolution kernels changes), so a run that must repeat pins the thread count and records it.
"""
import platform
import random

import numpy as np
import torch


def seed_everything(seed):
    """Seed Python's, numpy's and torch's generators (CPU and every GPU)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA's generators too


def set_threads(threads):
    """Pin torch's intra-op threads (``None`` leaves torch's default); returns the count in force."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def rng_state():
    """The generators' states, as tensors and plain data (loadable with ``weights_only=True``)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs: restore the generators of those that exist here.
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def environment(device):
    """Versions and hardware that produced a result: saved with it."""
    from . import __version__

    device = torch.device(device)
    info = {
        "ndarts_edu": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
