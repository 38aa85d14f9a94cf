"""Forecast baselines (public module): persistence, mean, ridge VAR, connectome-linear, GRU,
per-neuron AR(2).

See :mod:`napari_mesoscale.forecasters.baselines` for the common ``fit`` / ``predict`` interface.
"""

from napari_mesoscale.forecasters.baselines import (
    Baseline,
    ConnectomeLinear,
    GRUBaseline,
    MeanBaseline,
    NeuronAR2,
    Persistence,
    RidgeVAR,
    default_baselines,
)

__all__ = [
    "Baseline",
    "ConnectomeLinear",
    "GRUBaseline",
    "MeanBaseline",
    "NeuronAR2",
    "Persistence",
    "RidgeVAR",
    "default_baselines",
]
