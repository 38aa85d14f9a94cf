"""One call that scores predicted against recorded activity per neuron (widget, CLI, scripts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.evaluate.eigenfeatures import eigenvector_features_frame
from napari_mesoscale.evaluate.params import ScoringParams
from napari_mesoscale.evaluate.predictivity import noise_corrected_predictivity
from napari_mesoscale.evaluate.reliability import (
    Estimator,
    EvaluationCancelled,
    _as_model,
    pearson_columns,
)
from napari_mesoscale.progress import Progress

__all__ = ["score_predictions"]


def _to_trials(data: np.ndarray, n_repeats: int, name: str) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 2:
        if n_repeats > 1:
            length = arr.shape[0] // n_repeats
            if length < 3:
                raise ValueError(
                    f"{name} has {arr.shape[0]} time points: too few for {n_repeats} repeats."
                )
            arr = arr[: length * n_repeats].reshape(n_repeats, length, arr.shape[1])
        else:
            arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(
            f"{name} must be (T, N) activity or (n_trials, T, N) trials; got shape {arr.shape}."
        )
    return arr


def _aligned(
    predicted: Any, recorded: Any, n_repeats: int, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_trials, T, N) recordings and matching predictions, lagged, non-finite rows dropped."""
    rec = _to_trials(recorded, n_repeats, "recorded")
    pred = np.asarray(predicted, dtype=np.float64)
    if pred.ndim == 2 and n_repeats > 1:
        pred = _to_trials(pred, n_repeats, "predicted")
    if pred.ndim not in (2, 3):
        raise ValueError(f"predicted must be (T, N) or (n_trials, T, N); got {pred.shape}.")
    if pred.shape[-1] != rec.shape[-1]:
        raise ValueError(
            f"predicted has {pred.shape[-1]} neurons but recorded has {rec.shape[-1]}; they "
            "must describe the same point sources in the same order."
        )
    if pred.shape[-2] != rec.shape[-2]:
        raise ValueError(
            f"predicted has {pred.shape[-2]} time points per trial but recorded has "
            f"{rec.shape[-2]}."
        )
    if lag:
        rec = rec[:, lag:]
        pred = pred[..., :-lag, :]
    # time points without a prediction (a k-step forecast's first k rows are NaN) are left out
    rec_ok = np.isfinite(rec).all(axis=(0, 2))
    pred_ok = np.isfinite(pred.reshape(-1, *pred.shape[-2:])).all(axis=(0, 2))
    bad = ~(rec_ok & pred_ok)
    if bad.any():
        if (~bad).sum() < 3:
            raise ValueError(
                f"only {(~bad).sum()} time points have finite predicted and recorded values; "
                "at least 3 are needed (check for NaN in the inputs)."
            )
        rec = rec[:, ~bad]
        pred = pred[..., ~bad, :]
    return pred, rec


def _raw_scores(pred: np.ndarray, rec: np.ndarray) -> pd.DataFrame:
    """One trial: the raw correlation is all there is (no reliability to correct by)."""
    p = _as_model(pred, rec.shape[1], "predicted", rec.shape[2])
    if not np.all(np.isfinite(rec)):
        raise ValueError("recorded contains NaN or infinite values.")
    raw = pearson_columns(p.mean(0), rec[0])
    return pd.DataFrame(
        {
            "predictivity": raw,
            "raw": raw,
            "reliability": np.full(raw.size, np.nan),
            "reliable": np.isfinite(raw),
        }
    )


def _noise_corrected_scores(
    pred: np.ndarray, rec: np.ndarray, options: ScoringParams, progress: Progress
) -> pd.DataFrame:
    """Several trials: predictivity corrected by the split-half reliability (Nayebi 2022)."""
    res = noise_corrected_predictivity(
        pred,
        rec,
        n_splits=options.n_splits,
        estimator=options.estimator,
        reliability_threshold=options.reliability_threshold or None,
        seed=options.seed,
        callback=progress,
    )
    return pd.DataFrame(
        {
            "predictivity": res.corrected,
            "raw": res.raw,
            "reliability": res.reliability,
            "reliable": res.reliable,
        }
    )


def score_predictions(
    predicted: Any,
    recorded: Any,
    *,
    n_repeats: int | None = None,
    lag: int | None = None,
    n_splits: int | None = None,
    estimator: Estimator | None = None,
    reliability_threshold: float | None = None,
    n_eigenvectors: int | None = None,
    seed: int | None = None,
    max_neighbors: int | None = None,
    params: ScoringParams | None = None,
    callback: Callable[[dict], Any] | None = None,
) -> pd.DataFrame:
    """Per-neuron scores of predicted against recorded activity, as a table (one row/neuron).

    Every option left ``None`` takes its value from ``params`` (default :class:`ScoringParams`).

    Parameters
    ----------
    predicted : array (T, N) or (n_trials, T, N)
        Predicted activity (per trial if 3-D).
    recorded : array (T, N) or (n_trials, T, N)
        Recorded activity: repeated trials, or one recording.
    n_repeats : int, optional
        For 2-D inputs: the recording holds this many consecutive repeats of the same stimulus
        sequence; it is cut into (n_repeats, T // n_repeats, N) trials (and so are 2-D
        predictions of the same length). With 1 repeat no noise correction is possible and
        ``predictivity`` is the raw correlation.
    lag : int, optional
        Row t of ``predicted`` predicts row t + lag of ``recorded`` (1 for one-step forecasts
        stored at the time they were made; 0 when already aligned, as ``MesoscaleFit.predict``
        returns them). Time points where any prediction or recording is NaN (a forecast's
        first rows) are left out.
    n_splits, estimator, reliability_threshold, seed : optional
        See :func:`noise_corrected_predictivity` (a threshold of 0 keeps every neuron with a
        positive reliability).
    n_eigenvectors, max_neighbors : int, optional
        Also add columns ``eig_0 ..`` of correlation-eigenvector features of the recording
        (see :func:`napari_mesoscale.evaluate.correlation_eigenfeatures`), so that points can
        be coloured by any eigenvector.
    params : ScoringParams, optional
        All of the above at once; explicit keywords override it.
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    DataFrame
        ``predictivity`` (noise-corrected when trials allow, else raw), ``raw``,
        ``reliability`` (SB-corrected split-half; NaN for one trial), ``reliable`` and the
        ``eig_k`` columns when asked.
    """
    options = (params or ScoringParams()).merged(
        n_repeats=n_repeats,
        lag=lag,
        n_splits=n_splits,
        estimator=estimator,
        reliability_threshold=reliability_threshold,
        n_eigenvectors=n_eigenvectors,
        seed=seed,
        max_neighbors=max_neighbors,
    )
    _validate(options)
    progress = Progress.wrap(callback, EvaluationCancelled)
    pred, rec = _aligned(predicted, recorded, options.n_repeats, options.lag)
    if rec.shape[0] >= 2:
        stage = progress.stage(0.0, 0.9)
        table = _noise_corrected_scores(pred, rec, options, stage)
    else:
        table = _raw_scores(pred, rec)
        progress.report(0.9, "raw correlation (one trial: no noise correction)")
    if options.n_eigenvectors:
        activity = rec.reshape(-1, rec.shape[2])
        eig = eigenvector_features_frame(
            activity,
            options.n_eigenvectors,
            seed=options.seed,
            max_neighbors=options.max_neighbors,
            callback=progress.stage(0.9, 1.0),
        )
        table = pd.concat([table, eig], axis=1)
    progress.report(1.0, "scores done")
    return table


def _validate(options: ScoringParams) -> None:
    # the historical messages ("lag must be >= 0") come first: callers match on them
    if options.lag < 0:
        raise ValueError(f"lag must be >= 0; got {options.lag}.")
    if options.n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1; got {options.n_repeats}.")
    options.validate()
