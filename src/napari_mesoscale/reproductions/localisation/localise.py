"""Locating neurons from their activity, after Dyer & Griffin 2022.

Three steps, each usable on its own:

1. :func:`napari_mesoscale.evaluate.correlation_eigenfeatures` — per-neuron features: the first
   moments of each neuron's activity and its entries in the leading eigenvectors of the
   *absolute* correlation matrix of activity (16 by default, the paper's optimum).
2. :class:`ClassifierBank` — random forests over *factorised* labels: one classifier for the
   top-level label (a layer; a motif) trained on a class-balanced resample, and one per
   (top class, factor) for the other factors (family, x, y; instance), so that
   ``log P(location) = log P(top) + sum_f log P(f | top)`` (paper eq. 1).
3. :func:`assign_one_to_one` — the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``)
   on the negative log confidences, assigning each held-out neuron to one held-out location.

:func:`localise_neurons` chains them (a supervised baseline: half the neurons labelled, the rest
assigned), and :func:`layerwise_graph_error` scores an assignment by the root-mean-square graph
distance between true and assigned locations, per layer, with the random-assignment baseline.
Only the package's public API is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.evaluate import EvaluationCancelled, correlation_eigenfeatures
from napari_mesoscale.progress import Progress

__all__ = [
    "ClassifierBank",
    "LocalisationResult",
    "assign_one_to_one",
    "layerwise_graph_error",
    "localise_neurons",
]


# -- classifier bank -------------------------------------------------------------------------


def _as_labels(labels: Any, n: int, name: str) -> pd.DataFrame:
    if isinstance(labels, pd.DataFrame):
        frame = labels.reset_index(drop=True)
    elif isinstance(labels, dict):
        frame = pd.DataFrame(labels)
    else:
        arr = np.asarray(labels)
        if arr.ndim == 1:
            frame = pd.DataFrame({"label": arr})
        elif arr.ndim == 2:
            frame = pd.DataFrame(arr, columns=[f"factor_{k}" for k in range(arr.shape[1])])
        else:
            raise ValueError(f"{name} must be 1-D, 2-D or a DataFrame; got shape {arr.shape}.")
    if len(frame) != n:
        raise ValueError(f"{name} has {len(frame)} rows but {n} neurons were given for it.")
    if frame.shape[1] == 0:
        raise ValueError(f"{name} has no label columns.")
    if frame.isna().any().any():
        raise ValueError(f"{name} contains missing labels; every labelled neuron needs all.")
    return frame


@dataclass
class ClassifierBank:
    """Random forests over factorised labels: P(top) and P(factor | top) for each factor.

    Parameters
    ----------
    top : str
        Column of the top-level label (e.g. "layer" or "motif").
    factors : sequence of str
        Other columns, each predicted conditionally on the top label.
    n_estimators : int
        Trees per forest.
    balance : bool
        Resample the top classifier's training set with replacement to equal class counts.
    prior_weight : float
        Mixing weight of a uniform prior over the candidate values (avoids log 0 and gives
        classes never seen in training a small, equal probability).
    seed : int
        Random state of resampling and forests.
    n_jobs : int, optional
        Passed to scikit-learn.
    """

    top: str
    factors: Sequence[str] = ()
    n_estimators: int = 100
    balance: bool = True
    prior_weight: float = 0.01
    seed: int = 0
    n_jobs: int | None = None
    models_: dict = field(default_factory=dict, repr=False)

    def _forest(self, offset: int):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators, random_state=self.seed + offset, n_jobs=self.n_jobs
        )

    def fit(self, features: np.ndarray, labels: pd.DataFrame) -> ClassifierBank:
        """Fit the top classifier and one classifier per (top class, factor)."""
        rng = np.random.default_rng(self.seed)
        top = labels[self.top].to_numpy()
        classes, counts = np.unique(top, return_counts=True)
        if self.balance and classes.size > 1:
            idx = np.concatenate(
                [rng.choice(np.flatnonzero(top == c), counts.max(), replace=True) for c in classes]
            )
        else:
            idx = np.arange(top.size)
        self.models_ = {}
        if classes.size > 1:
            self.models_[(self.top, None)] = self._forest(0).fit(features[idx], top[idx])
        else:
            self.models_[(self.top, None)] = classes[0]
        for ci, c in enumerate(classes):
            sel = top == c
            for fi, f in enumerate(self.factors):
                y = labels[f].to_numpy()[sel]
                values = np.unique(y)
                if values.size == 1:
                    self.models_[(f, c)] = values[0]
                else:
                    model = self._forest(1 + ci * len(self.factors) + fi)
                    self.models_[(f, c)] = model.fit(features[sel], y)
        return self

    def _log_probs(self, model: Any, features: np.ndarray, values: np.ndarray) -> np.ndarray:
        """log P(value) for each row of features and each candidate value (n, len(values))."""
        n = features.shape[0]
        candidates = np.unique(values)
        k = candidates.size
        prob = np.zeros((n, k))
        if hasattr(model, "predict_proba"):
            known = {v: j for j, v in enumerate(model.classes_)}
            p = model.predict_proba(features)
            for j, v in enumerate(candidates):
                if v in known:
                    prob[:, j] = p[:, known[v]]
        else:  # a degenerate factor: one value seen in training
            prob[:, candidates == model] = 1.0
        prob = (1.0 - self.prior_weight) * prob + self.prior_weight / k
        lookup = np.searchsorted(candidates, values)
        return np.log(prob)[:, lookup]

    def log_confidence(self, features: np.ndarray, slots: pd.DataFrame) -> np.ndarray:
        """Log confidence (n_neurons, n_slots) that each neuron sits at each slot (location)."""
        if not self.models_:
            raise ValueError("the ClassifierBank is not fitted; call fit() first.")
        top_values = slots[self.top].to_numpy()
        out = self._log_probs(self.models_[(self.top, None)], features, top_values)
        for c in np.unique(top_values):
            cols = np.flatnonzero(top_values == c)
            for f in self.factors:
                model = self.models_.get((f, c))
                values = slots[f].to_numpy()[cols]
                if model is None:  # top class never seen in training: uniform
                    out[:, cols] += -np.log(max(np.unique(values).size, 1))
                    continue
                out[:, cols] += self._log_probs(model, features, values)
        return out


def assign_one_to_one(log_confidence: np.ndarray) -> np.ndarray:
    """Hungarian assignment maximising the summed log confidence.

    Parameters
    ----------
    log_confidence : array (n_neurons, n_slots)
        With n_slots >= n_neurons.

    Returns
    -------
    ndarray (n_neurons,)
        Slot index assigned to each neuron (each slot used at most once).
    """
    from scipy.optimize import linear_sum_assignment

    lc = np.asarray(log_confidence, dtype=np.float64)
    if lc.ndim != 2 or lc.shape[1] < lc.shape[0]:
        raise ValueError(
            f"log_confidence must be (n_neurons, n_slots) with n_slots >= n_neurons; got "
            f"{lc.shape}."
        )
    rows, cols = linear_sum_assignment(-np.nan_to_num(lc, nan=-1e300, neginf=-1e300))
    out = np.empty(lc.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


@dataclass
class LocalisationResult:
    """Assignment of held-out neurons to locations.

    Attributes
    ----------
    test_idx : ndarray (n_test,)
        Indices of the held-out neurons.
    assigned : DataFrame (n_test, factors)
        Label assigned to each held-out neuron.
    slot_index : ndarray (n_test,)
        Row of ``slots`` assigned to each neuron.
    slots : DataFrame
        Candidate locations (the held-out locations, or the label combinations seen in training
        when no slots were given).
    log_confidence : ndarray (n_test, n_slots)
    features : ndarray (N, F)
    one_to_one : bool
        Whether the Hungarian assignment was used (else per-neuron argmax).
    """

    test_idx: np.ndarray
    assigned: pd.DataFrame
    slot_index: np.ndarray
    slots: pd.DataFrame
    log_confidence: np.ndarray
    features: np.ndarray
    one_to_one: bool

    def accuracy(self, true_labels: Any, columns: Sequence[str] | None = None) -> float:
        """Fraction of held-out neurons whose assigned labels (``columns``) are all correct."""
        truth = _as_labels(true_labels, len(self.test_idx), "true_labels")
        columns = list(columns or self.assigned.columns)
        ok = np.ones(len(truth), dtype=bool)
        for c in columns:
            ok &= truth[c].to_numpy() == self.assigned[c].to_numpy()
        return float(ok.mean())


def _features_from(activity: Any, n_eigenvectors: int, n_moments: int, **kwargs) -> np.ndarray:
    if isinstance(activity, list | tuple):
        if not activity:
            raise ValueError("activity is an empty list; give one (T, N) array or several.")
        parts = [
            correlation_eigenfeatures(a, n_eigenvectors, n_moments=n_moments, **kwargs)
            for a in activity
        ]
        sizes = {p.shape[0] for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"activity arrays have different neuron counts: {sorted(sizes)}.")
        return np.hstack(parts)
    return correlation_eigenfeatures(activity, n_eigenvectors, n_moments=n_moments, **kwargs)


def _check_split(train_idx: Any, test_idx: Any) -> tuple[np.ndarray, np.ndarray]:
    train_idx = np.asarray(train_idx, dtype=np.int64).ravel()
    test_idx = np.asarray(test_idx, dtype=np.int64).ravel()
    if train_idx.size == 0 or test_idx.size == 0:
        raise ValueError("train_idx and test_idx must both be non-empty.")
    if np.intersect1d(train_idx, test_idx).size:
        raise ValueError("train_idx and test_idx overlap; a neuron is either labelled or not.")
    return train_idx, test_idx


def _check_features(features: Any) -> np.ndarray:
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, F); got shape {feats.shape}.")
    if not np.all(np.isfinite(feats)):
        raise ValueError("features contain NaN or infinite values.")
    return feats


def _label_factors(
    labels: pd.DataFrame, top: str | None, factors: Sequence[str] | None
) -> tuple[str, list[str]]:
    top = top or labels.columns[0]
    if top not in labels.columns:
        raise ValueError(f"top={top!r} is not a label column; columns: {list(labels.columns)}.")
    factors = [c for c in labels.columns if c != top] if factors is None else list(factors)
    missing = [f for f in factors if f not in labels.columns]
    if missing:
        raise ValueError(f"factors {missing} are not label columns: {list(labels.columns)}.")
    return top, factors


def _slot_frame(labels: pd.DataFrame, slots: Any, columns: list[str], n_test: int) -> pd.DataFrame:
    """The locations to fill: the given slots, or every label combination seen in training."""
    if slots is None:
        return labels[columns].drop_duplicates().reset_index(drop=True)
    slot_frame = _as_labels(slots, n_test, "slots")
    absent = [c for c in columns if c not in slot_frame.columns]
    if absent:
        raise ValueError(f"slots lack the label columns {absent}.")
    return slot_frame[columns].reset_index(drop=True)


def localise_neurons(
    activity: Any,
    labels_train: Any,
    train_idx: Any,
    test_idx: Any,
    *,
    slots: Any = None,
    features: Any = None,
    top: str | None = None,
    factors: Sequence[str] | None = None,
    n_eigenvectors: int = 16,
    n_moments: int = 2,
    n_estimators: int = 100,
    balance: bool = True,
    prior_weight: float = 0.01,
    seed: int = 0,
    n_jobs: int | None = None,
    callback: Callable[[dict], Any] | None = None,
) -> LocalisationResult:
    """Assign held-out neurons to locations from activity, given labelled neurons.

    The supervised baseline of Dyer & Griffin 2022.

    Parameters
    ----------
    activity : array (T, N) or list of arrays (T_k, N)
        Activity; with several arrays (e.g. responses to different stimulus sets) their
        features are concatenated (the paper's CONCAT). Ignored when ``features`` is given.
    labels_train : DataFrame, dict, or array (n_train,) / (n_train, n_factors)
        Labels of the training neurons, in the order of ``train_idx``; the columns are the
        factors of a location, e.g. ("layer", "family", "x", "y") or ("motif", "instance").
    train_idx, test_idx : array of int
        Indices (into the N neurons) of labelled and held-out neurons; disjoint.
    slots : DataFrame/dict/array, optional
        Locations to fill, one per held-out neuron, in any order (the paper's "test
        locations"). Given: one-to-one Hungarian assignment. Not given: each neuron takes the
        most confident label combination seen in training (no one-to-one constraint).
    features : array (N, F), optional
        Precomputed features (e.g. from
        :func:`napari_mesoscale.evaluate.correlation_eigenfeatures`).
    top : str, optional
        Top-level factor (default: the first column of the labels).
    factors : sequence of str, optional
        Conditional factors (default: the remaining columns).
    n_eigenvectors, n_moments : int
        Feature settings (see :func:`napari_mesoscale.evaluate.correlation_eigenfeatures`).
    n_estimators, balance, prior_weight, seed, n_jobs
        Classifier bank settings (see :class:`ClassifierBank`).
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    LocalisationResult
    """
    progress = Progress.wrap(callback, EvaluationCancelled)
    train_idx, test_idx = _check_split(train_idx, test_idx)
    if features is None:
        progress.report(0.0, "features")
        feats = _features_from(activity, n_eigenvectors, n_moments, seed=seed)
    else:
        feats = _check_features(features)
    n = feats.shape[0]
    if max(train_idx.max(), test_idx.max()) >= n or min(train_idx.min(), test_idx.min()) < 0:
        raise ValueError(f"train_idx/test_idx must index the {n} neurons (0..{n - 1}).")
    labels = _as_labels(labels_train, train_idx.size, "labels_train")
    top, factors = _label_factors(labels, top, factors)
    progress.report(0.3, "training the classifier bank")
    bank = ClassifierBank(
        top=top,
        factors=factors,
        n_estimators=n_estimators,
        balance=balance,
        prior_weight=prior_weight,
        seed=seed,
        n_jobs=n_jobs,
    ).fit(feats[train_idx], labels)
    slot_frame = _slot_frame(labels, slots, [top, *factors], test_idx.size)
    one_to_one = slots is not None
    progress.report(0.7, "log confidences")
    lc = bank.log_confidence(feats[test_idx], slot_frame)
    progress.report(0.85, "assignment")
    slot_index = assign_one_to_one(lc) if one_to_one else np.argmax(lc, axis=1)
    assigned = slot_frame.iloc[slot_index].reset_index(drop=True)
    progress.report(1.0, "done")
    return LocalisationResult(
        test_idx=test_idx,
        assigned=assigned,
        slot_index=slot_index,
        slots=slot_frame,
        log_confidence=lc,
        features=feats,
        one_to_one=one_to_one,
    )


# -- scoring ---------------------------------------------------------------------------------


def layerwise_graph_error(
    adjacency: Any,
    true_nodes: Any,
    assigned_nodes: Any,
    layers: Any,
    *,
    candidate_nodes: Any = None,
) -> pd.DataFrame:
    """RMS graph distance between true and assigned locations, per layer.

    The score of Dyer & Griffin 2022 (section 5.2).

    Parameters
    ----------
    adjacency : sparse or dense (N, N)
        Network graph (treated as undirected, unweighted).
    true_nodes, assigned_nodes : array of int (n,)
        True and assigned node of each assessed neuron.
    layers : array (n,)
        Layer of each assessed neuron (its true layer).
    candidate_nodes : array of int, optional
        Nodes a random assignment draws from (default: ``true_nodes``); the random baseline
        per layer is sqrt(mean over neurons of the layer and candidates of distance^2).

    Returns
    -------
    DataFrame
        One row per layer (``layer``, ``n``, ``rms_error``, ``random_rms``, ``exact``: the
        fraction assigned exactly) and a final row ``layer="MEAN"`` with the means over layers.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import shortest_path

    true_nodes = np.asarray(true_nodes, dtype=np.int64).ravel()
    assigned_nodes = np.asarray(assigned_nodes, dtype=np.int64).ravel()
    layers = np.asarray(layers).ravel()
    if not (true_nodes.size == assigned_nodes.size == layers.size):
        raise ValueError("true_nodes, assigned_nodes and layers must have the same length.")
    cand = true_nodes if candidate_nodes is None else np.asarray(candidate_nodes, dtype=np.int64)
    graph = sparse.csr_matrix(adjacency)
    sources = np.unique(true_nodes)
    dist = shortest_path(graph, directed=False, unweighted=True, indices=sources)
    row_of = {node: i for i, node in enumerate(sources)}
    rows = np.array([row_of[v] for v in true_nodes])
    d_assigned = dist[rows, assigned_nodes]
    d_random = dist[rows][:, cand]
    if not np.all(np.isfinite(d_assigned)):
        raise ValueError("some assigned nodes are not connected to the true node in the graph.")
    records = []
    for layer in pd.unique(layers):
        sel = layers == layer
        records.append(
            {
                "layer": layer,
                "n": int(sel.sum()),
                "rms_error": float(np.sqrt(np.mean(d_assigned[sel] ** 2))),
                "random_rms": float(np.sqrt(np.mean(d_random[sel] ** 2))),
                "exact": float(np.mean(d_assigned[sel] == 0)),
            }
        )
    table = pd.DataFrame(records)
    mean_row = {
        "layer": "MEAN",
        "n": int(table["n"].sum()),
        "rms_error": float(table["rms_error"].mean()),
        "random_rms": float(table["random_rms"].mean()),
        "exact": float(np.mean(d_assigned == 0)),
    }
    return pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)
