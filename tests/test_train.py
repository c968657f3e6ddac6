"""The derived network: built from a genotype, trained from scratch, as plain data; and `train` on the command line."""
import json

import pytest
import torch

from ndarts_edu import derive
from ndarts_edu.cli import main
from ndarts_edu.data import ImageData, digits
from ndarts_edu.errors import ConfigError
from ndarts_edu.ops import SPACES
from ndarts_edu.presets import preset_config
from ndarts_edu.train import (Network, TrainConfig, check_genotype, count_parameters, random_genotype,
                              read_genotype_file, train_genotype)

SKIPS = {"normal": [["skip_connect", 0], ["skip_connect", 1], ["skip_connect", 0], ["skip_connect", 2]],
         "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 2]]}
CONVS = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 2]],
         "reduce": SKIPS["reduce"]}
TINY = TrainConfig(layers=3, channels=4, epochs=2, batch_size=32, device="cpu", threads=1)


@pytest.fixture(scope="module")
def small_digits():
    """600 training and 200 test digits: enough to learn, quick to train on."""
    d = digits()
    return ImageData("digits", d.train_images[:600], d.train_labels[:600], d.test_images[:200],
                     d.test_labels[:200], d.num_classes)


# -- genotypes ------------------------------------------------------------------------------------------
def test_pairs_become_two_per_node_in_order():
    checked = check_genotype(SKIPS)
    assert [node for _, _, node in checked["normal"]] == [2, 2, 3, 3]
    assert checked["normal_concat"] == [2, 3]


def test_what_derive_writes_is_a_genotype():
    weights = {kind: torch.softmax(torch.randn(14, 3), dim=-1) for kind in ("normal", "reduce")}
    genotype = derive.derive_genotype(weights, SPACES["s3"])
    net = Network(genotype, in_channels=1, num_classes=10, channels=4, layers=3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("bad, words", [
    ({"normal": SKIPS["normal"]}, "no 'reduce' cell"),
    ({**SKIPS, "normal": [["conv_9x9", 0], ["skip_connect", 1]]}, "unknown op 'conv_9x9'"),
    ({**SKIPS, "normal": [["none", 0], ["skip_connect", 1]]}, "unknown op 'none'"),
    ({**SKIPS, "normal": [["skip_connect", 0], ["skip_connect", 2]]}, "input 2 of node 2"),
    ({**SKIPS, "normal": [["skip_connect", 0]]}, "two per node"),
    ({**SKIPS, "normal": [["skip_connect", 0], ["skip_connect", 1, 2]]}, "mixes"),
    ({**SKIPS, "normal_concat": [2, 7]}, "normal_concat"),
    (["skip_connect", 0], "must be a dict"),
])
def test_a_bad_genotype_is_named(bad, words):
    with pytest.raises(ConfigError, match=words):
        check_genotype(bad)


def test_a_node_left_without_ops_is_dropped():
    # FairDARTS's threshold can leave node 3 without an op: node 4 reading it keeps its other input.
    sparse = {"normal": [["sep_conv_3x3", 0, 2], ["sep_conv_3x3", 3, 4], ["skip_connect", 1, 4]],
              "reduce": [["sep_conv_3x3", 0, 2], ["sep_conv_3x3", 1, 2]]}
    net = Network(sparse, in_channels=1, num_classes=10, channels=4, layers=1)
    assert net.cells[0].concat == [2, 4]
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_fairdarts_genotype_from_derive_builds_as_it_is():
    # At 0.85 node 2 keeps nothing and node 3 one op (skip from input 0): derive writes triples.
    sigmoid = [[0.0, 0.2, 0.3, 0.1]] * 2 + [[0.0, 0.9, 0.1, 0.1], [0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.1, 0.2]]
    ops = ("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3")
    genotype = derive.derive_genotype({"normal": sigmoid, "reduce": sigmoid}, ops, threshold=0.85)
    assert genotype["normal"] == [["skip_connect", 0, 3]]
    checked = check_genotype(genotype)
    assert checked["normal"] == [["skip_connect", 0, 3]] and checked["normal_concat"] == [2, 3]
    net = Network(genotype, in_channels=1, num_classes=10, channels=4, layers=3)
    assert all(cell.concat == [3] for cell in net.cells)  # the empty node 2 is dropped
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_the_derived_network_has_bare_pools_as_dartss_final_network():
    max_pool, avg_pool = "max_pool_3x3", "avg_pool_3x3"
    genotype = {"normal": [[max_pool, 0], [avg_pool, 1], ["skip_connect", 0], [max_pool, 2]],
                "reduce": [[avg_pool, 0], [max_pool, 1], ["skip_connect", 2], [avg_pool, 1]]}
    net = Network(genotype, in_channels=1, num_classes=10, channels=4, layers=3)
    bare = (torch.nn.MaxPool2d, torch.nn.AvgPool2d)
    pools = [op for cell in net.cells for op in cell.ops if isinstance(op, bare)]
    assert len(pools) == 9  # every pool of the three cells is the op itself, no batch norm after it
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_random_cells_are_reproducible_and_vary():
    first, again, other = (random_genotype(SPACES["s3"], nodes=4, seed=s) for s in (0, 0, 1))
    assert first == again and first != other
    checked = check_genotype(first)
    assert all(op != "none" for op, _, _ in checked["normal"] + checked["reduce"])
    assert len(checked["normal"]) == 8


def test_a_cell_of_skips_has_fewer_parameters():
    skips, convs = (count_parameters(Network(g, 1, 10, channels=8, layers=3)) for g in (SKIPS, CONVS))
    assert skips < convs


def test_eval_mode_is_deterministic_even_with_drop_path():
    net = Network(CONVS, 1, 10, channels=4, layers=3)
    net.drop_prob = 0.5
    x = torch.randn(4, 1, 8, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


# -- training ---------------------------------------------------------------------------------------------
def test_training_learns_and_returns_plain_data(small_digits):
    seen = []
    result = train_genotype(CONVS, TINY.replace(epochs=3), data=small_digits, on_epoch=seen.append)
    json.dumps(result, allow_nan=False)  # plain data all the way down
    assert result["status"] == "finished" and result["epochs_done"] == 3 == len(seen)
    assert result["history"] == seen
    assert result["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]


def test_more_test_sets_are_measured_at_the_end(small_digits):
    x, y = small_digits.test_images, small_digits.test_labels
    result = train_genotype(CONVS, TINY, data=small_digits, test_sets={"again": (x, y), "few": (x[:7], y[:7])})
    accuracies = result["test_accuracies"]
    assert set(accuracies) == {"test", "again", "few"}
    assert accuracies["test"] == accuracies["again"] == result["test_accuracy"]  # the same images
    assert 7 * accuracies["few"] == pytest.approx(round(7 * accuracies["few"]), abs=1e-4)  # of 7


def test_a_seed_repeats_a_training(small_digits):
    def without_time(result):
        return [{k: v for k, v in record.items() if k != "seconds"} for record in result["history"]]

    first, again = (train_genotype(SKIPS, TINY, data=small_digits) for _ in range(2))
    assert without_time(first) == without_time(again)


def test_a_stop_ends_after_the_current_epoch(small_digits):
    import threading

    stop = threading.Event()
    result = train_genotype(SKIPS, TINY.replace(epochs=3), data=small_digits, on_epoch=lambda r: stop.set(), stop=stop)
    assert result["status"] == "stopped" and result["epochs_done"] == 1


def test_the_budget_comes_from_the_search():
    search = preset_config("quick", seed=3)
    config = TrainConfig.from_search(search, epochs=7)
    assert (config.layers, config.channels, config.batch_size, config.seed, config.epochs) == \
           (search.layers, search.channels, search.batch_size, 3, 7)
    assert config.lr == TrainConfig().lr  # DARTS's recipe for the final network, not the search's
    assert TrainConfig.from_search(search.to_dict()) == TrainConfig.from_search(search)
    with pytest.raises(ConfigError, match="unknown training setting"):
        TrainConfig().replace(learning_rate=0.1)
    with pytest.raises(ConfigError, match="channels must be even"):
        TrainConfig(channels=5).validate()
    with pytest.raises(ConfigError, match="grad_clip must be > 0.0, got 0"):
        TrainConfig(grad_clip=0).validate()


# -- files and the command line --------------------------------------------------------------------------
def test_a_result_json_brings_its_search_settings(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"genotype": SKIPS, "config": preset_config("quick").to_dict()}))
    genotype, search_config = read_genotype_file(str(path))
    assert genotype == check_genotype(SKIPS) and search_config["layers"] == preset_config("quick").layers
    path.write_text(json.dumps(SKIPS))
    assert read_genotype_file(str(path)) == (check_genotype(SKIPS), None)


def test_cli_train_writes_train_json(tmp_path, capsys):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"genotype": SKIPS, "config": preset_config("quick").to_dict()}))
    code = main(["train", "--genotype", str(path), "--epochs", "1", "--seed", "2", "--device", "cpu",
                 "--threads", "1", "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["config"]["epochs"] == 1 and result["config"]["seed"] == 2
    assert result["config"]["layers"] == preset_config("quick").layers
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("text, words", [
    ("{not json", "is not valid JSON"),
    (json.dumps({**SKIPS, "normal": [["conv_9x9", 0], ["skip_connect", 1]]}), "unknown op 'conv_9x9'"),
    (json.dumps({"genotype": {"normal": []}}), "no 'reduce' cell"),
])
def test_cli_train_names_what_is_wrong(tmp_path, capsys, text, words):
    path = tmp_path / "genotype.json"
    path.write_text(text)
    assert main(["train", "--genotype", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err


def test_cli_train_needs_an_existing_file(tmp_path, capsys):
    assert main(["train", "--genotype", str(tmp_path / "missing.json")]) == 2
    assert "no genotype file" in capsys.readouterr().err
