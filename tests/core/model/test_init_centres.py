"""The initial motif centres are placed by the neurons the connectome explains."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initial_model import _centre_neurons
from napari_mesoscale.model.initialise import connectome_edges, motif_init


def _clusters_with_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three tight groups of 20 in 4-D and 25 scattered outliers far from all of them."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [4, 0, 0, 0], [0, 4, 0, 0]], dtype=float)
    truth = np.repeat(np.arange(3), 20)
    inliers = centres[truth] + 0.3 * rng.standard_normal((60, 4))
    outliers = np.array([0, 0, 12, 0]) + 3.0 * rng.standard_normal((25, 4))
    reliable = np.r_[np.ones(60, bool), np.zeros(25, bool)]
    return np.vstack([inliers, outliers]), truth, reliable


def test_centres_from_reliable_neurons_recover_the_groups():
    features, truth, reliable = _clusters_with_outliers()
    every = motif_init(features, 3, seed=0)
    chosen = motif_init(features, 3, seed=0, centre_neurons=reliable)
    assert adjusted_rand_score(truth, chosen[:60]) == 1.0
    # the outliers take a centre of their own and two true groups share one
    assert adjusted_rand_score(truth, every[:60]) < 0.7
    assert chosen.shape == (85,) and set(chosen[60:]) <= {0, 1, 2}


def test_too_few_reliable_neurons_fall_back_to_all():
    features, _, _ = _clusters_with_outliers()
    few = np.zeros(85, bool)
    few[:5] = True  # fewer than two per group
    np.testing.assert_array_equal(
        motif_init(features, 3, seed=0, centre_neurons=few), motif_init(features, 3, seed=0)
    )


def test_centre_neurons_are_those_with_a_connectome_edge():
    adj = sp.csr_matrix(([1.0, 2.0], ([0, 2], [1, 0])), shape=(5, 5))
    edges, _ = connectome_edges(adj)
    assert ModelConfig().init_centres == "all"  # the connected rule is run_pipeline's
    cfg = ModelConfig(init_centres="connected")
    np.testing.assert_array_equal(
        _centre_neurons(cfg, adj, edges, 5), [True, True, True, False, False]
    )
    assert _centre_neurons(cfg.replace(init_centres="all"), adj, edges, 5) is None
    assert _centre_neurons(cfg, None, edges, 5) is None
    ring = sp.csr_matrix((np.ones(5), (np.arange(5), np.roll(np.arange(5), 1))), shape=(5, 5))
    assert _centre_neurons(cfg, ring, connectome_edges(ring)[0], 5) is None  # all connected


def test_the_pipeline_places_centres_by_connected_sources():
    from napari_mesoscale.workflow import pipeline_config

    assert pipeline_config().init_centres == "connected"
