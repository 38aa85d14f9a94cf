"""The motif zoo (synth/motif_zoo.py) and the naive motif peers (evaluate/motif_peers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.connectome import Connectome
from napari_mesoscale.evaluate import recovery_scores
from napari_mesoscale.evaluate.motif_peers import (
    ar_kmeans_labels,
    correlation_labels,
    spatial_domains,
)
from napari_mesoscale.synth.motif_zoo import (
    DEV_FAMILIES,
    FAMILIES,
    TEST_FAMILIES,
    ZOO_STIMULUS_NAMES,
    make_zoo_brain,
)


def test_same_seed_same_brain_other_seed_other_brain():
    a = make_zoo_brain(120, 300, "dev", seed=4)
    b = make_zoo_brain(120, 300, "dev", seed=4)
    c = make_zoo_brain(120, 300, "dev", seed=5)
    np.testing.assert_array_equal(a.activity, b.activity)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert a.synapses.equals(b.synapses)
    assert not np.array_equal(a.activity, c.activity)


def test_split_is_fixed_disjoint_and_covers_every_family():
    assert not set(DEV_FAMILIES) & set(TEST_FAMILIES)
    assert set(DEV_FAMILIES) | set(TEST_FAMILIES) == set(FAMILIES)
    assert len(FAMILIES) >= 12
    brain = make_zoo_brain(200, 50, "test", n_families=3, seed=1)
    assert len(brain.motif_names) == 3 and set(brain.motif_names) <= set(TEST_FAMILIES)
    assert set(brain.neurons["split"]) == {"test"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_is_finite_varied_and_has_its_truth(family):
    n, t = 40, 400
    brain = make_zoo_brain(n, t, [family], seed=0, instance_size=(8, 12))
    assert brain.activity.shape == (t, n) and brain.expected.shape == (t, n)
    assert brain.stimulus.shape == (t, len(ZOO_STIMULUS_NAMES))
    assert brain.positions.shape == (n, 3)
    assert brain.motif.shape == brain.instance.shape == (n,)
    assert np.isfinite(brain.activity).all()
    assert (brain.activity.std(0) > 1e-3).all(), "a neuron is constant"
    sizes = np.bincount(brain.instance)
    assert sizes.min() >= 8 and sizes.max() <= 12 and sizes.sum() == n
    assert brain.motif_names == (family,) and (brain.motif == 0).all()
    connectome = Connectome.from_tables(brain.neurons, brain.synapses, value="weight")
    assert connectome.adjacency.shape == (n, n)
    np.testing.assert_allclose(connectome.adjacency.toarray(), brain.adjacency.toarray())


def test_somata_are_apart_and_instances_compact():
    brain = make_zoo_brain(240, 20, "dev", seed=2)
    d = np.linalg.norm(brain.positions[:, None] - brain.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 6.0 - 1e-9
    for m in np.unique(brain.instance):
        members = brain.positions[brain.instance == m]
        assert np.linalg.norm(members - brain.instance_centres[m], axis=1).max() < 40.0


def test_ar_peer_recovers_two_distinct_dev_families():
    # measured: motif ARI 1.00, 0.97, 1.00, 1.00 for seeds 0-3; domain ARI 0.94 for seed 0
    for seed in (0, 1):
        brain = make_zoo_brain(160, 1000, ["rotation_slow", "chain_delay2"], seed=seed)
        labels = ar_kmeans_labels(brain.activity, brain.stimulus, n_clusters=2)
        domains = spatial_domains(labels, brain.positions)
        scores = recovery_scores(labels, brain.motif, brain.instance, domain_labels=domains)
        assert scores["motif_ari"] > 0.9
        if seed == 0:
            assert scores["domain_ari"] > 0.85


def test_spatial_domains_of_the_truth_are_the_instances():
    brain = make_zoo_brain(240, 20, "dev", seed=1)
    domains = spatial_domains(brain.motif, brain.positions)
    scores = recovery_scores(brain.motif, brain.motif, brain.instance, domain_labels=domains)
    assert scores["domain_ari"] > 0.99


def test_correlation_peer_returns_labels():
    brain = make_zoo_brain(120, 600, ["rotation_slow", "rectified_follower"], seed=0)
    for method in ("spectral", "hierarchical"):
        labels = correlation_labels(brain.activity, method=method)
        assert labels.shape == (120,) and 2 <= np.unique(labels).size <= 12


def test_heterogeneity_jitters_the_update_and_keeps_every_other_draw():
    """heterogeneity > 0: each neuron's update is x + s (r + g (F - r) - x) with its own (or
    its instance's) speed s and gain g in [1 - h / 2, 1]; 0 gives the same brain as before."""
    plain = make_zoo_brain(120, 300, "dev", n_families=3, seed=4)
    same = make_zoo_brain(120, 300, "dev", n_families=3, seed=4, heterogeneity=0.0)
    np.testing.assert_array_equal(plain.activity, same.activity)
    for scope in ("neuron", "instance"):
        het = make_zoo_brain(
            120, 300, "dev", n_families=3, seed=4, heterogeneity=1.0, heterogeneity_scope=scope
        )
        np.testing.assert_array_equal(het.motif, plain.motif)
        np.testing.assert_array_equal(het.positions, plain.positions)
        assert np.isfinite(het.activity).all()
        assert not np.allclose(het.activity, plain.activity)
    with pytest.raises(ValueError, match="heterogeneity must be in"):
        make_zoo_brain(120, 300, "dev", seed=4, heterogeneity=1.5)
    with pytest.raises(ValueError, match="heterogeneity_scope"):
        make_zoo_brain(120, 300, "dev", seed=4, heterogeneity=0.5, heterogeneity_scope="cell")


def test_instance_heterogeneity_is_shared_by_an_instance():
    """With heterogeneity_scope='instance' every member of an instance has the same jitter:
    an isolated AR(1) neuron's one-step coefficient is its instance's mix 1 - s + s g a."""
    from napari_mesoscale.synth.motif_zoo import _jitter

    instance = np.array([0, 0, 0, 1, 1, 2])
    speed, gain = _jitter(3, instance, 1.0, "instance")
    for s_or_g in (speed, gain):
        assert np.all((s_or_g >= 0.5) & (s_or_g <= 1.0))
        for m in range(3):
            assert np.ptp(s_or_g[instance == m]) == 0.0
    speed, _ = _jitter(3, instance, 1.0, "neuron")
    assert np.ptp(speed[instance == 0]) > 0.0
