"""The dynamics features' smoothing pass over connectome partners (``connectome_smoothing``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import (
    _neighbour_mean,
    motif_features,
    motif_init,
    per_neuron_ridge,
)

NO_SPATIAL = np.zeros((2, 0), dtype=np.int64)


def _two_motifs(frames: int, per_group: int = 20, partners: int = 5, seed: int = 0):
    """Short AR(1) traces of two motifs (memory 0.7 / 0.1) and within-motif partner edges."""
    rng = np.random.default_rng(seed)
    n = 2 * per_group
    truth = np.repeat([0, 1], per_group)
    phi = np.where(truth == 0, 0.7, 0.1)
    z = np.zeros((frames, n))
    z[0] = rng.standard_normal(n)
    for t in range(1, frames):
        z[t] = phi * z[t - 1] + rng.standard_normal(n)
    z = (z - z.mean(0)) / z.std(0)
    pre, post = [], []
    for i in range(n):
        group = np.flatnonzero(truth == truth[i])
        chosen = rng.choice(group[group != i], partners, replace=False)
        pre += chosen.tolist()
        post += [i] * partners
    return z, truth, np.array([pre, post])


def _features(z, edges, weight, partners):
    cfg = ModelConfig(smooth_features=False, connectome_smoothing=weight)
    ridge = per_neuron_ridge(z, edges)
    return motif_features(z, ridge, edges, None, NO_SPATIAL, np.zeros(0), cfg, partners)


def test_one_pass_over_the_partners_in_both_directions():
    z, _, edges = _two_motifs(40)
    plain = _features(z, edges, 0.0, edges)
    both = np.concatenate([edges, edges[::-1]], axis=1)
    expected = _neighbour_mean(plain, both, np.full(both.shape[1], 0.3))
    np.testing.assert_allclose(_features(z, edges, 0.3, edges), expected)
    np.testing.assert_allclose(_features(z, edges, 0.3, None), plain)  # no connectome: off


def test_partners_recover_the_motifs_of_short_noisy_traces():
    from sklearn.metrics import adjusted_rand_score

    scores = {0.0: [], 0.3: []}
    for seed in range(3):
        z, truth, edges = _two_motifs(30, seed=seed)
        for weight in scores:
            groups = motif_init(_features(z, edges, weight, edges), 2, seed=0)
            scores[weight].append(adjusted_rand_score(truth, groups))
    assert min(scores[0.3]) >= 0.9
    assert np.mean(scores[0.3]) > np.mean(scores[0.0]) + 0.2


def test_the_pipeline_smooths_over_partners_and_the_model_does_not():
    from napari_mesoscale.workflow import pipeline_config

    assert ModelConfig().connectome_smoothing == 0.0
    assert pipeline_config().connectome_smoothing == 0.3
    with pytest.raises(ValueError, match="connectome_smoothing"):
        ModelConfig(connectome_smoothing=-1.0).validate()


def test_the_initialisation_passes_the_connectome_as_partners(monkeypatch, brain):
    import napari_mesoscale.model.initial_model as initial_model
    from napari_mesoscale.model.prepare import prepare_data

    seen = []

    def spy(*args, **kwargs):
        seen.append(args[7] if len(args) > 7 else kwargs.get("partners"))
        return motif_features(*args, **kwargs)

    monkeypatch.setattr(initial_model, "motif_features", spy)
    cfg = ModelConfig(connectome_smoothing=0.3, epochs=1)
    data = prepare_data(brain.activity[:200], brain.positions, None, cfg)
    initial_model.initialise_model(data, cfg, brain.adjacency, 0)
    initial_model.initialise_model(data, cfg, None, 0)
    assert seen[0] is not None and seen[0].shape[0] == 2 and seen[0].shape[1] > 0
    assert seen[1] is None
