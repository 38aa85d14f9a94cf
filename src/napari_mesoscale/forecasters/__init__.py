"""Forecasters the mesoscale model is compared with, on one shared Adam loop.

* :mod:`~napari_mesoscale.forecasters.baselines` — persistence, training mean, ridge VAR,
  connectome-linear, GRU and per-neuron AR(2) forecasters with one ``fit`` / ``predict`` interface;
* :mod:`~napari_mesoscale.forecasters.graph_kernel` — connectome kernels (Chu et al. 2022)
  and the graph-kernel forecaster of the connectome ablation;
* :mod:`~napari_mesoscale.forecasters.training` — :func:`adam_loop`, the training loop both
  trained forecasters use (progress, cancel, early stopping).
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
from napari_mesoscale.forecasters.graph_kernel import (
    FittedKernelForecaster,
    GraphKernelForecaster,
    connectome_kernels,
    domain_kernels,
    filter_templates,
    fit_kernel_forecaster,
    kernel_edges,
    nearest_field,
    nearest_support,
    template_kernels,
)
from napari_mesoscale.forecasters.training import AdamRun, ForecasterCancelled, adam_loop

__all__ = [
    "AdamRun",
    "Baseline",
    "ConnectomeLinear",
    "FittedKernelForecaster",
    "ForecasterCancelled",
    "GRUBaseline",
    "GraphKernelForecaster",
    "MeanBaseline",
    "NeuronAR2",
    "Persistence",
    "RidgeVAR",
    "adam_loop",
    "connectome_kernels",
    "default_baselines",
    "domain_kernels",
    "filter_templates",
    "fit_kernel_forecaster",
    "kernel_edges",
    "nearest_field",
    "nearest_support",
    "template_kernels",
]
