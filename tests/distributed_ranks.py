"""What each rank runs for tests/test_distributed.py, started by torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_ranks.py OUT

Every rank writes ``OUT/rank{r}.pt`` (gradients, final states) for the test to compare; the
searches with an ``out_dir`` give each rank its own folder, ``OUT/run{r}``, so that a file written
by rank 1 would show. The device is ``NDARTS_TEST_DEVICE`` (default cpu: gloo; cuda: NCCL).
"""
import os
import sys
import threading

import torch
import torch.distributed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ndarts_edu.data import ImageData, digits  # noqa: E402
from ndarts_edu.distributed import Replicas  # noqa: E402
from ndarts_edu.search import Search, SearchConfig  # noqa: E402
from tiny import TINY  # noqa: E402

SHARE = 16  # B: images per rank in the gradient checks (a global batch of R x B)


def tiny_data():
    """256 training digits, 64 test digits (as tests/conftest.py's ``tiny_data``)."""
    d = digits()
    return ImageData("digits-tiny", d.train_images[:256].clone(), d.train_labels[:256].clone(),
                     d.test_images[:64].clone(), d.test_labels[:64].clone(), num_classes=10)


def config(device, world_size, **changes):
    settings = dict(dataset="digits", epochs=1, batch_size=SHARE * world_size, threads=1,
                    device=device, seed=0, record_every=0, w_lr=0.05, alpha_lr=1e-2, **TINY)
    return SearchConfig(**{**settings, **changes})


def fixed_batches(search, world_size):
    """The first R x B images of each half (the test's single-process step takes the same)."""
    n = SHARE * world_size
    return (search.train_batches.images[:n], search.train_batches.labels[:n],
            search.valid_batches.images[:n], search.valid_batches.labels[:n])


def state_of(search):
    """The parts of a search's state that must be equal on every rank, as CPU tensors."""
    state = search.state_dict()
    cpu = lambda value: value.detach().cpu() if torch.is_tensor(value) else value  # noqa: E731
    return {"model": {k: cpu(v) for k, v in state["model"].items()},
            "w_optimizer": {k: {n: cpu(t) for n, t in s.items()}
                            for k, s in state["w_optimizer"]["state"].items()},
            "a_optimizer": {k: {n: cpu(t) for n, t in s.items()}
                            for k, s in state["a_optimizer"]["state"].items()},
            "history": state["history"]}


def main(out):
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    replicas = Replicas(rank, world_size, int(os.environ["LOCAL_RANK"]))
    device = os.environ.get("NDARTS_TEST_DEVICE", "cpu")
    data, report = tiny_data(), {"world_size": world_size}

    # 1. One step's gradients over this rank's share of a fixed global batch, noise off; the
    # readable cells (fused=False), whose batch norms the test's ghost batches replace.
    for order in (1, 2):
        search = Search(config(device, world_size, order=order, fused=False), data,
                        replicas=replicas)
        x_train, y_train, x_valid, y_valid = fixed_batches(search, world_size)
        train, valid = replicas.shard(x_train, y_train), replicas.shard(x_valid, y_valid)
        grads, loss = search.arch_gradients(*train, *valid)
        report[f"arch_grad_{order}"] = [g.cpu() for g in grads]
        report[f"arch_loss_{order}"] = float(loss)
        if order == 1:  # and the weights after one weight step on the train share
            search.weight_step(*train)
            report["weights_after_step"] = [w.detach().cpu() for w in search.weight_params]

    # 2. A whole search with noise, second order and drop-path: every rank must end equal.
    noisy = dict(noise_lambda=1.5, skip_drop_path=0.3, order=2)
    search = Search(config(device, world_size, **noisy), data, replicas=replicas)
    search.run(out_dir=os.path.join(out, f"run{rank}"))
    report["noisy_search"] = state_of(search)

    # 3. Stopped after epoch 1 and resumed equals the same search run straight through (on half
    # the images: 2 steps an epoch).
    half = ImageData("digits-half", data.train_images[:128], data.train_labels[:128],
                     data.test_images, data.test_labels, num_classes=10)
    straight = Search(config(device, world_size, epochs=2, noise_lambda=1.5), half,
                      replicas=replicas)
    straight.run()
    stop = threading.Event()
    paused = Search(config(device, world_size, epochs=2, noise_lambda=1.5), half,
                    replicas=replicas)
    paused.run(on_epoch=lambda record: stop.set(), stop=stop,
               out_dir=os.path.join(out, f"paused{rank}"))
    torch.distributed.barrier()  # rank 0 has written the checkpoint that every rank reads
    resumed = Search.resume(os.path.join(out, "paused0"), data=half, replicas=replicas)
    resumed.run()
    report["straight"], report["resumed"] = state_of(straight), state_of(resumed)
    report["paused_epochs"] = paused.epoch
    torch.save(report, os.path.join(out, f"rank{rank}.pt"))
    replicas.leave()


if __name__ == "__main__":
    main(sys.argv[1])
