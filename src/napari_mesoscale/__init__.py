"""napari-mesoscale: mesoscale models of neural tissue from calcium imaging and EM connectomes.

The public API (``docs/architecture.md``, "Public API") is re-exported here from one table,
``_PUBLIC_API`` (name → module). Imports are lazy so that ``import napari_mesoscale`` stays
fast and does not pull in torch or napari until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "localise_neurons": "napari_mesoscale.reproductions.localisation",
    "correlation_eigenfeatures": "napari_mesoscale.evaluate",
    "simulate_gif_network": "napari_mesoscale.reproductions.populations",
    "fit_mesoscopic": "napari_mesoscale.reproductions.populations",
    "make_population_brain": "napari_mesoscale.reproductions.populations",
    "run_pipeline": "napari_mesoscale.workflow",
    "fit_and_score": "napari_mesoscale.workflow",
    "correct_motion": "napari_mesoscale.motion",
    "apply_motion": "napari_mesoscale.motion",
    "load_celegans": "napari_mesoscale.datasets.celegans",
    "fit_response_field": "napari_mesoscale.model",
    "ResponseFieldFit": "napari_mesoscale.model",
}

__all__ = sorted([*_PUBLIC_API, "__version__"])


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
