"""Connectome graph operations (Chu et al. 2022): longest paths, types, shuffles, perturbation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_mesoscale.connectome.graph_ops import (
    condensation,
    degree_preserving_shuffle,
    graph_features,
    longest_path_lengths,
    node_type_labels,
    perturb_graph,
    smooth_graph,
)


def _random_graph(n: int, p: float, seed: int, dag: bool = False) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, n)) < p).astype(float) * rng.uniform(0.5, 3.0, (n, n))
    np.fill_diagonal(dense, 0)
    if dag:
        dense = np.triu(dense, 1)
        perm = rng.permutation(n)  # hide the topological order
        dense = dense[np.ix_(perm, perm)]
    return sp.csr_matrix(dense)


def _reach(dense: np.ndarray) -> np.ndarray:
    n = dense.shape[0]
    reach = (dense != 0) | np.eye(n, dtype=bool)
    for k in range(n):  # Warshall
        reach |= reach[:, [k]] & reach[[k], :]
    return reach


def _brute_longest(adjacency: sp.csr_matrix, weighted: bool = False) -> np.ndarray:
    """Max over all simple paths from each node of the distinct SCCs visited (or the weight
    sum of the edges between SCCs) — exhaustive DFS."""
    dense = adjacency.toarray()
    n = dense.shape[0]
    reach = _reach(dense)
    mutual = reach & reach.T
    scc = np.array([int(np.flatnonzero(mutual[i])[0]) for i in range(n)])
    out = np.zeros(n)
    for start in range(n):
        best = 0.0
        stack = [(start, (start,), 0.0)]
        while stack:
            node, path, wsum = stack.pop()
            value = wsum if weighted else len({scc[v] for v in path})
            best = max(best, value)
            for nxt in np.flatnonzero(dense[node]):
                if nxt not in path:
                    step = 0.0 if scc[nxt] == scc[node] else abs(dense[node, nxt])
                    stack.append((nxt, (*path, nxt), wsum + step))
        out[start] = best
    return out


@pytest.mark.parametrize("seed", range(4))
def test_longest_path_matches_brute_force_on_dags(seed: int) -> None:
    graph = _random_graph(9, 0.3, seed, dag=True)
    got = longest_path_lengths(graph)
    assert np.array_equal(got, _brute_longest(graph))
    # on a DAG every component is one node: "neurons" counts the same
    assert np.array_equal(longest_path_lengths(graph, count="neurons"), got)


def test_longest_path_weighted_dag_is_heaviest_path() -> None:
    # the heaviest path needs a separate brute force: max weight path, not max node count
    for seed in range(3):
        graph = _random_graph(8, 0.35, 10 + seed, dag=True)
        dense = graph.toarray()
        best = np.zeros(8)
        for start in range(8):
            stack = [(start, 0.0)]
            while stack:
                node, w = stack.pop()
                best[start] = max(best[start], w)
                for nxt in np.flatnonzero(dense[node]):
                    stack.append((nxt, w + dense[node, nxt]))
        assert np.allclose(longest_path_lengths(graph, weighted=True), best)


@pytest.mark.parametrize("seed", range(4))
def test_longest_path_matches_brute_force_on_cyclic_graphs(seed: int) -> None:
    graph = _random_graph(9, 0.18, 100 + seed).tolil()
    graph[0, 1] = graph[1, 2] = graph[2, 0] = 1.0  # a real cycle in every graph
    graph = graph.tocsr()
    labels, dag = condensation(graph)
    assert labels.max() + 1 <= 7 and labels[0] == labels[1] == labels[2]
    assert np.array_equal(longest_path_lengths(graph), _brute_longest(graph))
    assert np.allclose(longest_path_lengths(graph, weighted=True), _brute_longest(graph, True))
    # the condensation is acyclic and has no self loops
    assert dag.diagonal().sum() == 0
    n_comp, _ = sp.csgraph.connected_components(dag, directed=True, connection="strong")
    assert n_comp == dag.shape[0]


def test_longest_path_counts_on_a_known_graph() -> None:
    # 0 -> 1 -> {2 <-> 3} -> 4 ; 5 isolated
    graph = sp.csr_matrix((np.ones(5), ([0, 1, 2, 3, 3], [1, 2, 3, 2, 4])), shape=(6, 6))
    assert longest_path_lengths(graph).tolist() == [4, 3, 2, 2, 1, 1]
    assert longest_path_lengths(graph, count="neurons").tolist() == [5, 4, 3, 3, 1, 1]
    assert longest_path_lengths(graph, direction="in").tolist() == [1, 2, 3, 3, 4, 1]


def test_longest_path_scales_to_a_long_chain() -> None:
    n = 20_000
    chain = sp.csr_matrix((np.ones(n - 1), (np.arange(n - 1), np.arange(1, n))), shape=(n, n))
    perm = np.random.default_rng(0).permutation(n)
    shuffled = chain[perm][:, perm]
    got = longest_path_lengths(shuffled)
    assert np.array_equal(got, (n - np.arange(n))[perm])


def test_graph_features_and_type_labels() -> None:
    graph = _random_graph(60, 0.05, 3, dag=True)
    frame = graph_features(graph, hops=2, weighted_path=True)
    for column in ("degree", "information_flow", "neighbourhood_2", "longest_path", "scc_size"):
        assert column in frame.columns
    assert np.array_equal(frame["longest_path"], longest_path_lengths(graph))
    types = node_type_labels(frame, percentile=80)
    path = frame["longest_path"].to_numpy()
    flow = frame["information_flow"].to_numpy()
    assert np.array_equal(types["primary_sensory"], path > np.percentile(path, 80))
    valid = np.isfinite(flow)
    assert np.array_equal(
        types["sensory"], valid & (np.nan_to_num(flow, nan=-1) > np.nanpercentile(flow, 80))
    )
    low = np.nanpercentile(flow, 20)
    assert np.array_equal(types["associative"], valid & (np.nan_to_num(flow, nan=9) < low))
    assert types["primary_sensory"].sum() > 0
    label = types["type_label"].astype(str).to_numpy()
    assert set(label) <= {"primary_sensory", "sensory", "associative", "other"}
    assert (label[types["primary_sensory"].to_numpy()] == "primary_sensory").all()
    assert isinstance(types, pd.DataFrame) and len(types) == 60


@pytest.mark.parametrize("method", ["swap", "configuration"])
def test_shuffle_preserves_degrees_exactly(method: str) -> None:
    graph = sp.random(400, 400, density=0.02, random_state=1, format="csr")
    graph.setdiag(0)
    graph.eliminate_zeros()
    out = degree_preserving_shuffle(graph, method=method, seed=2)
    assert out.nnz == graph.nnz
    assert np.array_equal(np.diff(out.indptr), np.diff(graph.indptr))
    assert np.array_equal(
        np.bincount(out.indices, minlength=400), np.bincount(graph.indices, minlength=400)
    )
    assert out.diagonal().sum() == 0  # no self loops
    # weights move with their pre-synaptic node: out-weights are kept
    assert np.allclose(np.asarray(out.sum(axis=1)).ravel(), np.asarray(graph.sum(axis=1)).ravel())
    # the wiring really changed: most edges moved
    overlap = graph.multiply(out > 0).nnz
    assert overlap < 0.2 * graph.nnz


def test_shuffle_bad_input() -> None:
    with pytest.raises(ValueError, match="square"):
        degree_preserving_shuffle(sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="method"):
        degree_preserving_shuffle(sp.eye(3, format="csr"), method="rewire")
    with pytest.raises(ValueError, match="NaN"):
        degree_preserving_shuffle(sp.csr_matrix(np.array([[0, np.nan], [1, 0]])))


def test_perturbation_rates() -> None:
    rng = np.random.default_rng(0)
    n, m = 2000, 40_000
    pre, post = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = pre != post
    graph = sp.csr_matrix((np.ones(keep.sum()), (pre[keep], post[keep])), shape=(n, n))
    e = graph.nnz
    dropped = perturb_graph(graph, drop=0.2, seed=1)
    assert abs(dropped.nnz / e - 0.8) < 4 * np.sqrt(0.16 / e)
    assert dropped.multiply(graph).nnz == dropped.nnz  # only original edges remain
    added = perturb_graph(graph, add=0.1, seed=1)
    assert added.nnz == e + round(0.1 * e)
    assert graph.multiply(added).nnz == e and added.diagonal().sum() == 0
    flipped = perturb_graph(graph, reverse=0.3, seed=1)
    both = graph.multiply(graph.T).nnz  # edges whose reverse exists never flip
    moved = e - graph.multiply(flipped).nnz
    assert abs(moved / (e - both) - 0.3) < 4 * np.sqrt(0.21 / (e - both))
    # reversal keeps every node's total degree (in + out) and the edge count
    assert flipped.nnz == e
    assert np.array_equal(
        np.diff(flipped.indptr) + np.bincount(flipped.indices, minlength=n),
        np.diff(graph.indptr) + np.bincount(graph.indices, minlength=n),
    )
    noisy = perturb_graph(graph, weight_noise=0.5, seed=1)
    assert noisy.nnz == e
    assert abs(np.std(np.log(noisy.data)) - 0.5) < 0.02
    with pytest.raises(ValueError, match="probability"):
        perturb_graph(graph, drop=1.5)
    with pytest.raises(ValueError, match="add"):
        perturb_graph(graph, add=-1)


def test_smoothing_diffusion_and_gaussian() -> None:
    graph = sp.csr_matrix((np.ones(3), ([0, 1, 2], [1, 2, 0])), shape=(4, 4))
    same = smooth_graph(graph, alpha=0.0)
    assert np.allclose(same.toarray(), graph.toarray())
    smooth = smooth_graph(graph, alpha=0.5, hops=1).toarray()
    # row sums are kept (a row-stochastic average of rows), node 3 (isolated) keeps nothing
    assert np.allclose(smooth.sum(axis=1), graph.toarray().sum(axis=1))
    assert smooth[0, 1] == pytest.approx(0.5) and smooth[0, 0] > 0  # mass spread to neighbours
    # the patent's Gaussian filter + quantisation removes an isolated spurious edge from a block
    block = np.zeros((30, 30))
    block[5:15, 5:15] = 1.0
    np.fill_diagonal(block, 0)
    block[25, 2] = 1.0  # spurious
    block[8, 9] = 0.0  # missing
    cleaned = smooth_graph(sp.csr_matrix(block), method="gaussian", sigma=1.0, threshold=0.3)
    dense = cleaned.toarray()
    assert dense[25, 2] == 0 and dense[8, 9] == 1
    with pytest.raises(ValueError, match="max_dense"):
        smooth_graph(sp.eye(50, format="csr"), method="gaussian", max_dense=10)
    with pytest.raises(ValueError, match="method"):
        smooth_graph(graph, method="median")


def test_longest_path_bad_input() -> None:
    with pytest.raises(ValueError, match="count"):
        longest_path_lengths(sp.eye(3, format="csr"), count="edges")
    with pytest.raises(ValueError, match="square"):
        longest_path_lengths(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        longest_path_lengths(sp.csr_matrix((0, 0)))
