"""Edges, per-neuron dynamics features and the initial domain assignment.

The assignment of neurons to (location, filter) pairs is not identifiable from prediction alone
(gradient descent from a random start reached a domain ARI of only 0.56 on toy brains).
These helpers give the gradient a good start:

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

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from napari_mesoscale.model.config import ModelConfig


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
    device: str | torch.device = "cpu",
    degree: int = 3,
    previous: bool = False,
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
    chunk_elements : int
        Design-matrix elements per chunk of neurons (bounds memory).
    device : str or torch.device
        Where the normal equations are built and solved (float64 batched matrix products;
        a GPU fit passes its device: seconds instead of minutes at zebrafish scale).
    degree : {3, 1}
        Powers of the neuron's own state: 3 (the Hermite terms z, z^2 - 1, z^3 - 3z) or 1 (z
        only: a linear model, the start of ``ModelConfig.linear_skip="ridge"``).
    previous : bool
        Also regress on the neuron's previous state z_i(t-1) (the first frame stands in for its
        own predecessor, as in :func:`napari_mesoscale.model.core.previous_frames`).

    Returns
    -------
    dict with ``self`` (N, degree) coefficients of z (z^2, z^3); ``stimulus`` (N, S); ``edge``
    (E,) coefficients of each edge; ``intercept`` (N,); ``previous`` (N,) the coefficient of
    z(t-1) (zeros unless ``previous``); ``r2`` (N,).
    """
    if degree not in (1, 3):
        raise ValueError(f"degree must be 1 or 3; got {degree!r}")
    t, n = z.shape
    s = 0 if stimulus is None else stimulus.shape[1]
    table, tmask, _ = _padded_in_edges(edges, n)
    table, tmask = table[:, :max_in], tmask[:, :max_in]
    kin = table.shape[1]
    own = 1 + degree + int(previous)  # intercept, powers, previous state
    p = own + s + kin
    coef_self = np.zeros((n, degree))
    coef_prev = np.zeros(n)
    intercept = np.zeros(n)
    coef_stim = np.zeros((n, s))
    coef_edge = np.zeros(edges.shape[1])
    r2 = np.zeros(n)
    dev = torch.device(device)
    if dev.type == "mps":  # no float64 on Apple GPUs: the normal equations need it
        dev = torch.device("cpu")
    zt = torch.as_tensor(np.ascontiguousarray(z.T), device=dev)  # (N, T): neurons as rows
    stim = None if not s else torch.as_tensor(stimulus[:-1], dtype=torch.float64, device=dev)
    reg = alpha * (t - 1) * 0.01 * torch.eye(p, dtype=torch.float64, device=dev)
    reg[0, 0] = 1e-6
    src = edges[0] if edges.shape[1] else np.zeros(1, dtype=np.int64)
    chunk = max(1, int(chunk_elements // max(1, (t - 1) * p)))
    for start in range(0, n, chunk):  # chunks of neurons only bound memory
        sl = slice(start, min(n, start + chunk))
        pre = np.where(tmask[sl], src[np.clip(table[sl], 0, None)], 0)
        design = _ridge_design(zt, sl, pre, tmask[sl], stim, degree, previous)  # (m, T-1, p)
        y = zt[sl, 1:].double()  # (m, T-1)
        gram = design.transpose(1, 2) @ design
        rhs = design.transpose(1, 2) @ y[..., None]
        beta = torch.linalg.solve(gram + reg, rhs)  # (m, p, 1)
        resid = y - (design @ beta)[..., 0]
        r2[sl] = (1 - resid.var(1, correction=0) / (y.var(1, correction=0) + 1e-12)).cpu()
        beta = beta[..., 0].cpu().numpy()
        intercept[sl] = beta[:, 0]
        coef_self[sl] = beta[:, 1 : 1 + degree]
        if previous:
            coef_prev[sl] = beta[:, 1 + degree]
        coef_stim[sl] = beta[:, own : own + s]
        valid = tmask[sl]
        coef_edge[table[sl][valid]] = beta[:, own + s :][valid]
    return {
        "self": coef_self,
        "stimulus": coef_stim,
        "edge": coef_edge,
        "intercept": intercept,
        "previous": coef_prev,
        "r2": r2,
    }


def _ridge_design(
    zt: torch.Tensor,
    sl: slice,
    pre: np.ndarray,
    valid: np.ndarray,
    stim: torch.Tensor | None,
    degree: int = 3,
    previous: bool = False,
) -> torch.Tensor:
    """Design (m, T-1, p) of a chunk of neurons: 1, x, x^2-1, x^3-3x (``degree=3``; x alone
    with 1), x[t-1] (``previous``), stimulus, in-neighbours.

    ``zt`` is (N, T), neurons as rows (contiguous gathers).
    """
    dev = zt.device
    xi = zt[sl, :-1]  # (m, T-1), the powers in z's precision (as the numpy version was)
    cols = [torch.ones_like(xi), xi]
    if degree == 3:
        cols += [xi**2 - 1.0, xi**3 - 3 * xi]
    if previous:  # x[t-1]; frame 0 stands in for its own predecessor
        cols.append(torch.cat([xi[:, :1], xi[:, :-1]], dim=1))
    own = torch.stack(cols, dim=-1).double()
    if stim is not None:
        own = torch.cat([own, stim[None].expand(xi.shape[0], -1, -1)], dim=-1)
    pre_t = torch.as_tensor(pre, device=dev)
    neigh = zt[pre_t.reshape(-1), :-1].reshape(*pre.shape, -1).transpose(1, 2).double()
    neigh = neigh * torch.as_tensor(valid, device=dev)[:, None, :]
    return torch.cat([own, neigh], dim=-1)


def _autocorr(z: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    t = z.shape[0]
    out = []
    for lag in lags:
        if lag >= t - 1:
            out.append(np.zeros(z.shape[1]))
            continue
        out.append((z[:-lag] * z[lag:]).mean(0))
    return np.stack(out, axis=1)


def _on_accelerator(device: str | torch.device | None) -> bool:
    return device is not None and torch.device(device).type != "cpu"


def _pair_products(
    z: np.ndarray, pairs: np.ndarray, lags: bool, device: str | torch.device | None
) -> np.ndarray:
    """Mean products of z over frames for each pair (2, P): (1, P) at lag 0, with ``lags``
    (3, P) at lags 0, +1 (a leads) and -1 (b leads); pairs a bounded block at a time."""
    out = np.empty((3 if lags else 1, pairs.shape[1]))
    step = max(1, 20_000_000 // max(1, z.shape[0]))
    # neurons as rows: gathering a pair's traces reads contiguous memory (4x faster on a CPU)
    zt = np.ascontiguousarray(z.T)
    if _on_accelerator(device):
        zt = torch.as_tensor(zt, device=device)
    for start in range(0, pairs.shape[1], step):  # bounded memory over pairs
        a = pairs[0, start : start + step]
        b = pairs[1, start : start + step]
        if isinstance(zt, torch.Tensor):
            a, b = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
        za, zb = zt[a], zt[b]  # (P, T)
        block = [(za * zb).mean(1)]
        if lags:
            block += [(za[:, :-1] * zb[:, 1:]).mean(1), (za[:, 1:] * zb[:, :-1]).mean(1)]
        block = [x.cpu().numpy() if isinstance(x, torch.Tensor) else x for x in block]
        out[:, start : start + step] = np.stack(block)
    return out


def neighbour_correlation(
    z: np.ndarray, pairs: np.ndarray, device: str | torch.device | None = None
) -> np.ndarray:
    """Pearson correlation of z for each pair (2, P) (z already zero mean, unit variance).

    ``device``: a torch device to compute on (e.g. the fit's GPU); default numpy on the CPU.
    """
    if pairs.shape[1] == 0:
        return np.zeros(0)
    return _pair_products(z, pairs, False, device)[0]


STIMULUS_CHANNELS = ("channels", "sorted", "both")


def dynamics_features(
    z: np.ndarray,
    ridge: dict[str, np.ndarray],
    edges: np.ndarray,
    stimulus: np.ndarray | None,
    *,
    smooth_pairs: np.ndarray | None = None,
    smooth_weights: np.ndarray | None = None,
    max_lag: int = 10,
    smooth_passes: int = 1,
    stimulus_channels: str = "channels",
) -> np.ndarray:
    """Per-neuron description of its dynamics, standardised, shape (N, P).

    The features are invariant to the sign of a neuron's tuning (two neurons running the same
    motif with opposite preferred stimuli look alike): autocorrelation at lags 1..``max_lag``,
    absolute ridge stimulus coefficients and absolute lag-1 stimulus correlations, the ridge
    self coefficients (z, z^2, z^3), summed absolute drive coefficient, fit R^2, skewness and
    kurtosis. Measured on the default toy brain (seeds 0, 1): k-means ARI 0.90 / 1.00 with
    these features against 0.60 / 0.69 with signed coefficients. With ``smooth_pairs``
    (2, P) and their ``smooth_weights``, each of ``smooth_passes`` passes replaces a neuron's
    features by their weighted mean with its partners' (the neuron itself has weight 1).
    With ``stimulus_channels="sorted"`` the stimulus features of every neuron are sorted
    (largest first) instead of kept per channel: how strongly a neuron follows its strongest
    input, not which channel it is, so that instances of one motif that follow different
    channels look alike; ``"both"`` keeps the per-channel values and appends the sorted ones
    (``ModelConfig.stimulus_features``).
    """
    if stimulus_channels not in STIMULUS_CHANNELS:
        raise ValueError(
            f"stimulus_channels must be one of {STIMULUS_CHANNELS}; got {stimulus_channels!r}"
        )

    def order(per_channel: np.ndarray) -> np.ndarray:  # (N, S) as asked
        if stimulus_channels == "channels":
            return per_channel
        ranked = -np.sort(-per_channel, axis=1)  # every row largest first
        return ranked if stimulus_channels == "sorted" else np.hstack([per_channel, ranked])

    n = z.shape[1]
    t = z.shape[0]
    post = edges[1]
    wabs = np.bincount(post, weights=np.abs(ridge["edge"]), minlength=n)
    cols = [
        _autocorr(z, tuple(range(1, min(max_lag, t - 2) + 1))),
        order(np.abs(ridge["stimulus"])),
        ridge["self"],
        wabs[:, None],
        ridge["r2"][:, None],
        (z**3).mean(0)[:, None],
        (z**4).mean(0)[:, None] - 3.0,
    ]
    if stimulus is not None and stimulus.shape[1]:
        u = (stimulus - stimulus.mean(0)) / (stimulus.std(0) + 1e-9)
        cols.append(order(np.abs(u[:-1].T @ z[1:] / (t - 1)).T))
    feats = np.concatenate(cols, axis=1)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    feats = np.clip(feats, -5, 5)
    if smooth_pairs is not None and smooth_pairs.shape[1]:
        for _ in range(max(1, int(smooth_passes))):
            feats = _neighbour_mean(feats, smooth_pairs, smooth_weights)
    return feats


def motif_features(
    z: np.ndarray,
    ridge: dict[str, np.ndarray],
    edges: np.ndarray,
    u: np.ndarray | None,
    spatial: np.ndarray,
    correlation: np.ndarray,
    cfg: ModelConfig,
    partners: np.ndarray | None = None,
    wiring: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`dynamics_features` smoothed as ``cfg`` says (``smooth_features``,
    ``smooth_passes``) over the ``spatial`` pairs, weighted by their squared positive
    neighbour ``correlation``; then, with ``cfg.connectome_smoothing`` > 0 and connectome
    ``partners`` (2, E) pre -> post, one more pass over the partners (either direction), each
    with that weight.

    Why the partners: pooled over its true motif instance, a neuron's 200-frame calcium
    features give motif ARI 1.00 (realistic preset, 14 dev brains), one neuron's alone 0.62;
    the instance is wired within, so the connectome finds its members where 200 frames of
    correlations do not (Louvain communities of the correlations: ARI 0.40 with the instances).

    ``wiring`` (N, P), e.g. :func:`wiring_features` of the connectome, is standardised,
    scaled by ``cfg.wiring_features`` and appended to the dynamics features before the
    smoothing (so that it is pooled over the neuron's instance as they are); with
    ``cfg.wiring_partner_weight`` > 0 and ``partners`` it is first pooled over the
    connectome partners (either direction, each with that weight).
    """
    smooth = bool(cfg.smooth_features)
    feats = dynamics_features(z, ridge, edges, u, stimulus_channels=cfg.stimulus_features)
    scale = float(cfg.wiring_features)
    if wiring is not None and scale > 0:
        feats = np.concatenate([feats, scale * _wiring_block(wiring, cfg, partners)], axis=1)
    if smooth and spatial.shape[1]:
        for _ in range(max(1, int(cfg.smooth_passes))):
            feats = _neighbour_mean(feats, spatial, correlation**2)
    weight = float(cfg.connectome_smoothing)
    if partners is None or weight <= 0 or partners.shape[1] == 0:
        return feats
    both = np.concatenate([partners, partners[::-1]], axis=1)
    return _neighbour_mean(feats, both, np.full(both.shape[1], weight))


def _wiring_block(wiring: np.ndarray, cfg: ModelConfig, partners: np.ndarray | None) -> np.ndarray:
    """Standardised (clipped) wiring features, pooled over connectome partners if asked."""
    block = (wiring - wiring.mean(0)) / (wiring.std(0) + 1e-9)
    block = np.clip(block, -5, 5)
    weight = float(cfg.wiring_partner_weight)
    if partners is not None and weight > 0 and partners.shape[1]:
        both = np.concatenate([partners, partners[::-1]], axis=1)
        block = _neighbour_mean(block, both, np.full(both.shape[1], weight))
    return block


def wiring_features(adjacency: sp.spmatrix) -> np.ndarray:
    """Per-neuron description of its wiring in a signed pre -> post adjacency, (N, 4).

    Columns: clustering (fraction of pairs of partners connected, either way), the sign
    balance of the inputs and of the outputs (synapse-weighted mean sign in [-1, 1]; 0 for a
    neuron without inputs or outputs) and reciprocity (the synapse-weighted fraction of its
    connections whose partner is connected back). These tell circuits apart that a neuron's
    activity may not show: a feed-forward chain has no reciprocal partners and no triangles,
    an excitation-inhibition loop has reciprocal partners of both signs, mutual inhibition is
    dense and negative. Degrees are left out: they follow an instance's size more than its
    motif (on the dev toy brains they pulled small instances to the chains). Weighting the
    reciprocity by synapses lets the strong within-circuit partners count more than sparse
    weak ones between circuits. Cost O(N * degree^2).
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    a.setdiag(0.0)
    a.eliminate_zeros()
    b = (a != 0).astype(np.float64)
    both = b.multiply(b.T)
    undirected = ((b + b.T) > 0).astype(np.float64)
    n_partners = np.asarray(undirected.sum(1)).ravel()
    triangles = np.asarray((undirected @ undirected).multiply(undirected).sum(1)).ravel() / 2
    pairs = n_partners * (n_partners - 1) / 2
    w_abs = abs(a)
    in_abs = np.asarray(w_abs.sum(0)).ravel()
    out_abs = np.asarray(w_abs.sum(1)).ravel()
    in_signed = np.asarray(a.sum(0)).ravel()
    out_signed = np.asarray(a.sum(1)).ravel()
    sym = w_abs + w_abs.T
    recip_w = np.asarray(sym.multiply(both).sum(1)).ravel()
    total_w = np.asarray(sym.sum(1)).ravel()
    return np.stack(
        [
            triangles / np.maximum(pairs, 1),
            in_signed / np.maximum(in_abs, 1e-12),
            out_signed / np.maximum(out_abs, 1e-12),
            recip_w / np.maximum(total_w, 1e-12),
        ],
        axis=1,
    )


def community_wiring_features(adjacency: sp.spmatrix, communities: np.ndarray) -> np.ndarray:
    """Wiring signature of each community's own sub-circuit, shape (C, 5).

    Only the edges with both ends in the community count (synapse-weighted, |weight|).
    Columns: the fraction of inhibitory weight, the fraction of weight on reciprocated
    edges, the fraction on reciprocated edges of opposite signs (an excitation-inhibition
    loop), the fraction on edges inside a directed cycle (a strongly connected component of
    two or more members; 0 for a feed-forward chain) and the density (within edges over
    m(m-1) ordered pairs). A community without a within edge has all zeros. Pooled over a
    whole circuit, these are far less noisy than one neuron's signature (which sees only its
    own few partners). Cost O(E).
    """
    from scipy.sparse.csgraph import connected_components

    a = sp.coo_matrix(adjacency, dtype=np.float64)
    n, nc = a.shape[0], int(communities.max()) + 1
    keep = (communities[a.row] == communities[a.col]) & (a.row != a.col) & (a.data != 0)
    within = sp.csr_matrix((a.data[keep], (a.row[keep], a.col[keep])), shape=(n, n))
    within.sum_duplicates()
    coo = within.tocoo()  # from CSR: sorted by (pre, post)
    pre, post, w = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    back = _reverse_weights(pre, post, w, n)
    _, scc = connected_components(within != 0, directed=True, connection="strong")
    on_cycle = (scc[pre] == scc[post]) & (np.bincount(scc)[scc[pre]] > 1)
    cid, aw = communities[pre], np.abs(w)
    total = np.bincount(cid, aw, nc)
    size = np.bincount(communities, minlength=nc).astype(np.float64)
    columns = [w < 0, back != 0, (back * w) < 0, on_cycle]
    shares = [np.bincount(cid, aw * c, nc) / np.maximum(total, 1e-12) for c in columns]
    density = np.bincount(cid, minlength=nc) / np.maximum(size * (size - 1), 1.0)
    return np.stack([*shares, density], axis=1)


def _reverse_weights(pre: np.ndarray, post: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """Weight of the edge post -> pre for every edge pre -> post (0: none); edges sorted."""
    if pre.size == 0:
        return np.zeros(0)
    keys = pre * n + post
    wanted = post * n + pre
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, w[at], 0.0)


def community_descriptors(
    features: np.ndarray, communities: np.ndarray, signature: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every community's description (C, P + Q) and size (C,), as :func:`community_motifs`
    clusters them: its members' mean ``features`` beside its wiring ``signature``
    standardised over the communities of three or more members with a within edge
    (size-weighted, clipped; the others get zeros: too small to have a circuit's signature)
    and scaled by ``weight``."""
    nc = int(communities.max()) + 1
    size = np.bincount(communities, minlength=nc).astype(np.float64)
    mean = np.zeros((nc, features.shape[1]))
    np.add.at(mean, communities, features)
    mean /= np.maximum(size, 1.0)[:, None]
    wired = (size >= 3) & (signature.sum(1) > 0)
    block = np.zeros_like(signature, dtype=np.float64)
    if wired.any():
        centre = np.average(signature[wired], axis=0, weights=size[wired])
        spread = np.sqrt(np.average((signature[wired] - centre) ** 2, 0, weights=size[wired]))
        block[wired] = np.clip((signature[wired] - centre) / (spread + 1e-9), -5, 5)
    return np.concatenate([mean, float(weight) * block], axis=1), size


def _weighted_kmeans(x: np.ndarray, size: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed)
    return km.fit(x, sample_weight=size).labels_.astype(np.int64)


def community_motifs(
    features: np.ndarray,
    communities: np.ndarray,
    signature: np.ndarray,
    weight: float,
    n_filters: int,
    seed: int = 0,
) -> np.ndarray | None:
    """One motif per community: k-means of the communities, (C,) label per community.

    Each community is described by :func:`community_descriptors` (its members' mean
    ``features`` and its wiring ``signature`` (C, Q), :func:`community_wiring_features`,
    scaled by ``weight``). The k-means weighs each community by its size. None when there
    are fewer communities than ``n_filters``.
    """
    nc = int(communities.max()) + 1
    if nc < n_filters:
        return None
    feats, size = community_descriptors(features, communities, signature, weight)
    return _weighted_kmeans(feats, size, n_filters, seed)


def size_weighted_silhouette(x: np.ndarray, labels: np.ndarray, size: np.ndarray) -> float:
    """Silhouette of communities ``x`` (C, P) under ``labels`` (C,), weighted by ``size``.

    A community's a is its size-weighted mean Euclidean distance to the other communities of
    its group (0 when it is alone there, and then its value is 0), b the same to the nearest
    other group, its value (b - a) / max(a, b); the mean over communities weighs each by its
    size (a community of 30 neurons counts as 30). With sizes of one it is the usual
    silhouette. -1 for a single group. Memory and time grow as C squared (the communities,
    not the neurons).
    """
    from scipy.spatial.distance import cdist

    groups = np.unique(labels)
    if groups.size < 2:
        return -1.0
    dist = cdist(x, x)
    mass = np.stack([size * (labels == g) for g in groups], 1)  # (C, G)
    total = dist @ mass  # (C, G): size-weighted distance sums to every group
    own = np.searchsorted(groups, labels)
    count = mass.sum(0)[own] - size  # the rest of its own group (itself excluded)
    a = np.where(count > 0, total[np.arange(len(x)), own] / np.maximum(count, 1e-12), 0.0)
    mean_to = total / mass.sum(0)[None]
    mean_to[np.arange(len(x)), own] = np.inf
    b = mean_to.min(1)
    s = np.where(count > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(np.average(s, weights=size))


def community_motif_count(
    features: np.ndarray,
    communities: np.ndarray,
    signature: np.ndarray,
    weight: float,
    max_motifs: int,
    min_share: float,
    parsimony: float,
    seed: int = 0,
    criterion: str = "silhouette",
) -> tuple[int, np.ndarray]:
    """The number of motifs from the data and the motif of every community (C,).

    The communities (:func:`community_descriptors`) are clustered by size-weighted k-means
    for every k from 2 to ``max_motifs`` (at most one fewer than the communities); a k counts
    only when every group holds at least ``min_share`` of the neurons, and the smallest k
    whose size-weighted silhouette (:func:`size_weighted_silhouette`) is within
    ``parsimony`` of the best such k's is chosen. One motif when no k counts.

    Why on these descriptions: given the true number of motifs, their k-means finds the
    motifs where the discovery's cross-prediction profiles do not (dev zoo brains of 2-6
    families, 1000-1039: median motif ARI 0.99 against 0.82), so the count is read where the
    motifs are separated best; ``min_share`` and ``parsimony`` keep a few odd communities
    or a split heterogeneous motif from counting as motifs of their own (chosen on those dev
    brains). On fresh dev brains it finds the true count on 21 and 24 of 40 (plain, instance
    heterogeneity) and under-counts 14 of each, merging two motifs: better than the profile
    cut, far from the count given (rule R14 failed; docs/results/motifs.md).

    ``criterion="consensus"``: the median of three counts over the same clusterings and
    share guard — the silhouette's above, Calinski-Harabasz's (the k of the largest ratio of
    between- to within-motif spread) and Hartigan's (the first k whose next split lowers the
    within-motif spread by a factor of at most 1 + 10 / (C - k - 1)); each one alone counts
    no better on dev brains, their median under-counts less (fresh dev brains: 43 exact counts
    of 80 against 38, median motif ARI 0.894 / 0.867 against 0.854 / 0.867, below rule R15's
    0.90; docs/results/motifs.md).
    """
    feats, size = community_descriptors(features, communities, signature, weight)
    k, labels, scores = silhouette_count(feats, size, max_motifs, min_share, parsimony, seed)
    if scores and criterion == "consensus":
        within = {j: _within_sum(feats, labels[j], size) for j in (1, *sorted(scores))}
        counts = sorted((k, _calinski_harabasz_count(within, feats.shape[0]),
                         _hartigan_count(within, feats.shape[0])))
        k = counts[1]
    return k, labels[k]


def silhouette_count(
    x: np.ndarray, size: np.ndarray, max_motifs: int, min_share: float, parsimony: float,
    seed: int = 0,
) -> tuple[int, dict[int, np.ndarray], dict[int, float]]:
    """Rule R14's count on community descriptions ``x`` (C, P) of ``size`` (C,) neurons.

    Returns the count, the size-weighted k-means labels of every k tried (1 to ``max_motifs``,
    at most C - 1) and the size-weighted silhouette of every k whose motifs all hold
    ``min_share`` of the neurons; the count is the smallest such k within ``parsimony`` of the
    best, 1 when no k qualifies (see :func:`community_motif_count`).
    """
    top = min(int(max_motifs), x.shape[0] - 1)
    scores: dict[int, float] = {}
    labels: dict[int, np.ndarray] = {1: np.zeros(x.shape[0], dtype=np.int64)}
    for k in range(2, top + 1):
        labels[k] = _weighted_kmeans(x, size, k, seed)
        share = np.bincount(labels[k], weights=size, minlength=k).min() / size.sum()
        if share >= min_share:
            scores[k] = size_weighted_silhouette(x, labels[k], size)
    if not scores:
        return 1, labels, scores
    best = max(scores.values())
    return min(k for k, score in scores.items() if score >= best - parsimony), labels, scores


def _within_sum(x: np.ndarray, labels: np.ndarray, size: np.ndarray) -> float:
    """Size-weighted sum of squares of the communities around their group's weighted mean."""
    total = 0.0
    for group in np.unique(labels):
        inside = labels == group
        centre = np.average(x[inside], axis=0, weights=size[inside])
        total += float((size[inside, None] * (x[inside] - centre) ** 2).sum())
    return total


def _calinski_harabasz_count(within: dict[int, float], communities: int) -> int:
    """The k > 1 of ``within`` (k: within-motif sum, 1 the total) with the largest
    Calinski-Harabasz ratio over ``communities`` items."""
    ratio = {k: ((within[1] - w) / (k - 1)) / (w / max(communities - k, 1))
             for k, w in within.items() if k > 1}
    return max(ratio, key=ratio.get)


def _hartigan_count(within: dict[int, float], communities: int, bar: float = 10.0) -> int:
    """The first k of ``within`` whose next allowed k lowers the within-motif sum by too
    little: (W_k / W_next - 1) (C - k - 1) <= ``bar``; the last k when every split pays."""
    ks = sorted(within)
    for k, after in zip(ks, ks[1:], strict=False):
        if (within[k] / max(within[after], 1e-300) - 1) * (communities - k - 1) <= bar:
            return k
    return ks[-1]


def _neighbour_mean(feats: np.ndarray, pairs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of each neuron's features with its partners' (itself with weight 1)."""
    acc = feats.copy()
    tot = np.ones(feats.shape[0])
    np.add.at(acc, pairs[1], weights[:, None] * feats[pairs[0]])
    np.add.at(tot, pairs[1], weights)
    return acc / tot[:, None]


def lagged_affinity(
    z: np.ndarray, pairs: np.ndarray, device: str | torch.device | None = None
) -> np.ndarray:
    """max(|corr lag 0|, |corr i->k lag 1|, |corr k->i lag 1|) for each pair (2, P).

    ``device``: a torch device to compute on (e.g. the fit's GPU); default numpy on the CPU.
    """
    if pairs.shape[1] == 0:
        return np.zeros(0)
    return np.max(np.abs(_pair_products(z, pairs, True, device)), axis=0)


def group_neurons(n: int, pairs: np.ndarray, weights: np.ndarray, seed: int = 0) -> np.ndarray:
    """Communities of the weighted neighbour graph (Louvain), shape (N,) group id per neuron.

    Uses networkx (a dependency of scikit-image); without it, connected components of the
    pairs with weight above the median.
    """
    keep = weights > 0
    a, b, w = pairs[0][keep], pairs[1][keep], weights[keep]
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx comes with scikit-image
        nx = None
    if nx is not None:
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_weighted_edges_from(zip(a.tolist(), b.tolist(), w.tolist(), strict=True))
        comms = nx.community.louvain_communities(g, weight="weight", seed=seed)
        groups = np.zeros(n, dtype=np.int64)
        sizes = [len(c) for c in comms]
        members = np.fromiter((i for c in comms for i in c), dtype=np.int64, count=sum(sizes))
        groups[members] = np.repeat(np.arange(len(comms)), sizes)
        return groups
    from scipy.sparse.csgraph import connected_components

    strong = w > np.median(w) if w.size else w.astype(bool)
    adj = sp.coo_matrix((np.ones(strong.sum()), (a[strong], b[strong])), shape=(n, n))
    return connected_components(adj, directed=False)[1].astype(np.int64)


def vote(groups: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Majority label of every group, broadcast back to its members (N,)."""
    counts = np.zeros((groups.max() + 1, n_labels))
    np.add.at(counts, (groups, labels), 1.0)
    return counts.argmax(1)[groups]


def pick_fields(
    groups: np.ndarray,
    group_label: np.ndarray,
    candidates: np.ndarray,
    mask: np.ndarray,
    centers: np.ndarray,
    positions: np.ndarray,
    diameter: float,
) -> np.ndarray:
    """One field per group: the candidate field enclosing most members, nearest the group
    centroid, never the same (field, label) as a larger group. Returns the slot (N,) of that
    field among each neuron's candidates (members outside it keep their own nearest field).
    """
    n, lm = candidates.shape
    ng = int(groups.max()) + 1
    nf = centers.shape[0]
    gi = np.broadcast_to(groups[:, None], (n, lm))[mask]
    key = gi.astype(np.int64) * nf + candidates[mask]
    uk, cnt = np.unique(key, return_counts=True)
    g_of, f_of = uk // nf, uk % nf
    size = np.bincount(groups, minlength=ng)
    centroid = np.zeros((ng, 3))
    np.add.at(centroid, groups, positions)
    centroid /= np.maximum(size, 1)[:, None]
    score = cnt / size[g_of] - 0.2 * np.linalg.norm(centers[f_of] - centroid[g_of], axis=1) / (
        diameter
    )
    order = np.lexsort((-score, g_of))
    g_sorted, f_sorted = g_of[order], f_of[order]
    starts = np.searchsorted(g_sorted, np.arange(ng))
    stops = np.searchsorted(g_sorted, np.arange(ng), side="right")
    best = np.full(ng, -1, dtype=np.int64)
    used: set[tuple[int, int]] = set()
    for g in np.argsort(-size, kind="stable"):  # groups (not neurons), largest first
        options = f_sorted[starts[g] : stops[g]]
        if options.size == 0:
            continue
        chosen = next((f for f in options if (group_label[g], f) not in used), options[0])
        best[g] = chosen
        used.add((group_label[g], chosen))
    field = best[groups]
    has = (candidates == field[:, None]) & mask
    dist = np.linalg.norm(centers[np.clip(candidates, 0, None)] - positions[:, None, :], axis=-1)
    dist = np.where(mask, dist, np.inf)
    return np.where(has.any(1), has.argmax(1), dist.argmin(1))


def motif_init(
    features: np.ndarray,
    n_filters: int,
    seed: int = 0,
    centre_neurons: np.ndarray | None = None,
) -> np.ndarray:
    """k-means of the dynamics features into ``n_filters`` groups: (N,) group per neuron.

    ``centre_neurons`` (N,) bool, optional: the neurons whose features place the centres;
    every neuron then joins its nearest centre. Used when it holds at least two neurons per
    group (else all neurons place them).
    """
    from sklearn.cluster import KMeans

    n = features.shape[0]
    k = min(n_filters, n)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed)
    if centre_neurons is None or int(np.count_nonzero(centre_neurons)) < 2 * k:
        return km.fit_predict(features).astype(np.int64)
    return km.fit(features[centre_neurons]).predict(features).astype(np.int64)


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


def _louvain_parts(sym: sp.csr_matrix, members: np.ndarray, resolution: float, seed: int):
    """(m,) Louvain community of each of ``members`` in their own symmetrised sub-graph."""
    import networkx as nx

    sub = sp.triu(sym[members][:, members], k=1).tocoo()
    g = nx.Graph()
    g.add_nodes_from(range(members.size))
    g.add_weighted_edges_from(
        zip(sub.row.tolist(), sub.col.tolist(), sub.data.tolist(), strict=True)
    )
    out = np.zeros(members.size, dtype=np.int64)
    parts = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)
    for k, part in enumerate(parts):
        out[list(part)] = k
    return out


def split_communities(
    adjacency: sp.spmatrix,
    communities: np.ndarray,
    min_size: int = 3,
    density_ratio: float = 4.0,
    resolution: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Communities split along their own connectome sub-circuits, (N,) new consecutive ids.

    Every community of ``2 * min_size`` members or more is cut into the Louvain communities
    (at ``resolution``) of its symmetrised within-community |weights|; two parts are merged
    (twice over) when the density between them (|weight| per pair) reaches 1 /
    ``density_ratio`` of the lower of their within densities (pieces of one circuit are
    densely linked, two circuits weakly). A merged part is a real circuit when it has
    ``min_size`` members or more and a within edge; a community with two real parts or more
    is split into them, and the members of its other parts join the real part they have most
    synapse weight with (the largest one when none). Why: one correlation community can hold
    two wired circuits whose activities correlate (dev toy brains: two instances in one
    community), and deciding its motif as a whole gives both the majority's. Sparse circuits
    (a chain: a path) split into segments here; the caller merges parts of one motif again.
    Needs networkx (a dependency of scikit-image); without it the communities are returned.
    """
    try:
        import networkx  # noqa: F401
    except ImportError:  # pragma: no cover - networkx comes with scikit-image
        return communities.copy()
    a = abs(sp.csr_matrix(adjacency, dtype=np.float64))
    a.setdiag(0.0)
    sym = (a + a.T).tocsr()
    part = np.zeros(communities.size, dtype=np.int64)
    next_id = 0
    size = np.bincount(communities)
    for c in np.flatnonzero(size > 0):
        members = np.flatnonzero(communities == c)
        local = np.zeros(members.size, dtype=np.int64)
        if members.size >= 2 * min_size:
            local = _split_one(sym, members, min_size, density_ratio, resolution, seed)
        part[members] = next_id + local
        next_id += int(local.max()) + 1
    return part


def _split_one(
    sym: sp.csr_matrix,
    members: np.ndarray,
    min_size: int,
    density_ratio: float,
    resolution: float,
    seed: int,
) -> np.ndarray:
    """(m,) part of each member of one community (all 0 when it is not split)."""
    from scipy.sparse.csgraph import connected_components

    sub = sym[members][:, members].toarray()
    local = _louvain_parts(sym, members, resolution, seed)
    for _ in range(2):  # merge the parts that are one circuit; then recount on the merged
        onehot = np.eye(int(local.max()) + 1)[local]  # (m, parts)
        weight = onehot.T @ sub @ onehot  # (parts, parts) symmetric |weight| between parts
        size = onehot.sum(0)
        d_in = np.diag(weight) / np.maximum(size * (size - 1), 1.0)
        d_between = weight / np.maximum(np.outer(size, size), 1.0)
        linked = density_ratio * d_between >= np.minimum.outer(d_in, d_in)
        local = connected_components(sp.csr_matrix(linked), directed=False)[1][local]
    onehot = np.eye(int(local.max()) + 1)[local]
    size = onehot.sum(0)
    w_in = np.diag(onehot.T @ sub @ onehot)
    real = (size >= min_size) & (w_in > 0)
    if np.count_nonzero(real) < 2:
        return np.zeros(members.size, dtype=np.int64)
    to_real = sub @ onehot[:, real]  # (m, real parts) synapse weight of each member
    join = np.where(to_real.max(1) > 0, to_real.argmax(1), int(np.argmax(size[real])))
    rank = np.cumsum(real) - 1  # id of each real part among the real ones
    return np.where(real[local], rank[local], join).astype(np.int64)


def move_to_wired_community(
    adjacency: sp.spmatrix,
    communities: np.ndarray,
    ratio: float = 2.0,
    min_share: float = 0.5,
) -> np.ndarray:
    """Each neuron moved to the community it has most reciprocated synapse weight with, (N,).

    The reciprocated weight of a pair is 2 min(|w_ij|, |w_ji|): the weight of the loops
    between them. A neuron moves when its reciprocated weight to another community is at
    least ``ratio`` times that to the rest of its own and at least ``min_share`` times the
    median neuron's total reciprocated weight (one synchronous pass). Why: correlations can
    put part of a recurrent circuit in a neighbouring community (dev toy brains: 2 of an
    oscillator instance's 6 neurons among integrators, with loops only to their instance's
    other half); feed-forward wiring (chains) has no loops and never moves a neuron (with
    the plain weights, 102 correctly placed chain neurons moved on dev seeds 4-31). Cost O(E).
    """
    a = abs(sp.csr_matrix(adjacency, dtype=np.float64))
    a.setdiag(0.0)
    a.eliminate_zeros()
    loops = (2.0 * a.minimum(a.T)).tocoo()
    out = communities.astype(np.int64).copy()
    n, nc = out.size, int(out.max()) + 1
    if loops.nnz == 0:
        return out
    total = np.asarray(loops.sum(1)).ravel()
    floor = float(min_share) * float(np.median(total))
    to_comm = sp.csr_matrix((loops.data, (loops.row, out[loops.col])), shape=(n, nc))
    own = np.asarray(to_comm[np.arange(n), out]).ravel()
    other = to_comm - sp.csr_matrix((own, (np.arange(n), out)), shape=(n, nc))
    best = np.asarray(other.argmax(1)).ravel()
    best_w = np.asarray(other.max(1).todense()).ravel()
    move = (best_w > 0) & (best_w >= ratio * own) & (best_w >= floor)
    out[move] = best[move]
    _, out = np.unique(out, return_inverse=True)
    return out.astype(np.int64)
