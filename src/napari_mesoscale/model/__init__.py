"""The mesoscale model: configurable basis networks, domain assignment, training, baselines."""

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import FEATURES, MesoscaleNet
from napari_mesoscale.model.fit import FitCancelled, fit_mesoscale, resolve_device
from napari_mesoscale.model.network import ACTIVATIONS, BasisBank
from napari_mesoscale.model.result import MesoscaleFit

__all__ = [
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
