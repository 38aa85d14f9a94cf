"""``ModelConfig.activity_assignment="validated"``: the trained and the kept-motif assignment
are trained from one initial network, and the fit keeps the trained one only when its
validation one-step error is more than ``TRAINED_MARGIN`` below the kept one's.

Ground truth: the same fits run on their own (``"trained"``, ``"motifs"``), same seed: the
validated fit must be one of them exactly, chosen by their validation errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
from napari_mesoscale.model import validated_assignment as va
from napari_mesoscale.model.training import TrainingState


@pytest.fixture(scope="module")
def arms_and_validated(brain_and_options):
    brain, common = brain_and_options
    return {
        mode: fit_mesoscale(brain.activity, brain.positions, activity_assignment=mode, **common)
        for mode in ("trained", "motifs", "validated")
    }


def _same_fit(a: MesoscaleFit, b: MesoscaleFit) -> bool:
    return (
        torch.allclose(a.net.logits.detach(), b.net.logits.detach())
        and np.array_equal(a.motif_labels, b.motif_labels)
        and np.isclose(a.scores["test_mse"], b.scores["test_mse"], rtol=1e-6)
    )


def test_validated_fit_is_the_arm_its_validation_errors_choose(arms_and_validated) -> None:
    fits = arms_and_validated
    fit = fits["validated"]
    choice = fit.assignment_choice
    assert fit.config.activity_assignment == "validated"
    # each arm's validation error is that arm's own fit's
    assert choice["val_trained"] == pytest.approx(fits["trained"].scores["val_mse"], rel=1e-5)
    assert choice["val_motifs"] == pytest.approx(fits["motifs"].scores["val_mse"], rel=1e-5)
    trained_wins = choice["val_trained"] < (1 - va.TRAINED_MARGIN) * choice["val_motifs"]
    assert choice["chosen"] == ("trained" if trained_wins else "motifs")
    assert _same_fit(fit, fits[choice["chosen"]])
    other = "motifs" if choice["chosen"] == "trained" else "trained"
    assert not torch.allclose(fit.net.logits.detach(), fits[other].net.logits.detach())
    # the kept arm keeps every neuron's initial filter
    if choice["chosen"] == "motifs":
        assert np.array_equal(fit.motif_labels, fit.init_groups)


def test_a_clear_validation_gain_keeps_the_trained_fit(
    brain_and_options, arms_and_validated, monkeypatch
) -> None:
    brain, common = brain_and_options
    real = va.choose_assignment
    # any trained fit counts as a clear gain: the choice must then return the trained arm
    monkeypatch.setattr(va, "choose_assignment", lambda t, m: real(t, m, margin=-np.inf))
    fit = fit_mesoscale(
        brain.activity, brain.positions, activity_assignment="validated", **common
    )
    assert fit.assignment_choice["chosen"] == "trained"
    assert _same_fit(fit, arms_and_validated["trained"])


def test_choice_follows_the_margin() -> None:
    def state(val: float) -> TrainingState:
        return TrainingState(opt=None, best_val=val)  # type: ignore[arg-type]

    assert va.choose_assignment(state(0.94), state(1.0))["chosen"] == "trained"
    assert va.choose_assignment(state(0.95), state(1.0))["chosen"] == "motifs"
    assert va.choose_assignment(state(0.99), state(1.0))["chosen"] == "motifs"
    assert va.choose_assignment(state(1.2), state(1.0))["chosen"] == "motifs"
    assert va.choose_assignment(state(0.94), state(1.0))["ratio"] == pytest.approx(0.94)


def test_each_arm_checkpoints_apart_and_resumes(brain_and_options, tmp_path) -> None:
    brain, common = brain_and_options
    options = {**common, "epochs": 3}
    first = fit_mesoscale(
        brain.activity, brain.positions, activity_assignment="validated",
        checkpoint_dir=tmp_path, **options,
    )
    assert (tmp_path / "trained" / "checkpoint.pt").exists()
    assert (tmp_path / "motifs" / "checkpoint.pt").exists()
    again = fit_mesoscale(
        brain.activity, brain.positions, activity_assignment="validated",
        checkpoint_dir=tmp_path, resume=True, **options,
    )
    assert again.assignment_choice == first.assignment_choice
    assert _same_fit(again, first)


def test_cancel_in_the_first_arm_returns_it_marked(brain_and_options) -> None:
    brain, common = brain_and_options
    fit = fit_mesoscale(
        brain.activity, brain.positions, activity_assignment="validated",
        callback=lambda info: info.get("stage") != "train", **common,
    )
    assert fit.cancelled
    assert fit.assignment_choice == {"chosen": "trained", "cancelled": True}


def test_choice_survives_save_and_load(arms_and_validated, tmp_path) -> None:
    fit = arms_and_validated["validated"]
    path = fit.save(tmp_path / "validated.pt")
    loaded = MesoscaleFit.load(path)
    assert loaded.assignment_choice == fit.assignment_choice
    # the side file a user reads without torch says it too
    side = json.loads(path.with_suffix(".pt.json").read_text())
    assert side["assignment_choice"] == fit.assignment_choice
