"""Fixtures shared by the model's tests."""

from __future__ import annotations

import pytest
import torch

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
