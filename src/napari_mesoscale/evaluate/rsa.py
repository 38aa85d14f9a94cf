"""Representational similarity: dissimilarity matrices, RSA and its noise-corrected form.

Noise correction follows the same split-half logic as :mod:`.predictivity` (Nayebi 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from napari_mesoscale.evaluate.reliability import (
    _ESTIMATORS,
    Estimator,
    EvaluationCancelled,
    _as_model,
    _as_trials,
    _check_choice,
    _halves,
    _split_indices,
    pearson_columns,
    spearman_brown,
)
from napari_mesoscale.progress import Progress

__all__ = ["RSAResult", "noise_corrected_rsa", "rdm", "rsa"]


# -- representational similarity -------------------------------------------------------------


def rdm(responses: Any, metric: Literal["correlation", "sqeuclidean"] = "correlation"):
    """Representational dissimilarity matrix between stimuli.

    Parameters
    ----------
    responses : array (S, N)
        Population response per stimulus.
    metric : {"correlation", "sqeuclidean"}
        1 − Pearson correlation between stimulus patterns (the usual choice), or squared
        Euclidean distance divided by N (whose expectation under additive noise is the true
        distance plus a constant, so it is unbiased for Pearson-based RSA).

    Returns
    -------
    ndarray (S, S)
    """
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 3:
        raise ValueError(f"responses must be (n_stimuli >= 3, n_units); got shape {r.shape}.")
    if metric == "correlation":
        if r.shape[1] < 2:
            raise ValueError("the correlation RDM needs at least 2 units per stimulus.")
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(r)
        return 1.0 - np.nan_to_num(c, nan=0.0)
    if metric == "sqeuclidean":
        sq = np.einsum("sn,sn->s", r, r)
        d = (sq[:, None] + sq[None, :] - 2.0 * r @ r.T) / r.shape[1]
        return np.maximum(d, 0.0)
    raise ValueError(f"metric must be 'correlation' or 'sqeuclidean'; got {metric!r}.")


def rsa(
    a: Any,
    b: Any,
    *,
    method: Literal["pearson", "spearman"] = "pearson",
    metric: Literal["correlation", "sqeuclidean"] = "correlation",
    is_rdm: bool = False,
) -> float:
    """Correlation between the upper triangles (diagonal excluded) of two RDMs.

    Parameters
    ----------
    a, b : array (S, N_a), (S, N_b)
        Responses of two populations to the same S stimuli (or RDMs when ``is_rdm``).
    method : {"pearson", "spearman"}
        Correlation of the RDM entries (the thesis uses Pearson).
    metric : {"correlation", "sqeuclidean"}
        RDM dissimilarity (see :func:`rdm`).
    is_rdm : bool
        ``a`` and ``b`` are already RDMs.
    """
    ra = np.asarray(a, dtype=np.float64) if is_rdm else rdm(a, metric)
    rb = np.asarray(b, dtype=np.float64) if is_rdm else rdm(b, metric)
    if ra.shape != rb.shape or ra.ndim != 2 or ra.shape[0] != ra.shape[1]:
        raise ValueError(
            f"RDMs must be square and of the same size; got {ra.shape} and {rb.shape} (both "
            "populations must respond to the same stimuli)."
        )
    iu = np.triu_indices(ra.shape[0], k=1)
    u, v = ra[iu], rb[iu]
    if method == "spearman":
        from scipy.stats import rankdata

        u, v = rankdata(u), rankdata(v)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman'; got {method!r}.")
    return float(pearson_columns(u, v)[0])


@dataclass
class RSAResult:
    """Population-level RSA scores (one number each, averaged over trial splits)."""

    raw: float
    corrected: float
    data_reliability: float
    model_reliability: float
    estimator: str
    details: dict = field(default_factory=dict)


def noise_corrected_rsa(
    model: Any,
    trials: Any,
    *,
    n_splits: int = 20,
    estimator: Estimator = "half",
    method: Literal["pearson", "spearman"] = "pearson",
    metric: Literal["correlation", "sqeuclidean"] = "correlation",
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> RSAResult:
    """Noise-corrected RSA between model responses and recorded trials (thesis eq. 3.1/3.10).

    ``half``: mean RSA(m1, s2) / sqrt(mean RSA(m1, m2) × mean RSA(s1, s2)) over random trial
    halves (model halves are the model itself when it is deterministic); ``full``: RSA of the
    full means over sqrt of the Spearman–Brown corrected reliabilities; ``thesis``: half
    numerator over SB-corrected reliabilities (biased low, for comparison).

    Parameters
    ----------
    model : array (S, D) or (n_model_trials, S, D)
        Model responses to the same stimuli (D need not equal N).
    trials : array (n_trials, S, N)
        Recorded trials.
    n_splits, estimator, seed, callback
        As in :func:`noise_corrected_predictivity`.
    method, metric
        As in :func:`rsa`.

    Returns
    -------
    RSAResult
    """
    progress = Progress.wrap(callback, EvaluationCancelled)
    _check_choice(estimator, _ESTIMATORS, "estimator")
    x = _as_trials(trials)
    m = _as_model(model, x.shape[1], "model", None)
    rng = np.random.default_rng(seed)
    nums, drels, mrels = [], [], []
    data_splits = _split_indices(x.shape[0], n_splits, rng)
    model_splits = data_splits if m.shape[0] == x.shape[0] else _halves(m, rng, n_splits)
    kw = {"method": method, "metric": metric}
    for k, ((i1, i2), (j1, j2)) in enumerate(zip(data_splits, model_splits, strict=True)):
        s1, s2 = rdm(x[i1].mean(0), metric), rdm(x[i2].mean(0), metric)
        m1, m2 = rdm(m[j1].mean(0), metric), rdm(m[j2].mean(0), metric)
        nums.append(0.5 * (rsa(m1, s2, is_rdm=True, **kw) + rsa(m2, s1, is_rdm=True, **kw)))
        drels.append(rsa(s1, s2, is_rdm=True, **kw))
        mrels.append(1.0 if m.shape[0] == 1 else rsa(m1, m2, is_rdm=True, **kw))
        progress.report((k + 1) / n_splits, "noise-corrected RSA")
    num, drel, mrel = (float(np.nanmean(v)) for v in (nums, drels, mrels))
    raw = rsa(m.mean(0), x.mean(0), **kw)
    if estimator == "half":
        den = drel * mrel
        corrected = num / np.sqrt(den) if den > 0 else np.nan
    else:
        den = spearman_brown(drel) * spearman_brown(mrel)
        top = raw if estimator == "full" else num
        corrected = top / np.sqrt(den) if den > 0 else np.nan
    return RSAResult(
        raw=raw,
        corrected=float(corrected),
        data_reliability=drel,
        model_reliability=mrel,
        estimator=estimator,
        details={"n_splits": n_splits, "method": method, "metric": metric, "seed": seed},
    )


