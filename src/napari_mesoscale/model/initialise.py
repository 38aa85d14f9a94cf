"""Edges, per-neuron dynamics features and the initial domain assignment.

The assignment of neurons to (location, filter) pairs is not identifiable from prediction alone
(DESIGN.md section 4, prototype ARI 0.56). These helpers give the gradient a good start:

* :func:`per_neuron_ridge` fits, for every neuron at once, a small ridge autoregression of
  z_i(t+1) on (1, z_i, z_i^2, z_i^3, stimulus, the drive neighbours' z) — batched over neurons
  by padding the in-edges, never a Python loop over neurons. Its neighbour coefficients
  initialise the learned drive weights; its other coefficients are dynamics features.
* :func:`dynamics_features` adds autocorrelations, moments and fit quality, and optionally
  smooths the features over positively correlated neighbours (members of one motif instance
  are coupled and correlated, so this denoises each neuron's description).
* :func:`motif_init` clusters the features (k-means) into one group per filter.
* :func:`location_scores` scores each candidate field of a neuron by how much of the neuron's
  correlated neighbourhood it encloses, breaking ties by the distance of the field centre to
  the correlation-weighted centroid of that neighbourhood, so that the members of one
  instance pick the same field.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree


def local_edges(positions: np.ndarray, radius: float, max_neighbors: int = 16) -> np.ndarray:
    """Local gather edges k -> i for the ``max_neighbors`` nearest neurons within ``radius``.

    Returns
    -------
    ndarray of int64, shape (2, E)
        Row 0 presynaptic (the neighbour k), row 1 postsynaptic (the neuron i). Self pairs are
        excluded; cost O(N * max_neighbors).
    """
    n = positions.shape[0]
    k = min(max_neighbors + 1, n)
    if k <= 1:
        return np.zeros((2, 0), dtype=np.int64)
    dist, idx = cKDTree(positions).query(positions, k=k, distance_upper_bound=radius)
    post = np.repeat(np.arange(n), k).reshape(n, k)
    ok = np.isfinite(dist) & (idx != post) & (idx < n)
    return np.stack([idx[ok], post[ok]]).astype(np.int64)


def connectome_edges(adjacency: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Edges (2, E) pre -> post and their structural weights from a sparse adjacency."""
    coo = sp.coo_matrix(adjacency)
    coo.sum_duplicates()
    keep = coo.row != coo.col
    return np.stack([coo.row[keep], coo.col[keep]]).astype(np.int64), coo.data[keep].astype(float)


def _padded_in_edges(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Incoming edges of every neuron as a padded (N, K) table of edge ids (-1 padding)."""
    post = edges[1]
    order = np.argsort(post, kind="stable")
    counts = np.bincount(post, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(post.size) - np.repeat(starts, counts)
    kmax = int(counts.max()) if post.size else 0
    table = np.full((n, max(kmax, 1)), -1, dtype=np.int64)
    table[post[order], rank] = order
    return table, table >= 0, counts


def per_neuron_ridge(
    z: np.ndarray,
    edges: np.ndarray,
    stimulus: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    max_in: int = 64,
    chunk_elements: int = 20_000_000,
) -> dict[str, np.ndarray]:
    """Ridge regression of z_i(t+1) for every neuron at once (batched normal equations).

    Parameters
    ----------
    z : ndarray (T, N)
        Normalised activity (zero mean, unit variance per neuron; NaN already imputed).
    edges : ndarray (2, E)
        Drive edges pre -> post.
    stimulus : ndarray (T, S), optional
    alpha : float
        Ridge strength (relative to T).
    max_in : int
        Neurons with more in-edges use only their first ``max_in`` in this fit (the rest keep
        a zero initial weight).

    Returns
    -------
    dict with ``self`` (N, 3) coefficients of z, z^2, z^3; ``stimulus`` (N, S); ``edge`` (E,)
    coefficients of each edge; ``r2`` (N,).
    """
    t, n = z.shape
    s = 0 if stimulus is None else stimulus.shape[1]
    table, tmask, _ = _padded_in_edges(edges, n)
    table, tmask = table[:, :max_in], tmask[:, :max_in]
    kin = table.shape[1]
    x0, y = z[:-1], z[1:]
    p = 4 + s + kin
    coef_self = np.zeros((n, 3))
    coef_stim = np.zeros((n, s))
    coef_edge = np.zeros(edges.shape[1])
    r2 = np.zeros(n)
    chunk = max(1, int(chunk_elements // max(1, (t - 1) * p)))
    for start in range(0, n, chunk):  # chunks of neurons only bound memory
        sl = slice(start, min(n, start + chunk))
        xi = x0[:, sl]
        cols = [np.ones_like(xi), xi, xi**2 - 1.0, xi**3 - 3 * xi]
        if s:
            cols += [np.broadcast_to(stimulus[:-1, k : k + 1], xi.shape) for k in range(s)]
        design = np.stack(cols, axis=-1)  # (T-1, m, 4+S)
        tab = table[sl]
        pre = np.where(tmask[sl], edges[0][np.clip(tab, 0, None)], 0)
        neigh = x0[:, pre] * tmask[sl][None]  # (T-1, m, kin)
        design = np.concatenate([design, neigh], axis=-1).astype(np.float64)
        gram = np.einsum("tmp,tmq->mpq", design, design)
        rhs = np.einsum("tmp,tm->mp", design, y[:, sl])
        reg = alpha * (t - 1) * 0.01 * np.eye(p)
        reg[0, 0] = 1e-6
        beta = np.linalg.solve(gram + reg[None], rhs[..., None])[..., 0]  # (m, p)
        fit = np.einsum("tmp,mp->tm", design, beta)
        resid = y[:, sl] - fit
        var = y[:, sl].var(0) + 1e-12
        r2[sl] = 1 - resid.var(0) / var
        coef_self[sl] = beta[:, 1:4]
        coef_stim[sl] = beta[:, 4 : 4 + s]
        nb = beta[:, 4 + s :]
        valid = tmask[sl]
        coef_edge[tab[valid]] = nb[valid]
    return {"self": coef_self, "stimulus": coef_stim, "edge": coef_edge, "r2": r2}


def _autocorr(z: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    t = z.shape[0]
    out = []
    for lag in lags:
        if lag >= t - 1:
            out.append(np.zeros(z.shape[1]))
            continue
        out.append((z[:-lag] * z[lag:]).mean(0))
    return np.stack(out, axis=1)


def neighbour_correlation(z: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Pearson correlation of z for each pair (2, P) (z already zero mean, unit variance)."""
    if pairs.shape[1] == 0:
        return np.zeros(0)
    out = np.empty(pairs.shape[1])
    step = max(1, 20_000_000 // max(1, z.shape[0]))
    for start in range(0, pairs.shape[1], step):  # bounded memory over pairs
        a = pairs[0, start : start + step]
        b = pairs[1, start : start + step]
        out[start : start + step] = (z[:, a] * z[:, b]).mean(0)
    return out


def dynamics_features(
    z: np.ndarray,
    ridge: dict[str, np.ndarray],
    edges: np.ndarray,
    stimulus: np.ndarray | None,
    *,
    smooth_pairs: np.ndarray | None = None,
    smooth_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per-neuron description of its dynamics, standardised, shape (N, P).

    Columns: ridge self coefficients (z, z^2, z^3), stimulus coefficients, summed and absolute
    summed drive coefficients, fit R^2, autocorrelation at lags 1, 2, 3, 5, 8, skewness,
    kurtosis, and the correlation with each stimulus channel at lags 0 and 1.
    """
    n = z.shape[1]
    post = edges[1]
    wsum = np.bincount(post, weights=ridge["edge"], minlength=n)
    wabs = np.bincount(post, weights=np.abs(ridge["edge"]), minlength=n)
    cols = [
        ridge["self"],
        ridge["stimulus"],
        wsum[:, None],
        wabs[:, None],
        ridge["r2"][:, None],
        _autocorr(z, (1, 2, 3, 5, 8)),
        (z**3).mean(0)[:, None],
        (z**4).mean(0)[:, None] - 3.0,
    ]
    if stimulus is not None and stimulus.shape[1]:
        u = (stimulus - stimulus.mean(0)) / (stimulus.std(0) + 1e-9)
        cols.append((u.T @ z / z.shape[0]).T)
        cols.append((u[:-1].T @ z[1:] / (z.shape[0] - 1)).T)
    feats = np.concatenate(cols, axis=1)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    feats = np.clip(feats, -5, 5)
    if smooth_pairs is not None and smooth_pairs.shape[1]:
        w = smooth_weights
        acc = feats.copy()
        tot = np.ones(n)
        np.add.at(acc, smooth_pairs[1], w[:, None] * feats[smooth_pairs[0]])
        np.add.at(tot, smooth_pairs[1], w)
        feats = acc / tot[:, None]
    return feats


def motif_init(features: np.ndarray, n_filters: int, seed: int = 0) -> np.ndarray:
    """k-means of the dynamics features into ``n_filters`` groups: (N,) group per neuron."""
    from sklearn.cluster import KMeans

    n = features.shape[0]
    k = min(n_filters, n)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed)
    return km.fit_predict(features).astype(np.int64)


def location_scores(
    positions: np.ndarray,
    candidates: np.ndarray,
    mask: np.ndarray,
    centers: np.ndarray,
    diameter: float,
    pairs: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Score (N, Lm) in [0, 1] of each candidate field of each neuron (coverage of partners).

    ``pairs`` (2, P) are neighbour pairs (k -> i) with non-negative ``weights`` (e.g. positive
    correlations); the neuron itself counts with weight 1.
    """
    n, lm = candidates.shape
    cand = np.clip(candidates, 0, None)
    radius = diameter / 2 * (1 + 1e-9)
    # coverage: sum of partner weights inside each candidate field
    score = mask.astype(float).copy()  # the neuron itself
    if pairs.shape[1]:
        k, i = pairs
        ctr = centers[cand[i]]  # (P, Lm, 3)
        inside = np.linalg.norm(positions[k][:, None, :] - ctr, axis=-1) <= radius
        np.add.at(score, i, weights[:, None] * inside)
    # tie-break: distance of the field centre to the weighted centroid of the neighbourhood
    centroid = positions.copy()
    tot = np.ones(n)
    if pairs.shape[1]:
        np.add.at(centroid, pairs[1], weights[:, None] * positions[pairs[0]])
        np.add.at(tot, pairs[1], weights)
    centroid /= tot[:, None]
    dist = np.linalg.norm(centers[cand] - centroid[:, None, :], axis=-1) / diameter
    score = score / score.max(axis=1, keepdims=True) - 0.1 * dist
    score = np.where(mask, score, -np.inf)
    best = score.max(axis=1, keepdims=True)
    return np.where(mask, score - best, -np.inf)
