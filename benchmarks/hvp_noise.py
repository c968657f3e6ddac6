"""The second-order step under noise: how far apart are the two finite-difference gradients?

DARTS's second-order step takes the Hessian-vector product by central differences,
``(g+ - g-) / 2 eps`` with ``g+- = grad_alpha L_train(w +- eps v)`` and ``eps = 0.01 / ||v||``.
Without noise, ``||g+ - g-||`` is the Hessian term times ``2 eps``. With the skip noise drawn
afresh in each pass it also holds the difference of two noise draws, divided later by the tiny
``2 eps``; with one draw held for both passes (``noise.hold_draws``, as
``Search.unrolled_gradients`` does) it is the Hessian term of the noisy loss again. This script
prints the three figures:

- ``noise_off``: lambda 0;
- ``fresh_draws``: lambda 0.2, each pass its own draw (the step before the fix);
- ``held_draws``: lambda 0.2, both passes one draw (the step now).

Set-up: the ``cpu`` preset searched for one epoch (second order, lambda 0.2, seed 0), then for each
of ``--batches`` batch pairs ``v = grad_w L_val(w)`` without noise (a fixed direction for all three)
and the three differences on the train batch. Means over the batches. Usage::

    python benchmarks/hvp_noise.py [--noise-lambda 0.2] [--batches 8] [--seed 0]

It is a figure for the record, not a timed benchmark.
"""
import argparse
import json
import statistics
import threading

import torch
import torch.nn.functional as F

from ndarts_edu.noise import hold_draws
from ndarts_edu.presets import preset_config
from ndarts_edu.search import Search


def difference_norm(search, x, y, vector):
    """``||g+ - g-||`` of ``Search.hessian_vector_product``: 2 eps ||hvp||, eps = 0.01 / ||v||."""
    hvp = search.hessian_vector_product(x, y, vector)
    v_norm = torch.cat([v.reshape(-1) for v in vector]).norm()
    return float(2 * 0.01 / v_norm * torch.cat([h.reshape(-1) for h in hvp]).norm())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-lambda", type=float, default=0.2)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    search = Search(preset_config("cpu", order=2, noise_lambda=args.noise_lambda, seed=args.seed))
    stop = threading.Event()
    search.run(on_epoch=lambda record: stop.set(), stop=stop)  # one epoch of the 10-epoch plan
    model = search.model
    model.train()
    figures = {"noise_off": [], "fresh_draws": [], "held_draws": []}
    for _ in range(args.batches):
        x_train, y_train = search.train_batches.next()
        x_valid, y_valid = search.valid_batches.next()
        model.set_noise(0.0)
        vector = torch.autograd.grad(F.cross_entropy(model(x_valid), y_valid), search.weight_params)
        figures["noise_off"].append(difference_norm(search, x_train, y_train, vector))
        model.set_noise(args.noise_lambda)
        figures["fresh_draws"].append(difference_norm(search, x_train, y_train, vector))
        with hold_draws(model):
            figures["held_draws"].append(difference_norm(search, x_train, y_train, vector))
    means = {key: round(statistics.mean(values), 5) for key, values in figures.items()}
    print(json.dumps({"measure": "||g+ - g-||", "preset": "cpu", "epochs_searched": search.epoch,
                      "noise_lambda": args.noise_lambda, "batches": args.batches, "seed": args.seed,
                      **means,
                      "fresh_over_off": round(means["fresh_draws"] / means["noise_off"], 3),
                      "held_over_off": round(means["held_draws"] / means["noise_off"], 3),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
