"""Forecast metrics: R², MSE, MAE and per-neuron Pearson correlation at horizons 1..H."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ForecastScores", "evaluate_forecast", "forecast"]


@dataclass
class ForecastScores:
    """Scores of a forecast.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per horizon: ``horizon``, ``n`` (scored values), ``mse``, ``mae``, ``r2``
        (1 - SSE / SST with SST about each neuron's mean over the scored frames), and the mean
        and median of the per-neuron Pearson correlation.
    per_neuron : pandas.DataFrame
        One row per (horizon, neuron): ``mse``, ``mae``, ``r2``, ``pearson`` (NaN for a neuron
        that is constant over the scored frames).
    """

    summary: pd.DataFrame
    per_neuron: pd.DataFrame

    def __getitem__(self, horizon: int) -> dict:
        row = self.summary.loc[self.summary["horizon"] == horizon]
        if row.empty:
            raise KeyError(
                f"no horizon {horizon}; scored horizons: {self.summary['horizon'].tolist()}"
            )
        return row.iloc[0].to_dict()

    def to_dict(self) -> dict:
        return {"summary": self.summary.to_dict(orient="records")}


def _score(pred: np.ndarray, rec: np.ndarray) -> tuple[dict, pd.DataFrame]:
    ok = np.isfinite(pred) & np.isfinite(rec)
    cnt = ok.sum(0)
    p = np.where(ok, pred, 0.0)
    r = np.where(ok, rec, 0.0)
    err = (p - r) * ok
    n_tot = int(ok.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_r = r.sum(0) / cnt
        mean_p = p.sum(0) / cnt
        dr = (r - mean_r) * ok
        dp = (p - mean_p) * ok
        sse_n = (err**2).sum(0)
        sst_n = (dr**2).sum(0)
        mse_n = sse_n / cnt
        mae_n = np.abs(err).sum(0) / cnt
        r2_n = 1.0 - sse_n / sst_n
        pear = (dr * dp).sum(0) / np.sqrt((dr**2).sum(0) * (dp**2).sum(0))
    pear = np.where(np.isfinite(pear), pear, np.nan)
    r2_n = np.where(np.isfinite(r2_n), r2_n, np.nan)
    summary = {
        "n": n_tot,
        "mse": float(sse_n.sum() / max(n_tot, 1)) if n_tot else np.nan,
        "mae": float(np.abs(err).sum() / max(n_tot, 1)) if n_tot else np.nan,
        "r2": float(1.0 - sse_n.sum() / sst_n.sum()) if sst_n.sum() > 0 else np.nan,
        "pearson_mean": float(np.nanmean(pear)) if np.isfinite(pear).any() else np.nan,
        "pearson_median": float(np.nanmedian(pear)) if np.isfinite(pear).any() else np.nan,
    }
    per = pd.DataFrame(
        {"neuron": np.arange(rec.shape[1]), "mse": mse_n, "mae": mae_n, "r2": r2_n, "pearson": pear}
    )
    return summary, per


def evaluate_forecast(
    predicted: Any,
    recorded: Any,
    *,
    horizon: int | None = None,
    frames: slice | Sequence[int] | None = None,
) -> ForecastScores:
    """Score predictions against the recording.

    Parameters
    ----------
    predicted : array (T, N), or mapping {horizon: array (T, N)}, or array (H, T, N)
        Predictions aligned with ``recorded`` (row t predicts recorded row t), as returned by
        ``MesoscaleFit.predict`` and the baselines' ``predict``. NaN entries (e.g. the first
        ``k`` rows of a k-step forecast) are not scored. A 3-D array holds horizons 1..H.
    recorded : array (T, N)
        The recording (NaN entries are not scored).
    horizon : int, optional
        Label of a single 2-D prediction (default 1).
    frames : slice or sequence of int, optional
        Score only these rows (e.g. the test block).

    Returns
    -------
    ForecastScores
    """
    rec = np.asarray(recorded, dtype=float)
    if rec.ndim != 2:
        raise ValueError(f"recorded must be (T, N); got shape {rec.shape}")
    if isinstance(predicted, Mapping):
        items = sorted((int(h), np.asarray(p, dtype=float)) for h, p in predicted.items())
    else:
        arr = np.asarray(predicted, dtype=float)
        if arr.ndim == 3:
            items = [(h + 1, arr[h]) for h in range(arr.shape[0])]
        elif arr.ndim == 2:
            items = [(1 if horizon is None else int(horizon), arr)]
        else:
            raise ValueError(f"predicted must be (T, N), (H, T, N) or a dict; got {arr.shape}")
    if not items:
        raise ValueError("predicted is empty")
    rows, pers = [], []
    for h, p in items:
        if p.shape != rec.shape:
            raise ValueError(
                f"prediction for horizon {h} has shape {p.shape}, recorded {rec.shape}; align "
                "predictions with the recording (row t predicts row t)."
            )
        pp, rr = (p, rec) if frames is None else (p[frames], rec[frames])
        summary, per = _score(pp, rr)
        rows.append({"horizon": h, **summary})
        per.insert(0, "horizon", h)
        pers.append(per)
    return ForecastScores(pd.DataFrame(rows), pd.concat(pers, ignore_index=True))


def forecast(
    model: Any, activity: Any, horizons: int | Sequence[int] = 1, stimulus: Any = None
) -> dict[int, np.ndarray]:
    """Predictions of ``model`` (anything with ``predict(activity, steps, stimulus)``) at each
    horizon, as a dict ready for :func:`evaluate_forecast`."""
    hs = range(1, horizons + 1) if isinstance(horizons, int) else horizons
    return {int(h): model.predict(activity, steps=int(h), stimulus=stimulus) for h in hs}
