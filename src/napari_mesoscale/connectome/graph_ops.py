"""Graph operations on a connectome for connectome-derived filters (Chu et al. 2022).

* :func:`longest_path_lengths` — the patent's *path length* node feature: the longest path
  starting from each node, taken in the condensation DAG (strongly connected components
  collapsed) so that it is defined and computable on cyclic graphs.
* :func:`graph_features` — :func:`napari_mesoscale.connectome.node_features` plus the path
  length; :func:`node_type_labels` — the patent's type labels from those features.
* :func:`degree_preserving_shuffle` — directed edge swaps or a directed configuration model
  that keep every node's in- and out-degree exactly (the null model of the ablation).
* :func:`perturb_graph` — edge dropout / addition / reversal and weight noise at given rates.
* :func:`smooth_graph` — k-hop diffusion of the adjacency, or the patent's Gaussian filter of
  the adjacency array followed by quantisation.

All functions take a square scipy.sparse adjacency pre→post (or a
:class:`~napari_mesoscale.connectome.Connectome`) and are vectorised (no loop over nodes), so
they run on 100k-node graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse import csgraph

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.progress import Progress

__all__ = [
    "condensation",
    "degree_preserving_shuffle",
    "graph_features",
    "longest_path_lengths",
    "node_type_labels",
    "perturb_graph",
    "smooth_graph",
]


# ---------------------------------------------------------------------------------------- input
def _adjacency(graph: Any, what: str = "adjacency") -> sp.csr_matrix:
    """Square CSR (float64, duplicates summed, sorted) from a Connectome or sparse/dense matrix."""
    from napari_mesoscale.connectome.graph import Connectome

    if isinstance(graph, Connectome):
        graph = graph.adjacency
    if sp.issparse(graph):
        matrix = sp.csr_matrix(graph, dtype=np.float64)
    elif isinstance(graph, np.ndarray):
        if graph.ndim != 2:
            raise ValueError(f"{what} must be a 2-D (N, N) matrix; got {graph.ndim} dimensions.")
        matrix = sp.csr_matrix(graph.astype(np.float64))
    else:
        raise ValueError(
            f"{what} must be a Connectome, a scipy.sparse matrix or a 2-D numpy array; "
            f"got {type(graph).__name__}."
        )
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{what} must be square (N, N) pre→post; got shape {matrix.shape}.")
    if matrix.shape[0] == 0:
        raise ValueError(f"{what} is empty (0 nodes); pass a graph with at least one node.")
    matrix.sum_duplicates()
    matrix.sort_indices()
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        raise ValueError(f"{what} holds NaN or infinite weights; clean them before calling.")
    return matrix


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value}.")
    return value


# ------------------------------------------------------------------------- longest path (DAG)
def condensation(adjacency: Any) -> tuple[np.ndarray, sp.csr_matrix]:
    """Strongly connected components and the condensation DAG.

    Parameters
    ----------
    adjacency : sparse matrix (N, N) or Connectome
        Pre→post adjacency; a stored entry is an edge (its value is its weight).

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        Component of every node.
    dag : csr_matrix, shape (C, C)
        Edge c→d between components when some edge leaves c for d; its value is the largest
        absolute weight of those edges. No self loops; acyclic.
    """
    matrix = _adjacency(adjacency)
    n_comp, labels = csgraph.connected_components(matrix, directed=True, connection="strong")
    labels = labels.astype(np.int64)
    coo = matrix.tocoo()
    a, b = labels[coo.row], labels[coo.col]
    between = a != b
    a, b, w = a[between], b[between], np.abs(coo.data[between])
    if a.size:
        key = a * n_comp + b
        order = np.lexsort((-w, key))
        key, w = key[order], w[order]
        first = np.ones(key.size, dtype=bool)
        first[1:] = key[1:] != key[:-1]
        key, w = key[first], w[first]  # the largest weight of each component pair
        a, b = key // n_comp, key % n_comp
    dag = sp.csr_matrix((w, (a, b)), shape=(n_comp, n_comp))
    dag.sort_indices()
    return labels, dag


def _component_values(labels: np.ndarray, n_comp: int, weighted: bool, count: str) -> np.ndarray:
    """What a component adds to a path's length: nothing (weighted), its size, or 1."""
    if weighted:
        return np.zeros(n_comp)
    if count == "neurons":
        return np.bincount(labels, minlength=n_comp).astype(np.float64)
    return np.ones(n_comp)


def longest_path_lengths(
    adjacency: Any,
    *,
    weighted: bool = False,
    count: str = "components",
    direction: str = "out",
    callback: Any = None,
) -> np.ndarray:
    """Length of the longest path starting from every node, in the condensation DAG.

    The patent's path-length feature is "the length of the longest path in the graph starting
    from the node", the length being the number of nodes on it. On a graph with cycles that is
    NP-hard (and unbounded for walks), so every strongly connected component is collapsed to
    one node first; the result is then exact and takes O(N + E) work (a Kahn sweep in reverse
    topological order, one vectorised step per DAG level).

    Parameters
    ----------
    adjacency : sparse matrix (N, N) or Connectome
        Pre→post adjacency.
    weighted : bool
        False: count nodes (see ``count``). True: the sum of edge weights along the heaviest
        path (patent paragraph 0144); the weight between two components is the largest absolute
        weight of the edges joining them, edges inside a component add nothing.
    count : {"components", "neurons"}
        Unweighted length: the number of components on the path (a node of a DAG counts 1,
        so on an acyclic graph this is the number of nodes on the longest path), or the sum of
        their sizes (every neuron of every component passed).
    direction : {"out", "in"}
        "out": paths starting at the node (downstream, the patent's definition); "in": paths
        ending at it (upstream depth).
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    ndarray, shape (N,)
        int64 for unweighted lengths (≥ 1), float64 when ``weighted`` (≥ 0).
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    if count not in ("components", "neurons"):
        raise ValueError(f"count must be 'components' or 'neurons'; got {count!r}.")
    if direction not in ("out", "in"):
        raise ValueError(f"direction must be 'out' or 'in'; got {direction!r}.")
    labels, dag = condensation(adjacency)
    if direction == "in":
        dag = dag.T.tocsr()
    n_comp = dag.shape[0]
    node_value = _component_values(labels, n_comp, weighted, count)
    # height(c) = value(c) + max over successors s of (w(c, s) + height(s)), sinks first
    reverse = dag.T.tocsr()  # row s lists the predecessors c of s
    edge_w = reverse.data if weighted else np.zeros(reverse.nnz)
    remaining = np.diff(dag.indptr).astype(np.int64)  # successors not yet final
    best = np.full(n_comp, -np.inf)
    height = np.zeros(n_comp)
    frontier = np.flatnonzero(remaining == 0)
    height[frontier] = node_value[frontier]
    done = frontier.size
    while frontier.size:
        starts, stops = reverse.indptr[frontier], reverse.indptr[frontier + 1]
        lengths = stops - starts
        if lengths.sum() == 0:
            break
        idx = np.repeat(stops - lengths.cumsum(), lengths) + np.arange(lengths.sum())
        preds = reverse.indices[idx]
        succ = np.repeat(frontier, lengths)
        np.maximum.at(best, preds, height[succ] + edge_w[idx])
        np.subtract.at(remaining, preds, 1)
        touched = np.unique(preds)
        frontier = touched[remaining[touched] == 0]
        height[frontier] = node_value[frontier] + best[frontier]
        done += frontier.size
        progress.report(done / n_comp, f"longest paths: {done}/{n_comp} components")
    if done != n_comp:  # pragma: no cover - a condensation is always acyclic
        raise RuntimeError("condensation graph is not acyclic")
    lengths = height[labels]
    if weighted:
        return lengths.astype(np.float64)
    return np.rint(lengths).astype(np.int64)


# --------------------------------------------------------------------- features and type labels
def graph_features(
    connectome: Any,
    *,
    hops: int = 2,
    weighted_path: bool = False,
    callback: Any = None,
) -> pd.DataFrame:
    """All node features of the patent: degrees, information flow, neighbourhood size and the
    longest path in the condensation DAG.

    Parameters
    ----------
    connectome : Connectome or sparse matrix (N, N)
    hops : int
        Path-length bound of the neighbourhood size (0 skips it).
    weighted_path : bool
        Also add ``longest_path_weighted`` (sum of edge weights along the heaviest path).
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    DataFrame
        The columns of :func:`napari_mesoscale.connectome.node_features` plus
        ``longest_path`` (nodes on the longest downstream path, components counted),
        ``longest_path_in`` (the same upstream), ``scc`` (component id) and ``scc_size``.
    """
    from napari_mesoscale.connectome.features import node_features

    if isinstance(connectome, np.ndarray):
        connectome = sp.csr_matrix(_adjacency(connectome))
    progress = Progress.wrap(callback, ConnectomeCancelled)
    frame = node_features(connectome, hops=hops, callback=progress.stage(0.0, 0.7))
    labels, _ = condensation(connectome)
    frame["longest_path"] = longest_path_lengths(
        connectome, callback=progress.stage(0.7, 0.85, "downstream")
    )
    frame["longest_path_in"] = longest_path_lengths(
        connectome, direction="in", callback=progress.stage(0.85, 1.0, "upstream")
    )
    if weighted_path:
        frame["longest_path_weighted"] = longest_path_lengths(connectome, weighted=True)
    frame["scc"] = labels
    frame["scc_size"] = np.bincount(labels)[labels]
    return frame


#: The patent's type labels (paragraph 0145), in priority order when a node qualifies twice.
TYPE_LABELS: tuple[str, ...] = ("primary_sensory", "sensory", "associative", "other")


def node_type_labels(
    features: pd.DataFrame | Any,
    *,
    percentile: float = 90.0,
) -> pd.DataFrame:
    """Predicted neuron types from node features (patent paragraph 0145).

    * ``primary_sensory``: path length above the ``percentile``-th percentile of all nodes;
    * ``sensory``: information flow (fraction of outgoing edges) above that percentile;
    * ``associative``: information flow below the ``100 - percentile``-th percentile;
    * ``other``: none of these.

    Comparisons are strict, as in the patent ("greater than the 90th percentile"), so ties at
    the threshold are not selected. Isolated nodes (information flow NaN) are never sensory or
    associative.

    Parameters
    ----------
    features : DataFrame or Connectome or sparse matrix
        A table with ``longest_path`` and ``information_flow`` columns (from
        :func:`graph_features`), or a graph to compute them from.
    percentile : float
        In (50, 100).

    Returns
    -------
    DataFrame, one row per node
        Boolean columns ``primary_sensory``, ``sensory``, ``associative`` and a categorical
        ``type_label`` (the first true label in :data:`TYPE_LABELS` order, else ``other``).
    """
    if not 50.0 < float(percentile) < 100.0:
        raise ValueError(f"percentile must be in (50, 100); got {percentile}.")
    if not isinstance(features, pd.DataFrame):
        features = graph_features(features, hops=0)
    missing = [c for c in ("longest_path", "information_flow") if c not in features.columns]
    if missing:
        raise ValueError(
            f"features lack column(s) {missing}; compute them with graph_features(connectome)."
        )
    path = features["longest_path"].to_numpy(dtype=np.float64)
    flow = features["information_flow"].to_numpy(dtype=np.float64)
    out = pd.DataFrame(index=features.index)
    out["primary_sensory"] = path > np.nanpercentile(path, percentile)
    valid = np.isfinite(flow)
    if valid.any():
        high = np.nanpercentile(flow, percentile)
        low = np.nanpercentile(flow, 100.0 - percentile)
        out["sensory"] = valid & (np.nan_to_num(flow, nan=-np.inf) > high)
        out["associative"] = valid & (np.nan_to_num(flow, nan=np.inf) < low)
    else:
        out["sensory"] = False
        out["associative"] = False
    label = np.full(len(out), "other", dtype=object)
    for name in reversed(TYPE_LABELS[:-1]):
        label[out[name].to_numpy()] = name
    out["type_label"] = pd.Categorical(label, categories=list(TYPE_LABELS))
    return out


# ------------------------------------------------------------------------------------ shuffles
def _edges(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coo = matrix.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.copy()


def _swap_edges(
    pre: np.ndarray,
    post: np.ndarray,
    n: int,
    n_swaps: int,
    rng: np.random.Generator,
    allow_self_loops: bool,
    max_rounds: int = 10_000,
    callback: Any = None,
) -> tuple[np.ndarray, int]:
    """Directed double-edge swaps (a→b, c→d) → (a→d, c→b) in vectorised batches.

    ``post`` is permuted in place among edges; ``pre`` never changes, so every edge keeps its
    pre-synaptic node (and its weight). Returns the new ``post`` and the number of swaps done.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    post = post.copy()
    m = pre.size
    if m < 2:
        return post, 0
    done, rounds = 0, 0
    keys = np.sort(pre * n + post)
    batch = max(1, min(m // 4, n_swaps))
    while done < n_swaps and rounds < max_rounds:
        rounds += 1
        want = min(batch, n_swaps - done)
        perm = rng.permutation(m)[: 2 * want]
        e1, e2 = perm[0::2], perm[1::2]
        e1, e2 = e1[: e2.size], e2
        a, b, c, d = pre[e1], post[e1], pre[e2], post[e2]
        new1, new2 = a * n + d, c * n + b
        ok = b != d
        if not allow_self_loops:
            ok &= (a != d) & (c != b)
        # the new edges must not exist already, nor be proposed twice in this batch
        ok &= ~np.isin(new1, keys) & ~np.isin(new2, keys)
        proposed = np.concatenate([new1[ok], new2[ok]])
        if proposed.size:
            uniq, counts = np.unique(proposed, return_counts=True)
            dup = uniq[counts > 1]
            if dup.size:
                ok &= ~np.isin(new1, dup) & ~np.isin(new2, dup)
        e1, e2, b, d = e1[ok], e2[ok], b[ok], d[ok]
        if e1.size:
            post[e1], post[e2] = d, b
            keys = np.sort(pre * n + post)
            done += e1.size
        progress.report(done / n_swaps, f"edge swaps: {done}/{n_swaps}")
        if e1.size == 0 and rounds > 50 and done == 0:
            break  # no valid swap exists (e.g. a complete graph)
    return post, done


def degree_preserving_shuffle(
    adjacency: Any,
    *,
    method: str = "swap",
    n_swaps: int | None = None,
    allow_self_loops: bool = False,
    seed: int | np.random.Generator | None = 0,
    callback: Any = None,
) -> sp.csr_matrix:
    """Randomise the wiring, keeping every node's in-degree and out-degree exactly.

    Every edge keeps its pre-synaptic node and its weight (so out-weights and the sign of each
    pre-synaptic neuron are kept too); only post-synaptic partners move.

    Parameters
    ----------
    adjacency : sparse matrix (N, N) or Connectome
        Pre→post adjacency.
    method : {"swap", "configuration"}
        "swap": repeated directed double-edge swaps (a→b, c→d) → (a→d, c→b) that never create a
        self loop or a duplicate edge (a Markov chain on simple digraphs with these degrees).
        "configuration": a directed configuration model — post stubs permuted at random —
        whose self loops and multi-edges are then repaired by swaps, followed by swap mixing.
    n_swaps : int, optional
        Swaps to perform (default 10 per edge).
    allow_self_loops : bool
        Allow swaps that create self loops.
    seed : int or Generator
        Random seed.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    csr_matrix (N, N), float64, with the same number of stored edges.
    """
    if method not in ("swap", "configuration"):
        raise ValueError(f"method must be 'swap' or 'configuration'; got {method!r}.")
    matrix = _adjacency(adjacency)
    rng = _rng(seed)
    n = matrix.shape[0]
    pre, post, data = _edges(matrix)
    if n_swaps is None:
        n_swaps = 10 * pre.size
    if int(n_swaps) != n_swaps or n_swaps < 0:
        raise ValueError(f"n_swaps must be a whole number ≥ 0; got {n_swaps}.")
    if method == "configuration" and pre.size:
        post = post[rng.permutation(post.size)]
        post = _repair(pre, post, n, rng, allow_self_loops)
    post, _ = _swap_edges(
        pre,
        post,
        n,
        int(n_swaps),
        rng,
        allow_self_loops,
        callback=Progress.wrap(callback, ConnectomeCancelled),
    )
    out = sp.csr_matrix((data, (pre, post)), shape=matrix.shape)
    out.sort_indices()
    return out


def _repair(
    pre: np.ndarray, post: np.ndarray, n: int, rng: np.random.Generator, allow_self_loops: bool
) -> np.ndarray:
    """Swap the post ends of bad edges (self loops, repeated pairs) with random other edges."""
    post = post.copy()
    for _ in range(1000):
        key = pre * n + post
        order = np.argsort(key, kind="stable")
        repeated = np.zeros(key.size, dtype=bool)
        repeated[order[1:]] = key[order[1:]] == key[order[:-1]]
        bad = repeated if allow_self_loops else repeated | (pre == post)
        bad_idx = np.flatnonzero(bad)
        if bad_idx.size == 0:
            return post
        partner = rng.integers(0, key.size, size=bad_idx.size)
        keep = partner != bad_idx
        bad_idx, partner = bad_idx[keep], partner[keep]
        # apply the swap to the unique pairs only (an index may appear once per round)
        _, first = np.unique(np.concatenate([bad_idx, partner]), return_index=True)
        used = np.zeros(bad_idx.size * 2, dtype=bool)
        used[first] = True
        ok = used[: bad_idx.size] & used[bad_idx.size :]
        bad_idx, partner = bad_idx[ok], partner[ok]
        post[bad_idx], post[partner] = post[partner], post[bad_idx].copy()
    raise ValueError(
        "the configuration model could not remove self loops / multi-edges for these degrees; "
        "use method='swap'."
    )


# --------------------------------------------------------------------------------- perturbation
def _new_edge_keys(
    existing: np.ndarray, n: int, n_add: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_add`` distinct keys ``pre * n + post`` of absent non-loop edges, drawn at random."""
    new = np.zeros(0, dtype=np.int64)
    while new.size < n_add:
        need = n_add - new.size
        a = rng.integers(0, n, size=2 * need + 16)
        b = rng.integers(0, n, size=2 * need + 16)
        key = a * n + b
        key = key[(a != b) & ~np.isin(key, existing) & ~np.isin(key, new)]
        key = pd.unique(key)[:need]
        new = np.concatenate([new, key])
    return new


def perturb_graph(
    adjacency: Any,
    *,
    drop: float = 0.0,
    add: float = 0.0,
    reverse: float = 0.0,
    weight_noise: float = 0.0,
    seed: int | np.random.Generator | None = 0,
) -> sp.csr_matrix:
    """Randomly perturb a graph for robustness studies (patent paragraph 0138).

    Operations, applied in this order to the original edges:

    1. ``drop``: every edge is removed with this probability;
    2. ``reverse``: every surviving edge is reversed (pre and post swapped) with this
       probability, unless the reverse edge exists already;
    3. ``add``: ``round(add * E)`` new edges (E = original edge count) between node pairs
       drawn uniformly among absent pairs (no self loops), their weights drawn from the
       original weights;
    4. ``weight_noise``: every weight is multiplied by ``exp(σ ε)``, ε ~ N(0, 1), σ =
       ``weight_noise`` (signs are kept).

    Parameters
    ----------
    adjacency : sparse matrix (N, N) or Connectome
    drop, reverse : float
        Probabilities in [0, 1].
    add : float
        New edges as a fraction of the original edge count (≥ 0).
    weight_noise : float
        Log-normal noise scale (≥ 0).
    seed : int or Generator

    Returns
    -------
    csr_matrix (N, N), float64
    """
    matrix = _adjacency(adjacency)
    drop, reverse = _rate("drop", drop), _rate("reverse", reverse)
    if not np.isfinite(add) or add < 0:
        raise ValueError(f"add must be a fraction ≥ 0 of the edge count; got {add}.")
    if not np.isfinite(weight_noise) or weight_noise < 0:
        raise ValueError(f"weight_noise must be ≥ 0; got {weight_noise}.")
    rng = _rng(seed)
    n = matrix.shape[0]
    pre, post, data = _edges(matrix)
    original = data.copy()
    m = pre.size
    keep = rng.random(m) >= drop
    pre, post, data = pre[keep], post[keep], data[keep]
    if reverse > 0 and pre.size:
        flip = rng.random(pre.size) < reverse
        existing = pre * n + post
        rev_key = post * n + pre
        flip &= ~np.isin(rev_key, existing)
        # two mutual... a pair a→b and b→a both present is excluded above; a flipped edge
        # cannot collide with another flipped one (that would need both directions present)
        pre[flip], post[flip] = post[flip], pre[flip].copy()
    n_add = int(round(add * m))
    if n_add:
        free = n * (n - 1) - pre.size
        if n_add > free:
            raise ValueError(
                f"cannot add {n_add} edges: only {free} node pairs are unconnected; lower add."
            )
        new = _new_edge_keys(pre * n + post, n, n_add, rng)
        pool = original if original.size else np.ones(1)
        weights = rng.choice(pool, size=n_add)
        pre = np.concatenate([pre, new // n])
        post = np.concatenate([post, new % n])
        data = np.concatenate([data, weights])
    if weight_noise > 0 and data.size:
        data = data * np.exp(weight_noise * rng.standard_normal(data.size))
    out = sp.csr_matrix((data, (pre, post)), shape=(n, n))
    out.sort_indices()
    return out


# ------------------------------------------------------------------------------------ smoothing
def smooth_graph(
    adjacency: Any,
    *,
    method: str = "diffusion",
    alpha: float = 0.5,
    hops: int = 1,
    sigma: float = 1.0,
    threshold: float | None = None,
    max_dense: int = 20_000,
) -> sp.csr_matrix:
    """Regularise a graph by smoothing its adjacency (patent paragraphs 0139–0140).

    Parameters
    ----------
    adjacency : sparse matrix (N, N) or Connectome
    method : {"diffusion", "gaussian"}
        "diffusion": each node's outgoing row is mixed with its neighbours' rows,
        ``S = (1 - α) A + α P^h A`` with P the row-normalised undirected neighbourhood
        (k-hop averaging; sparse, fine for large graphs). "gaussian": the adjacency array
        is filtered with a Gaussian of width ``sigma`` (in rows/columns; the node order
        matters) as in the patent — dense, so at most ``max_dense`` nodes.
    alpha : float
        Diffusion mixing weight in [0, 1].
    hops : int
        Diffusion steps h ≥ 1.
    sigma : float
        Gaussian width (array cells) > 0.
    threshold : float, optional
        Quantise the result: entries with absolute value ≥ threshold become edges of weight
        sign(value) (0/1 for unsigned graphs), the rest are dropped — the patent's rounding.
    max_dense : int
        Largest N accepted by the dense Gaussian method.

    Returns
    -------
    csr_matrix (N, N), float64
    """
    matrix = _adjacency(adjacency)
    n = matrix.shape[0]
    if method == "diffusion":
        alpha = _rate("alpha", alpha)
        if int(hops) != hops or hops < 1:
            raise ValueError(f"hops must be a whole number ≥ 1; got {hops}.")
        structure = matrix.copy()
        structure.data = np.ones_like(structure.data)
        sym = ((structure + structure.T) > 0).astype(np.float64)
        sym.setdiag(0)
        sym.eliminate_zeros()
        deg = np.asarray(sym.sum(axis=1)).ravel()
        inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
        prop = sp.diags(inv) @ sym
        mixed = matrix
        for _ in range(int(hops)):
            mixed = prop @ mixed
        # isolated nodes keep their own row
        mixed = mixed + sp.diags((deg == 0).astype(np.float64)) @ matrix
        out = (1.0 - alpha) * matrix + alpha * mixed
    elif method == "gaussian":
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be > 0; got {sigma}.")
        if n > max_dense:
            raise ValueError(
                f"method='gaussian' filters the dense {n}×{n} array; that is above "
                f"max_dense={max_dense}. Use method='diffusion' for large graphs."
            )
        from scipy.ndimage import gaussian_filter

        out = sp.csr_matrix(gaussian_filter(matrix.toarray(), sigma=sigma, mode="constant"))
    else:
        raise ValueError(f"method must be 'diffusion' or 'gaussian'; got {method!r}.")
    out = sp.csr_matrix(out)
    if threshold is not None:
        if not np.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold must be > 0; got {threshold}.")
        out.data = np.where(np.abs(out.data) >= threshold, np.sign(out.data), 0.0)
    out.eliminate_zeros()
    out.sort_indices()
    return out
