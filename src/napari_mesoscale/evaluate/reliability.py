"""Split-half reliability, Spearman–Brown, Pearson columns and the shared input checks.

The building blocks of noise-corrected scores (:mod:`.predictivity`, :mod:`.rsa`): a neuron's
recording is only as predictable as it is reliable across repeated trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from napari_mesoscale.progress import Cancelled, Progress

__all__ = [
    "Estimator",
    "EvaluationCancelled",
    "Mapping",
    "pearson_columns",
    "spearman_brown",
    "split_half_reliability",
    "summarize_scores",
]

Estimator = Literal["half", "full", "thesis"]
Mapping = Literal["ridge", "pls", "one_to_one", "identity"]
_ESTIMATORS = ("half", "full", "thesis")
_MAPPINGS = ("ridge", "pls", "one_to_one", "identity")


class EvaluationCancelled(Cancelled):
    """Raised when a progress callback asked an evaluation to stop (a :class:`Cancelled`)."""


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
    progress = Progress.wrap(callback, EvaluationCancelled)
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
        progress.report((k + 1) / n_splits, "split-half reliability")
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


