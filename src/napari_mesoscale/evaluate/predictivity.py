"""Noise-corrected neural predictivity, split-half reliability and RSA (seed 002).

How well does a model predict recorded activity, once the recording's own trial-to-trial noise
is taken into account? A perfect model cannot correlate with a noisy recording better than the
recording correlates with itself, so raw correlations are compared with the *reliability* of
each neuron (split-half reliability over random splits of the repeated trials, with the
Spearman–Brown correction), as in Nayebi's thesis (seed 002, sections 2.5.6–2.5.7, 3.6.2–3.6.3).

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

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

Estimator = Literal["half", "full", "thesis"]
Mapping = Literal["ridge", "pls", "one_to_one", "identity"]
_ESTIMATORS = ("half", "full", "thesis")
_MAPPINGS = ("ridge", "pls", "one_to_one", "identity")


class EvaluationCancelled(RuntimeError):
    """Raised when a progress callback asked an evaluation to stop (returned False)."""


def _report(callback: Callable[[dict], Any] | None, fraction: float, message: str) -> None:
    if callback is None:
        return
    if callback({"fraction": float(fraction), "message": message}) is False:
        raise EvaluationCancelled(f"cancelled by the callback during: {message}")


# -- validation ------------------------------------------------------------------------------


def _as_trials(trials: Any, name: str = "trials") -> np.ndarray:
    arr = np.asarray(trials, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a 3-D array (n_trials, n_stimuli_or_time, n_neurons); got shape "
            f"{arr.shape}. For a single trial of (T, N) activity, repeated trials are needed to "
            "measure reliability: stack repeats with np.stack([...], axis=0)."
        )
    if arr.shape[0] < 2:
        raise ValueError(
            f"{name} has {arr.shape[0]} trial(s); split-half reliability needs at least 2 "
            "repeated trials (4 or more recommended)."
        )
    if arr.shape[1] < 3:
        raise ValueError(
            f"{name} has {arr.shape[1]} stimuli/time points; correlations need at least 3."
        )
    if arr.shape[2] < 1:
        raise ValueError(f"{name} has no neurons (last axis is empty).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values; remove or interpolate them first."
        )
    return arr


def _as_model(predicted: Any, n_stimuli: int, name: str, n_units: int | None) -> np.ndarray:
    """Return model responses as (n_model_trials, S, D); deterministic ones get 1 trial."""
    arr = np.asarray(predicted, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(
            f"{name} must be (n_stimuli, n_units) or (n_trials, n_stimuli, n_units); got shape "
            f"{arr.shape}."
        )
    if arr.shape[1] != n_stimuli:
        raise ValueError(
            f"{name} has {arr.shape[1]} stimuli/time points but trials have {n_stimuli}; both "
            "must describe the same stimuli in the same order."
        )
    if n_units is not None and arr.shape[2] != n_units:
        raise ValueError(
            f"{name} has {arr.shape[2]} units but trials have {n_units} neurons; predictions "
            "must have one column per recorded neuron (or use linear_predictivity to map "
            "features onto neurons)."
        )
    if arr.shape[2] < 1:
        raise ValueError(f"{name} has no units (last axis is empty).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")


# -- basic statistics ------------------------------------------------------------------------


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of two (S, N) arrays, over the first axis.

    Parameters
    ----------
    a, b : ndarray (S, N)
        Arrays of the same shape (a 1-D array is treated as one column).

    Returns
    -------
    ndarray (N,)
        Correlation per column; NaN where either column is constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}.")
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    num = np.einsum("sn,sn->n", ac, bc)
    den = np.sqrt(np.einsum("sn,sn->n", ac, ac) * np.einsum("sn,sn->n", bc, bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[~(den > 1e-300)] = np.nan
    return r


def spearman_brown(r: Any, factor: float = 2.0) -> Any:
    """Spearman–Brown prophecy: reliability of a mean of ``factor`` times as many trials.

    ``SB(r) = factor * r / (1 + (factor - 1) * r)``; with the default factor 2 this turns a
    split-half correlation into the reliability of the full set of trials.
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = factor * r / (1.0 + (factor - 1.0) * r)
    return out if out.ndim else float(out)


def _split_indices(
    n_trials: int, n_splits: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    half = n_trials // 2
    splits = []
    for _ in range(n_splits):
        perm = rng.permutation(n_trials)
        splits.append((np.sort(perm[:half]), np.sort(perm[half : 2 * half])))
    return splits


def _halves(model: np.ndarray, rng: np.random.Generator, n_splits: int):
    """Trial splits for a model array; deterministic models (1 trial) split into themselves."""
    if model.shape[0] == 1:
        return [(np.array([0]), np.array([0]))] * n_splits
    return _split_indices(model.shape[0], n_splits, rng)


def split_half_reliability(
    trials: Any,
    *,
    n_splits: int = 100,
    spearman_brown_corrected: bool = True,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> np.ndarray:
    """Per-neuron split-half reliability over random splits of the trials.

    For each of ``n_splits`` random splits of the trials into two halves, the Pearson
    correlation (over stimuli) between the two half-means is computed per neuron; the
    correlations are averaged over splits and, by default, Spearman–Brown corrected to the
    reliability of the mean of all trials.

    Parameters
    ----------
    trials : array (n_trials, S, N)
        Repeated responses.
    n_splits : int
        Number of random split halves.
    spearman_brown_corrected : bool
        Apply SB(r) = 2r / (1 + r) to the mean split-half correlation.
    seed : int
        Seed of the random splits.
    callback : callable, optional
        Progress callback (dict with ``fraction`` and ``message``); returning False stops.

    Returns
    -------
    ndarray (N,)
        Reliability per neuron (NaN for neurons that are constant in a half).
    """
    x = _as_trials(trials)
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1; got {n_splits}.")
    rng = np.random.default_rng(seed)
    acc = np.zeros(x.shape[2])
    count = np.zeros(x.shape[2])
    for k, (i1, i2) in enumerate(_split_indices(x.shape[0], n_splits, rng)):
        r = pearson_columns(x[i1].mean(0), x[i2].mean(0))
        ok = np.isfinite(r)
        acc[ok] += r[ok]
        count[ok] += 1
        _report(callback, (k + 1) / n_splits, "split-half reliability")
    with np.errstate(invalid="ignore"):
        r_half = acc / count
    return spearman_brown(r_half) if spearman_brown_corrected else r_half


# -- results ---------------------------------------------------------------------------------


def summarize_scores(
    scores: Any, groups: Any = None, *, mask: Any = None, name: str = "score"
) -> pd.DataFrame:
    """Median ± s.e.m. of per-neuron scores, over all neurons and per group.

    Parameters
    ----------
    scores : array (N,)
        Per-neuron scores; NaN entries are left out.
    groups : array (N,), optional
        Group of each neuron (e.g. functional domain or motif); one row per group is added.
    mask : bool array (N,), optional
        Neurons to include (e.g. the reliable ones).
    name : str
        Label of the score, kept in the ``score`` column.

    Returns
    -------
    DataFrame
        Columns ``group`` ("all" first), ``n``, ``median``, ``sem`` (standard error of the
        mean, std / sqrt(n)), ``mean`` and ``score``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    keep = np.isfinite(s)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).ravel()
        if mask.shape != s.shape:
            raise ValueError(f"mask has {mask.size} entries but scores have {s.size}.")
        keep &= mask
    rows = []

    def _row(label: Any, values: np.ndarray) -> dict:
        n = values.size
        return {
            "group": label,
            "n": n,
            "median": float(np.median(values)) if n else np.nan,
            "sem": float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
            "mean": float(values.mean()) if n else np.nan,
            "score": name,
        }

    rows.append(_row("all", s[keep]))
    if groups is not None:
        g = np.asarray(groups).ravel()
        if g.shape != s.shape:
            raise ValueError(f"groups has {g.size} entries but scores have {s.size}.")
        for label in pd.unique(g):
            sel = keep & (g == label)
            rows.append(_row(label, s[sel]))
    return pd.DataFrame(rows)


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
        _report(callback, (k + 1) / n_splits, "noise-corrected predictivity")
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
    (seed 002, section 3.6.2: ridge with alpha = 1, PLS with 25 components, one-to-one by the
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
    _check_choice(mapping, _MAPPINGS, "mapping")
    _check_choice(estimator, _ESTIMATORS, "estimator")
    x = _as_trials(trials)
    a = _as_model(source, x.shape[1], "source", None)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}.")
    n_stim = x.shape[1]
    n_train = int(round(train_fraction * n_stim))
    if n_train < 3 or n_stim - n_train < 3:
        raise ValueError(
            f"{n_stim} stimuli split {train_fraction:.2f}/{1 - train_fraction:.2f} leave fewer "
            "than 3 stimuli on one side; use more stimuli or another train_fraction."
        )
    if n_train_test < 1 or n_splits < 1:
        raise ValueError("n_train_test and n_splits must be >= 1.")
    rng = np.random.default_rng(seed)
    n = x.shape[2]
    num, drel, mrel = _Accumulator(n), _Accumulator(n), _Accumulator(n)
    raw_acc, full_acc = _Accumulator(n), _Accumulator(n)
    total = n_train_test * (n_splits + 1)
    step = 0
    x_all = x.mean(0)
    a_all = a.mean(0)

    def fit_predict(a_fit: np.ndarray, y_fit: np.ndarray, tr, te) -> np.ndarray:
        model = _make_mapping(mapping, alpha, n_components, tr.size, a.shape[2], n)
        model.fit(a_fit[tr], y_fit[tr])
        return np.asarray(model.predict(a_fit[te])).reshape(te.size, n)

    for _ in range(n_train_test):
        perm = rng.permutation(n_stim)
        tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        pred_all = fit_predict(a_all, x_all, tr, te)
        r_all = pearson_columns(pred_all, x_all[te])
        raw_acc.add(r_all)
        full_acc.add(r_all)
        step += 1
        _report(callback, step / total, f"{mapping} mapping")
        data_splits = _split_indices(x.shape[0], n_splits, rng)
        model_splits = _halves(a, rng, n_splits)
        for (i1, i2), (j1, j2) in zip(data_splits, model_splits, strict=True):
            s1, s2 = x[i1].mean(0), x[i2].mean(0)
            a1, a2 = a[j1].mean(0), a[j2].mean(0)
            # each half's mapping is fitted on that half of the target (and source) trials
            p1 = fit_predict(a1, s1, tr, te)
            p2 = fit_predict(a2, s2, tr, te)
            num.add(0.5 * (pearson_columns(p1, s2[te]) + pearson_columns(p2, s1[te])))
            drel.add(pearson_columns(s1[te], s2[te]))
            mrel.add(pearson_columns(p1, p2))
            step += 1
            _report(callback, step / total, f"{mapping} mapping")
    return _finish(
        raw_acc.mean(),
        num.mean(),
        full_acc.mean(),
        drel.mean(),
        mrel.mean(),
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
        _report(callback, (k + 1) / n_splits, "noise-corrected RSA")
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


# -- one call for the napari widget and scripts ----------------------------------------------


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


def score_predictions(
    predicted: Any,
    recorded: Any,
    *,
    n_repeats: int = 1,
    lag: int = 0,
    n_splits: int = 50,
    estimator: Estimator = "half",
    reliability_threshold: float | None = None,
    n_eigenvectors: int = 0,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> pd.DataFrame:
    """Per-neuron scores of predicted against recorded activity, as a table (one row/neuron).

    Parameters
    ----------
    predicted : array (T, N) or (n_trials, T, N)
        Predicted activity (per trial if 3-D).
    recorded : array (T, N) or (n_trials, T, N)
        Recorded activity: repeated trials, or one recording.
    n_repeats : int
        For 2-D inputs: the recording holds this many consecutive repeats of the same stimulus
        sequence; it is cut into (n_repeats, T // n_repeats, N) trials (and so are 2-D
        predictions of the same length). With 1 repeat no noise correction is possible and
        ``predictivity`` is the raw correlation.
    lag : int
        Row t of ``predicted`` predicts row t + lag of ``recorded`` (1 for one-step forecasts
        stored at the time they were made; 0 when already aligned, as ``MesoscaleFit.predict``
        returns them). Time points where any prediction or recording is NaN (a forecast's
        first rows) are left out.
    n_splits, estimator, reliability_threshold, seed
        See :func:`noise_corrected_predictivity`.
    n_eigenvectors : int
        Also add columns ``eig_0 ..`` of correlation-eigenvector features of the recording
        (see :func:`napari_mesoscale.evaluate.localisation.correlation_eigenfeatures`), so that
        points can be coloured by any eigenvector.
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    DataFrame
        ``predictivity`` (noise-corrected when trials allow, else raw), ``raw``,
        ``reliability`` (SB-corrected split-half; NaN for one trial), ``reliable`` and the
        ``eig_k`` columns when asked.
    """
    if lag < 0:
        raise ValueError(f"lag must be >= 0; got {lag}.")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1; got {n_repeats}.")
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
    if rec.shape[0] >= 2:
        res = noise_corrected_predictivity(
            pred,
            rec,
            n_splits=n_splits,
            estimator=estimator,
            reliability_threshold=reliability_threshold,
            seed=seed,
            callback=callback,
        )
        table = pd.DataFrame(
            {
                "predictivity": res.corrected,
                "raw": res.raw,
                "reliability": res.reliability,
                "reliable": res.reliable,
            }
        )
    else:
        p = _as_model(pred, rec.shape[1], "predicted", rec.shape[2])
        if not np.all(np.isfinite(rec)):
            raise ValueError("recorded contains NaN or infinite values.")
        raw = pearson_columns(p.mean(0), rec[0])
        table = pd.DataFrame(
            {
                "predictivity": raw,
                "raw": raw,
                "reliability": np.full(raw.size, np.nan),
                "reliable": np.isfinite(raw),
            }
        )
        _report(callback, 0.9, "raw correlation (one trial: no noise correction)")
    if n_eigenvectors:
        from napari_mesoscale.evaluate.localisation import eigenvector_features_frame

        activity = rec.reshape(-1, rec.shape[2])
        eig = eigenvector_features_frame(activity, n_eigenvectors, seed=seed)
        table = pd.concat([table, eig], axis=1)
    _report(callback, 1.0, "scores done")
    return table
