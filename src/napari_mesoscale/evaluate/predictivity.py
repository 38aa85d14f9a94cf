"""Noise-corrected neural predictivity, split-half reliability and RSA (Nayebi 2022).

How well does a model predict recorded activity, once the recording's own trial-to-trial noise
is taken into account? A perfect model cannot correlate with a noisy recording better than the
recording correlates with itself, so raw correlations are compared with the *reliability* of
each neuron (split-half reliability over random splits of the repeated trials, with the
Spearman–Brown correction), as in Nayebi's thesis (Nayebi 2022, sections 2.5.6–2.5.7, 3.6.2–3.6.3).

Input conventions
-----------------
``trials`` : array (n_trials, S, N)
    Repeated recordings of the same S stimuli (or the same S time points of a repeated stimulus
    sequence) for N neurons. At least 2 trials (4 or more recommended).
``predicted`` : array (S, N) or (n_model_trials, S, N)
    A model's predicted activity for the same stimuli: deterministic (S, N), or one prediction
    per trial (e.g. one-step forecasts computed from each trial), in which case the model's own
    split-half reliability enters the correction.
``source`` : array (S, D) or (n_source_trials, S, D)
    Features (model units, or another population/animal) mapped linearly onto the neurons.

The estimator (which, and why)
------------------------------
Let t be a neuron's true (noise-free) response over stimuli, s1, s2 the means of two disjoint
halves of the trials, p1, p2 the model's predictions built from the same two halves (p1 = p2 =
p for a deterministic model; for a fitted mapping, p_k is the mapping fitted to half k). Under
additive noise independent across trials (classical test theory),

    Corr(s1, s2)  = rho_h,            the half-split reliability of the data,
    Corr(p1, s2)  = Corr(p_true, t) * sqrt(rho_h * m_h),
    Corr(p1, p2)  = m_h,              the half-split reliability of the model,

so the quantity we want, Corr(p_true, t), is estimated without bias (to first order) by

    r_corrected = Corr(p1, s2) / sqrt(Corr(p1, p2) * Corr(s1, s2))        (estimator="half")

with numerator and denominator *both at the half-split level*. This is the default. We
average the numerator over both directions (p1 vs s2 and p2 vs s1) and average numerator
and both reliabilities over all bootstrap splits (and train/test splits) before taking the
ratio: a ratio of means, which stays stable where single-split reliabilities come close to 0.

The equivalent full-data form (estimator="full") correlates the prediction built from all
trials with the mean of all trials, and corrects both reliabilities to the full trial count
with Spearman–Brown, SB(r) = 2r / (1 + r):

    r_corrected = Corr(p_all, s_all) / sqrt(SB(m_h) * SB(rho_h)).

It is exact for a deterministic model and for averaging-like models; for a fitted mapping
SB(m_h) is an approximation (a regularised regression is not an average of trials). When
predictions are made per trial *from* the trials themselves (one-step forecasts), p_all and
s_all share noise and the full form is biased upwards; the half form is not (its numerator
always pairs independent halves). That is why "half" is the default.

The form printed in the thesis (section 3.6.2) pairs the half-split numerator Corr(p1, s2) with
Spearman–Brown-corrected reliabilities in the denominator; since SB(r) > r this is biased
*low*: by sqrt(rho_h / SB(rho_h)) = sqrt((1 + rho_h) / 2) for a deterministic model, e.g. 0.87
at rho_h = 0.5. It is available as ``estimator="thesis"`` for comparison only.

Reliability thresholds use the Spearman–Brown-corrected full-trial reliability SB(rho_h)
(the thesis keeps units with SB split-half reliability >= 0.3).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.evaluate.reliability import (
    _ESTIMATORS,
    _MAPPINGS,
    Estimator,
    EvaluationCancelled,
    Mapping,
    _as_model,
    _as_trials,
    _check_choice,
    _halves,
    _split_indices,
    pearson_columns,
    spearman_brown,
    split_half_reliability,
    summarize_scores,
)
from napari_mesoscale.progress import Progress

__all__ = [
    "EvaluationCancelled",
    "PredictivityResult",
    "RSAResult",
    "linear_predictivity",
    "noise_corrected_predictivity",
    "noise_corrected_rsa",
    "pearson_columns",
    "rdm",
    "rsa",
    "score_predictions",
    "spearman_brown",
    "split_half_reliability",
    "summarize_scores",
]


@dataclass
class PredictivityResult:
    """Per-neuron predictivity scores.

    Attributes
    ----------
    raw : ndarray (N,)
        Uncorrected held-out Pearson correlation of prediction and trial-averaged recording.
    corrected : ndarray (N,)
        Noise-corrected predictivity (NaN for unreliable neurons or undefined ratios).
    reliability : ndarray (N,)
        Spearman–Brown-corrected split-half reliability of the recording (all trials).
    half_reliability : ndarray (N,)
        Mean split-half correlation of the recording (before Spearman–Brown).
    model_reliability : ndarray (N,)
        Mean split-half correlation of the predictions (1 for deterministic models).
    reliable : ndarray of bool (N,)
        Neurons at or above the reliability threshold.
    estimator : str
        "half", "full" or "thesis" (see the module docstring).
    details : dict
        Mapping name and parameters.
    """

    raw: np.ndarray
    corrected: np.ndarray
    reliability: np.ndarray
    half_reliability: np.ndarray
    model_reliability: np.ndarray
    reliable: np.ndarray
    estimator: str
    details: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        """Median corrected score over reliable neurons."""
        return float(summarize_scores(self.corrected, mask=self.reliable)["median"].iloc[0])

    @property
    def sem(self) -> float:
        """Standard error of the mean of corrected scores over reliable neurons."""
        return float(summarize_scores(self.corrected, mask=self.reliable)["sem"].iloc[0])

    def summary(self, groups: Any = None) -> pd.DataFrame:
        """Median ± s.e.m. of raw and corrected scores over reliable neurons, and per group."""
        parts = [
            summarize_scores(self.corrected, groups, mask=self.reliable, name="corrected"),
            summarize_scores(self.raw, groups, mask=self.reliable, name="raw"),
        ]
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        """One row per neuron: raw, corrected, reliability, model_reliability, reliable."""
        return pd.DataFrame(
            {
                "raw": self.raw,
                "corrected": self.corrected,
                "reliability": self.reliability,
                "half_reliability": self.half_reliability,
                "model_reliability": self.model_reliability,
                "reliable": self.reliable,
            }
        )


def _finish(
    raw: np.ndarray,
    num_half: np.ndarray,
    num_full: np.ndarray,
    data_rel: np.ndarray,
    model_rel: np.ndarray,
    estimator: str,
    reliability_threshold: float | None,
    details: dict,
) -> PredictivityResult:
    sb_data = spearman_brown(data_rel)
    sb_model = spearman_brown(model_rel)
    with np.errstate(invalid="ignore", divide="ignore"):
        if estimator == "half":
            den = data_rel * model_rel
            corrected = num_half / np.sqrt(den)
        elif estimator == "full":
            den = sb_data * sb_model
            corrected = num_full / np.sqrt(den)
        else:  # "thesis": printed form, half numerator over SB-corrected reliabilities
            den = sb_data * sb_model
            corrected = num_half / np.sqrt(den)
    corrected = np.where(den > 0, corrected, np.nan)
    reliable = np.isfinite(sb_data) & (data_rel > 0)
    if reliability_threshold is not None:
        reliable &= sb_data >= reliability_threshold
    corrected = np.where(reliable, corrected, np.nan)
    details = {**details, "reliability_threshold": reliability_threshold}
    return PredictivityResult(
        raw=raw,
        corrected=corrected,
        reliability=sb_data,
        half_reliability=data_rel,
        model_reliability=model_rel,
        reliable=reliable,
        estimator=estimator,
        details=details,
    )


class _Accumulator:
    """Running nan-aware means of per-neuron quantities."""

    def __init__(self, n: int) -> None:
        self.sum = np.zeros(n)
        self.count = np.zeros(n)

    def add(self, values: np.ndarray) -> None:
        ok = np.isfinite(values)
        self.sum[ok] += values[ok]
        self.count[ok] += 1

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)


def noise_corrected_predictivity(
    predicted: Any,
    trials: Any,
    *,
    n_splits: int = 100,
    estimator: Estimator = "half",
    reliability_threshold: float | None = None,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> PredictivityResult:
    """Noise-corrected correlation of predicted and recorded activity, per neuron.

    No mapping is fitted: column n of ``predicted`` is the prediction for neuron n (for example
    a mesoscale model's forecast). See the module docstring for the estimator.

    Parameters
    ----------
    predicted : array (S, N) or (n_model_trials, S, N)
        Predictions; per-trial predictions are split into halves like the trials (their own
        split-half reliability enters the correction). Predictions made from trial k should
        be at index k so that halves stay independent.
    trials : array (n_trials, S, N)
        Repeated recordings.
    n_splits : int
        Number of random split halves of the trials.
    estimator : {"half", "full", "thesis"}
        "half" (default, consistent), "full" (consistent for deterministic predictions) or
        "thesis" (the printed form, biased low; for comparison).
    reliability_threshold : float, optional
        Leave out neurons whose Spearman–Brown-corrected reliability is below this value.
    seed : int
        Seed of the random splits.
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    PredictivityResult
    """
    progress = Progress.wrap(callback, EvaluationCancelled)
    _check_choice(estimator, _ESTIMATORS, "estimator")
    x = _as_trials(trials)
    p = _as_model(predicted, x.shape[1], "predicted", x.shape[2])
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1; got {n_splits}.")
    rng = np.random.default_rng(seed)
    n = x.shape[2]
    num, drel, mrel = _Accumulator(n), _Accumulator(n), _Accumulator(n)
    data_splits = _split_indices(x.shape[0], n_splits, rng)
    if p.shape[0] == x.shape[0]:
        model_splits = data_splits  # same trials, same halves (keeps halves independent)
    else:
        model_splits = _halves(p, rng, n_splits)
    for k, ((i1, i2), (j1, j2)) in enumerate(zip(data_splits, model_splits, strict=True)):
        s1, s2 = x[i1].mean(0), x[i2].mean(0)
        p1, p2 = p[j1].mean(0), p[j2].mean(0)
        num.add(0.5 * (pearson_columns(p1, s2) + pearson_columns(p2, s1)))
        drel.add(pearson_columns(s1, s2))
        mrel.add(np.ones(n) if p.shape[0] == 1 else pearson_columns(p1, p2))
        progress.report((k + 1) / n_splits, "noise-corrected predictivity")
    raw = pearson_columns(p.mean(0), x.mean(0))
    return _finish(
        raw,
        num.mean(),
        raw,
        drel.mean(),
        mrel.mean(),
        estimator,
        reliability_threshold,
        {"mapping": "none", "n_splits": n_splits, "seed": seed},
    )


# -- linear mappings -------------------------------------------------------------------------


class _OneToOne:
    """Each target takes the source unit best correlated with it on the training stimuli."""

    def fit(self, a: np.ndarray, y: np.ndarray) -> _OneToOne:
        az = (a - a.mean(0)) / np.maximum(a.std(0), 1e-12)
        yz = (y - y.mean(0)) / np.maximum(y.std(0), 1e-12)
        corr = az.T @ yz / a.shape[0]  # (D, N)
        self.best_ = np.argmax(corr, axis=0)
        # an affine map per target keeps the prediction on the target's scale
        sel = a[:, self.best_]
        var = sel.var(0)
        cov = ((sel - sel.mean(0)) * (y - y.mean(0))).mean(0)
        self.slope_ = np.where(var > 1e-12, cov / np.maximum(var, 1e-12), 0.0)
        self.intercept_ = y.mean(0) - self.slope_ * sel.mean(0)
        return self

    def predict(self, a: np.ndarray) -> np.ndarray:
        return a[:, self.best_] * self.slope_ + self.intercept_


class _Identity:
    def fit(self, a: np.ndarray, y: np.ndarray) -> _Identity:
        if a.shape[1] != y.shape[1]:
            raise ValueError(
                f"mapping='identity' needs as many source units as neurons; got {a.shape[1]} "
                f"and {y.shape[1]}."
            )
        return self

    def predict(self, a: np.ndarray) -> np.ndarray:
        return a


def _make_mapping(mapping: str, alpha: float, n_components: int, n_train: int, d: int, n: int):
    if mapping == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=alpha)
    if mapping == "pls":
        from sklearn.cross_decomposition import PLSRegression

        k = max(1, min(n_components, d, n_train - 1))
        return PLSRegression(n_components=k, scale=False)
    if mapping == "one_to_one":
        return _OneToOne()
    return _Identity()


def linear_predictivity(
    source: Any,
    trials: Any,
    *,
    mapping: Mapping = "ridge",
    alpha: float = 1.0,
    n_components: int = 25,
    train_fraction: float = 0.5,
    n_train_test: int = 5,
    n_splits: int = 10,
    estimator: Estimator = "half",
    reliability_threshold: float | None = None,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> PredictivityResult:
    """Noise-corrected predictivity of a linear mapping from source units onto neurons.

    The mapping is fitted on a random ``train_fraction`` of the stimuli and scored on the held
    out rest, over ``n_train_test`` stimulus splits and ``n_splits`` random trial halves each
    (Nayebi 2022, section 3.6.2: ridge with alpha = 1, PLS with 25 components, one-to-one by the
    best-correlated source unit on the training stimuli).

    Parameters
    ----------
    source : array (S, D) or (n_source_trials, S, D)
        Model features (deterministic) or a source population's trials (its own noise is
        corrected for through the mapping's split-half reliability).
    trials : array (n_trials, S, N)
        Target recordings.
    mapping : {"ridge", "pls", "one_to_one", "identity"}
        Linear mapping (sklearn ``Ridge``, sklearn ``PLSRegression``, best single unit with an
        affine fit, or none).
    alpha : float
        Ridge penalty (sklearn convention).
    n_components : int
        PLS components (capped by D and the number of training stimuli).
    train_fraction : float
        Fraction of stimuli used to fit the mapping.
    n_train_test : int
        Number of random stimulus train/test splits.
    n_splits : int
        Number of random trial halves per train/test split.
    estimator : {"half", "full", "thesis"}
        See the module docstring.
    reliability_threshold : float, optional
        Leave out neurons whose SB-corrected reliability (on held-out stimuli) is below it.
    seed : int
        Seed of all random splits.
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    PredictivityResult
        Scores are averaged over all held-out stimulus splits.
    """
    progress = Progress.wrap(callback, EvaluationCancelled)
    _check_choice(mapping, _MAPPINGS, "mapping")
    _check_choice(estimator, _ESTIMATORS, "estimator")
    x = _as_trials(trials)
    a = _as_model(source, x.shape[1], "source", None)
    n_stim = x.shape[1]
    n_train = _train_size(n_stim, train_fraction, n_train_test, n_splits)
    rng = np.random.default_rng(seed)
    n = x.shape[2]
    accs = {name: _Accumulator(n) for name in ("raw", "num", "data_rel", "model_rel")}
    fit = functools.partial(_fit_predict, mapping, alpha, n_components, n)
    x_all, a_all = x.mean(0), a.mean(0)
    for k in range(n_train_test):
        stage = progress.stage(k / n_train_test, (k + 1) / n_train_test)
        perm = rng.permutation(n_stim)
        tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        accs["raw"].add(pearson_columns(fit(a_all, x_all, tr, te), x_all[te]))
        stage.report(1 / (n_splits + 1), f"{mapping} mapping")
        _add_half_splits(x, a, tr, te, fit, rng, n_splits, accs, stage, mapping)
    return _finish(
        accs["raw"].mean(),
        accs["num"].mean(),
        accs["raw"].mean(),
        accs["data_rel"].mean(),
        accs["model_rel"].mean(),
        estimator,
        reliability_threshold,
        {
            "mapping": mapping,
            "alpha": alpha,
            "n_components": n_components,
            "train_fraction": train_fraction,
            "n_train_test": n_train_test,
            "n_splits": n_splits,
            "seed": seed,
        },
    )


def _train_size(n_stim: int, train_fraction: float, n_train_test: int, n_splits: int) -> int:
    """Training stimuli per split; errors when either side would get fewer than 3."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}.")
    n_train = int(round(train_fraction * n_stim))
    if n_train < 3 or n_stim - n_train < 3:
        raise ValueError(
            f"{n_stim} stimuli split {train_fraction:.2f}/{1 - train_fraction:.2f} leave fewer "
            "than 3 stimuli on one side; use more stimuli or another train_fraction."
        )
    if n_train_test < 1 or n_splits < 1:
        raise ValueError("n_train_test and n_splits must be >= 1.")
    return n_train


def _fit_predict(
    mapping: str,
    alpha: float,
    n_components: int,
    n: int,
    a_fit: np.ndarray,
    y_fit: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
) -> np.ndarray:
    """Fit the mapping source → neurons on stimuli ``tr``; predict stimuli ``te``."""
    model = _make_mapping(mapping, alpha, n_components, tr.size, a_fit.shape[1], n)
    model.fit(a_fit[tr], y_fit[tr])
    return np.asarray(model.predict(a_fit[te])).reshape(te.size, n)


def _add_half_splits(
    x: np.ndarray,
    a: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    fit: Callable[..., np.ndarray],
    rng: np.random.Generator,
    n_splits: int,
    accs: dict[str, _Accumulator],
    progress: Progress,
    mapping: str,
) -> None:
    """Half-split numerator and reliabilities of one train/test split of the stimuli."""
    data_splits = _split_indices(x.shape[0], n_splits, rng)
    model_splits = _halves(a, rng, n_splits)
    for k, ((i1, i2), (j1, j2)) in enumerate(zip(data_splits, model_splits, strict=True)):
        s1, s2 = x[i1].mean(0), x[i2].mean(0)
        a1, a2 = a[j1].mean(0), a[j2].mean(0)
        # each half's mapping is fitted on that half of the target (and source) trials
        p1 = fit(a1, s1, tr, te)
        p2 = fit(a2, s2, tr, te)
        accs["num"].add(0.5 * (pearson_columns(p1, s2[te]) + pearson_columns(p2, s1[te])))
        accs["data_rel"].add(pearson_columns(s1[te], s2[te]))
        accs["model_rel"].add(pearson_columns(p1, p2))
        progress.report((k + 2) / (n_splits + 1), f"{mapping} mapping")


# the RSA and the one-call scoring live in their own modules; their names stay importable here
from napari_mesoscale.evaluate.rsa import RSAResult, noise_corrected_rsa, rdm, rsa  # noqa: E402
from napari_mesoscale.evaluate.scoring import score_predictions  # noqa: E402
