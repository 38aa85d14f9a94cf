"""The toy brain's calcium presets: classic as it was, realistic with what real traces carry."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.calcium_presets import HELDOUT, REALISTIC, check_preset, neuropil

SMALL = dict(n_frames=300, shape=None, render=None, em=False, seed=3)


@pytest.fixture(scope="module")
def pair():
    classic = make_toy_brain(40, **SMALL)
    realistic = make_toy_brain(40, **SMALL, calcium_preset="realistic")
    return classic, realistic


def test_classic_is_the_default_and_unchanged(pair) -> None:
    classic, realistic = pair
    explicit = make_toy_brain(40, **SMALL, calcium_preset="classic")
    assert np.array_equal(explicit.calcium, classic.calcium)
    assert classic.calcium_observed is None and "calcium_preset" not in classic.params
    # the dynamics and spikes do not depend on the preset, only the fluorescence
    assert np.array_equal(realistic.activity, classic.activity)
    assert np.array_equal(realistic.spikes, classic.spikes)
    assert realistic.params["calcium_preset"] == "realistic"


def test_realistic_saturates_and_contaminates(pair) -> None:
    classic, realistic = pair
    assert realistic.calcium.max() < REALISTIC["dff_max"]
    # saturation: the realistic response grows less than linearly with the classic one
    hi = classic.calcium > np.quantile(classic.calcium, 0.99)
    lo = (classic.calcium > 0.05) & (classic.calcium < np.quantile(classic.calcium, 0.5))
    ratio_hi = realistic.calcium[hi].mean() / classic.calcium[hi].mean()
    ratio_lo = realistic.calcium[lo].mean() / classic.calcium[lo].mean()
    assert ratio_hi < ratio_lo
    # what the soma shows = (1 + own dF/F + neuropil) times a slow drift, minus 1
    own = realistic.calcium
    expected = own + REALISTIC["neuropil_ratio"] * neuropil(own, realistic.positions, 20.0)
    drift = (1.0 + realistic.calcium_observed) / (1.0 + expected)
    assert drift.min() > 1 - REALISTIC["bleach_fraction"] - REALISTIC["drift_amplitude"] - 1e-3
    assert drift.max() < 1 + REALISTIC["drift_amplitude"] + 1e-3
    assert np.abs(np.diff(drift, axis=0)).max() < 0.01  # slow: under 1 % per frame
    assert drift.std(axis=0).mean() > 0.01  # but there


def test_realistic_has_dim_cells_with_per_cell_decay(pair) -> None:
    classic, realistic = pair
    truth = realistic.calcium_truth
    poor = truth["poor_snr"]
    assert 0 < poor.sum() < len(poor) // 2
    assert np.allclose(realistic.baseline[poor] / classic.baseline[poor], 0.25)
    assert np.allclose(realistic.baseline[~poor], classic.baseline[~poor])
    taus = truth["tau_decay"]
    assert taus.min() >= 0.8 * 0.75 - 1e-9 and taus.max() <= 0.8 * 1.25 + 1e-9
    assert taus.std() > 0.05


def test_realistic_movie_renders_the_observed_trace() -> None:
    brain = make_toy_brain(
        30,
        n_frames=20,
        shape=(20, 64, 64),
        render="eager",
        em=False,
        seed=1,
        calcium_preset="realistic",
    )
    assert brain.movie.shape == (20, 20, 64, 64)
    assert brain._get_renderer().calcium is brain.calcium_observed


def test_heldout_preset_has_its_own_constants(pair) -> None:
    _, realistic = pair
    heldout = make_toy_brain(40, **SMALL, calcium_preset="heldout")
    assert heldout.params["calcium_preset"] == "heldout"
    assert np.array_equal(heldout.spikes, realistic.spikes)
    assert heldout.calcium.max() < HELDOUT["dff_max"] < REALISTIC["dff_max"]
    taus = heldout.calcium_truth["tau_decay"]
    scale, jitter = HELDOUT["tau_decay_scale"], HELDOUT["tau_decay_jitter"]
    assert taus.min() >= 0.8 * scale * (1 - jitter) - 1e-9
    assert taus.max() <= 0.8 * scale * (1 + jitter) + 1e-9
    assert taus.mean() > realistic.calcium_truth["tau_decay"].mean()


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="calcium_preset"):
        make_toy_brain(20, n_frames=10, render=None, em=False, calcium_preset="fancy")
    assert check_preset("realistic") == "realistic"
