"""``ModelConfig.activity_assignment="initial"``: the assignment logits stay at their
initialisation for the whole fit while the temperature anneals as with a trained assignment,
so the fit ends on the initialisation's labels, hard, and the filters learn;
``"motifs"``: every neuron keeps its initial filter (motif), its field (domain) learns.

Ground truth: a small zoo brain of dev families; the reference is the same fit with the
assignment trained (``"trained"``), same seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mesoscale.model import ModelConfig, fit_mesoscale
from napari_mesoscale.model.initial_model import MOTIF_LOCK
from napari_mesoscale.model.training import keeps_initial_assignment, keeps_initial_motifs
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

FAST = {"hidden": 8, "depth": 1, "batch_frames": 64, "rollout": 2, "rollout_frames": 4}
EPOCHS = 8


@pytest.fixture(scope="module")
def kept_and_trained():
    torch.set_num_threads(1)
    brain = make_zoo_brain(96, 500, "dev", seed=7, n_families=2)
    common = dict(
        connectome=brain.connectome(), stimulus=brain.stimulus, n_filters=2, epochs=EPOCHS,
        freeze_assignment_epochs=2, input_lags=1, seed=0, **FAST,
    )
    fits = {
        mode: fit_mesoscale(brain.activity, brain.positions, activity_assignment=mode, **common)
        for mode in ("initial", "trained", "motifs")
    }
    # one epoch, inside the freeze: the initialisation's logits, untrained
    fits["start"] = fit_mesoscale(brain.activity, brain.positions, **{**common, "epochs": 1})
    return brain, fits


def test_kept_assignment_ends_on_the_initial_labels(kept_and_trained) -> None:
    _, fits = kept_and_trained
    kept = fits["initial"]
    assert kept.config.activity_assignment == "initial"
    assert np.array_equal(kept.motif_labels, kept.init_groups)
    # the logits never moved (same seed, same initialisation as the one-epoch fit)
    assert torch.equal(kept.net.logits.detach(), fits["start"].net.logits.detach())
    assert not torch.equal(fits["trained"].net.logits.detach(), kept.net.logits.detach())


def test_kept_assignment_anneals_the_temperature_and_trains_the_filters(
    kept_and_trained,
) -> None:
    _, fits = kept_and_trained
    kept, trained = fits["initial"], fits["trained"]
    # same schedule as the trained assignment: tau falls after the freeze, hard at the end
    assert np.allclose(kept.history["tau"], trained.history["tau"])
    assert kept.history["tau"].iloc[-1] < 0.1 * kept.history["tau"].iloc[0]
    assert kept.history["mode"].iloc[-1] == "straight_through"
    # the filters learn: the training loss falls over the fit
    loss = kept.history["train_total"] if "train_total" in kept.history else None
    assert loss is not None and loss.iloc[-1] < loss.iloc[0]


def test_only_activity_fits_keep_it_this_way() -> None:
    assert keeps_initial_assignment(ModelConfig(activity_assignment="initial"))
    assert not keeps_initial_assignment(ModelConfig(activity_assignment="trained"))
    calcium = ModelConfig(activity_assignment="initial", observation="calcium")
    assert not keeps_initial_assignment(calcium)  # calcium_config freezes it instead
    random_start = ModelConfig(activity_assignment="initial", init="random")
    assert not keeps_initial_assignment(random_start)  # nothing to keep: the logits learn
    with pytest.raises(ValueError, match="activity_assignment"):
        ModelConfig(activity_assignment="fixed").check(has_connectome=False)


def test_kept_motifs_keep_every_filter_and_let_the_fields_learn(kept_and_trained) -> None:
    _, fits = kept_and_trained
    motifs, start = fits["motifs"], fits["start"]
    assert np.array_equal(motifs.motif_labels, motifs.init_groups)
    logits, logits0 = motifs.net.logits.detach(), start.net.logits.detach()
    own = torch.zeros_like(logits, dtype=torch.bool)
    own[np.arange(len(motifs.init_groups)), :, motifs.init_groups] = True
    # the other filters' logits sit MOTIF_LOCK below their start and never moved
    assert torch.allclose(logits[~own], logits0[~own] - MOTIF_LOCK)
    # the own filter's logits (which field) learned
    assert not torch.allclose(logits[own], logits0[own])
    assert np.allclose(motifs.history["tau"], fits["trained"].history["tau"])
    # the gradient mask ends with training: the returned net's logits are plain parameters
    net = motifs.net
    net.logits.grad = None
    net.logits.sum().backward()
    assert torch.equal(net.logits.grad, torch.ones_like(net.logits))
    net.logits.grad = None


def test_motif_keeping_applies_to_the_dynamics_start_on_activity_only() -> None:
    assert keeps_initial_motifs(ModelConfig(activity_assignment="motifs"))
    assert not keeps_initial_motifs(ModelConfig(activity_assignment="initial"))
    assert not keeps_initial_motifs(ModelConfig(activity_assignment="motifs", init="random"))
    assert not keeps_initial_motifs(ModelConfig(activity_assignment="motifs", assignment="em"))
