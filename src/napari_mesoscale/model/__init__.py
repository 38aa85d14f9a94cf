"""The mesoscale model: configurable basis networks, domain assignment, training, packaging.

The forecasters it is compared with live in :mod:`napari_mesoscale.forecasters`; their names
(``GraphKernelForecaster``, ``connectome_kernels``, …) stay importable from here.
"""

from typing import Any

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import FEATURES, MesoscaleNet
from napari_mesoscale.model.fit import FitCancelled, fit_mesoscale, resolve_device
from napari_mesoscale.model.network import ACTIVATIONS, BasisBank
from napari_mesoscale.model.response_field import (
    ResponseField,
    ResponseFieldFit,
    ResponseFieldParams,
    fit_response_field,
)
from napari_mesoscale.model.result import MesoscaleFit

_MOVED_TO_FORECASTERS = (
    "GraphKernelForecaster",
    "connectome_kernels",
    "domain_kernels",
    "filter_templates",
    "fit_kernel_forecaster",
    "kernel_edges",
    "template_kernels",
)

__all__ = [
    *_MOVED_TO_FORECASTERS,
    "ACTIVATIONS",
    "FEATURES",
    "BasisBank",
    "FitCancelled",
    "MesoscaleFit",
    "MesoscaleNet",
    "ModelConfig",
    "ResponseField",
    "ResponseFieldFit",
    "ResponseFieldParams",
    "fit_mesoscale",
    "fit_response_field",
    "resolve_device",
]


def __getattr__(name: str) -> Any:
    # imported lazily: forecasters.graph_kernel itself imports model.network
    if name in _MOVED_TO_FORECASTERS:
        from napari_mesoscale.forecasters import graph_kernel

        return getattr(graph_kernel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
