"""discover_motif_count="wiring_cut": the number of motifs from dynamics profiles and wiring."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.evaluate import recovery_scores
from napari_mesoscale.model import fit_mesoscale, reassign
from napari_mesoscale.model.reassign import (
    _profile_groups,
    profile_motif_count,
    wiring_motif_groups,
)
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

FAST = {"hidden": 8, "depth": 1, "batch_frames": 64, "rollout": 2, "rollout_frames": 4}
EXCITATORY = np.array([0.0, 0.4, 0.0, 1.0, 0.4])  # sign, reciprocity, E-I loops, cycles, density
INHIBITORY = np.array([1.0, 0.8, 0.0, 1.0, 0.8])
UNWIRED = np.zeros(5)


def _case(seed: int = 0):
    """Eight units: motif A (units 0-3) in two sub-instances whose filters predict each other
    0.4 worse in log error (a speed change: the plain 0.1 cut splits them), motifs B (4-5)
    and C (6-7) with the same dynamics (their cross-prediction rows and columns are equal,
    the profile cut joins them) but B's sub-circuits are inhibitory and C has no synapses.
    Returns the (U, U) cost, the true motifs and the (U, 5) signatures (small noise)."""
    rng = np.random.default_rng(seed)
    block = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # what the dynamics see
    between = np.array([[0.0, 1.2], [0.9, 0.0]])
    cost = between[block][:, block] + 0.01 * rng.standard_normal((8, 8))
    sub = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    cost += 0.4 * ((sub[:, None] != sub[None]) & (block[:, None] == 0) & (block[None] == 0))
    np.fill_diagonal(cost, 0.0)
    motif = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    wiring = np.stack([EXCITATORY] * 4 + [INHIBITORY] * 2 + [UNWIRED] * 2)
    wiring[:6] += 0.01 * rng.standard_normal((6, 5))
    return cost - 2.0, motif, np.clip(wiring, 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wiring_cut_merges_a_split_motif_and_splits_two_motifs_wired_differently(seed):
    cost, motif, wiring = _case(seed)
    size = np.full(8, 12)
    # the profile cut alone gets both wrong: A split in two, B and C joined
    k = profile_motif_count(cost, 8, 0.1)
    assert k == 3 and adjusted_rand_score(motif, _profile_groups(cost, k)) < 0.5
    labels = wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0)
    assert adjusted_rand_score(motif, labels) == 1.0, labels
    # the merge distance bounds the merge: A's halves stay apart below their distance
    assert np.unique(wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.01, 5.0)).size == 4


def test_wiring_cut_keeps_halves_wired_differently_apart():
    """A's two halves with different wirings (one inhibitory) stay two motifs."""
    cost, motif, wiring = _case()
    wiring[2:4] = INHIBITORY + 0.1
    labels = wiring_motif_groups(cost, wiring, np.full(8, 12), 8, 0.1, 0.5, 5.0)
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]
    assert np.unique(labels).size == 4


def test_wiring_cut_small_units_agree_with_any_wiring_and_the_cap_holds():
    """A unit with fewer than min_size members has no usable signature: unwired, it still
    joins the wired motif its profile belongs to; more groups than max_motifs are cut."""
    cost, motif, wiring = _case()
    size = np.full(8, 12)
    wiring[1], size[1] = 0.0, 2
    labels = wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0)
    assert adjusted_rand_score(motif, labels) == 1.0, labels
    size[1] = 12  # now a known unwired unit: vetoed away from A
    assert np.unique(wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0)).size == 4
    assert np.unique(wiring_motif_groups(cost, wiring, size, 2, 0.1, 0.5, 5.0)).size == 2
    assert wiring_motif_groups(cost[:1, :1], wiring[:1], size[:1], 8).tolist() == [0]


@pytest.fixture(scope="module")
def dev_brain():
    # dev families only: nothing here is tuned on the test-only families
    return make_zoo_brain(120, 600, "dev", n_families=3, seed=0)


def _fit(brain, connectome: bool = True, **options):
    return fit_mesoscale(
        brain.activity, brain.positions,
        connectome=brain.connectome() if connectome else None,
        stimulus=brain.stimulus, seed=0, device="cpu", epochs=1, init="random",
        assignment="em", **FAST, **options,
    )


def test_em_with_wiring_cut_finds_the_motifs(dev_brain):
    """With n_filters twice the true count the wiring cut finds the dev brain's motifs."""
    k = len(dev_brain.motif_names)
    fit = _fit(dev_brain, discover_motif_count="wiring_cut", n_filters=2 * k)
    scores = recovery_scores(fit, dev_brain.motif, dev_brain.instance)
    assert scores["n_motifs"] == k, scores
    assert scores["motif_ari"] > 0.8, scores


def test_fit_hands_the_communities_wiring_to_the_discovery(dev_brain):
    """The fit computes every community's sub-circuit signature from the connectome and the
    discovery reads it (a fit that dropped it would silently fall back to the profile cut)."""
    seen = []

    def spy(cost, wiring, size, *args, **kwargs):
        seen.append((cost.shape, np.array(wiring), np.array(size)))
        return wiring_motif_groups(cost, wiring, size, *args, **kwargs)

    k = len(dev_brain.motif_names)
    with mock.patch.object(reassign, "wiring_motif_groups", spy):
        _fit(dev_brain, discover_motif_count="wiring_cut", n_filters=2 * k)
    assert len(seen) == 1
    shape, wiring, size = seen[0]
    assert wiring.shape == (shape[0], 5) and size.shape == (shape[0],)
    assert (wiring.sum(1) > 0).any() and size.sum() == dev_brain.n_neurons


def test_wiring_cut_without_a_connectome_is_the_profile_cut(dev_brain):
    k = len(dev_brain.motif_names)
    fits = [
        _fit(dev_brain, connectome=False, discover_motif_count=c, n_filters=2 * k)
        for c in ("wiring_cut", "profile_cut")
    ]
    assert np.array_equal(fits[0].motif_labels, fits[1].motif_labels)


def test_veto_tolerance_only_keeps_wired_and_unwired_apart_when_large():
    """B and C share their dynamics; with C wired (excitatory) the signature veto keeps them
    apart at veto_tolerance 5, a veto tolerance of 1000 lets the profile tree join them,
    and an unwired C stays apart at any veto tolerance."""
    cost, motif, wiring = _case()
    size = np.full(8, 12)
    wiring[6:] = EXCITATORY
    apart = wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0, veto_tolerance=5.0)
    assert adjusted_rand_score(motif, apart) == 1.0, apart
    joined = wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0, veto_tolerance=1000.0)
    assert joined[4] == joined[6] and np.unique(joined).size == 2, joined
    wiring[6:] = UNWIRED
    kept = wiring_motif_groups(cost, wiring, size, 8, 0.1, 0.5, 5.0, veto_tolerance=1000.0)
    assert adjusted_rand_score(motif, kept) == 1.0, kept
