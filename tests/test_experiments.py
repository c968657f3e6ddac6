"""compare (DARTS against NoisyDARTS over seeds), its table, and the noise sweep with its summary."""
import json
import threading

import pytest

from ndarts_edu import derive, experiments
from ndarts_edu.errors import ConfigError
from ndarts_edu.experiments import compare, format_table, summary_table, sweep, sweep_summary
from ndarts_edu.search import Search


@pytest.fixture
def quick_config(tiny_config):
    # compare and sweep load the digits themselves: batches of 256 make an epoch of 2 steps.
    return tiny_config.replace(batch_size=256)


def test_compare_runs_in_order(quick_config):
    seen = []
    out = compare(quick_config, [0.0, 0.5], [0], on_result=seen.append)
    runs = out["runs"]
    assert [r["config"]["noise_lambda"] for r in runs] == [0.0, 0.5]
    assert [r["config"]["seed"] for r in runs] == [0, 0]
    assert all(r["status"] == "finished" and r["epochs_done"] == 1 for r in runs)
    assert seen == runs
    # the noise level is the only difference between the two
    a, b = (dict(r["config"]) for r in runs)
    a.pop("noise_lambda"), b.pop("noise_lambda")
    assert a == b
    table = format_table(runs)
    seed_lines = [line for line in table.splitlines() if line.split("|")[0].strip() == "0"]
    assert len(seed_lines) == 1 and seed_lines[0].count("|") == 2


def test_compare_rejects_empty_and_bad_inputs(quick_config):
    with pytest.raises(ConfigError):
        compare(quick_config, [], [0])
    with pytest.raises(ConfigError):
        compare(quick_config, [0.1], [])
    with pytest.raises(ConfigError, match="noise_lambda"):
        compare(quick_config, [-0.1], [0])


def _run(lam, seed, share, skips, acc, seconds=1.0):
    return {"config": {"noise_lambda": lam, "seed": seed}, "skip_share": share, "genotype_skips": skips,
            "valid_accuracy": acc, "seconds": seconds}


RUNS = [_run(0.0, s, 0.5 + 0.1 * s, 4 + s, 0.8) for s in range(3)] + \
       [_run(1.0, s, 0.1 * s, s, 0.9) for s in range(3)]


def test_summary_table_means():
    rows, means = summary_table(RUNS)
    assert len(rows) == 6
    assert means[0.0]["skip_share"] == pytest.approx(0.6) and means[0.0]["genotype_skips"] == pytest.approx(5)
    assert means[1.0]["skip_share"] == pytest.approx(0.1) and means[1.0]["seeds"] == 3


def test_format_table_has_a_line_per_seed_labels_and_a_legend():
    lines = format_table(RUNS).splitlines()
    seed_lines = [line for line in lines if line[:5].strip().isdigit()]
    assert [int(line[:5]) for line in seed_lines] == [0, 1, 2]
    assert all(line.count("|") == 2 for line in seed_lines)  # one column group per noise level
    assert "DARTS (lambda 0)" in lines[0] and "NoisyDARTS (lambda 1)" in lines[0]
    heads = ["skip_share", "none", "skips", "accuracy", "raw", "seconds"]
    assert lines[1].split("|")[1].split() == heads
    # fractions, as the README; "-" where a result predates the none share and the raw accuracy
    assert seed_lines[1].split("|")[1].split() == ["0.60", "-", "5", "0.80", "-", "1.0"]
    mean_line = next(line for line in lines if line.startswith("mean"))
    assert mean_line.split("|")[1].split()[0] == "0.60" and mean_line.split("|")[2].split()[0] == "0.10"
    legend = lines[lines.index(mean_line) + 1:]
    for column in ("skip_share:", "none:", "skips:", "accuracy:", "raw:", "seconds:"):
        assert any(column in line for line in legend), column
    assert legend[-1].startswith("next: ") and "python -m ndarts_edu sweep" in legend[-1]


def test_format_table_shows_the_none_share_the_raw_accuracy_and_every_op():
    shares = {"none": 0.25, "skip_connect": 0.125, "sep_conv_3x3": 0.625}
    runs = [{**run, "op_shares": shares, "valid_accuracy_raw": 0.25} for run in RUNS]
    lines = format_table(runs).splitlines()
    seed_line = next(line for line in lines if line.startswith("0 "))
    assert seed_line.split("|")[1].split()[:5] == ["0.50", "0.25", "4", "0.80", "0.25"]
    wins = [line for line in lines if "the edges each op wins" in line]
    assert len(wins) == 2 and wins[0].startswith("DARTS (lambda 0)")
    assert "none 0.25, skip_connect 0.12, sep_conv_3x3 0.62" in wins[0]


def test_format_table_leaves_missing_runs_blank():
    lines = format_table(RUNS[:4]).splitlines()  # lambda 1.0 only has seed 0
    seed_lines = [line for line in lines if line[:5].strip().isdigit()]
    assert len(seed_lines) == 3
    assert seed_lines[1].rstrip().endswith("|")


def test_sweep_format_and_summary(quick_config, tmp_path):
    path = tmp_path / "sweep.json"
    data = sweep(quick_config.replace(record_every=1), [0.0, 1.0], [0], out_path=str(path), preset="test")
    assert data["format"] == experiments.SWEEP_FORMAT and data["preset"] == "test"
    assert data["noise_lambdas"] == [0.0, 1.0] and data["seeds"] == [0]
    assert data["ops"] == ["none", "skip_connect", "sep_conv_3x3"]
    assert data["environment"]["torch_threads"] == 1
    assert [r["noise_lambda"] for r in data["runs"]] == [0.0, 1.0]
    for run in data["runs"]:
        assert len(run["epochs"]) == 1 and len(run["skip_weight_steps"]) == 2
        assert len(run["weights"]["normal"]) == 5 and 0 <= run["skip_share"] <= 1
    assert experiments.load_sweep(str(path)) == data
    summary = sweep_summary(data)
    assert [s["noise_lambda"] for s in summary] == [0.0, 1.0]
    assert summary[1]["skip_share_mean"] == data["runs"][1]["skip_share"]
    for run, row in zip(data["runs"], summary):
        assert run["op_shares"] == derive.op_shares(run["weights"]["normal"], data["ops"])
        assert run["epochs"][-1]["op_shares"] == run["op_shares"]
        assert row["op_shares_mean"] == run["op_shares"]
        raw = run["valid_accuracy_raw"]
        assert row["valid_accuracy_raw_mean"] == raw == run["epochs"][-1]["valid_accuracy_raw"]


def test_sweep_summary_aggregates_over_seeds():
    data = {"noise_lambdas": [0.0, 0.5, 1.0], "runs": [
        {"noise_lambda": 0.0, "skip_share": 0.8, "valid_accuracy": 0.5, "genotype_skips": 6},
        {"noise_lambda": 0.0, "skip_share": 0.4, "valid_accuracy": 0.7, "genotype_skips": 2},
        {"noise_lambda": 1.0, "skip_share": 0.1, "valid_accuracy": 0.9, "genotype_skips": 1},
    ]}
    summary = sweep_summary(data)
    assert [s["noise_lambda"] for s in summary] == [0.0, 1.0]  # a level without runs is left out
    first = summary[0]
    assert first["seeds"] == 2
    assert first["skip_share_mean"] == pytest.approx(0.6)
    assert (first["skip_share_min"], first["skip_share_max"]) == (0.4, 0.8)
    assert first["valid_accuracy_mean"] == pytest.approx(0.6) and first["genotype_skips_mean"] == 4


def test_load_sweep_rejects_other_files(tmp_path):
    with pytest.raises(ConfigError, match="no sweep"):
        experiments.load_sweep(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="not an ndarts_edu sweep"):
        experiments.load_sweep(str(bad))


def test_shipped_sweep_summarises_every_level():
    data = experiments.load_sweep()
    assert data["format"] == experiments.SWEEP_FORMAT
    assert len(data["runs"]) == len(data["noise_lambdas"]) * len(data["seeds"])
    summary = sweep_summary(data)
    assert [s["noise_lambda"] for s in summary] == data["noise_lambdas"]
    for s in summary:
        shares = [r["skip_share"] for r in data["runs"] if r["noise_lambda"] == s["noise_lambda"]]
        assert s["seeds"] == len(data["seeds"])
        assert s["skip_share_min"] <= s["skip_share_mean"] <= s["skip_share_max"]
        assert s["skip_share_mean"] == pytest.approx(sum(shares) / len(shares))


def test_compare_continues_from_its_file_and_reruns_nothing_it_holds(quick_config, tmp_path):
    path = str(tmp_path / "compare.json")
    stop = threading.Event()
    first = compare(quick_config, [0.0, 0.5], [0], out_path=path, on_result=lambda r: stop.set(), stop=stop)
    assert [r["config"]["noise_lambda"] for r in first["runs"]] == [0.0]  # stopped after one search
    assert json.load(open(path))["runs"] == json.loads(json.dumps(first["runs"]))

    ran = []
    again = compare(quick_config, [0.0, 0.5], [0], out_path=path, on_result=ran.append)
    assert [r["config"]["noise_lambda"] for r in ran] == [0.5]  # only the missing search ran
    assert [r["config"]["noise_lambda"] for r in again["runs"]] == [0.0, 0.5]
    assert again["runs"][0]["seconds"] == first["runs"][0]["seconds"]  # the kept one, not a rerun
    assert json.load(open(path))["runs"][1]["config"]["noise_lambda"] == 0.5

    ran.clear()
    other = compare(quick_config.replace(epochs=2), [0.0], [0], out_path=path, on_result=ran.append)
    assert len(ran) == 1  # other settings: nothing to reuse, and nothing dropped either
    saved = json.load(open(path))["runs"]
    assert saved == json.loads(json.dumps(other["runs"] + again["runs"]))  # the new grid's first, then the others


def test_sweep_continues_from_its_file_in_grid_order(quick_config, tmp_path):
    path = str(tmp_path / "sweep.json")
    sweep(quick_config, [1.0], [0], out_path=path)
    ran = []
    data = sweep(quick_config, [0.0, 1.0], [0], out_path=path, on_result=ran.append)
    assert [r["config"]["noise_lambda"] for r in ran] == [0.0]
    assert [r["noise_lambda"] for r in data["runs"]] == [0.0, 1.0]
    assert experiments.load_sweep(path) == data
    assert sweep(quick_config, [0.0, 1.0], [0], out_path=path, on_result=ran.append) == data and len(ran) == 1


def test_an_out_file_of_another_kind_is_named(quick_config, tmp_path):
    path = tmp_path / "compare.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ConfigError, match="exists but is not a compare file"):
        compare(quick_config, [0.0], [0], out_path=str(path))


def test_a_search_run_again_is_found_in_its_sweep_and_reproduces_it(quick_config):
    base = quick_config.replace(record_every=1)
    data = sweep(base, [0.0, 1.0], [0], preset="test")
    again = Search(base.replace(noise_lambda=1.0)).run()
    point = experiments.sweep_point(data, again["config"])
    assert point is data["runs"][1]
    assert experiments.reproduction_gaps(point, again) == []
    # off the grid, or another base search: not in the sweep
    assert experiments.sweep_point(data, base.replace(noise_lambda=0.5, seed=0)) is None
    assert experiments.sweep_point(data, base.replace(seed=3)) is None
    assert experiments.sweep_point(data, base.replace(w_lr=0.01)) is None
    # what is further than another CPU moves a search is named, where it is
    moved = json.loads(json.dumps(point))
    edge = 1 / len(point["weights"]["normal"])
    moved["epochs"][0]["skip_share"] += (experiments.EPOCH_EDGES_APART + 1) * edge
    moved["skip_share"] += experiments.EDGES_APART * edge  # within the bound: not named
    moved["genotype_skips"] += experiments.CELL_SKIPS_APART + 1
    moved["valid_accuracy"] += 2 * experiments.ACCURACY_APART
    moved["weights"]["normal"][2][1] += 1.0  # the weights are not compared across CPUs
    moved["op_shares"]["none"] += 1.0  # nor the shares of ops other than skip
    gaps = experiments.reproduction_gaps(moved, again)
    assert len(gaps) == 3, gaps
    assert any(g.startswith("epoch 1: skip_share ") for g in gaps)
    assert any(g.startswith("at the end: valid_accuracy ") for g in gaps)
    assert any(g.startswith("at the end: ") and "skips in the derived cell" in g for g in gaps)


def test_an_entry_saved_before_the_batch_norm_re_estimation_compares_its_raw_accuracy(quick_config):
    base = quick_config.replace(record_every=1)
    point = sweep(base, [1.0], [0], preset="test")["runs"][0]
    again = Search(base.replace(noise_lambda=1.0)).run()
    old = json.loads(json.dumps(point))
    for record in [old] + old["epochs"]:  # as the sweeps of before: no raw figure, no op shares
        record["valid_accuracy"] = record.pop("valid_accuracy_raw")
        record.pop("op_shares")
    assert experiments.reproduction_gaps(old, again) == []
    old["valid_accuracy"] = again["valid_accuracy_raw"] + 2 * experiments.RAW_ACCURACY_APART
    assert experiments.reproduction_gaps(old, again) == [
        f"at the end: valid_accuracy_raw {again['valid_accuracy_raw']:.4f} here, valid_accuracy "
        f"{old['valid_accuracy']:.4f} saved (> {experiments.RAW_ACCURACY_APART})"]
