"""One-to-one matching of detected points to ground truth, and detection scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree


@dataclass
class PointMatch:
    """Result of :func:`match_points`.

    Attributes
    ----------
    detected_index, truth_index : numpy.ndarray
        Matched pairs: ``detected[detected_index[k]]`` is paired with ``truth[truth_index[k]]``.
    distances : numpy.ndarray
        Distance (µm) of each matched pair.
    n_detected, n_truth : int
        Number of points on each side.
    """

    detected_index: np.ndarray
    truth_index: np.ndarray
    distances: np.ndarray
    n_detected: int
    n_truth: int

    @property
    def n_matched(self) -> int:
        return int(len(self.detected_index))

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_detected if self.n_detected else float(self.n_truth == 0)

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_truth if self.n_truth else float(self.n_detected == 0)

    @property
    def f1(self) -> float:
        total = self.n_detected + self.n_truth
        return 2.0 * self.n_matched / total if total else 1.0

    def scores(self) -> dict[str, float]:
        """Precision, recall, F1 and counts as a plain dictionary."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "n_detected": self.n_detected,
            "n_truth": self.n_truth,
            "n_matched": self.n_matched,
        }


def match_points(detected: np.ndarray, truth: np.ndarray, max_distance: float) -> PointMatch:
    """Pair detected points with true points one-to-one within ``max_distance``.

    The pairing maximises the number of matches and, among those, minimises the summed
    distance (Hungarian algorithm on the pairs closer than ``max_distance``).

    Parameters
    ----------
    detected, truth : array_like
        (N, D) and (M, D) coordinates in the same units (µm).
    max_distance : float
        Largest distance of a valid pair (e.g. half a cell diameter).

    Returns
    -------
    PointMatch
        Matched index pairs, their distances, and precision / recall / F1.
    """
    detected = np.asarray(detected, dtype=float)
    truth = np.asarray(truth, dtype=float)
    if detected.size == 0:
        detected = detected.reshape(0, truth.shape[1] if truth.ndim == 2 else 3)
    if truth.size == 0:
        truth = truth.reshape(0, detected.shape[1])
    if detected.ndim != 2 or truth.ndim != 2 or detected.shape[1] != truth.shape[1]:
        raise ValueError(
            f"detected and truth must be (N, D) and (M, D) arrays with the same D; got "
            f"{detected.shape} and {truth.shape}."
        )
    if not max_distance > 0:
        raise ValueError(f"max_distance must be positive; got {max_distance}.")
    n_det, n_true = len(detected), len(truth)
    empty = np.zeros(0, dtype=np.int64)
    if n_det == 0 or n_true == 0:
        return PointMatch(empty, empty, np.zeros(0), n_det, n_true)
    pairs = cKDTree(detected).sparse_distance_matrix(
        cKDTree(truth), max_distance, output_type="coo_matrix"
    )
    if pairs.nnz == 0:
        return PointMatch(empty, empty, np.zeros(0), n_det, n_true)
    rows, cols, dist = pairs.row, pairs.col, pairs.data
    # only points with at least one candidate enter the assignment
    row_ids, row_inv = np.unique(rows, return_inverse=True)
    col_ids, col_inv = np.unique(cols, return_inverse=True)
    big = 1e6 * (max_distance + 1.0)
    cost = np.full((len(row_ids), len(col_ids)), big)
    # a valid pair costs less than any invalid one, so the number of matches is maximal
    cost[row_inv, col_inv] = dist
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    return PointMatch(
        detected_index=row_ids[r[ok]].astype(np.int64),
        truth_index=col_ids[c[ok]].astype(np.int64),
        distances=cost[r[ok], c[ok]],
        n_detected=n_det,
        n_truth=n_true,
    )
