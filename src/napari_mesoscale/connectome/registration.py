"""Registration of two point clouds of cells (e.g. calcium point sources onto connectome somata).

1. Initial alignment: least squares on landmark pairs when given; otherwise the moments of both
   clouds (centroids and principal axes, every sign flip of the axes tried), each refined by a
   trimmed, mutual-nearest-neighbour iterative closest point (ICP); the start that ends with the
   most close pairs wins.
2. One-to-one assignment: the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on
   the pairs closer than ``max_distance``, solved per connected group of candidate pairs so that
   it stays sparse; the transform is refitted on the matches and the assignment repeated once.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.progress import Progress

TRANSFORMS = ("affine", "similarity", "rigid")


@dataclass(frozen=True)
class Registration:
    """A transform from moving to fixed coordinates and a one-to-one matching.

    Attributes
    ----------
    matrix : ndarray, shape (4, 4)
        Homogeneous affine matrix mapping moving (z, y, x, 1) in µm to fixed µm.
    matches : ndarray of int64, shape (K, 2)
        Pairs (moving row, fixed row), sorted by moving row.
    residuals : ndarray, shape (K,)
        Distance in µm between each transformed moving point and its fixed match.
    transform : str
        "affine", "similarity" or "rigid".
    max_distance : float
        Largest distance (µm) allowed for a match.
    n_moving, n_fixed : int
    """

    matrix: np.ndarray
    matches: np.ndarray
    residuals: np.ndarray
    transform: str
    max_distance: float
    n_moving: int
    n_fixed: int

    def apply(self, points: Any) -> np.ndarray:
        """Map (M, 3) moving-space points (µm) into fixed space."""
        points = _as_points(points, "points", minimum=0)
        return points @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    @property
    def n_matches(self) -> int:
        return int(self.matches.shape[0])

    @property
    def rmse(self) -> float:
        """Root mean square residual of the matches (µm)."""
        return float(np.sqrt(np.mean(self.residuals**2))) if self.residuals.size else float("nan")

    def fixed_for_moving(self) -> np.ndarray:
        """(n_moving,) fixed row matched to every moving row, -1 where unmatched."""
        out = np.full(self.n_moving, -1, dtype=np.int64)
        out[self.matches[:, 0]] = self.matches[:, 1]
        return out

    def moving_for_fixed(self) -> np.ndarray:
        """(n_fixed,) moving row matched to every fixed row, -1 where unmatched."""
        out = np.full(self.n_fixed, -1, dtype=np.int64)
        out[self.matches[:, 1]] = self.matches[:, 0]
        return out


def _as_points(points: Any, name: str, minimum: int = 4) -> np.ndarray:
    if hasattr(points, "positions"):
        points = points.positions
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(
            f"{name} must be (N, 3) positions in µm (z, y, x) or an object with .positions; "
            f"got shape {array.shape}."
        )
    if array.shape[0] < minimum:
        raise ValueError(
            f"{name} has {array.shape[0]} points; registration needs at least {minimum}."
        )
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} has NaN or infinite positions at rows {bad[:10].tolist()}.")
    return array


def _check_spread(points: np.ndarray, name: str) -> None:
    """Refuse a point set whose points all sit at one position: no transform is defined by it
    (least squares would silently return a transform that maps everything to one point)."""
    spread = np.ptp(points, axis=0).max() if points.shape[0] else 0.0
    scale = max(np.abs(points).max(initial=0.0), 1.0)
    if spread <= 1e-9 * scale:
        where = tuple(np.round(points[0], 3).tolist()) if points.shape[0] else ()
        raise ValueError(
            f"{name}: all {points.shape[0]} points are at the same position (z, y, x) = {where} "
            "µm: a degenerate point set defines no transform; give points spread out in space."
        )


def fit_transform(source: np.ndarray, target: np.ndarray, transform: str = "affine") -> np.ndarray:
    """Least-squares 4×4 transform mapping ``source`` (K, 3) onto ``target`` (K, 3).

    ``affine``: general linear map plus translation (needs ≥ 4 non-coplanar pairs);
    ``similarity``: rotation, one scale, translation; ``rigid``: rotation and translation
    (Kabsch / Umeyama, reflections excluded).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}; got {transform!r}.")
    source = np.asarray(source, dtype=float)
    target = np.asarray(target, dtype=float)
    _check_spread(source, "source")
    matrix = np.eye(4)
    if transform == "affine":
        design = np.hstack([source, np.ones((source.shape[0], 1))])
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        matrix[:3, :3] = solution[:3].T
        matrix[:3, 3] = solution[3]
        return matrix
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s0, t0 = source - mu_s, target - mu_t
    u, singular, vt = np.linalg.svd(t0.T @ s0)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    correction = np.diag([1.0, 1.0, d])
    rotation = u @ correction @ vt
    scale = 1.0
    if transform == "similarity":
        variance = (s0**2).sum()
        scale = float((singular * np.diag(correction)).sum() / variance) if variance > 0 else 1.0
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = mu_t - scale * rotation @ mu_s
    return matrix


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _moment_starts(moving: np.ndarray, fixed: np.ndarray, transform: str) -> list[np.ndarray]:
    """Initial transforms from centroids and principal axes (every sign flip of the axes)."""
    c_m, c_f = moving.mean(axis=0), fixed.mean(axis=0)
    lam_m, vec_m = np.linalg.eigh(np.cov((moving - c_m).T))
    lam_f, vec_f = np.linalg.eigh(np.cov((fixed - c_f).T))
    lam_m, lam_f = np.maximum(lam_m, 1e-12), np.maximum(lam_f, 1e-12)
    if transform == "affine":
        scales = np.sqrt(lam_f / lam_m)
    elif transform == "similarity":
        scales = np.full(3, np.sqrt(lam_f.sum() / lam_m.sum()))
    else:
        scales = np.ones(3)
    starts = []
    for signs in itertools.product((1.0, -1.0), repeat=3):
        linear = vec_f @ np.diag(np.array(signs) * scales) @ vec_m.T
        if transform != "affine" and np.linalg.det(linear) < 0:
            continue
        matrix = np.eye(4)
        matrix[:3, :3] = linear
        matrix[:3, 3] = c_f - linear @ c_m
        starts.append(matrix)
    return starts


def _normaliser(points: np.ndarray, transform: str) -> tuple[np.ndarray, np.ndarray]:
    """(centre, matrix N) so that N (x - centre) has unit covariance (affine) or unit rms radius
    (rigid, similarity): in that space the two clouds differ by a rotation (or reflection)."""
    centre = points.mean(axis=0)
    centred = points - centre
    if transform == "affine":
        values, vectors = np.linalg.eigh(np.cov(centred.T))
        values = np.maximum(values, 1e-12 * max(values.max(), 1e-12))
        return centre, vectors @ np.diag(values**-0.5) @ vectors.T
    radius = np.sqrt((centred**2).sum(axis=1).mean()) or 1.0
    return centre, np.eye(3) / radius


def _rotation_starts(
    moving: np.ndarray,
    fixed: np.ndarray,
    transform: str,
    *,
    n_rotations: int = 1024,
    keep: int = 8,
    max_points: int = 600,
    seed: int = 0,
) -> list[np.ndarray]:
    """Initial transforms from a search over rotations of the normalised clouds.

    Both clouds are normalised (whitened for affine, centred and scaled otherwise) so that they
    differ by an orthogonal matrix. ``n_rotations`` random rotations (plus their reflections for
    affine) are screened by a smooth overlap score, exp(-d²/2σ²) summed over moving points with
    σ the fixed cells' normalised spacing; the ``keep`` best become ICP starts.
    """
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    centre_m, norm_m = _normaliser(moving, transform)
    centre_f, norm_f = _normaliser(fixed, transform)
    a = (moving - centre_m) @ norm_m.T
    b = (fixed - centre_f) @ norm_f.T
    if a.shape[0] > max_points:
        a = a[rng.choice(a.shape[0], max_points, replace=False)]
    tree = cKDTree(b)
    spacing, _ = tree.query(b[: min(b.shape[0], 2000)], k=2)
    sigma = float(np.median(spacing[:, 1])) or 1.0
    rotations = Rotation.random(n_rotations, random_state=seed).as_matrix()
    rotations = np.concatenate([np.eye(3)[None], rotations])
    if transform == "affine":
        rotations = np.concatenate([rotations, rotations * np.array([1.0, 1.0, -1.0])])
    scores = np.empty(rotations.shape[0])
    for k, rotation in enumerate(rotations):
        distance, _ = tree.query(a @ rotation.T, distance_upper_bound=3 * sigma)
        distance = distance[np.isfinite(distance)]
        scores[k] = np.exp(-(distance**2) / (2 * sigma**2)).sum()
    best = np.argsort(scores)[::-1][:keep]
    inverse_f = np.linalg.inv(norm_f)
    starts = []
    for k in best:
        linear = inverse_f @ rotations[k] @ norm_m
        matrix = np.eye(4)
        matrix[:3, :3] = linear
        matrix[:3, 3] = centre_f - linear @ centre_m
        starts.append(matrix)
    return starts


def _mutual_pairs(
    points: np.ndarray, fixed: np.ndarray, fixed_tree: cKDTree
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours: (moving rows, fixed rows, distances)."""
    distance, nearest = fixed_tree.query(points)
    _, back = cKDTree(points).query(fixed)
    rows = np.arange(points.shape[0])
    mutual = back[nearest] == rows
    return rows[mutual], nearest[mutual], distance[mutual]


def _pairs(
    points: np.ndarray, fixed: np.ndarray, fixed_tree: cKDTree, mutual: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if mutual:
        return _mutual_pairs(points, fixed, fixed_tree)
    distance, nearest = fixed_tree.query(points)
    return np.arange(points.shape[0]), nearest, distance


def _icp(
    moving: np.ndarray,
    fixed: np.ndarray,
    fixed_tree: cKDTree,
    start: np.ndarray,
    transform: str,
    max_distance: float,
    n_iter: int,
    *,
    mutual: bool = True,
) -> tuple[np.ndarray, int, float]:
    """Trimmed (mutual-)nearest-neighbour ICP; returns (matrix, close pairs, mean distance).

    ``mutual=False`` pairs every moving point with its nearest fixed point (used on a subsample
    of the moving cells, where mutual neighbours would be meaningless).
    """
    matrix = start
    min_pairs = 4 if transform == "affine" else 3
    low, high = moving.min(axis=0), moving.max(axis=0)
    corners = np.array(
        [[h[0], h[1], h[2]] for h in itertools.product(*zip(low, high, strict=True))]
    )
    for _ in range(n_iter):
        points = _apply(matrix, moving)
        rows, cols, distance = _pairs(points, fixed, fixed_tree, mutual)
        if rows.size < min_pairs:
            break
        cutoff = max(2.5 * float(np.median(distance)), max_distance)
        keep = distance <= cutoff
        if keep.sum() < min_pairs:
            break
        updated = fit_transform(moving[rows[keep]], fixed[cols[keep]], transform)
        # largest displacement of a cell caused by the update, in µm
        change = float(np.abs(_apply(updated, corners) - _apply(matrix, corners)).max())
        matrix = updated
        if change < 1e-3 * max_distance:
            break
    points = _apply(matrix, moving)
    rows, cols, distance = _pairs(points, fixed, fixed_tree, mutual)
    close = distance <= max_distance
    mean = float(distance[close].mean()) if close.any() else float("inf")
    return matrix, int(close.sum()), mean


def assign_one_to_one(
    moving: np.ndarray, fixed: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-total-distance one-to-one matching among pairs closer than ``max_distance``.

    Maximises the number of matches first, then minimises their summed distance (Hungarian
    algorithm per connected group of candidate pairs). Returns (matches (K, 2), distances (K,)).
    """
    n_m, n_f = moving.shape[0], fixed.shape[0]
    pairs = cKDTree(moving).sparse_distance_matrix(
        cKDTree(fixed), max_distance, output_type="ndarray"
    )
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    rows = pairs["i"].astype(np.int64)
    cols = pairs["j"].astype(np.int64)
    dist = pairs["v"].astype(float)
    graph = sp.coo_matrix((np.ones(rows.size), (rows, cols + n_m)), shape=(n_m + n_f, n_m + n_f))
    _, component = connected_components(graph, directed=False)
    edge_component = component[rows]
    order = np.argsort(edge_component, kind="stable")
    edge_component = edge_component[order]
    rows, cols, dist = rows[order], cols[order], dist[order]
    bounds = np.flatnonzero(np.diff(edge_component)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [rows.size]])
    single = (stops - starts) == 1
    chosen_rows = [rows[starts[single]]]
    chosen_cols = [cols[starts[single]]]
    chosen_dist = [dist[starts[single]]]
    for start, stop in zip(starts[~single], stops[~single], strict=True):
        r, c, d = rows[start:stop], cols[start:stop], dist[start:stop]
        ur, local_r = np.unique(r, return_inverse=True)
        uc, local_c = np.unique(c, return_inverse=True)
        penalty = max_distance * (min(ur.size, uc.size) + 1) + 1.0
        cost = np.full((ur.size, uc.size), penalty)
        cost[local_r, local_c] = d
        a, b = linear_sum_assignment(cost)
        real = cost[a, b] < penalty
        chosen_rows.append(ur[a[real]])
        chosen_cols.append(uc[b[real]])
        chosen_dist.append(cost[a[real], b[real]])
    matched_rows = np.concatenate(chosen_rows)
    matched_cols = np.concatenate(chosen_cols)
    distances = np.concatenate(chosen_dist)
    order = np.argsort(matched_rows)
    matches = np.stack([matched_rows[order], matched_cols[order]], axis=1).astype(np.int64)
    return matches, distances[order]


def _landmark_pairs(landmarks: Any, moving: np.ndarray, fixed: np.ndarray) -> tuple:
    if isinstance(landmarks, tuple | list) and len(landmarks) == 2:
        source = np.asarray(landmarks[0], dtype=float)
        target = np.asarray(landmarks[1], dtype=float)
        if source.ndim == 2 and source.shape[1] == 3 and source.shape == target.shape:
            return source, target
    pairs = np.asarray(landmarks)
    if pairs.ndim == 2 and pairs.shape[1] == 2 and np.issubdtype(pairs.dtype, np.integer):
        if (
            (pairs[:, 0] < 0).any()
            or (pairs[:, 0] >= moving.shape[0]).any()
            or ((pairs[:, 1] < 0).any() or (pairs[:, 1] >= fixed.shape[0]).any())
        ):
            raise ValueError("landmarks index rows outside the moving or fixed points.")
        return moving[pairs[:, 0]], fixed[pairs[:, 1]]
    raise ValueError(
        "landmarks must be (K, 2) integer pairs (moving row, fixed row) or a pair of (K, 3) "
        "arrays (moving µm, fixed µm)."
    )


def _match_distance(fixed_tree: cKDTree, fixed: np.ndarray, max_distance: float | None) -> float:
    """The given match distance, or half the median nearest-neighbour spacing of ``fixed``."""
    spacing_d, _ = fixed_tree.query(fixed, k=2)
    spacing = float(np.median(spacing_d[:, 1]))
    if max_distance is None:
        max_distance = 0.5 * spacing if spacing > 0 else 1.0
    if not (np.isfinite(max_distance) and max_distance > 0):
        raise ValueError(f"max_distance must be a positive number of µm; got {max_distance}.")
    return float(max_distance)


def _initial_transforms(
    moving: np.ndarray, fixed: np.ndarray, landmarks: Any, transform: str, minimum: int
) -> list[np.ndarray]:
    """Starting alignments: from landmarks, else from moments and rotations of the clouds."""
    if landmarks is not None:
        source, target = _landmark_pairs(landmarks, moving, fixed)
        if source.shape[0] < minimum:
            raise ValueError(
                f"{transform} registration needs at least {minimum} landmark pairs; "
                f"got {source.shape[0]}."
            )
        return [fit_transform(source, target, transform)]
    return _moment_starts(moving, fixed, transform) + _rotation_starts(moving, fixed, transform)


def _best_alignment(
    moving: np.ndarray,
    fixed: np.ndarray,
    fixed_tree: cKDTree,
    starts: list[np.ndarray],
    transform: str,
    max_distance: float,
    n_iter: int,
    max_search_points: int,
    progress: Progress,
) -> tuple[np.ndarray, int, float]:
    """ICP from every start; the one with most matches (then least error) wins."""
    # with many cells the starts are compared on a subsample, then the best is refined on all
    search = moving
    if moving.shape[0] > max_search_points and len(starts) > 1:
        rng = np.random.default_rng(0)
        search = moving[rng.choice(moving.shape[0], max_search_points, replace=False)]
    subsampled = search is not moving
    best: tuple[np.ndarray, int, float] | None = None
    for k, start in enumerate(starts):
        result = _icp(
            search,
            fixed,
            fixed_tree,
            start,
            transform,
            max_distance,
            min(n_iter, 25) if subsampled else n_iter,
            mutual=not subsampled,
        )
        if best is None or (result[1], -result[2]) > (best[1], -best[2]):
            best = result
        progress.report((k + 1) / len(starts), f"registration: start {k + 1}/{len(starts)}")
    if subsampled:
        best = _icp(moving, fixed, fixed_tree, best[0], transform, max_distance, n_iter)
    return best


def _refined_matches(
    moving: np.ndarray,
    fixed: np.ndarray,
    matrix: np.ndarray,
    transform: str,
    max_distance: float,
    minimum: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Match one to one, refit the transform on the matches, match again."""
    matches, _ = assign_one_to_one(_apply(matrix, moving), fixed, max_distance)
    if matches.shape[0] >= minimum:
        matrix = fit_transform(moving[matches[:, 0]], fixed[matches[:, 1]], transform)
        matches, _ = assign_one_to_one(_apply(matrix, moving), fixed, max_distance)
    else:
        warnings.warn(
            f"registration found only {matches.shape[0]} matches within {max_distance:g} µm; "
            "give landmarks or a larger max_distance.",
            stacklevel=3,
        )
    return matrix, matches


def register_point_sources(
    moving: Any,
    fixed: Any,
    *,
    max_distance: float | None = None,
    landmarks: Any = None,
    transform: str = "affine",
    n_iter: int = 60,
    max_search_points: int = 2000,
    callback: Any = None,
) -> Registration:
    """Register two clouds of cell positions and match them one to one.

    Parameters
    ----------
    moving, fixed : ndarray (N, 3) or object with ``.positions``
        Cell positions in µm (z, y, x), e.g. calcium point sources (moving) and connectome
        somata (fixed).
    max_distance : float, optional
        Largest distance (µm, after alignment) for a match; default half the median
        nearest-neighbour spacing of the fixed cells.
    landmarks : (K, 2) int pairs or (moving (K, 3), fixed (K, 3)), optional
        Known correspondences for the initial alignment (≥ 4 for affine, ≥ 3 otherwise).
        Without them, moments (centroid and principal axes) start an ICP.
    transform : {"affine", "similarity", "rigid"}
    n_iter : int
        Maximum ICP iterations per start.
    max_search_points : int
        Above this many moving cells, the initial alignments are compared on a random subsample
        of this size (nearest-neighbour ICP) and only the best is refined on all cells.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    Registration
        The moving→fixed matrix, the matches, their residuals (µm) and ``apply(points)``.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}; got {transform!r}.")
    minimum = 4 if transform == "affine" else 3
    moving = _as_points(moving, "moving", minimum)
    fixed = _as_points(fixed, "fixed", minimum)
    fixed_tree = cKDTree(fixed)
    max_distance = _match_distance(fixed_tree, fixed, max_distance)
    starts = _initial_transforms(moving, fixed, landmarks, transform, minimum)
    _check_spread(moving, "moving")  # after the parameters' checks, before any ICP
    _check_spread(fixed, "fixed")
    best = _best_alignment(
        moving,
        fixed,
        fixed_tree,
        starts,
        transform,
        max_distance,
        n_iter,
        max_search_points,
        progress.stage(0.0, 0.8),
    )
    matrix, matches = _refined_matches(moving, fixed, best[0], transform, max_distance, minimum)
    progress.report(1.0, f"registration: {matches.shape[0]} matches")
    points = _apply(matrix, moving)
    residuals = (
        np.linalg.norm(points[matches[:, 0]] - fixed[matches[:, 1]], axis=1)
        if matches.size
        else np.zeros(0)
    )
    return Registration(
        matrix=matrix,
        matches=matches,
        residuals=residuals,
        transform=transform,
        max_distance=max_distance,
        n_moving=moving.shape[0],
        n_fixed=fixed.shape[0],
    )
