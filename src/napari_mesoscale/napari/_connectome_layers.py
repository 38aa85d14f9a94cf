"""Connectome results as napari layer-data tuples (no Qt needed, so testable headless).

All positions are µm in (z, y, x): spatial ``scale`` is 1, which lines the layers up with image
layers shown at ``scale=voxel_size``. The transmission-response layer has a leading time axis
in frames (scale ``bin_size``), so its edges follow the time slider of a (T, Z, Y, X) movie.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.napari._contract import metadata_dict
from napari_mesoscale.napari._layers import LayerDataTuple, edge_vectors_layer, points_layer

EXCITATORY_RGBA = np.array([0.95, 0.45, 0.2, 0.8])
INHIBITORY_RGBA = np.array([0.25, 0.55, 0.95, 0.8])
TRANSMISSION_RGBA = np.array([1.0, 0.9, 0.2, 1.0])


def strongest_edges(adjacency: sp.spmatrix, k: int) -> np.ndarray:
    """CSR entry ids of the ``k`` strongest (largest |value|) out-edges of every neuron.

    Vectorised: entries are ordered by (row, -|value|) and the first ``k`` of each row kept.
    """
    adjacency = sp.csr_matrix(adjacency)
    if k < 1:
        raise ValueError(f"edges per neuron must be ≥ 1; got {k}.")
    rows = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))
    order = np.lexsort((-np.abs(adjacency.data), rows))
    rank = np.arange(order.size) - np.repeat(adjacency.indptr[:-1], np.diff(adjacency.indptr))
    return np.sort(order[rank < k])


def _subsample(ids: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    if ids.size <= limit:
        return ids
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=limit, replace=False))


def neuron_points(build: Any, *, size: float | None = None) -> LayerDataTuple:
    """Neurons as Points, with node features (degree, information flow, type, motif …)."""
    connectome = build.connectome
    features = build.features.copy()
    extra = [c for c in connectome.neurons.columns if c not in features.columns]
    extra = [c for c in extra if c not in ("z", "y", "x")]
    for column in extra:
        features[column] = connectome.neurons[column].to_numpy()
    if size is None:
        if connectome.n_neurons > 1:
            distance, _ = connectome.tree.query(connectome.positions, k=2)
            size = float(max(np.median(distance[:, 1]) * 0.6, 1.0))
        else:
            size = 5.0
    color_by = next((c for c in ("motif", "motif_name", "type") if c in features.columns), None)
    return points_layer(
        connectome.positions,
        "neurons",
        features=features,
        size=size,
        color_by=color_by,
        metadata=metadata_dict(n_neurons=connectome.n_neurons, units="µm", connectome=connectome),
    )


def synapse_points(
    connectome: Any, *, max_points: int = 200_000, size: float = 1.0
) -> LayerDataTuple:
    """Synapses as small Points (a random subsample beyond ``max_points``)."""
    total = connectome.n_synapses
    rows = _subsample(np.arange(total), max_points)
    table = connectome.synapses.iloc[rows]
    features = table.drop(columns=["z", "y", "x"]).reset_index(drop=True)
    name = "synapses" if rows.size == total else f"synapses ({rows.size:,} of {total:,})"
    return points_layer(
        connectome.synapse_positions[rows],
        name,
        features=features,
        size=size,
        face_color="white",
        border_width=0,
        opacity=0.35,
        metadata=metadata_dict(n_synapses_total=total, n_shown=int(rows.size), units="µm"),
    )


def edge_vectors(
    connectome: Any, *, per_neuron: int = 3, max_edges: int = 20_000
) -> LayerDataTuple:
    """The ``per_neuron`` strongest out-edges of every neuron as a Vectors layer.

    Beyond ``max_edges`` a random subsample is shown; the layer name and ``metadata`` give the
    shown and total counts.
    """
    adjacency = connectome.adjacency
    chosen = strongest_edges(adjacency, per_neuron)
    shown = _subsample(chosen, max_edges)
    pre = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))[shown]
    post = adjacency.indices[shown]
    value = adjacency.data[shown]
    positions = connectome.positions
    ids = connectome.ids
    features = pd.DataFrame(
        {"pre": ids[pre], "post": ids[post], "synapses": value, "sign": np.sign(value)}
    )
    colors = np.where((value < 0)[:, None], INHIBITORY_RGBA, EXCITATORY_RGBA)
    total = connectome.n_edges
    return edge_vectors_layer(
        positions[pre],
        positions[post],
        f"edges (top {per_neuron}/neuron: {shown.size:,} of {total:,})",
        features=features,
        edge_color=colors if shown.size else "white",
        metadata=metadata_dict(
            n_edges_total=total,
            n_top_k=int(chosen.size),
            n_shown=int(shown.size),
            per_neuron=per_neuron,
            units="µm",
        ),
    )


def grid_points(grid: Any) -> LayerDataTuple:
    """Receptive-field centres as Points of the field diameter; hidden until toggled on."""
    sizes = grid.field_sizes()
    features = pd.DataFrame({"field": np.arange(grid.n_fields), "n_neurons": sizes})
    return points_layer(
        grid.centers,
        f"receptive fields (d = {grid.diameter:g} µm)",
        features=features,
        size=grid.diameter,
        face_color="transparent",
        border_color="cyan",
        border_width=0.02,
        opacity=0.4,
        visible=False,
        metadata=metadata_dict(diameter_um=grid.diameter, stride_um=grid.stride, units="µm"),
    )


def transmission_vectors(
    transmission: Any, connectome: Any, *, max_per_bin: int = 2_000, max_total: int = 200_000
) -> LayerDataTuple:
    """Transmission-response graphs as a (K, 2, 4) Vectors layer over time.

    Each edge of bin b sits at time coordinate b; the layer's time ``scale`` is ``bin_size``
    frames and its ``translate`` (bin_size - 1) / 2, so the edges of bin b are shown on frames
    b·bin_size … (b+1)·bin_size - 1 of the time slider (napari shows vectors within half a data
    unit of the slider). At most ``max_per_bin`` edges per bin are kept (random subsample),
    fewer when ``n_bins × max_per_bin`` exceeds ``max_total``.
    """
    max_per_bin = max(1, min(int(max_per_bin), int(max_total) // max(transmission.n_bins, 1)))
    positions = connectome.positions
    ids = connectome.ids
    rng = np.random.default_rng(0)
    bins, edges = [], []
    for b in range(transmission.n_bins):
        edge_ids = transmission.bin_edge_ids(b)
        if edge_ids.size > max_per_bin:
            edge_ids = np.sort(rng.choice(edge_ids, size=max_per_bin, replace=False))
        edges.append(edge_ids)
        bins.append(np.full(edge_ids.size, b))
    edge_ids = np.concatenate(edges) if edges else np.zeros(0, dtype=np.int64)
    bin_of = np.concatenate(bins) if bins else np.zeros(0, dtype=np.int64)
    pre = transmission.pre[edge_ids]
    post = transmission.post[edge_ids]
    data = np.zeros((edge_ids.size, 2, 4))
    data[:, 0, 0] = bin_of
    data[:, 0, 1:] = positions[pre]
    data[:, 1, 1:] = positions[post] - positions[pre]
    features = pd.DataFrame(
        {
            "pre": ids[pre],
            "post": ids[post],
            "bin": bin_of,
            "first_frame": bin_of * transmission.bin_size,
            "frequency": transmission.frequency[edge_ids],
        }
    )
    total = int(transmission.edge_ids.size)
    bs = float(transmission.bin_size)
    attributes: dict[str, Any] = {
        "name": (
            f"transmission (bins of {transmission.bin_size} frames, delay {transmission.delay})"
        ),
        "edge_width": 1.0,
        "vector_style": "line",
        "edge_color": TRANSMISSION_RGBA if edge_ids.size else "white",
        "features": features,
        "scale": (bs, 1.0, 1.0, 1.0),
        "translate": ((bs - 1) / 2, 0.0, 0.0, 0.0),
        "axis_labels": ("t", "z", "y", "x"),
        "metadata": metadata_dict(
            n_bins=transmission.n_bins,
            bin_size=transmission.bin_size,
            delay=transmission.delay,
            n_transmitting_total=total,
            n_shown=int(edge_ids.size),
            max_per_bin=max_per_bin,
            units="frames, µm",
        ),
    }
    return data, attributes, "vectors"


def connectome_layers(
    build: Any,
    *,
    per_neuron: int = 3,
    max_edges: int = 20_000,
    max_synapses: int = 200_000,
    max_per_bin: int = 2_000,
    synapses: bool = True,
    neurons: bool = True,
) -> list[LayerDataTuple]:
    """All layers of a :class:`~napari_mesoscale.connectome.ConnectomeBuild`.

    ``synapses=False`` leaves out the synapses layer (the build widget does when a layer of the
    viewer already shows exactly the built synapses, e.g. the sample it was built from);
    ``neurons=False`` the neurons layer (the widget writes the build into the Points layer the
    neurons came from, :func:`write_build_into`).
    """
    connectome = build.connectome
    layers = []
    if synapses and connectome.n_synapses:
        layers.append(synapse_points(connectome, max_points=max_synapses))
    if connectome.n_edges:
        layers.append(edge_vectors(connectome, per_neuron=per_neuron, max_edges=max_edges))
    if build.grid is not None:
        layers.append(grid_points(build.grid))
    if build.transmission is not None:
        layers.append(transmission_vectors(build.transmission, connectome, max_per_bin=max_per_bin))
    if neurons:
        layers.append(neuron_points(build))
    return layers


def built_neuron_features(build: Any) -> pd.DataFrame:
    """The build's per-neuron table, one row per neuron in the connectome's order: the node
    features (degree, information flow, …) and the neuron table's own columns but positions."""
    _, attributes, _ = neuron_points(build)
    return attributes["features"]


def write_build_into(layer: Any, build: Any, replaced: Any = ()) -> list[str]:
    """Write a build into the Points layer its neurons came from, as *Fit* and *Score* write
    their results into the cells they ran on: the node features join the layer's ``features``
    (a column of the same name takes the build's values) and the connectome its ``metadata``;
    the points, their scale, size and colours stay (the build keeps the layer's rows in order,
    at the same world positions).

    Parameters
    ----------
    layer : napari Points layer
        The layer the build's neuron table was read from (one row per point, in order).
    build : ConnectomeBuild
    replaced : iterable of str
        Columns an earlier build wrote into this layer: those this build does not write
        again (e.g. ``neighbourhood_2`` after a rebuild with 3 hops) are dropped.

    Returns
    -------
    list of str
        The columns written.

    Raises
    ------
    ValueError
        The layer no longer has one point per neuron of the build.
    """
    from napari_mesoscale.napari import _contract

    table = built_neuron_features(build)
    if len(layer.data) != len(table):
        raise ValueError(
            f"layer {layer.name!r} has {len(layer.data)} points; the build has {len(table)} "
            "neurons."
        )
    features = layer.features.reset_index(drop=True).copy()
    if len(features) != len(table):
        features = pd.DataFrame(index=range(len(table)))
    stale = [c for c in replaced if c in features.columns and c not in table.columns]
    features = features.drop(columns=stale)
    for column in table.columns:
        features[column] = table[column].to_numpy()
    layer.features = features
    _contract.write(layer, connectome=build.connectome)
    return [str(c) for c in table.columns]
