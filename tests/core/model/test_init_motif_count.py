"""init_motif_count="silhouette": the number of motifs from the initialisation's community
descriptions, with n_filters as the upper bound."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from napari_mesoscale.model.initialise import (
    community_descriptors,
    community_motif_count,
    community_motifs,
    size_weighted_silhouette,
)


def _communities(centres, per_motif, sizes, spread=0.3, seed=0):
    """Neuron features around ``centres`` (one motif each), ``per_motif`` communities of each,
    community c holding ``sizes[c]`` neurons; returns features (N, P), communities (N,), the
    true motif of every community (C,) and an empty wiring signature."""
    rng = np.random.default_rng(seed)
    motif = np.repeat(np.arange(len(centres)), per_motif)
    feats, comm = [], []
    for c, m in enumerate(motif):
        centre = np.asarray(centres[m], float) + spread * rng.normal(size=len(centres[m]))
        feats.append(centre + 0.05 * rng.normal(size=(sizes[c], len(centre))))
        comm.append(np.full(sizes[c], c))
    feats, comm = np.vstack(feats), np.concatenate(comm)
    return feats, comm, motif, np.zeros((motif.size, 5))


def _silhouette_by_loops(x, labels, size):
    """The definition, community by community: a = size-weighted mean distance to the other
    communities of its group, b = the same to the nearest other group; weighted by size."""
    values = []
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=1)
        own = (labels == labels[i]) & (np.arange(len(x)) != i)
        if not own.any():
            values.append(0.0)
            continue
        a = np.average(d[own], weights=size[own])
        b = min(np.average(d[labels == g], weights=size[labels == g])
                for g in np.unique(labels) if g != labels[i])
        values.append((b - a) / max(a, b))
    return np.average(values, weights=size)


def test_the_silhouette_weighs_every_community_by_its_neurons():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3))
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3])  # group 3: a single community
    x[labels == 1] += 3.0
    size = np.array([1, 4, 2, 3, 1, 2, 5, 1, 2, 6], float)
    assert size_weighted_silhouette(x, labels, size) == pytest.approx(
        _silhouette_by_loops(x, labels, size), rel=1e-9)
    # with one neuron a community it is the usual silhouette
    assert size_weighted_silhouette(x, labels, np.ones(10)) == pytest.approx(
        silhouette_score(x, labels), rel=1e-9)
    assert size_weighted_silhouette(x, np.zeros(10, int), size) == -1.0


def test_three_separated_motifs_are_counted_three_under_a_larger_bound():
    centres = [(0, 0, 0), (6, 0, 0), (0, 6, 0)]
    feats, comm, motif, signature = _communities(centres, 4, [10] * 12)
    k, labels = community_motif_count(feats, comm, signature, 0.0, 8, 0.08, 0.02)
    assert k == 3
    assert len(np.unique(labels)) == 3
    for m in range(3):  # every motif's communities share one label, and only they
        assert len(np.unique(labels[motif == m])) == 1
    assert len(np.unique([labels[motif == m][0] for m in range(3)])) == 3


def test_a_motif_of_too_few_neurons_does_not_count():
    centres = [(0, 0, 0), (6, 0, 0), (0, 6, 0)]
    sizes = [20] * 8 + [2, 2, 2, 2]  # the third motif: 8 of 168 neurons (4.8 %)
    feats, comm, motif, signature = _communities(centres, 4, sizes)
    assert community_motif_count(feats, comm, signature, 0.0, 8, 0.0, 0.02)[0] == 3
    k, labels = community_motif_count(feats, comm, signature, 0.0, 8, 0.08, 0.02)
    assert k == 2
    assert len(np.unique(labels)) == 2


def test_parsimony_keeps_the_smaller_count_when_the_silhouettes_are_close():
    # two motifs, one of them two sub-clusters a little apart
    centres = [(0, 0, 0), (8, 0, 0), (8, 4, 0)]
    feats, comm, motif, signature = _communities(centres, 4, [10] * 12, spread=0.2)
    desc, size = community_descriptors(feats, comm, signature, 0.0)
    scores = {}
    for k in (2, 3):
        km = community_motifs(feats, comm, signature, 0.0, k)
        scores[k] = size_weighted_silhouette(desc, km, size)
    gap = scores[3] - scores[2]
    assert gap > 0  # the split is the best silhouette ...
    tight = community_motif_count(feats, comm, signature, 0.0, 8, 0.0, 0.0)[0]
    loose = community_motif_count(feats, comm, signature, 0.0, 8, 0.0, gap + 1e-6)[0]
    assert (tight, loose) == (3, 2)  # ... and a parsimony above its gain keeps 2


def test_no_count_qualifies_gives_one_motif():
    feats, comm, _, signature = _communities([(0, 0, 0), (6, 0, 0)], 2, [10, 10, 10, 10])
    k, labels = community_motif_count(feats, comm, signature, 0.0, 8, 0.6, 0.02)
    assert k == 1 and not labels.any()


def test_the_fit_option_counts_below_n_filters_and_the_default_keeps_n_filters():
    from sklearn.metrics import adjusted_rand_score

    from napari_mesoscale import fit_mesoscale
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(120, 500, "dev", n_families=2, seed=1000)
    common = dict(connectome=brain.connectome(), stimulus=brain.stimulus, n_filters=6,
                  epochs=1, seed=0, device="cpu")
    counted = fit_mesoscale(brain.activity, brain.positions, init_motif_count="silhouette",
                            **common)
    default = fit_mesoscale(brain.activity, brain.positions, **common)
    assert len(np.unique(counted.init_groups)) == 2  # its two families, found
    assert adjusted_rand_score(brain.motif, counted.init_groups) == pytest.approx(1.0)
    assert len(np.unique(default.init_groups)) == 6


def test_without_a_connectome_the_count_reads_the_dynamics_alone():
    from napari_mesoscale import fit_mesoscale
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(120, 500, "dev", n_families=2, seed=1000)
    fit = fit_mesoscale(brain.activity, brain.positions, stimulus=brain.stimulus, n_filters=6,
                        epochs=1, seed=0, device="cpu", init_motif_count="silhouette")
    from sklearn.metrics import adjusted_rand_score

    assert len(np.unique(fit.init_groups)) == 2
    assert adjusted_rand_score(brain.motif, fit.init_groups) == pytest.approx(1.0)


@pytest.mark.parametrize("options", [{"init": "random"}, {"group_init": False}])
def test_the_count_without_the_dynamics_communities_is_refused(options):
    from napari_mesoscale.model.config import ModelConfig

    cfg = ModelConfig(init_motif_count="silhouette", **options)
    with pytest.raises(ValueError, match="init_motif_count='silhouette' reads the number"):
        cfg.check(has_connectome=False)
