"""Forecast metrics, recovery scores, noise-corrected predictivity, localisation."""

from napari_mesoscale.evaluate.forecast import ForecastScores, evaluate_forecast, forecast
from napari_mesoscale.evaluate.recovery import recovery_scores

__all__ = ["ForecastScores", "evaluate_forecast", "forecast", "recovery_scores"]
