"""Fit stage 2, *initialise*: receptive-field grid, drive edges, assignment and the network.

The assignment starts from the recording's dynamics (``ModelConfig.init="dynamics"``):
neurons are clustered by per-neuron dynamics features into ``n_filters`` motif groups,
communities of correlated neighbours share one motif and one receptive field, and the
initial logits favour that (field, filter) pair. The drive weights start from per-neuron
ridge regression or from the connectome kernels (``ModelConfig.edge_init``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.model.initialise import (
    community_motif_count,
    community_motifs,
    community_wiring_features,
    connectome_edges,
    group_neurons,
    lagged_affinity,
    local_edges,
    location_scores,
    motif_features,
    motif_init,
    move_to_wired_community,
    neighbour_correlation,
    per_neuron_ridge,
    pick_fields,
    split_communities,
    vote,
    wiring_features,
)
from napari_mesoscale.model.prepare import PreparedData
from napari_mesoscale.model.reassign import AssignmentUnits, community_units
from napari_mesoscale.model.training import keeps_initial_motifs, other_filters
from napari_mesoscale.progress import Progress

__all__ = ["InitialModel", "auto_diameter", "initialise_model"]


@dataclass
class InitialModel:
    """The untrained network and the geometry it was built on.

    Attributes
    ----------
    net : the :class:`MesoscaleNet` with its initial assignment and drive weights.
    config : the configuration with ``rf_diameter`` and ``stride`` resolved.
    grid : the receptive-field grid (``napari_mesoscale.connectome.receptive_field_grid``).
    edges : (2, E) pre -> post drive edges.
    edge_weight_struct : per-edge synapse weights of the connectome, or None without one.
    init_groups : (N,) the initial motif group of every neuron, or None (random init).
    units : the communities the alternating assignment moves (``assignment="alternating"``),
        else None.
    """

    net: MesoscaleNet
    config: ModelConfig
    grid: Any
    edges: np.ndarray
    edge_weight_struct: np.ndarray | None
    init_groups: np.ndarray | None
    units: AssignmentUnits | None = None


def auto_diameter(positions: np.ndarray) -> float:
    """Default receptive-field diameter: 5 x median distance to the 8th-nearest neuron.

    The diameter is an upper bound on a domain's extent: a field must be able to enclose a
    whole motif instance. On the default toy brain this is about 80 µm (instances have radii
    up to 20 µm); 2.5 x gave domain ARI <= 0.70 even with true motifs.
    """
    from scipy.spatial import cKDTree

    n = positions.shape[0]
    k = min(9, n)
    if k < 2:
        return 1.0
    dist, _ = cKDTree(positions).query(positions, k=k)
    d = float(np.median(dist[:, -1])) * 5.0
    return d if d > 0 else 1.0


def as_adjacency(connectome: Any, n: int) -> sp.csr_matrix:
    """The (N, N) pre -> post adjacency of a Connectome or a (sparse) matrix, checked."""
    adj = getattr(connectome, "adjacency", connectome)
    if not sp.issparse(adj):
        adj = np.asarray(adj)
        if adj.ndim != 2:
            raise ValueError("connectome must be a Connectome or an (N, N) (sparse) matrix")
        adj = sp.csr_matrix(adj)
    if adj.shape != (n, n):
        raise ValueError(
            f"connectome adjacency has shape {adj.shape} but activity has N={n} neurons; "
            "match the connectome's neurons to the recorded ones first (register_point_sources)."
        )
    adj = sp.csr_matrix(adj)
    bad = ~np.isfinite(adj.data)
    if bad.any():
        coo = adj.tocoo()  # same order as adj.data
        pre, post = int(coo.row[bad][0]), int(coo.col[bad][0])
        raise ValueError(
            f"connectome adjacency has {int(bad.sum())} NaN or infinite weights (first at "
            f"pre={pre}, post={post}); replace them with 0 (no synapse) or real weights."
        )
    return adj


def initialise_model(
    data: PreparedData,
    cfg: ModelConfig,
    connectome: Any,
    seed: int,
    progress: Progress | None = None,
    device: str | torch.device | None = None,
) -> InitialModel:
    """Grid, edges, initial assignment and drive weights: the network ready to train.

    ``cfg.input_lags="auto"`` is decided here by the lag probe (``model/lag_probe.py``) when
    the caller has not resolved it.

    ``device`` (default CPU) is where the heavy parts of the dynamics initialisation run
    (ridge fits, neighbour correlations); the network is built on the CPU. Progress reports
    name each part ("ridge", "correlations", "features", "k-means", "communities") so that
    their cost can be timed.
    """
    from napari_mesoscale.connectome import receptive_field_grid

    progress = progress or Progress()
    device = torch.device("cpu" if device is None else device)
    if cfg.input_lags == "auto":  # a direct call; fit_mesoscale resolves it first, keeping
        # the probe's figures for the fit
        from napari_mesoscale.model.lag_probe import probe_input_lags

        cfg = cfg.replace(input_lags=probe_input_lags(data, connectome).lags)
    d = float(cfg.rf_diameter) if cfg.rf_diameter else auto_diameter(data.positions)
    stride = float(cfg.stride) if cfg.stride else d * float(cfg.stride_fraction)
    grid = receptive_field_grid(data.positions, diameter=d, stride=stride)
    cfg = cfg.replace(rf_diameter=d, stride=float(grid.stride))
    edges, edge_struct, edge_kernel = _drive_edges(data, cfg, connectome)
    progress.report(0.2, "grid and edges", n_fields=int(grid.n_fields))
    ridge_model = _drive_ridge(data, edges, edge_kernel, device, cfg)
    progress.report(0.3, "drive ridge")
    gen = torch.Generator().manual_seed(int(seed))
    units = None
    partners = edges if connectome is not None else None  # connectome edges smooth features
    if cfg.assignment != "gradient":
        logits0, groups, units = community_units(data, cfg, grid, edges, seed, partners)
        if connectome is not None:  # each community's own sub-circuit: the wiring view of
            # discover_motif_count="wiring_cut" (O(E))
            units.wiring = community_wiring_features(
                as_adjacency(connectome, data.n_neurons), units.unit
            )
    else:
        step = progress.stage(0.3, 0.8, "assignment")
        centres = _centre_neurons(cfg, connectome, edges, data.n_neurons)
        wiring = _wiring(cfg, connectome, data.n_neurons)
        logits0, groups = _initial_logits(
            data, cfg, grid, edges, seed, gen, (device, step), centres, partners, wiring, connectome
        )
        if keeps_initial_motifs(cfg):
            logits0 = lock_motif_logits(logits0, groups)
    progress.report(0.8, "assignment")
    net = _build_net(data, cfg, grid, edges, logits0, ridge_model, edge_kernel, gen)
    progress.report(1.0, "network")
    return InitialModel(net, cfg, grid, edges, edge_struct, groups, units)


def _drive_ridge(
    data: PreparedData,
    edges: np.ndarray,
    edge_kernel: np.ndarray | None,
    device: torch.device,
    cfg: ModelConfig | None = None,
) -> dict | None:
    """Per-neuron ridge for the drive (and stimulus) weights; None when nothing needs it.

    With ``edge_init="connectome"`` and no stimulus the drive starts from the kernels and the
    ridge (minutes at zebrafish scale) would only be thrown away. With
    ``linear_skip="ridge"`` the ridge is linear (own state, x[t-1] with ``input_lags=2``,
    stimulus, in-neighbours, intercept): it starts the linear path as well.
    """
    if edge_kernel is not None and data.u is None:
        return None
    if cfg is not None and cfg.linear_skip == "ridge":
        return per_neuron_ridge(
            data.z[data.init],
            edges,
            _u_init(data),
            device=device,
            degree=1,
            previous=cfg.input_lags == 2,
        )
    return per_neuron_ridge(data.z[data.init], edges, _u_init(data), device=device)


def skip_start(ridge: dict, input_lags: int, n_stimulus: int) -> torch.Tensor:
    """(N, P) initial coefficients of the linear path (columns of
    :func:`~napari_mesoscale.model.core.skip_names`) from a linear per-neuron ridge: its own
    and previous-state coefficients and intercept, gain 1 on the drive and stimulus drive
    (whose weights start at the ridge's edge and stimulus coefficients)."""
    n = ridge["intercept"].shape[0]
    cols = [ridge["self"][:, 0]]
    if input_lags == 2:
        cols.append(ridge["previous"])
    cols.append(np.ones(n))
    if n_stimulus:
        cols.append(np.ones(n))
    cols.append(ridge["intercept"])
    return torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32)


def _u_init(data: PreparedData) -> np.ndarray | None:
    return None if data.u is None else data.u[data.init]


def _centre_neurons(
    cfg: ModelConfig, connectome: Any, edges: np.ndarray, n: int
) -> np.ndarray | None:
    """(N,) the neurons that place the initial motif centres, or None for all of them.

    With a connectome and ``init_centres="connected"``: the neurons with a connectome edge.
    A source matched to no connectome neuron has none, so its drive features are all zero
    and it is often a duplicate, a neuropil patch or a dim cell; such sources pulled the
    k-means centres away from the motifs (realistic calcium, 5 brains, 600 frames: initial
    motif ARI of the matched cells 0.73 with every source placing the centres, 0.91 with the
    connected ones only, as high as with the matched cells alone). They are also left out of
    the communities of correlated neighbours (each is a community of its own): domain ARI
    0.63 -> 0.71 on the same brains.
    """
    if connectome is None or cfg.init_centres != "connected":
        return None
    connected = np.bincount(edges.ravel(), minlength=n) > 0
    return None if connected.all() else connected


def _wiring(cfg: ModelConfig, connectome: Any, n: int) -> np.ndarray | None:
    """(N, 4) wiring signature of every neuron when ``cfg.wiring_features`` asks for it."""
    if connectome is None or cfg.wiring_features <= 0:
        return None
    return wiring_features(as_adjacency(connectome, n))


def _drive_edges(
    data: PreparedData, cfg: ModelConfig, connectome: Any
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Edges of the drive, the connectome's weights on them and the optional kernel start."""
    if connectome is None:
        gather_r = float(cfg.gather_radius) if cfg.gather_radius else cfg.rf_diameter / 2
        return local_edges(data.positions, gather_r, cfg.max_neighbors), None, None
    adj = as_adjacency(connectome, data.n_neurons)
    edges, edge_struct = connectome_edges(adj)
    edge_kernel = None
    if cfg.edge_init == "connectome":
        from napari_mesoscale.forecasters.graph_kernel import connectome_kernels

        # row i of the kernels = neuron i's presynaptic partners: value of edge (pre, post)
        kern = connectome_kernels(
            adj,
            orientation="in",
            normalise="l1" if cfg.kernel_normalisation == "l1" else None,
            binary=cfg.kernel_normalisation == "binary",
        )
        edge_kernel = np.asarray(kern[edges[1], edges[0]]).ravel()
        if cfg.kernel_normalisation == "spectral":
            edge_kernel = edge_kernel / spectral_radius(adj)
    return edges, edge_struct, edge_kernel


def spectral_radius(adjacency: sp.spmatrix) -> float:
    """Largest eigenvalue magnitude of a (sparse) adjacency; 1 for an empty one."""
    matrix = sp.csr_matrix(adjacency, dtype=np.float64)
    if matrix.nnz == 0:
        return 1.0
    if matrix.shape[0] <= 512:
        radius = float(np.abs(np.linalg.eigvals(matrix.toarray())).max())
    else:
        from scipy.sparse.linalg import eigs

        radius = float(np.abs(eigs(matrix, k=1, which="LM", return_eigenvectors=False))[0])
    return radius if radius > 0 else 1.0


#: how far below the rest the logits of a neuron's other filters start when its motif is kept
MOTIF_LOCK = 30.0


def lock_motif_logits(logits0: torch.Tensor, groups: np.ndarray) -> torch.Tensor:
    """``logits0`` (N, Lm, B) with every filter but the neuron's own (``groups``) lowered by
    ``MOTIF_LOCK``: at any temperature its weight is below e^-30 and its argmax never wins
    (``activity_assignment="motifs"``; training zeroes their gradient)."""
    return logits0 - MOTIF_LOCK * other_filters(groups, logits0.shape[-1]).to(logits0.dtype)


def _initial_logits(
    data: PreparedData,
    cfg: ModelConfig,
    grid: Any,
    edges: np.ndarray,
    seed: int,
    gen: torch.Generator,
    where: tuple[torch.device, Progress] = (torch.device("cpu"), Progress()),
    centre_neurons: np.ndarray | None = None,
    partners: np.ndarray | None = None,
    wiring: np.ndarray | None = None,
    connectome: Any = None,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """(N, Lm, B) initial assignment logits and the initial motif groups.

    ``where``: the device of the heavy parts and the progress of this stage;
    ``centre_neurons``: the neurons that place the motif centres (None: all);
    ``partners``: the connectome's edges (None without a connectome) and ``wiring``: its
    per-neuron wiring signature (None: unused), see
    :func:`~napari_mesoscale.model.initialise.motif_features`; ``connectome``: the
    connectome, whose communities' sub-circuits relabel them with
    ``cfg.wiring_scope="community"`` (see :func:`_community_labels`).
    """
    n, b, cand = data.n_neurons, cfg.n_filters, grid.candidates
    if cfg.init == "random":
        return 0.01 * torch.randn(n, cand.shape[1], b, generator=gen), None
    if cfg.init != "dynamics":
        raise ValueError(f"init must be 'dynamics' or 'random'; got {cfg.init!r}")
    device, progress = where
    d, positions = cfg.rf_diameter, data.positions
    init_r = float(cfg.init_radius) if cfg.init_radius else d / 4
    spatial = local_edges(positions, init_r, cfg.init_neighbors)
    groups, pos_w, feats = _motif_groups(
        data, cfg, edges, spatial, seed, where, centre_neurons, partners, wiring
    )
    if cfg.group_init:
        ztr = data.z_neuron
        aff = lagged_affinity(ztr, spatial, device=device)
        aff = aff * (groups[spatial[0]] == groups[spatial[1]])
        if centre_neurons is not None:  # unexplained sources stay out of the communities
            aff = aff * (centre_neurons[spatial[0]] & centre_neurons[spatial[1]])
        communities = group_neurons(n, spatial, aff, seed=seed)
        scope = cfg.wiring_scope if wiring is not None else "neuron"
        communities, label = _community_motifs(
            cfg, scope, connectome, communities, groups, feats, seed
        )
        groups = label[communities]
        slot = pick_fields(communities, label, cand, grid.mask, grid.centers, positions, d)
        progress.report(1.0, "communities", n_communities=int(label.size))
    else:
        loc = location_scores(positions, cand, grid.mask, grid.centers, d, spatial, pos_w)
        slot = np.where(grid.mask, loc, -np.inf).argmax(1)
        progress.report(1.0, "location scores")
    loc_onehot = np.zeros(cand.shape)
    loc_onehot[np.arange(n), slot] = 1.0
    logits0 = (
        cfg.init_strength * np.eye(b)[groups][:, None, :]
        + cfg.location_strength * loc_onehot[:, :, None]
    )
    logits0 = torch.as_tensor(logits0, dtype=torch.float32)
    return logits0 + 0.01 * torch.randn(logits0.shape, generator=gen), groups


def _motif_groups(
    data: PreparedData,
    cfg: ModelConfig,
    edges: np.ndarray,
    spatial: np.ndarray,
    seed: int,
    where: tuple[torch.device, Progress],
    centre_neurons: np.ndarray | None = None,
    partners: np.ndarray | None = None,
    wiring: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means motif group of every neuron (N,), the positive neighbour correlations and
    the features the k-means clustered (N, P)."""
    device, progress = where
    ztr, utr = data.z_neuron, _u_init(data)  # z_neuron holds the initialisation frames only
    ridge = per_neuron_ridge(ztr, edges, utr, device=device)
    progress.report(0.3, "ridge")
    pos_w = np.clip(neighbour_correlation(ztr, spatial, device=device), 0, None)
    progress.report(0.4, "correlations")
    feats = motif_features(ztr, ridge, edges, utr, spatial, pos_w, cfg, partners, wiring)
    progress.report(0.5, "features")
    groups = motif_init(feats, cfg.n_filters, seed=seed, centre_neurons=centre_neurons)
    progress.report(0.6, "k-means")
    return groups, pos_w, feats


def _community_motifs(
    cfg: ModelConfig,
    scope: str,
    connectome: Any,
    communities: np.ndarray,
    groups: np.ndarray,
    feats: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The communities (N,) and the motif of each (C,): the members' majority k-means group
    (``scope="neuron"``), relabelled by the sub-circuit's wiring (``"community"``), or both
    after splitting the communities into their sub-circuits (``"subcircuit"``), whose parts
    of one community that take the same motif are one community again (so that the split
    moves no domain boundary inside a circuit of one motif, e.g. a chain's segments).
    """
    parent = communities
    if scope == "subcircuit":
        parent, communities = _subcircuits(cfg, connectome, communities, seed)
    label = np.zeros(communities.max() + 1, dtype=np.int64)
    label[communities] = vote(communities, groups, cfg.n_filters)
    if scope in ("community", "subcircuit") or cfg.init_motif_count != "n_filters":
        label = _community_labels(cfg, connectome, communities, feats, label, seed)
    if scope != "subcircuit":
        return communities, label
    merged = parent * cfg.n_filters + label[communities]
    _, merged = np.unique(merged, return_inverse=True)
    merged_label = np.zeros(merged.max() + 1, dtype=np.int64)
    merged_label[merged] = label[communities]
    return merged.astype(np.int64), merged_label


def _subcircuits(
    cfg: ModelConfig, connectome: Any, communities: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The communities after the loop-wired moves (N,) and their parts split along their
    connectome sub-circuits (N,) (``wiring_scope="subcircuit"``, see
    :func:`~napari_mesoscale.model.initialise.move_to_wired_community` and
    :func:`~napari_mesoscale.model.initialise.split_communities`)."""
    adjacency = as_adjacency(connectome, communities.size)
    if cfg.subcircuit_move_ratio > 0:
        communities = move_to_wired_community(
            adjacency, communities, cfg.subcircuit_move_ratio, cfg.subcircuit_move_share
        )
    parts = split_communities(
        adjacency,
        communities,
        min_size=cfg.subcircuit_min_size,
        density_ratio=cfg.subcircuit_density_ratio,
        resolution=cfg.subcircuit_resolution,
        seed=seed,
    )
    return communities, parts


def _community_labels(
    cfg: ModelConfig,
    connectome: Any,
    communities: np.ndarray,
    feats: np.ndarray,
    label: np.ndarray,
    seed: int,
) -> np.ndarray:
    """The motif of every community (C,) from its members' mean features and its own
    sub-circuit's wiring (``wiring_scope="community"``); ``label`` (the vote) when there are
    fewer communities than filters.

    Why: a motif instance is a circuit. One neuron's wiring signature sees only its few
    partners, so an instance whose activity hides its motif can stay with the wrong family
    at any usable weight (dev toy brain seed 28: initial motif ARI 0.899 with
    ``wiring_features=2``); its whole sub-circuit's signature is unambiguous (1.000).
    """
    if connectome is None:  # a count from the data without one: dynamics alone
        signature, weight = np.zeros((int(communities.max()) + 1, 1)), 0.0
    else:
        adjacency = as_adjacency(connectome, communities.size)
        signature = community_wiring_features(adjacency, communities)
        weight = cfg.wiring_features
    if cfg.init_motif_count != "n_filters":
        return community_motif_count(
            feats, communities, signature, weight, cfg.n_filters,
            cfg.init_count_min_share, cfg.init_count_parsimony, seed=seed,
            criterion=cfg.init_motif_count,
        )[1]
    relabelled = community_motifs(feats, communities, signature, weight, cfg.n_filters, seed=seed)
    return label if relabelled is None else relabelled


def _build_net(
    data: PreparedData,
    cfg: ModelConfig,
    grid: Any,
    edges: np.ndarray,
    logits0: torch.Tensor,
    ridge_model: dict | None,
    edge_kernel: np.ndarray | None,
    gen: torch.Generator,
) -> MesoscaleNet:
    cand = grid.candidates
    relpos = np.where(
        grid.mask[..., None],
        (data.positions[:, None, :] - grid.centers[np.clip(cand, 0, None)]) / cfg.rf_diameter,
        0.0,
    )
    edge_init = ridge_model["edge"] if edge_kernel is None else edge_kernel
    n_stimulus = 0 if data.u is None else data.u.shape[1]
    skip = cfg.linear_skip == "ridge"
    net = MesoscaleNet(
        torch.as_tensor(cand),
        torch.as_tensor(relpos, dtype=torch.float32),
        grid.n_fields,
        torch.as_tensor(edges),
        n_filters=cfg.n_filters,
        n_stimulus=n_stimulus,
        hidden=cfg.hidden,
        depth=cfg.depth,
        activations=tuple(cfg.activations),
        logits_init=logits0,
        edge_weight_init=torch.as_tensor(edge_init, dtype=torch.float32),
        stim_weight_init=None
        if data.u is None
        else torch.as_tensor(ridge_model["stimulus"], dtype=torch.float32),
        shared_field_logits=cfg.shared_field_logits,
        population_filters=cfg.population_filters,
        input_lags=cfg.input_lags,
        linear_skip=skip,
        skip_init=skip_start(ridge_model, cfg.input_lags, n_stimulus) if skip else None,
        neuron_gains=cfg.neuron_gains,
        generator=gen,
    )
    if cfg.freeze_edges:
        net.edge_weight.requires_grad_(False)
    if cfg.output_init == "zero" or skip:  # with the linear path: the start is the ridge
        with torch.no_grad():
            net.bank.w_out.zero_()
            net.bank.c_out.zero_()
    return net
