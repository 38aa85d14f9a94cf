"""One call that builds everything the connectome widget shows: graph, features, grid, TRGs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.connectome.features import node_features
from napari_mesoscale.connectome.graph import Connectome
from napari_mesoscale.connectome.grid import Grid, receptive_field_grid
from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.connectome.transmission import (
    TransmissionResponseGraphs,
    checked_activity,
    transmission_response_graphs,
)
from napari_mesoscale.progress import Progress


@dataclass
class ConnectomeBuild:
    """The result of :func:`build_connectome`.

    Attributes
    ----------
    connectome : Connectome
    features : DataFrame
        :func:`node_features` of every neuron (connectome row order).
    grid : Grid or None
        Receptive-field grid over the neurons, when a diameter was given.
    transmission : TransmissionResponseGraphs or None
        Transmission-response graphs, when activity was given.
    """

    connectome: Connectome
    features: pd.DataFrame
    grid: Grid | None = None
    transmission: TransmissionResponseGraphs | None = None


def build_connectome(
    neurons: pd.DataFrame | str | os.PathLike,
    synapses: pd.DataFrame | str | os.PathLike | None = None,
    *,
    activity: Any = None,
    grid_diameter: float | None = None,
    grid_stride: float | None = None,
    hops: int | None = None,
    bin_size: int | None = None,
    delay: int | None = None,
    threshold: float | None = None,
    value: str | None = None,
    params: ConnectomeParams | None = None,
    callback: Any = None,
) -> ConnectomeBuild:
    """Connectome from tables, with node features, a receptive-field grid and TRGs.

    Every option left ``None`` takes its value from ``params`` (default
    :class:`ConnectomeParams`).

    Parameters
    ----------
    neurons, synapses : DataFrame or path
        See :meth:`Connectome.from_tables`.
    activity : array_like (T, N), optional
        Activity in connectome row order; gives transmission-response graphs.
    grid_diameter, grid_stride : float, optional
        Receptive-field diameter and stride (µm); no grid when the diameter is 0.
    hops : int, optional
        Neighbourhood size bound of the node features.
    bin_size, delay, threshold : optional
        See :func:`transmission_response_graphs`.
    value : {"count", "weight"}, optional
        Adjacency entries (see :meth:`Connectome.from_tables`).
    params : ConnectomeParams, optional
        All of the above at once; explicit keywords override it.
    callback : callable, optional
        Progress callback (``fraction``, ``message``); returning False cancels.

    Returns
    -------
    ConnectomeBuild
    """
    options = (params or ConnectomeParams()).merged(
        grid_diameter=grid_diameter,
        grid_stride=grid_stride,
        hops=hops,
        bin_size=bin_size,
        delay=delay,
        threshold=threshold,
        value=value,
    )
    options.validate()
    progress = Progress.wrap(callback, ConnectomeCancelled)
    progress.report(0.0, "reading and validating tables")
    connectome = Connectome.from_tables(neurons, synapses, value=options.value)
    if activity is not None:
        activity = checked_activity(activity, connectome.n_neurons)
    features = node_features(connectome, hops=options.hops, callback=progress.stage(0.2, 0.5))
    grid = None
    if options.grid_diameter:
        progress.report(0.5, "receptive-field grid")
        grid = receptive_field_grid(
            connectome.positions, diameter=options.grid_diameter, stride=options.grid_stride
        )
    transmission = None
    if activity is not None:
        transmission = transmission_response_graphs(
            connectome,
            activity,
            bin_size=options.bin_size,
            delay=options.delay,
            threshold=options.threshold,
            callback=progress.stage(0.6, 0.95),
        )
    progress.report(1.0, "done")
    return ConnectomeBuild(connectome, features, grid, transmission)
