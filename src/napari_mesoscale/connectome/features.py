"""Node features of a connectome (Chu et al. 2022): degrees, information flow, neighbourhoods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.progress import Progress

if TYPE_CHECKING:
    from napari_mesoscale.connectome.graph import Connectome

#: Columns of the neuron table passed through to the features when present.
PASSTHROUGH_COLUMNS = ("type", "sign", "motif", "motif_name", "instance")


def _structure(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """Binary CSR of the stored entries (explicit zeros count as edges)."""
    adjacency = sp.csr_matrix(adjacency)
    return sp.csr_matrix(
        (np.ones(adjacency.nnz, dtype=np.float32), adjacency.indices, adjacency.indptr),
        shape=adjacency.shape,
    )


def neighbourhood_size(
    adjacency: sp.spmatrix,
    hops: int,
    *,
    chunk_rows: int | None = None,
    callback: Any = None,
) -> np.ndarray:
    """Number of other nodes reachable within ``hops`` steps, ignoring edge direction.

    Exact, computed by sparse products over blocks of rows so memory stays bounded.

    Parameters
    ----------
    adjacency : sparse matrix, shape (N, N)
    hops : int
        Path length bound (≥ 1).
    chunk_rows : int, optional
        Rows per block; chosen from the graph's density when omitted.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    if int(hops) != hops or hops < 1:
        raise ValueError(f"hops must be a whole number ≥ 1; got {hops}.")
    hops = int(hops)
    structure = _structure(adjacency)
    coo = (structure + structure.T).tocoo()
    off_diagonal = coo.row != coo.col
    undirected = _structure(
        sp.csr_matrix(
            (coo.data[off_diagonal], (coo.row[off_diagonal], coo.col[off_diagonal])),
            shape=structure.shape,
        )
    )
    n = undirected.shape[0]
    if hops == 1:
        return np.diff(undirected.indptr).astype(np.int64)
    if chunk_rows is None:
        mean_degree = max(undirected.nnz / max(n, 1), 1.0)
        # each row of the result has at most ~mean_degree**hops entries; aim for ~20M per block
        chunk_rows = int(np.clip(2e7 / mean_degree**hops, 64, 65536))
    sizes = np.empty(n, dtype=np.int64)
    reach_base = (undirected + sp.identity(n, dtype=np.float32, format="csr")).tocsr()
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        reach = reach_base[start:stop]
        for _ in range(hops - 1):
            reach = reach @ reach_base
            reach.data[:] = 1.0
        sizes[start:stop] = np.diff(reach.indptr) - 1  # minus the node itself
        progress.report(stop / n, f"neighbourhood sizes: {stop}/{n} neurons")
    return sizes


def node_features(
    connectome: Connectome | sp.spmatrix,
    *,
    hops: int | None = None,
    callback: Any = None,
) -> pd.DataFrame:
    """Per-neuron graph features of a connectome.

    Parameters
    ----------
    connectome : Connectome or sparse matrix
        A :class:`Connectome` (its ``type``, ``sign``, ``motif``… columns are carried over) or a
        bare (N, N) adjacency pre→post.
    hops : int, optional
        Path-length bound of the neighbourhood size (0 skips it); default
        :attr:`ConnectomeParams.hops`.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    DataFrame, one row per neuron (connectome row order) with columns
        ``id``; ``in_degree`` / ``out_degree`` (distinct pre / post partners); ``degree``
        (their sum); ``in_weight`` / ``out_weight`` (synapses in / out, absolute values of the
        adjacency); ``weighted_degree`` (their sum); ``information_flow`` (out_degree / degree,
        the fraction of a node's edges that leave it; NaN for isolated nodes);
        ``neighbourhood_<hops>`` (other nodes within ``hops`` undirected steps); and the neuron
        table's ``type``, ``sign``, ``motif``, ``motif_name``, ``instance`` columns if present.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    from napari_mesoscale.connectome.graph import Connectome

    if isinstance(connectome, Connectome):
        adjacency = connectome.adjacency
        ids = connectome.ids
        neurons = connectome.neurons
    elif sp.issparse(connectome):
        adjacency = sp.csr_matrix(connectome)
        if adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be square (N, N); got {adjacency.shape}.")
        ids = np.arange(adjacency.shape[0])
        neurons = None
    else:
        raise ValueError(
            "node_features needs a Connectome or a scipy.sparse adjacency matrix; "
            f"got {type(connectome).__name__}."
        )
    if hops is None:
        hops = ConnectomeParams().hops
    if int(hops) != hops or hops < 0:
        raise ValueError(f"hops must be a whole number ≥ 0; got {hops}.")
    progress.report(0.0, "node features: degrees")
    structure = _structure(adjacency)
    out_degree = np.diff(structure.indptr).astype(np.int64)
    in_degree = np.bincount(structure.indices, minlength=structure.shape[0]).astype(np.int64)
    absolute = abs(sp.csr_matrix(adjacency))
    out_weight = np.asarray(absolute.sum(axis=1)).ravel().astype(np.float64)
    in_weight = np.asarray(absolute.sum(axis=0)).ravel().astype(np.float64)
    degree = in_degree + out_degree
    with np.errstate(invalid="ignore", divide="ignore"):
        flow = np.where(degree > 0, out_degree / np.maximum(degree, 1), np.nan)
    table = {
        "id": ids,
        "in_degree": in_degree,
        "out_degree": out_degree,
        "degree": degree,
        "in_weight": in_weight,
        "out_weight": out_weight,
        "weighted_degree": in_weight + out_weight,
        "information_flow": flow,
    }
    if hops:
        table[f"neighbourhood_{int(hops)}"] = neighbourhood_size(
            adjacency, int(hops), callback=progress.stage(0.1, 1.0)
        )
    frame = pd.DataFrame(table)
    if neurons is not None:
        for column in PASSTHROUGH_COLUMNS:
            if column in neurons.columns:
                frame[column] = neurons[column].to_numpy()
    progress.report(1.0, "node features: done")
    return frame
