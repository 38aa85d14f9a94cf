"""motif_choice="split_half": the fit starts from the discovery only when its halves agree
better than the initialisation's, and is then exactly the em fit (else the default fit)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale import fit_mesoscale
from napari_mesoscale.model import MesoscaleFit
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

FAST = {"hidden": 8, "depth": 1, "batch_frames": 64, "rollout": 2, "rollout_frames": 4,
        "epochs": 2}


def _brain(seed):
    # dev families only: nothing here is tuned on the test-only families
    return make_zoo_brain(120, 600, "dev", n_families=3, seed=seed)


def _fit(brain, **options):
    return fit_mesoscale(brain.activity, brain.positions, connectome=brain.connectome(),
                         stimulus=brain.stimulus, n_filters=len(brain.motif_names), seed=0,
                         device="cpu", **FAST, **options)


def _same(a, b):
    np.testing.assert_array_equal(a.motif_labels, b.motif_labels)
    np.testing.assert_array_equal(a.domain_labels, b.domain_labels)
    assert a.scores == b.scores
    for key, value in a._p["state"].items():
        assert np.array_equal(value.numpy(), b._p["state"][key].numpy()), key


def test_where_the_initialisation_agrees_better_the_fit_is_the_default_fit():
    brain = _brain(2)  # initialisation's halves agree 1.00, the discovery's 0.54
    chosen = _fit(brain, motif_choice="split_half")
    assert chosen.motif_choice["chosen"] == "initial"
    assert chosen.motif_choice["agreement_initial"] > chosen.motif_choice["agreement_discovery"]
    assert (chosen.config.assignment, chosen.config.init) == ("gradient", "dynamics")
    assert chosen.config.motif_choice == "initialisation"  # resolved, as input_lags="auto"
    _same(chosen, _fit(brain))


def test_where_the_discovery_agrees_better_the_fit_is_the_em_fit(tmp_path):
    brain = _brain(4)  # the discovery's halves agree 1.00, the initialisation's 0.95
    chosen = _fit(brain, motif_choice="split_half")
    assert chosen.motif_choice["chosen"] == "discovery"
    assert (chosen.config.assignment, chosen.config.init) == ("em", "random")
    _same(chosen, _fit(brain, assignment="em", init="random"))
    loaded = MesoscaleFit.load(chosen.save(tmp_path / "fit.pt"))
    assert loaded.motif_choice == chosen.motif_choice


def test_a_tie_keeps_the_initialisation():
    chosen = _fit(_brain(0), motif_choice="split_half")  # both halves agree perfectly
    assert chosen.motif_choice["agreement_initial"] == chosen.motif_choice["agreement_discovery"]
    assert chosen.motif_choice["chosen"] == "initial"


def test_split_half_with_another_start_is_refused_with_what_to_change():
    brain = _brain(0)
    with pytest.raises(ValueError, match="motif_choice='split_half'.*assignment='gradient'"):
        _fit(brain, motif_choice="split_half", assignment="em")
