"""The mesoscale model: configurable basis networks, domain assignment, training, baselines."""

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.connectome_filters import (
    GraphKernelForecaster,
    connectome_kernels,
    domain_kernels,
    filter_templates,
    fit_kernel_forecaster,
    kernel_edges,
    template_kernels,
)
from napari_mesoscale.model.core import FEATURES, MesoscaleNet
from napari_mesoscale.model.fit import FitCancelled, fit_mesoscale, resolve_device
from napari_mesoscale.model.network import ACTIVATIONS, BasisBank
from napari_mesoscale.model.result import MesoscaleFit

__all__ = [
    "GraphKernelForecaster",
    "connectome_kernels",
    "domain_kernels",
    "filter_templates",
    "fit_kernel_forecaster",
    "kernel_edges",
    "template_kernels",
    "ACTIVATIONS",
    "FEATURES",
    "BasisBank",
    "FitCancelled",
    "MesoscaleFit",
    "MesoscaleNet",
    "ModelConfig",
    "fit_mesoscale",
    "resolve_device",
]
