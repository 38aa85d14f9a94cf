"""benchmarks/init_motif_count_descriptions_dev.py: the stimulus columns it sorts or drops are
dynamics_features' per-channel stimulus columns, and a split refinement splits a merge of two
separated groups and leaves one group whole."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_mesoscale.model.initialise import dynamics_features

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
study = pytest.importorskip("init_motif_count_descriptions_dev")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_stimulus_columns_are_where_dynamics_features_puts_them(channels):
    rng = np.random.default_rng(channels)
    n, t = 30, 400
    z = rng.standard_normal((t, n))
    stimulus = rng.standard_normal((t, channels))
    ridge = {
        "stimulus": rng.standard_normal((n, channels)),
        "self": rng.standard_normal((n, 3)),
        "edge": np.zeros(0),
        "r2": rng.random(n),
    }
    plain = dynamics_features(z, ridge, np.zeros((2, 0), dtype=np.int64), stimulus)
    ranked = dynamics_features(
        z, ridge, np.zeros((2, 0), dtype=np.int64), stimulus, stimulus_channels="sorted"
    )
    wiring = 4  # motif_features appends the wiring columns after the dynamics features
    blocks = study.stimulus_columns(plain.shape[1] + wiring)
    changed = np.flatnonzero(~np.isclose(plain, ranked).all(axis=0))
    inside = {j for a, b in blocks for j in range(a, b)}
    assert set(changed) <= inside
    assert sum(b - a for a, b in blocks) == 2 * channels


def _groups(offset: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Twelve communities, six around 0 and six around ``offset`` on three of five columns."""
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal((12, 5))
    x[6:, :3] += offset
    return x, np.full(12, 20.0)


@pytest.mark.parametrize("restd", [True, False])
def test_refinement_splits_a_merge_and_keeps_one_group_whole(restd):
    merged, size = _groups(3.0, 0)
    split = study.refined(merged, size, np.zeros(12, dtype=np.int64), 0.5, restd)
    assert np.unique(split).size == 2
    assert len({tuple(np.unique(split[:6])), tuple(np.unique(split[6:]))}) == 2

    whole, size = _groups(0.0, 1)
    kept = study.refined(whole, size, np.zeros(12, dtype=np.int64), 0.5, restd)
    assert np.unique(kept).size == 1
