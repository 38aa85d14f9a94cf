"""Fixtures shared by the model's tests."""

from __future__ import annotations

import copy

import pytest
import torch

from napari_mesoscale.model import fit_mesoscale
from napari_mesoscale.model.prepare import prepare_data
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

#: a small network and short windows: fits of a few seconds
FAST = {"hidden": 8, "depth": 1, "batch_frames": 64, "rollout": 2, "rollout_frames": 4}


@pytest.fixture(scope="module")
def brain_and_options():
    """A two-family zoo brain (96 neurons, 500 frames) and the options of a six-epoch fit of
    it whose assignment is freed after two epochs (the assignment modes' tests)."""
    torch.set_num_threads(1)
    brain = make_zoo_brain(96, 500, "dev", seed=7, n_families=2)
    common = dict(
        connectome=brain.connectome(), stimulus=brain.stimulus, n_filters=2, epochs=6,
        freeze_assignment_epochs=2, input_lags=1, seed=0, **FAST,
    )
    return brain, common


@pytest.fixture(scope="module")
def fits_by_mode(brain_and_options):
    """``fits_by_mode(*modes)``: the fit of ``brain_and_options`` with each
    ``activity_assignment`` mode, by mode (each fitted once per module)."""
    brain, common = brain_and_options
    fitted: dict = {}

    def fits(*modes: str) -> dict:
        for mode in modes:
            if mode not in fitted:
                fitted[mode] = fit_mesoscale(
                    brain.activity, brain.positions, activity_assignment=mode, **common
                )
        return {mode: fitted[mode] for mode in modes}

    return fits


@pytest.fixture(scope="module")
def copy_with_data(brain_and_options):
    """``copy_with_data(fit)``: a copy of the fit's network and the brain's prepared data."""
    brain, _ = brain_and_options

    def copy_of(fit):
        data = prepare_data(brain.activity, brain.positions, brain.stimulus, fit.config)
        return copy.deepcopy(fit.net), data

    return copy_of
