"""Passes of the dynamics features' smoothing over correlated neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import _neighbour_mean, dynamics_features

CHAIN = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])  # 0 - 1 - 2, both directions


def test_one_pass_is_the_weighted_mean_with_the_partners():
    feats = np.array([[0.0], [3.0], [6.0]])
    once = _neighbour_mean(feats, CHAIN, np.ones(4))
    np.testing.assert_allclose(once.ravel(), [1.5, 3.0, 4.5])
    twice = _neighbour_mean(once, CHAIN, np.ones(4))
    np.testing.assert_allclose(twice.ravel(), [2.25, 3.0, 3.75])
    half = _neighbour_mean(feats, CHAIN, np.full(4, 0.5))  # neuron 0: (0 + 0.5 x 3) / 1.5
    np.testing.assert_allclose(half.ravel(), [1.0, 3.0, 5.0])


def test_passes_repeat_the_smoothing():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((60, 3))
    ridge = {
        "edge": np.zeros(0),
        "stimulus": np.zeros((3, 0)),
        "self": rng.standard_normal((3, 3)),
        "r2": rng.uniform(0, 1, 3),
    }
    edges = np.zeros((2, 0), dtype=np.int64)
    weights = np.array([1.0, 1.0, 0.25, 0.25])

    def feats(passes):
        kw = {"smooth_pairs": CHAIN, "smooth_weights": weights, "smooth_passes": passes}
        return dynamics_features(z, ridge, edges, None, **kw)

    np.testing.assert_allclose(feats(2), _neighbour_mean(feats(1), CHAIN, weights))
    spread = [np.ptp(feats(p), axis=0).sum() for p in (1, 2, 4)]
    assert spread[0] > spread[1] > spread[2]  # each pass pulls the neighbours together


def test_the_pipeline_smooths_twice_and_the_model_once():
    from napari_mesoscale.workflow import pipeline_config

    assert ModelConfig().smooth_passes == 1
    assert pipeline_config().smooth_passes == 2
    with pytest.raises(ValueError, match="smooth_passes"):
        ModelConfig(smooth_passes=0).validate()
