"""From architecture weights to a discrete cell (the genotype), and how much of it is skip or none.

Works on plain data (lists of rows, one row per edge in the order of ``network.edge_inputs``,
one column per op) so a saved ``result.json`` derives exactly like a live supernet.

- DARTS's rule: for each intermediate node keep the 2 incoming edges whose strongest
  non-``none`` op has the largest weight, and on each edge that op.
- FairDARTS's rule: the same top-2 edges, but an op is kept only if its sigmoid weight is
  at least a threshold (0.85 in the reference code), so a node may keep fewer than 2 edges.
  Its cells are written as ``[op, input, node]`` triples: with a pair missing, the position in
  the list no longer says which node an op feeds.

Inputs and nodes are numbered as states of the cell: 0 and 1 are the cell's two inputs, 2 the
first intermediate node.
"""
from .network import CELL_TYPES, edge_inputs
from .ops import NONE, SKIP


def _rows(weights):
    """Accept a tensor, an array or nested lists; return a list of lists of floats."""
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu()
    if hasattr(weights, "tolist"):
        weights = weights.tolist()
    return [[float(w) for w in row] for row in weights]


def _nodes_of(num_edges):
    nodes, edges = 0, 0
    while edges < num_edges:
        edges += 2 + nodes
        nodes += 1
    if edges != num_edges:
        raise ValueError(f"{num_edges} edges do not make a cell (2 + 3 + ... edges expected)")
    return nodes


def strongest_ops(weights, op_names):
    """For each edge, ``(index, weight)`` of its strongest op other than ``none``."""
    rows = _rows(weights)
    candidates = [k for k, name in enumerate(op_names) if name != NONE]
    return [max(((k, row[k]) for k in candidates), key=lambda kw: kw[1]) for row in rows]


def derive_cell(weights, op_names, threshold=None):
    """The discrete cell, in node order.

    ``threshold=None`` is DARTS's rule: ``[op, input]`` pairs, two per node. A number is
    FairDARTS's threshold on the kept op's weight: ``[op, input, node]`` triples, up to two per
    node.
    """
    # every edge j -> i: its strongest op k other than `none`, and that op's weight f_k
    best = strongest_ops(weights, op_names)
    nodes = _nodes_of(len(best))
    by_node = {i: [] for i in range(nodes)}
    for edge, (node, source) in enumerate(edge_inputs(nodes)):
        by_node[node].append((source, *best[edge]))
    cell = []
    for node in range(nodes):
        # node i keeps the 2 incoming edges of largest f_k, in the order of their inputs
        top_two = sorted(by_node[node], key=lambda e: -e[2])[:2]
        for source, k, w in sorted(top_two):
            if threshold is None:
                cell.append([op_names[k], source])
            # FairDARTS: an op stays only if its weight f_k >= threshold
            elif w >= threshold:
                cell.append([op_names[k], source, 2 + node])
    return cell


def derive_genotype(weights, op_names, threshold=None):
    """A genotype dict: ``normal`` and ``reduce`` cells and their ``*_concat`` node lists."""
    genotype = {}
    for kind in CELL_TYPES:
        rows = _rows(weights[kind])
        genotype[kind] = derive_cell(rows, op_names, threshold)
        genotype[f"{kind}_concat"] = list(range(2, 2 + _nodes_of(len(rows))))
    return genotype


def skip_share(weights, op_names):
    """Fraction of the cell's edges whose strongest non-``none`` op is ``skip_connect``.

    Measured on every edge of the supernet's cell (14 for 4 nodes), not only the derived ones,
    so it sees the whole competition; 0 when the space has no skip.
    """
    best = strongest_ops(weights, op_names)
    return sum(op_names[k] == SKIP for k, _ in best) / len(best)


def op_shares(weights, op_names):
    """``{op: fraction}`` of the cell's edges on which each op has the largest weight of ALL ops.

    Unlike ``skip_share`` (DARTS's rule, ``none`` never chosen), ``none`` counts here: a noise
    that takes the edges from skip only to hand them to ``none`` (RobustDARTS's other degenerate
    cell) shows as a large ``none`` share. Ties go to the op listed first. The fractions sum to 1.
    """
    rows = _rows(weights)
    wins = [max(range(len(row)), key=row.__getitem__) for row in rows]
    return {name: sum(k == j for k in wins) / len(rows) for j, name in enumerate(op_names)}


def mean_op_shares(shares):
    """The mean of several ``op_shares`` dicts, op by op (``None`` entries, from files that predate
    ``op_shares``, are left out); ``None`` when there is none."""
    shares = [s for s in shares if s]
    if not shares:
        return None
    return {name: sum(s.get(name, 0.0) for s in shares) / len(shares) for name in shares[0]}


def genotype_skips(cell):
    """Number of ``skip_connect`` ops in a derived cell (``[op, input]`` pairs or
    ``[op, input, node]`` triples)."""
    return sum(entry[0] == SKIP for entry in cell)


def with_nodes(cell):
    """The cell as ``[op, input, node]`` triples: DARTS's pairs come two per node in node order,
    FairDARTS's triples already name their node."""
    return [list(entry) if len(entry) == 3 else [entry[0], entry[1], 2 + k // 2]
            for k, entry in enumerate(cell)]


def darts_genotype_string(genotype):
    """The genotype as DARTS's ``genotypes.py`` writes one, to paste into code built on DARTS::

        Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6),
                 reduce=[...], reduce_concat=range(2, 6))

    DARTS's format has no node numbers, so a FairDARTS cell (``[op, input, node]`` triples) is
    refused unless it keeps two ops on every node.
    """
    parts = []
    for kind in CELL_TYPES:
        cell = with_nodes(genotype[kind])
        nodes = [node for *_, node in cell]
        if nodes != [2 + k // 2 for k in range(len(cell))]:
            raise ValueError(f"the {kind} cell does not keep two ops per node (nodes {nodes}); "
                             "DARTS's Genotype cannot say which node an op feeds")
        pairs = ", ".join(f"({op!r}, {source})" for op, source, _ in cell)
        concat = list(genotype[f"{kind}_concat"])
        consecutive = concat == list(range(concat[0], concat[-1] + 1))
        span = f"range({concat[0]}, {concat[-1] + 1})" if consecutive else repr(concat)
        parts.append(f"{kind}=[{pairs}], {kind}_concat={span}")
    return f"Genotype({', '.join(parts)})"
