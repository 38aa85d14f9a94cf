"""napari-mesoscale: mesoscale models of neural tissue from calcium imaging and EM connectomes.

The public API (DESIGN.md section 5) is re-exported here. Imports are lazy so that
``import napari_mesoscale`` stays fast and does not pull in torch or napari until a
name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC_API: dict[str, str] = {
    "make_toy_brain": "napari_mesoscale.synth",
    "ToyBrain": "napari_mesoscale.synth",
    "PointSources": "napari_mesoscale.segment",
    "detect_point_sources": "napari_mesoscale.segment",
    "detect_somata_em": "napari_mesoscale.segment",
    "Connectome": "napari_mesoscale.connectome",
    "Grid": "napari_mesoscale.connectome",
    "receptive_field_grid": "napari_mesoscale.connectome",
    "transmission_response_graphs": "napari_mesoscale.connectome",
    "register_point_sources": "napari_mesoscale.connectome",
    "Registration": "napari_mesoscale.connectome",
    "fit_mesoscale": "napari_mesoscale.model",
    "MesoscaleFit": "napari_mesoscale.model",
    "evaluate_forecast": "napari_mesoscale.evaluate",
    "baselines": "napari_mesoscale.baselines",
    "ModelConfig": "napari_mesoscale.model",
    "FitCancelled": "napari_mesoscale.model",
    "train_soma_detector": "napari_mesoscale.segment",
    "SomaDetector": "napari_mesoscale.segment",
    "somata_from_labels": "napari_mesoscale.segment",
    "match_points": "napari_mesoscale.segment",
    "build_connectome": "napari_mesoscale.connectome",
    "node_features": "napari_mesoscale.connectome",
    "TransmissionResponseGraphs": "napari_mesoscale.connectome",
    "noise_corrected_predictivity": "napari_mesoscale.evaluate",
    "linear_predictivity": "napari_mesoscale.evaluate",
    "localise_neurons": "napari_mesoscale.evaluate",
    "correlation_eigenfeatures": "napari_mesoscale.evaluate",
    "simulate_gif_network": "napari_mesoscale.model.populations",
    "fit_mesoscopic": "napari_mesoscale.model.populations",
    "make_population_brain": "napari_mesoscale.model.populations",
    "run_pipeline": "napari_mesoscale.workflow",
    "fit_and_score": "napari_mesoscale.workflow",
}

__all__ = [
    "Connectome",
    "FitCancelled",
    "ModelConfig",
    "SomaDetector",
    "TransmissionResponseGraphs",
    "build_connectome",
    "correlation_eigenfeatures",
    "fit_and_score",
    "fit_mesoscopic",
    "linear_predictivity",
    "localise_neurons",
    "make_population_brain",
    "match_points",
    "node_features",
    "noise_corrected_predictivity",
    "run_pipeline",
    "simulate_gif_network",
    "somata_from_labels",
    "train_soma_detector",
    "Grid",
    "MesoscaleFit",
    "PointSources",
    "Registration",
    "ToyBrain",
    "__version__",
    "baselines",
    "detect_point_sources",
    "detect_somata_em",
    "evaluate_forecast",
    "fit_mesoscale",
    "make_toy_brain",
    "receptive_field_grid",
    "register_point_sources",
    "transmission_response_graphs",
]

if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from napari_mesoscale import baselines
    from napari_mesoscale.connectome import (
        Connectome,
        Grid,
        Registration,
        receptive_field_grid,
        register_point_sources,
        transmission_response_graphs,
    )
    from napari_mesoscale.evaluate import evaluate_forecast
    from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
    from napari_mesoscale.segment import PointSources, detect_point_sources, detect_somata_em
    from napari_mesoscale.synth import ToyBrain, make_toy_brain


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'napari_mesoscale' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
