"""A community of correlated neighbours fits in one receptive field wherever it lies."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.connectome import receptive_field_grid
from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import pick_fields

DIAMETER = 72.0


def _community_between_lattice_points(seed: int = 0) -> np.ndarray:
    """80 neurons filling a 60 µm cube; the first 20 within 12 µm of its centre."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((20, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    community = 30.0 + direction * 12.0 * rng.uniform(0, 1, (20, 1)) ** (1 / 3)
    rest = rng.uniform(0.0, 60.0, (60, 3))
    corners = np.array([[0.0, 0.0, 0.0], [60.0, 60.0, 60.0]])  # fix the bounding box
    return np.vstack([community, rest, corners])


def _fields_of_the_community(stride: float) -> np.ndarray:
    positions = _community_between_lattice_points()
    grid = receptive_field_grid(positions, diameter=DIAMETER, stride=stride)
    n = positions.shape[0]
    groups = np.r_[np.zeros(20, np.int64), np.arange(1, n - 19)]
    slot = pick_fields(
        groups,
        np.zeros(groups.max() + 1, np.int64),
        grid.candidates,
        grid.mask,
        grid.centers,
        positions,
        DIAMETER,
    )
    return grid.candidates[np.arange(n), slot][:20]


def test_half_diameter_stride_splits_a_community_between_lattice_points():
    # lattice points 18 µm from the cube's centre on each axis: 31 µm away, so a field of
    # radius 36 µm cannot enclose a community of radius 12 µm around that centre
    assert len(np.unique(_fields_of_the_community(DIAMETER / 2))) > 1


@pytest.mark.parametrize("fraction", [1 / 3, 1 / 4])
def test_finer_stride_keeps_the_community_in_one_field(fraction):
    assert len(np.unique(_fields_of_the_community(DIAMETER * fraction))) == 1


def test_stride_fraction_sets_the_grid_of_the_fit(brain):
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data

    cfg = ModelConfig(rf_diameter=40.0, stride_fraction=0.25, epochs=1)
    data = prepare_data(brain.activity, brain.positions, None, cfg)
    init = initialise_model(data, cfg, None, 0)
    assert init.config.stride == pytest.approx(10.0)
    assert ModelConfig().stride_fraction == 0.5  # the model's default grid is unchanged
    explicit = initialise_model(data, cfg.replace(stride=20.0), None, 0)
    assert explicit.config.stride == pytest.approx(20.0)


def test_the_pipeline_uses_a_third_of_the_diameter():
    from napari_mesoscale.workflow import pipeline_config

    assert pipeline_config().stride_fraction == pytest.approx(1 / 3)


def test_stride_fraction_is_validated():
    with pytest.raises(ValueError, match="stride_fraction"):
        ModelConfig(stride_fraction=0.0).validate()
