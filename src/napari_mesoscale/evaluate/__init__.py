"""Forecast metrics, recovery scores, noise-corrected predictivity, localisation."""

from napari_mesoscale.evaluate.forecast import ForecastScores, evaluate_forecast, forecast
from napari_mesoscale.evaluate.localisation import (
    ClassifierBank,
    LocalisationResult,
    correlation_eigenfeatures,
    eigenvector_features_frame,
    layerwise_graph_error,
    localise_neurons,
)
from napari_mesoscale.evaluate.predictivity import (
    PredictivityResult,
    linear_predictivity,
    noise_corrected_predictivity,
    noise_corrected_rsa,
    rdm,
    rsa,
    score_predictions,
    split_half_reliability,
    summarize_scores,
)
from napari_mesoscale.evaluate.recovery import recovery_scores

__all__ = [
    "ForecastScores",
    "evaluate_forecast",
    "forecast",
    "recovery_scores",
    "ClassifierBank",
    "LocalisationResult",
    "correlation_eigenfeatures",
    "eigenvector_features_frame",
    "layerwise_graph_error",
    "localise_neurons",
    "PredictivityResult",
    "linear_predictivity",
    "noise_corrected_predictivity",
    "noise_corrected_rsa",
    "rdm",
    "rsa",
    "score_predictions",
    "split_half_reliability",
    "summarize_scores",
]
