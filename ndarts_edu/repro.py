"""Reproducibility: one function seeds everything, one records what produced a result.

Small CPU searches change with the number of torch threads (the order of floating-point sums in
the convolution kernels changes), so a run that must repeat pins the thread count and records it.
On a GPU the kernels themselves may not repeat: ``make_deterministic`` sets the switches that make
them, and a result made on a GPU records them (``cuda_determinism``).
"""
import os
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
    """Pin torch's intra-op threads (``None`` leaves torch's default); returns the count in
    force."""
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
        # A checkpoint from a machine with more GPUs: restore the generators of those that exist
        # here.
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def make_deterministic():
    """Where results must repeat on a GPU: cuDNN's deterministic kernels (no autotuning), torch's
    deterministic algorithms (a warning, not an error, for an op that has none) and the cuBLAS
    workspace that makes its reductions repeat (``CUBLAS_WORKSPACE_CONFIG``: read when CUDA
    starts, so set it before, as ``benchmarks/gpu_check.sh`` does; set here if it is not).
    Returns the switches as ``cuda_determinism`` reads them. (On the CPU none of this is needed:
    a pinned thread count is, ``set_threads``.)"""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    return cuda_determinism()


def cuda_determinism():
    """The switches that decide whether CUDA results repeat, as they are now (recorded with a
    result on a GPU)."""
    return {"cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32}


def cpu_model():
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
        # numbers move between CPUs (other kernels): which CPU, and which of torch's kernels ran
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_determinism"] = cuda_determinism()
    return info
