"""The ablations: their variants, the runner (saved as it goes, resumable), the shipped file, the command line."""
import json

import pytest

from ndarts_edu import ablations
from ndarts_edu.cli import main
from ndarts_edu.errors import ConfigError
from ndarts_edu.presets import preset_config, preset_noise
from ndarts_edu.search import SearchConfig

QUICK = preset_config("quick", epochs=1)


def test_every_variant_is_a_valid_search_and_changes_one_idea():
    lam = preset_noise("cpu")
    base = preset_config("cpu", noise_lambda=0.0)
    variants = ablations.ablation_variants(lam, base)
    keys = [key for key, *_ in variants]
    assert len(set(keys)) == len(keys) and set(keys) == set(ablations.PAPER_REFERENCE)
    for key, group, label, settings in variants:
        config = base.replace(**settings).validate()
        noisy = config.noise_lambda > 0 or config.noise_mean != 0
        assert noisy == (group not in ("baseline", "other cure")), key
        if group in ("kind", "mean", "where"):
            assert config.noise_lambda == lam, key  # compared at the NoisyDARTS level
    means = {key: base.replace(**s).noise_mean for key, _, _, s in variants}
    assert means["mean_plus"] > 0 > means["mean_minus"] and means["gaussian"] == 0
    # the reference's biased runs decay the noise to 0 over the search (--noise_decay)
    decays = {key: base.replace(**s).noise_decay for key, _, _, s in variants}
    assert decays["mean_plus"] == decays["mean_minus"] == "cosine" and decays["gaussian"] == "none"


def test_fairdarts_is_searched_as_fairdarts():
    """FairDARTS's own settings (fairdarts/train_search.py and architect.py) on the reference base,
    its learning rates scaled like the rest of a preset; one zero-one loss of weight 10."""
    reference = SearchConfig().replace(**ablations.fairdarts_settings())
    assert (reference.weighting, reference.zero_one_weight) == ("sigmoid", 10.0)
    assert tuple(reference.alpha_betas) == (0.9, 0.999)  # arch_lr_gamma 0.9, not DARTS's 0.5
    assert (reference.alpha_lr, reference.w_lr, reference.w_lr_min) == (3e-3, 0.005, 0.001)
    cpu = preset_config("cpu", noise_lambda=0.0)
    scaled = cpu.replace(**ablations.fairdarts_settings(cpu))
    assert scaled.alpha_lr == pytest.approx(10 * cpu.alpha_lr)
    assert scaled.w_lr == min(cpu.w_lr, 0.005)
    assert scaled.w_lr_min <= scaled.w_lr
    settings = next(s for k, _, _, s in ablations.ablation_variants(1.0, cpu) if k == "fairdarts")
    assert settings == ablations.fairdarts_settings(cpu)


def test_runs_are_plain_data_saved_as_they_go_and_resumed(tmp_path):
    path = tmp_path / "ablations.json"
    finished = []
    data = ablations.run_ablations(QUICK, 1.0, [0], only=["darts", "gaussian"], out_path=str(path),
                                   on_result=finished.append)
    assert len(finished) == 2 and [r["variant"] for r in data["runs"]] == ["darts", "gaussian"]
    assert json.loads(path.read_text()) == json.loads(json.dumps(data, allow_nan=False))
    assert data["runs"][0]["epochs"][-1]["skip_share"] == data["runs"][0]["skip_share"]
    # a second call with the same settings finds both searches done and runs only the new one
    again = []
    more = ablations.run_ablations(QUICK, 1.0, [0], only=["gaussian", "uniform"], out_path=str(path),
                                   on_result=again.append)
    assert len(again) == 1 and again[0]["config"]["noise_kind"] == "uniform"
    assert [r["variant"] for r in more["runs"]] == ["darts", "gaussian", "uniform"]
    assert [v["key"] for v in more["variants"]] == ["darts", "gaussian", "uniform"]


def test_the_summary_and_table_cover_every_variant_run(tmp_path):
    data = ablations.run_ablations(QUICK, 1.0, [0, 1], only=["darts", "fairdarts"])
    rows = ablations.ablation_summary(data)
    assert [row["key"] for row in rows] == ["darts", "fairdarts"] and all(row["seeds"] == 2 for row in rows)
    darts = [r["skip_share"] for r in data["runs"] if r["variant"] == "darts"]
    assert rows[0]["skip_share_mean"] == pytest.approx(sum(darts) / 2)
    table = ablations.format_ablations(data)
    assert "DARTS (no noise)" in table and "FairDARTS" in table and "97.46" in table


def test_bad_requests_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown ablation 'gaussian_tiny'"):
        ablations.run_ablations(QUICK, 1.0, [0], only=["gaussian_tiny"])
    with pytest.raises(ConfigError, match="noise_lambda must be > 0"):
        ablations.ablation_variants(0)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ablations.load_ablations(str(bad))
    bad.write_text(json.dumps({"runs": []}))
    with pytest.raises(ConfigError, match="not an ndarts_edu ablations file"):
        ablations.load_ablations(str(bad))


def test_the_shipped_ablations_match_the_cpu_preset():
    # If the cpu preset changes, the shipped numbers no longer describe it: recompute them
    # (python -m ndarts_edu ablations, then copy runs/ablations/ablations.json to ndarts_edu/datasets/ablations_cpu.json).
    data = ablations.load_ablations()
    assert data["config"] == preset_config("cpu", noise_lambda=0.0).to_dict()
    assert data["noise_lambda"] == preset_noise("cpu")
    assert len(data["seeds"]) >= 3
    done = {(r["variant"], r["seed"]) for r in data["runs"]}
    assert done == {(key, seed) for key, *_ in ablations.ablation_variants(data["noise_lambda"]) for seed in data["seeds"]}


def test_cli_ablations(tmp_path, capsys):
    code = main(["ablations", "--preset", "quick", "--epochs", "1", "--seeds", "0", "--only", "darts",
                 "--out", str(tmp_path)])
    assert code == 0
    assert "1 of 1 searches" in capsys.readouterr().out
    assert ablations.load_ablations(str(tmp_path / "ablations.json"))["runs"][0]["variant"] == "darts"
    assert main(["ablations", "--preset", "quick", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown ablation 'nope'" in capsys.readouterr().err


def test_a_rerun_reproduces_the_first_epochs_of_a_saved_run():
    data = ablations.run_ablations(preset_config("quick", epochs=2), 1.0, [1], only=["gaussian"])
    saved = data["runs"][0]["epochs"]
    again = ablations.rerun_epochs(data, "gaussian", 1, epochs=1)
    assert again == saved[:1]
    with pytest.raises(ConfigError, match="unknown ablation"):
        ablations.rerun_epochs(data, "darts", 1)
