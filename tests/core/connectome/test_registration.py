"""Registration of point clouds: known transforms, missing cells, landmarks, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_mesoscale.connectome import (
    ConnectomeCancelled,
    assign_one_to_one,
    fit_transform,
    register_point_sources,
)


def clustered_cells(seed: int = 0, n_clusters: int = 40, per_cluster: int = 15) -> np.ndarray:
    """Cells in small clusters (like motif instances) in a 100 × 300 × 200 µm block."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0, 0], [100, 300, 200], (n_clusters, 3))
    return np.concatenate([c + rng.normal(0, 8, (per_cluster, 3)) for c in centres])


def known_affine(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = np.eye(4)
    rotation = Rotation.from_euler("zyx", [20, -10, 15], degrees=True).as_matrix()
    matrix[:3, :3] = rotation @ np.diag([1.1, 0.9, 1.05]) + 0.03 * rng.normal(size=(3, 3))
    matrix[:3, 3] = [30.0, -20.0, 50.0]
    return matrix


def split_with_missing(points, matrix, seed, jitter=1.0, missing=0.1):
    """Moving = 90 % of the cells; fixed = another 90 %, transformed and jittered."""
    rng = np.random.default_rng(seed)
    n = points.shape[0]
    keep_moving = np.sort(rng.permutation(n)[: int(round((1 - missing) * n))])
    keep_fixed = np.sort(rng.permutation(n)[: int(round((1 - missing) * n))])
    fixed = points[keep_fixed] @ matrix[:3, :3].T + matrix[:3, 3]
    fixed = fixed + rng.normal(0, jitter, fixed.shape)
    return points[keep_moving], fixed, keep_moving, keep_fixed


def correct_fraction(registration, keep_moving, keep_fixed) -> tuple[float, float]:
    matches = registration.matches
    correct = keep_moving[matches[:, 0]] == keep_fixed[matches[:, 1]]
    shared = np.intersect1d(keep_moving, keep_fixed).size
    return float(correct.mean()), float(correct.sum() / shared)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_with_jitter_and_missing_cells_matches_95_percent(seed):
    points = clustered_cells(seed)
    matrix = known_affine(seed)
    moving, fixed, keep_moving, keep_fixed = split_with_missing(points, matrix, seed)
    registration = register_point_sources(moving, fixed)
    precision, recall = correct_fraction(registration, keep_moving, keep_fixed)
    assert precision >= 0.95, precision
    assert recall >= 0.9, recall
    # the recovered transform is the true one (up to the jitter)
    truth = points @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(registration.apply(points), truth, atol=1.0)
    assert registration.residuals.max() <= registration.max_distance
    assert registration.rmse < 2.5  # jitter of 1 µm per axis: √3 µm expected
    # one to one
    assert np.unique(registration.matches[:, 0]).size == registration.n_matches
    assert np.unique(registration.matches[:, 1]).size == registration.n_matches
    lookup = registration.fixed_for_moving()
    assert (lookup >= 0).sum() == registration.n_matches
    assert (
        registration.moving_for_fixed()[registration.matches[:, 1]] == registration.matches[:, 0]
    ).all()


def test_rigid_with_landmarks_and_objects_with_positions():
    points = clustered_cells(3)
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("z", 170, degrees=True).as_matrix()
    matrix[:3, 3] = [5.0, 400.0, -30.0]
    moving, fixed, keep_moving, keep_fixed = split_with_missing(points, matrix, 3, jitter=0.5)
    shared = np.intersect1d(keep_moving, keep_fixed)[:6]
    landmarks = np.stack(
        [np.searchsorted(keep_moving, shared), np.searchsorted(keep_fixed, shared)], axis=1
    )

    class Cells:
        def __init__(self, positions):
            self.positions = positions

    registration = register_point_sources(
        Cells(moving), Cells(fixed), landmarks=landmarks, transform="rigid"
    )
    precision, recall = correct_fraction(registration, keep_moving, keep_fixed)
    assert precision >= 0.97 and recall >= 0.95
    np.testing.assert_allclose(registration.matrix[:3, :3], matrix[:3, :3], atol=0.01)
    np.testing.assert_allclose(np.linalg.det(registration.matrix[:3, :3]), 1.0, atol=1e-9)
    by_points = register_point_sources(
        moving,
        fixed,
        landmarks=(moving[landmarks[:, 0]], fixed[landmarks[:, 1]]),
        transform="rigid",
    )
    np.testing.assert_array_equal(by_points.matches, registration.matches)


def test_fit_transform_recovers_exact_transforms():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 3)) * 10
    matrix = known_affine()
    target = source @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(fit_transform(source, target, "affine"), matrix, atol=1e-9)
    similarity = np.eye(4)
    similarity[:3, :3] = 1.7 * Rotation.from_euler("x", 40, degrees=True).as_matrix()
    similarity[:3, 3] = [1.0, 2.0, 3.0]
    target = source @ similarity[:3, :3].T + similarity[:3, 3]
    np.testing.assert_allclose(fit_transform(source, target, "similarity"), similarity, atol=1e-9)


def test_assignment_is_optimal_and_respects_max_distance():
    moving = np.array([[0.0, 0, 0], [0, 0, 1.0], [50, 0, 0]])
    fixed = np.array([[0.0, 0, 0.9], [0, 0, 1.9], [80, 0, 0]])
    matches, distances = assign_one_to_one(moving, fixed, max_distance=1.5)
    # greedy would give 0->0 (0.9) and leave 1 with 1->1 (0.9): both are fine here, but the
    # optimum must match the two close pairs and leave the far cells unmatched
    np.testing.assert_array_equal(matches, [[0, 0], [1, 1]])
    np.testing.assert_allclose(distances, [0.9, 0.9])
    crowd_moving = np.array([[0.0, 0, 0], [0, 0, 1.0]])
    crowd_fixed = np.array([[0.0, 0, 0.4]])
    matches, _ = assign_one_to_one(crowd_moving, crowd_fixed, max_distance=2.0)
    np.testing.assert_array_equal(matches, [[0, 0]])
    none, _ = assign_one_to_one(crowd_moving, crowd_fixed + 100, max_distance=2.0)
    assert none.shape == (0, 2)


@pytest.mark.parametrize(
    ("moving", "kwargs", "message"),
    [
        (np.zeros((10, 2)), {}, r"\(N, 3\)"),
        (np.zeros((3, 3)), {}, "at least 4"),
        (np.full((10, 3), np.nan), {}, "NaN"),
        (np.ones((10, 3)), {"transform": "warp"}, "transform must be"),
        (np.ones((10, 3)), {"max_distance": -1.0}, "max_distance must be"),
        (np.ones((10, 3)), {"landmarks": np.array([[0, 1], [2, 3]])}, "at least 4 landmark"),
        (np.ones((10, 3)), {"landmarks": np.array([[0, 99]] * 4)}, "outside"),
        (np.ones((10, 3)), {"landmarks": "abc"}, "landmarks must be"),
    ],
)
def test_bad_input(moving, kwargs, message):
    fixed = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match=message):
        register_point_sources(moving, fixed, **kwargs)


def test_cancel():
    points = clustered_cells(0, n_clusters=5)
    with pytest.raises(ConnectomeCancelled):
        register_point_sources(points, points, callback=lambda info: False)


def test_many_cells_compare_starts_on_a_subsample():
    points = clustered_cells(5, n_clusters=120, per_cluster=15)  # 1,800 cells
    matrix = known_affine(5)
    moving, fixed, keep_moving, keep_fixed = split_with_missing(points, matrix, 5)
    registration = register_point_sources(moving, fixed, max_search_points=400)
    precision, recall = correct_fraction(registration, keep_moving, keep_fixed)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)


def test_landmarks_orient_a_featureless_square_block():
    # uniform cells in a block with two equal sides: moments cannot orient it, landmarks can
    rng = np.random.default_rng(0)
    points = rng.uniform(0, [60.0, 170.0, 170.0], (3000, 3))
    matrix = known_affine(1)
    moving, fixed, keep_moving, keep_fixed = split_with_missing(points, matrix, 1, jitter=0.5)
    shared = np.intersect1d(keep_moving, keep_fixed)
    pick = shared[rng.choice(shared.size, 6, replace=False)]
    landmarks = np.stack(
        [np.searchsorted(keep_moving, pick), np.searchsorted(keep_fixed, pick)], axis=1
    )
    registration = register_point_sources(moving, fixed, landmarks=landmarks)
    precision, recall = correct_fraction(registration, keep_moving, keep_fixed)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)
