"""One call that builds everything the connectome widget shows: graph, features, grid, TRGs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.connectome._util import report
from napari_mesoscale.connectome.features import node_features
from napari_mesoscale.connectome.graph import Connectome
from napari_mesoscale.connectome.grid import Grid, receptive_field_grid
from napari_mesoscale.connectome.transmission import (
    TransmissionResponseGraphs,
    transmission_response_graphs,
)


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


def _scaled(callback: Any, low: float, high: float) -> Any:
    if callback is None:
        return None

    def inner(info: dict[str, Any]) -> Any:
        return callback(dict(info, fraction=low + (high - low) * float(info.get("fraction", 0))))

    return inner


def build_connectome(
    neurons: pd.DataFrame | str | os.PathLike,
    synapses: pd.DataFrame | str | os.PathLike | None = None,
    *,
    activity: Any = None,
    grid_diameter: float | None = None,
    grid_stride: float | None = None,
    hops: int = 2,
    bin_size: int = 10,
    delay: int = 3,
    threshold: float = 2.0,
    callback: Any = None,
) -> ConnectomeBuild:
    """Connectome from tables, with node features, a receptive-field grid and TRGs.

    Parameters
    ----------
    neurons, synapses : DataFrame or path
        See :meth:`Connectome.from_tables`.
    activity : array_like (T, N), optional
        Activity in connectome row order; gives transmission-response graphs.
    grid_diameter, grid_stride : float, optional
        Receptive-field diameter and stride (µm); no grid when the diameter is None or 0.
    hops : int
        Neighbourhood size bound of the node features.
    bin_size, delay, threshold : see :func:`transmission_response_graphs`.
    callback : callable, optional
        Progress callback (``fraction``, ``message``); returning False cancels.

    Returns
    -------
    ConnectomeBuild
    """
    report(callback, 0.0, "reading and validating tables")
    connectome = Connectome.from_tables(neurons, synapses)
    if activity is not None:
        activity = activity if hasattr(activity, "ndim") else np.asarray(activity)
        if activity.ndim != 2 or activity.shape[1] != connectome.n_neurons:
            raise ValueError(
                f"activity must be (T, N) with N = {connectome.n_neurons} neurons in table order; "
                f"got shape {tuple(activity.shape)}."
            )
    report(callback, 0.2, "node features")
    features = node_features(connectome, hops=hops, callback=_scaled(callback, 0.2, 0.5))
    grid = None
    if grid_diameter:
        report(callback, 0.5, "receptive-field grid")
        grid = receptive_field_grid(
            connectome.positions, diameter=grid_diameter, stride=grid_stride
        )
    transmission = None
    if activity is not None:
        transmission = transmission_response_graphs(
            connectome,
            activity,
            bin_size=bin_size,
            delay=delay,
            threshold=threshold,
            callback=_scaled(callback, 0.6, 0.95),
        )
    report(callback, 1.0, "done")
    return ConnectomeBuild(connectome, features, grid, transmission)
