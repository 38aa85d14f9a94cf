"""Forecast metrics, recovery scores, noise-corrected predictivity, eigenvector features.

The localisation of neurons from activity (Dyer & Griffin 2022) lives in
:mod:`napari_mesoscale.reproductions.localisation`; its names stay importable from here.
"""

from __future__ import annotations

import importlib
from typing import Any

from napari_mesoscale.evaluate.eigenfeatures import (
    correlation_eigenfeatures,
    eigenvector_features_frame,
)
from napari_mesoscale.evaluate.forecast import ForecastScores, evaluate_forecast, forecast
from napari_mesoscale.evaluate.params import ScoringParams
from napari_mesoscale.evaluate.predictivity import (
    PredictivityResult,
    linear_predictivity,
    noise_corrected_predictivity,
)
from napari_mesoscale.evaluate.recovery import recovery_scores
from napari_mesoscale.evaluate.reliability import (
    EvaluationCancelled,
    split_half_reliability,
    summarize_scores,
)
from napari_mesoscale.evaluate.rsa import noise_corrected_rsa, rdm, rsa
from napari_mesoscale.evaluate.scoring import score_predictions

# re-exported lazily: the reproduction imports this package (its public API) itself
_LOCALISATION = (
    "ClassifierBank",
    "LocalisationResult",
    "layerwise_graph_error",
    "localise_neurons",
)

__all__ = [
    "EvaluationCancelled",
    "ForecastScores",
    "ScoringParams",
    "evaluate_forecast",
    "forecast",
    "recovery_scores",
    "correlation_eigenfeatures",
    "eigenvector_features_frame",
    "PredictivityResult",
    "linear_predictivity",
    "noise_corrected_predictivity",
    "noise_corrected_rsa",
    "rdm",
    "rsa",
    "score_predictions",
    "split_half_reliability",
    "summarize_scores",
    *_LOCALISATION,
]


def __getattr__(name: str) -> Any:
    if name in _LOCALISATION:
        module = importlib.import_module("napari_mesoscale.reproductions.localisation")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
