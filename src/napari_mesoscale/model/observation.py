"""The calcium observation stage: a latent activity the filters evolve, read out as dF/F.

With ``fit_mesoscale(..., observation="calcium")`` the recording is taken as dF/F of a calcium
indicator, not as activity:

1. *latent* — the traces are deconvolved (baseline removed with a slow running percentile,
   then AR(1) OASIS, :func:`napari_mesoscale.segment.deconvolve.oasis_ar1`) with the
   indicator's decay per frame, estimated from the data as the 25th percentile over cells of
   the autocovariance ratio ``acov(2) / acov(1)`` (cells with fast activity show the
   indicator's own decay; slow cells overestimate it); the event trains are smoothed with one
   frame of memory (``LATENT_SMOOTHING``). The basis filters are fitted to this latent.
2. *readout* — per neuron, ``dF/F(t+1) = a_i dF/F(t) + g_i r(t+1) + h_i r(t+1)^2 + c_i``
   where ``r(t+1)`` is the model's prediction of the latent; ``a_i`` (decay), ``g_i`` (gain),
   ``h_i`` (saturation, negative when the indicator saturates) and ``c_i`` are fitted by least
   squares on the training block against the observed dF/F, after the filters are trained
   (two stages, not a joint gradient fit). Predictions of ``fit.predict`` are then in dF/F.

The assignment (motifs and domains) comes from the initialisation's dynamics features computed
on the linear AR(1) innovation of dF/F (:func:`innovation`), not on the OASIS latent, and is
kept through training (``ModelConfig.calcium_assignment="initial"``, :func:`calcium_config`):
training it moved the motifs away from a better initialisation even on the true activity.
In :func:`~napari_mesoscale.workflow.run_pipeline` these features are also smoothed over each
cell's connectome partners (``ModelConfig.connectome_smoothing``): one cell's 200 frames of
calcium are too few, its motif instance's many cells together are not.
Sources with no connectome edge (matched to no connectome neuron: duplicates, neuropil, dim
cells) neither place the motif centres nor join the communities
(``ModelConfig.init_centres="connected"``, :func:`~napari_mesoscale.workflow.run_pipeline`'s
choice).

A readout that also takes dF/F(t-1) lowered the held-out error by 1–2 % only and was not
adopted; given the *true* activity at t+1 this readout beats connectome-linear by 1.22 x
(median, realistic preset, 600 frames, ``benchmarks/calcium_bound.py``): spike noise bounds
what forecasting the activity can gain on dF/F.

The indicator's fitted parameters are ``fit.indicator`` (one row per neuron) and the domain
table's ``indicator_decay`` column (the mean decay of a domain's members).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.signal import lfilter

from napari_mesoscale.segment.deconvolve import oasis_ar1

__all__ = [
    "OBSERVATIONS",
    "attach_readout",
    "calcium_config",
    "estimate_decay",
    "feature_block",
    "indicator_table",
    "innovation",
    "predict_observed",
    "to_latent",
]

OBSERVATIONS = ("activity", "calcium")
#: AR(1) memory of the smoothing applied to the deconvolved events (per frame)
LATENT_SMOOTHING = 0.5
#: baseline: the trace's 10th percentile, running over this many frames on longer recordings.
#: A running window on short ones took the integrators' slow dynamics for baseline: the
#: initialisation's motif ARI on the latent of 3 realistic-preset brains at 600 frames was
#: 0.44 (301-frame window) against 0.92 (one percentile for the trace)
BASELINE_FRAMES = 1001
BASELINE_PERCENTILE = 10.0


def estimate_decay(dff: np.ndarray) -> float:
    """The indicator's decay per frame from (T, N) dF/F: 25th percentile of acov(2)/acov(1)."""
    y = np.nan_to_num(dff - np.nanmean(dff, axis=0))
    c1 = (y[1:] * y[:-1]).mean(0)
    c2 = (y[2:] * y[:-2]).mean(0)
    ok = c1 > 1e-12
    if not ok.any():
        return 0.5
    return float(np.clip(np.percentile(c2[ok] / c1[ok], 25), 0.2, 0.98))


def _baseline(y: np.ndarray) -> np.ndarray | float:
    if len(y) <= BASELINE_FRAMES:
        return float(np.percentile(y, BASELINE_PERCENTILE))
    return ndimage.percentile_filter(y, BASELINE_PERCENTILE, size=BASELINE_FRAMES, mode="nearest")


def to_latent(dff: np.ndarray, decay: float) -> np.ndarray:
    """(T, N) latent activity of (T, N) dF/F: baseline removed, deconvolved, smoothed.

    NaN frames of a neuron are deconvolved as 0 and come back NaN.
    """
    dff = np.asarray(dff, dtype=np.float64)
    finite = np.isfinite(dff)
    out = np.zeros_like(dff)
    for i in range(dff.shape[1]):
        y = np.where(finite[:, i], dff[:, i], np.nanmedian(dff[:, i]) if finite[:, i].any() else 0)
        events = oasis_ar1(y - _baseline(y), decay)[1]
        s = LATENT_SMOOTHING
        out[:, i] = lfilter([1 - s], [1, -s], events)
    return np.where(finite, out, np.nan)


def innovation(dff: np.ndarray, decay: float) -> np.ndarray:
    """(T, N) linear AR(1) innovation ``y(t) - decay * y(t-1)`` of dF/F, smoothed like the latent.

    The linear inverse of the indicator's decay, without OASIS's non-negativity and sparsity:
    unbiased where OASIS thresholds small events away. The initialisation's dynamics features
    are computed on it (median motif ARI of the initial groups, realistic preset, 5 brains:
    0.91 at 600 frames and 0.60 at 200, against 0.76 / 0.45 on the OASIS latent and
    0.70 / 0.50 on dF/F). NaN frames stay NaN (and make the next frame NaN).
    """
    y = np.asarray(dff, dtype=np.float64)
    e = np.empty_like(y)
    e[0] = 0.0
    e[1:] = y[1:] - decay * y[:-1]
    s = LATENT_SMOOTHING
    filled = lfilter([1 - s], [1, -s], np.nan_to_num(e), axis=0)
    return np.where(np.isfinite(e), filled, np.nan)


def feature_block(features: np.ndarray, train: tuple[int, int]) -> np.ndarray:
    """float32 training block of ``features`` z-scored per neuron, NaN as 0 (``z_neuron``)."""
    x = np.asarray(features[train[0] : train[1]], dtype=np.float64)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    z = (x - mean) / np.where(std > 1e-12, std, 1.0)
    return np.where(np.isfinite(z), z, 0.0).astype(np.float32)


def calcium_config(cfg: Any) -> Any:
    """``cfg`` with the calcium path's assignment: kept at its initialisation unless
    ``calcium_assignment="trained"`` (or the alternating assignment, which moves it itself)."""
    if cfg.calcium_assignment == "initial" and cfg.assignment == "gradient":
        return cfg.replace(freeze_assignment_epochs=cfg.epochs)
    return cfg


def _design(dff_now: np.ndarray, latent_next: np.ndarray) -> np.ndarray:
    """(T, 4) columns of the readout: dF/F(t), r(t+1), r(t+1)^2, 1."""
    return np.stack([dff_now, latent_next, latent_next**2, np.ones_like(dff_now)], axis=1)


def fit_readout(dff: np.ndarray, latent_pred: np.ndarray, train: tuple[int, int]) -> np.ndarray:
    """(N, 4) least-squares readout coefficients (a, g, h, c) on the training block.

    ``latent_pred`` row t is the model's prediction of the latent at t (row 0 NaN).
    """
    t0, t1 = train
    n = dff.shape[1]
    coef = np.zeros((n, 4))
    for i in range(n):
        x = _design(dff[t0 : t1 - 1, i], latent_pred[t0 + 1 : t1, i])
        y = dff[t0 + 1 : t1, i]
        ok = np.isfinite(x).all(1) & np.isfinite(y)
        if ok.sum() < 8:
            coef[i] = [1.0, 0.0, 0.0, 0.0]  # too little data: persistence
            continue
        # a small ridge keeps g and h apart when r barely varies
        xtx = x[ok].T @ x[ok] + 1e-6 * ok.sum() * np.diag([1.0, 1.0, 1.0, 0.0])
        coef[i] = np.linalg.solve(xtx, x[ok].T @ y[ok])
    return coef


def attach_readout(fit: Any, dff: np.ndarray, latent: np.ndarray, decay: float, stimulus: Any):
    """Fit the readout of a fit trained on ``latent`` and store it in the fit (in place)."""
    latent_pred = fit.predict_latent(latent, steps=1, stimulus=stimulus)
    coef = fit_readout(np.asarray(dff, dtype=np.float64), latent_pred, fit.blocks["train"])
    fit._p["observation"] = {"kind": "calcium", "decay": float(decay), "coef": coef.tolist()}
    fit.indicator = indicator_table(fit._p["observation"])
    domain_decay = pd.Series(coef[:, 0]).groupby(fit.domain_labels).mean()
    fit.domains["indicator_decay"] = fit.domains["domain"].map(domain_decay).to_numpy()
    fit._p["domains"] = fit.domains.to_dict(orient="list")
    return fit


def indicator_table(observation: dict | None) -> pd.DataFrame | None:
    """One row per neuron: decay (per frame), gain, saturation and offset of the readout."""
    if observation is None:
        return None
    coef = np.asarray(observation["coef"], dtype=float)
    return pd.DataFrame(
        {
            "neuron": np.arange(len(coef)),
            "decay": coef[:, 0],
            "gain": coef[:, 1],
            "saturation": coef[:, 2],
            "offset": coef[:, 3],
            "deconvolution_decay": observation["decay"],
        }
    )


def predict_observed(fit: Any, dff: Any, steps: int, stimulus: Any, chunk: int) -> np.ndarray:
    """dF/F ``steps`` frames ahead: the latent run freely, read out step by step."""
    obs = fit._p["observation"]
    dff = np.asarray(dff, dtype=np.float64)
    coef = np.asarray(obs["coef"], dtype=float)
    latent = to_latent(dff, obs["decay"])
    mean = np.nanmean(dff, axis=0)
    state = np.where(np.isfinite(dff), dff, mean)
    out = np.full(dff.shape, np.nan)
    t = dff.shape[0]
    if t <= steps:
        return out
    y = state[:-steps]  # y(t + j | t), j = 0 .. steps, aligned with the origin t
    for j in range(1, steps + 1):
        r = fit.predict_latent(latent, steps=j, stimulus=stimulus, chunk=chunk)
        r = r[j : t - steps + j]
        r = np.where(np.isfinite(r), r, 0.0)
        y = coef[:, 0] * y + coef[:, 1] * r + coef[:, 2] * r * r + coef[:, 3]
    out[steps:] = y
    return out
