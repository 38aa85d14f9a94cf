"""Naive peers of the mesoscale model's motif and domain discovery.

What a motif-discovery method has to beat:

* :func:`ar_kmeans_labels` — per-neuron AR(p) + stimulus regression coefficients, standardised,
  clustered with k-means (k given, or chosen by the silhouette score);
* :func:`correlation_labels` — spectral or hierarchical clustering of the activity correlation
  matrix (this groups neurons that fire together, i.e. domains more than motifs);
* :func:`spatial_domains` — any labels split into spatially connected pieces, a naive domain
  estimate (a domain = neighbouring neurons with the same label).

Scores: :func:`napari_mesoscale.evaluate.recovery_scores` (adjusted Rand index).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mesoscale.forecasters.per_neuron_ridge import solve_per_neuron_ridge

__all__ = [
    "ar_kmeans_labels",
    "ar_stimulus_features",
    "correlation_labels",
    "spatial_domains",
]


def _zscore(activity: Any) -> np.ndarray:
    x = np.asarray(activity, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"activity must be (T, N); got shape {x.shape}")
    x = np.where(np.isfinite(x), x, np.nanmean(x, axis=0))
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 1e-12, std, 1.0)


def ar_stimulus_features(
    activity: Any, stimulus: Any = None, *, order: int = 2, ridge: float = 1e-3
) -> np.ndarray:
    """Per-neuron ridge regression z(t+1) ~ z(t), ..., z(t-order+1), u(t), 1.

    Parameters
    ----------
    activity : array_like (T, N)
        Activity; z-scored per neuron (NaNs filled with the neuron's mean).
    stimulus : array_like (T, S), optional
        Stimulus, z-scored per channel.
    order : int
        Number of own lags.
    ridge : float
        Ridge penalty relative to the number of frames.

    Returns
    -------
    ndarray (N, order + S)
        The lag coefficients followed by the stimulus coefficients (intercept dropped).
    """
    if order < 1:
        raise ValueError(f"order must be >= 1; got {order}")
    z = _zscore(activity)
    t, n = z.shape
    if t < order + 3:
        raise ValueError(f"need more than {order + 2} frames for an AR({order}) fit; got {t}")
    lags = np.stack([z[order - 1 - k : t - 1 - k] for k in range(order)], axis=-1)  # (T', N, p)
    rows = t - order
    shared = [np.ones((rows, 1))]
    if stimulus is not None:
        u = np.asarray(stimulus, dtype=np.float64)
        u = u[:, None] if u.ndim == 1 else u
        if u.shape[0] != t:
            raise ValueError(f"stimulus has {u.shape[0]} frames, activity {t}")
        shared.insert(0, _zscore(u)[order - 1 : t - 1])
    shared_x = np.concatenate(shared, axis=1)  # (T', S + 1)
    design = np.concatenate(
        [lags, np.broadcast_to(shared_x[:, None], (rows, n, shared_x.shape[1]))], -1
    )
    target = z[order:]
    coef = solve_per_neuron_ridge(design, target, ridge * rows * np.eye(design.shape[-1]))
    return coef[:, :-1]


def _kmeans_by_silhouette(
    features: np.ndarray, n_clusters: int | None, k_range: tuple[int, int], seed: int
) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    if n_clusters is not None:
        return KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(features)
    best, best_labels = -np.inf, np.zeros(features.shape[0], dtype=np.int64)
    for k in range(k_range[0], min(k_range[1], features.shape[0] - 1) + 1):
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(features)
        score = silhouette_score(features, labels, random_state=seed)
        if score > best:
            best, best_labels = score, labels
    return best_labels


def ar_kmeans_labels(
    activity: Any,
    stimulus: Any = None,
    *,
    n_clusters: int | None = None,
    k_range: tuple[int, int] = (2, 12),
    order: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Motif labels from k-means of standardised AR(order) + stimulus coefficients.

    ``n_clusters=None`` picks k in ``k_range`` (inclusive) with the best silhouette score.
    Returns an int array (N,).
    """
    feats = ar_stimulus_features(activity, stimulus, order=order)
    std = feats.std(0)
    feats = (feats - feats.mean(0)) / np.where(std > 1e-12, std, 1.0)
    return _kmeans_by_silhouette(feats, n_clusters, k_range, seed).astype(np.int64)


def correlation_labels(
    activity: Any,
    *,
    n_clusters: int | None = None,
    method: str = "spectral",
    k_range: tuple[int, int] = (2, 12),
    seed: int = 0,
) -> np.ndarray:
    """Cluster neurons on their activity correlation matrix.

    ``method="spectral"``: spectral clustering of the affinity max(corr, 0); ``"hierarchical"``:
    average linkage on the distance 1 - corr. ``n_clusters=None``: spectral picks k in
    ``k_range`` by the largest eigengap of the normalised Laplacian, hierarchical by the best
    silhouette on the correlation distance. Returns an int array (N,).
    """
    z = _zscore(activity)
    corr = np.nan_to_num(np.corrcoef(z.T))
    if method == "spectral":
        return _spectral(np.clip(corr, 0.0, None), n_clusters, k_range, seed)
    if method == "hierarchical":
        return _hierarchical(1.0 - corr, n_clusters, k_range)
    raise ValueError(f"method must be 'spectral' or 'hierarchical'; got {method!r}")


def _spectral(affinity: np.ndarray, k: int | None, k_range: tuple[int, int], seed: int):
    from sklearn.cluster import SpectralClustering

    if k is None:
        deg = affinity.sum(1)
        d = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
        lap = np.eye(len(deg)) - d[:, None] * affinity * d[None, :]
        ev = np.sort(np.linalg.eigvalsh(lap))
        lo, hi = k_range
        gaps = np.diff(ev[: hi + 1])  # gaps[k - 1] = ev[k] - ev[k - 1]
        k = lo + int(np.argmax(gaps[lo - 1 : hi]))
    model = SpectralClustering(k, affinity="precomputed", random_state=seed, assign_labels="kmeans")
    return model.fit_predict(affinity).astype(np.int64)


def _hierarchical(distance: np.ndarray, k: int | None, k_range: tuple[int, int]):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    distance = np.clip((distance + distance.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    if k is not None:
        return (fcluster(tree, k, criterion="maxclust") - 1).astype(np.int64)
    best, best_labels = -np.inf, np.zeros(distance.shape[0], dtype=np.int64)
    for kk in range(k_range[0], k_range[1] + 1):
        labels = fcluster(tree, kk, criterion="maxclust") - 1
        if np.unique(labels).size < 2:
            continue
        score = silhouette_score(distance, labels, metric="precomputed")
        if score > best:
            best, best_labels = score, labels.astype(np.int64)
    return best_labels


def spatial_domains(labels: Any, positions: Any, *, radius_um: float | None = None) -> np.ndarray:
    """Split every label into spatially connected pieces (neighbours within ``radius_um``).

    ``radius_um=None``: 2.5 x the median nearest-neighbour distance (the middle of the range,
    2-3 x, in which the true motifs split into exactly the instances on dev-family zoo brains).
    Returns domain ids (N,).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    labels = np.asarray(labels)
    pos = np.asarray(positions, dtype=np.float64)
    tree = cKDTree(pos)
    if radius_um is None:
        dist, _ = tree.query(pos, k=2)
        radius_um = 2.5 * float(np.median(dist[:, 1]))
    pairs = tree.query_pairs(radius_um, output_type="ndarray")
    pairs = pairs[labels[pairs[:, 0]] == labels[pairs[:, 1]]]
    n = labels.size
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
