"""The genotype rules (DARTS's top-2, FairDARTS's threshold) and the skip counts, on hand-made weights."""
from collections import namedtuple

import pytest
import torch

from ndarts_edu.derive import (darts_genotype_string, derive_cell, derive_genotype, genotype_skips,
                               mean_op_shares, op_shares, skip_share, strongest_ops)
from ndarts_edu.network import edge_inputs

OPS = ("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3")

# 2 nodes, 5 edges: node 0 reads states 0, 1 (edges 0, 1); node 1 reads states 0, 1, 2 (edges 2, 3, 4).
# `none` is the largest weight on edges 0 and 3: a rule that forgot to exclude it would keep them.
SOFTMAX = [
    [0.90, 0.05, 0.03, 0.02],  # edge 0: best non-none skip 0.05
    [0.10, 0.20, 0.60, 0.10],  # edge 1: sep 0.60
    [0.00, 0.50, 0.30, 0.20],  # edge 2: skip 0.50
    [0.70, 0.12, 0.10, 0.08],  # edge 3: skip 0.12 -> the weakest of node 1, dropped
    [0.20, 0.10, 0.10, 0.60],  # edge 4: max_pool 0.60
]


def test_strongest_ops_exclude_none():
    assert strongest_ops(SOFTMAX, OPS) == [(1, 0.05), (2, 0.60), (1, 0.50), (1, 0.12), (3, 0.60)]


def test_darts_rule_by_hand():
    cell = derive_cell(SOFTMAX, OPS)
    assert cell == [["skip_connect", 0], ["sep_conv_3x3", 1],   # node 0: both of its edges
                    ["skip_connect", 0], ["max_pool_3x3", 2]]   # node 1: edges 2 and 4, by input
    assert genotype_skips(cell) == 2


def test_darts_rule_accepts_tensors_and_gives_both_cells():
    reduce = [row[::-1] for row in SOFTMAX]  # other weights for the reduction cell
    genotype = derive_genotype({"normal": torch.tensor(SOFTMAX), "reduce": reduce}, OPS)
    assert genotype["normal"] == derive_cell(SOFTMAX, OPS)
    assert genotype["reduce"] == derive_cell(reduce, OPS)
    assert genotype["normal_concat"] == genotype["reduce_concat"] == [2, 3]


def test_darts_rule_four_nodes_keeps_two_edges_per_node():
    torch.manual_seed(0)
    weights = torch.softmax(torch.randn(14, 4) * 2, dim=-1)
    cell = derive_cell(weights, OPS)
    assert len(cell) == 8
    best = strongest_ops(weights, OPS)
    for node in range(4):
        kept = cell[2 * node: 2 * node + 2]
        sources = [s for _, s in kept]
        assert sources == sorted(set(sources)) and all(0 <= s < node + 2 for s in sources)
        # the kept edges are the node's two strongest, each with its strongest non-none op
        edges = [(e, s) for e, (n, s) in enumerate(edge_inputs(4)) if n == node]
        ranked = sorted(edges, key=lambda es: -best[es[0]][1])[:2]
        assert sorted(s for _, s in ranked) == sources
        for op, s in kept:
            e = next(e for e, src in edges if src == s)
            assert op == OPS[best[e][0]] != "none"
    assert derive_genotype({"normal": weights, "reduce": weights}, OPS)["normal_concat"] == [2, 3, 4, 5]


def test_fairdarts_threshold_rule_by_hand():
    sigmoid = [
        [0.99, 0.80, 0.10, 0.10],  # edge 0: best non-none 0.80 < 0.85: dropped
        [0.00, 0.10, 0.20, 0.84],  # edge 1: 0.84: dropped
        [0.50, 0.90, 0.95, 0.20],  # edge 2: sep 0.95: kept
        [0.10, 0.86, 0.20, 0.30],  # edge 3: skip 0.86: kept
        [0.99, 0.60, 0.50, 0.40],  # edge 4: not in node 1's top 2
    ]
    # node 0 (state 2) keeps nothing, so each op names its node (state 3)
    assert derive_cell(sigmoid, OPS, threshold=0.85) == [["sep_conv_3x3", 0, 3], ["skip_connect", 1, 3]]
    assert derive_cell(sigmoid, OPS, threshold=0.5) == [["skip_connect", 0, 2], ["max_pool_3x3", 1, 2],
                                                        ["sep_conv_3x3", 0, 3], ["skip_connect", 1, 3]]
    # equal to the threshold is kept
    assert derive_cell(sigmoid, OPS, threshold=0.86)[-1] == ["skip_connect", 1, 3]
    assert genotype_skips(derive_cell(sigmoid, OPS, threshold=0.5)) == 2


def test_op_shares_count_the_largest_weight_of_all_ops_none_included():
    shares = op_shares(SOFTMAX, OPS)
    # none wins edges 0 and 3, where skip_share's rule (none excluded) credits skip
    assert shares == {"none": 0.4, "skip_connect": 0.2, "sep_conv_3x3": 0.2, "max_pool_3x3": 0.2}
    assert list(shares) == list(OPS) and sum(shares.values()) == pytest.approx(1.0)
    tie = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert op_shares(tie, OPS)["none"] == 1.0  # a tie goes to the first op
    zeros = {name: 0.0 for name in OPS}
    assert mean_op_shares([shares, None, zeros]) == {k: v / 2 for k, v in shares.items()}
    assert mean_op_shares([None]) is None


def test_skip_share_counts_every_edge():
    assert skip_share(SOFTMAX, OPS) == pytest.approx(3 / 5)  # edges 0, 2, 3 (none excluded)
    assert skip_share([[0.0, 1.0, 0.0, 0.0]] * 14, OPS) == 1.0
    assert skip_share(SOFTMAX, ("none", "avg_pool_3x3", "sep_conv_3x3", "max_pool_3x3")) == 0.0


def test_genotype_skips():
    assert genotype_skips([]) == 0
    assert genotype_skips([["skip_connect", 0], ["sep_conv_3x3", 1], ["skip_connect", 2]]) == 2


def test_wrong_edge_count():
    with pytest.raises(ValueError, match="4 edges"):
        derive_cell(SOFTMAX[:4], OPS)


def test_darts_genotype_string_is_what_dartss_genotypes_py_holds():
    genotype = derive_genotype({"normal": SOFTMAX, "reduce": SOFTMAX}, OPS)
    text = darts_genotype_string(genotype)
    assert text == ("Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
                    "('max_pool_3x3', 2)], normal_concat=range(2, 4), reduce=[('skip_connect', 0), "
                    "('sep_conv_3x3', 1), ('skip_connect', 0), ('max_pool_3x3', 2)], reduce_concat=range(2, 4))")
    # it is Python: DARTS's namedtuple rebuilds the cells
    Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    built = eval(text, {"Genotype": Genotype, "range": range})
    assert [list(p) for p in built.normal] == genotype["normal"] and list(built.normal_concat) == [2, 3]


def test_darts_genotype_string_refuses_a_cell_it_cannot_write():
    sparse = {"normal": [["skip_connect", 0, 3]], "normal_concat": [2, 3],
              "reduce": [["skip_connect", 0, 2], ["sep_conv_3x3", 1, 2]], "reduce_concat": [2]}
    with pytest.raises(ValueError, match="normal cell does not keep two ops per node"):
        darts_genotype_string(sparse)
    full = dict(sparse, normal=sparse["reduce"], normal_concat=[2])
    assert darts_genotype_string(full).startswith("Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1)], "
                                                  "normal_concat=range(2, 3)")
