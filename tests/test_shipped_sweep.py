"""The noise sweep that ships with the package: made by the package's own command, and still true.

The slider of notebook 01 answers from ``ndarts_edu/datasets/sweep_cpu.json``. These tests check
that it belongs to the current ``cpu`` preset, that re-running one of its searches with the
library reproduces its numbers exactly (CPU, the preset's pinned thread count), and that it shows
what the package claims: skip domination at noise 0, none at the preset's noise level.
"""
import pytest

from ndarts_edu.experiments import load_sweep, sweep
from ndarts_edu.presets import preset_config, preset_noise
from ndarts_edu.search import SearchConfig


@pytest.fixture(scope="module")
def shipped():
    return load_sweep()


def _entry(data, noise_lambda, seed):
    return next(r for r in data["runs"] if r["noise_lambda"] == noise_lambda and r["seed"] == seed)


def test_shipped_sweep_belongs_to_the_cpu_preset(shipped):
    assert shipped["preset"] == "cpu"
    assert shipped["config"] == preset_config("cpu", noise_lambda=0.0).to_dict()
    assert preset_noise("cpu") in shipped["noise_lambdas"]
    assert {(r["noise_lambda"], r["seed"]) for r in shipped["runs"]} == {
        (lam, seed) for lam in shipped["noise_lambdas"] for seed in shipped["seeds"]}


def test_skip_dominates_without_noise_and_not_with_the_preset_noise(shipped):
    clean = [_entry(shipped, 0.0, s)["skip_share"] for s in shipped["seeds"]]
    noisy = [_entry(shipped, preset_noise("cpu"), s)["skip_share"] for s in shipped["seeds"]]
    assert sum(share >= 0.75 for share in clean) >= len(clean) - 1, clean
    assert sum(share <= 0.40 for share in noisy) >= len(noisy) - 1, noisy


@pytest.mark.slow
def test_rerunning_the_sweep_command_reproduces_the_shipped_numbers(shipped):
    """One (noise level, seed) point of the shipped grid, searched again from scratch."""
    noise_lambda, seed = preset_noise("cpu"), shipped["seeds"][0]
    fresh = sweep(SearchConfig.from_dict(shipped["config"]), [noise_lambda], [seed], preset="cpu")
    again, saved = fresh["runs"][0], _entry(shipped, noise_lambda, seed)
    for key in ("skip_share", "genotype_skips", "valid_accuracy", "genotype", "weights", "epochs",
                "skip_weight_steps"):
        assert again[key] == saved[key], key
