"""``ModelConfig.activity_assignment="reverted"``: the trained fit; if training moved neurons
off their initial filter, a copy with every such neuron given its filter back is trained
``revert_epochs`` more with every filter kept, and kept when its validation one-step error is
at most ``ModelConfig.revert_tolerance`` (``FIT_TOLERANCE``) above the trained fit's.

Ground truth: the trained fit of the same seed, and the initial groups (made to differ from
the trained choice on ten neurons, so that the reversion has something to do).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
from napari_mesoscale.model import fit as fit_module
from napari_mesoscale.model import reverted_assignment as rv
from napari_mesoscale.model.prepare import prepare_data

REVERT_EPOCHS = 3


@pytest.fixture(scope="module")
def trained_fit(brain_and_options):
    brain, common = brain_and_options
    return fit_mesoscale(brain.activity, brain.positions, activity_assignment="trained", **common)


def _filters(net) -> np.ndarray:
    return net.choice()[2].cpu().numpy()


@pytest.fixture(scope="module")
def moved_groups(trained_fit) -> np.ndarray:
    """Initial groups that differ from the trained choice on every third of the first 30
    neurons, as if training had moved them."""
    groups = _filters(trained_fit.net).copy()
    moved = np.arange(0, 30, 3)
    groups[moved] = (groups[moved] + 1) % trained_fit.net.n_filters
    return groups


def _reverted(brain_and_options, moved_groups, **options):
    """The reverted fit of the brain, its initialisation's groups patched to ``moved_groups``."""
    brain, common = brain_and_options
    real = fit_module.initialise_model
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            fit_module,
            "initialise_model",
            lambda *a, **k: replace(real(*a, **k), init_groups=moved_groups.copy()),
        )
        return fit_mesoscale(
            brain.activity, brain.positions, activity_assignment="reverted",
            revert_epochs=REVERT_EPOCHS, **common, **options,
        )


@pytest.fixture(scope="module")
def reverted_fit(brain_and_options, moved_groups):
    return _reverted(brain_and_options, moved_groups)


def test_nothing_moved_is_the_trained_fit(brain_and_options, trained_fit) -> None:
    brain, common = brain_and_options
    fit = fit_mesoscale(brain.activity, brain.positions, activity_assignment="reverted", **common)
    assert fit.assignment_choice == {"mode": "reverted", "chosen": "trained", "moved": 0}
    assert np.array_equal(fit.motif_labels, trained_fit.motif_labels)
    for name, p in trained_fit.net.named_parameters():
        assert torch.equal(p, dict(fit.net.named_parameters())[name]), name


def test_moves_are_reverted_and_the_filters_retrained(reverted_fit, trained_fit, moved_groups):
    choice = reverted_fit.assignment_choice
    assert choice["moved"] == 10 and choice["chosen"] == "reverted"  # ratio < 1.01 here
    assert choice["ratio"] <= 1.0 + rv.FIT_TOLERANCE
    assert np.array_equal(_filters(reverted_fit.net), moved_groups)  # every neuron's own
    assert reverted_fit.scores["val_mse"] == pytest.approx(choice["val_reverted"], rel=1e-6)
    assert choice["val_trained"] == pytest.approx(trained_fit.scores["val_mse"], rel=1e-6)
    history = reverted_fit.history
    assert len(history) == trained_fit.config.epochs + REVERT_EPOCHS
    assert list(history["epoch"]) == list(range(len(history)))
    assert reverted_fit.config.activity_assignment == "reverted"
    changed = [n for n, p in trained_fit.net.named_parameters()
               if not torch.equal(p, dict(reverted_fit.net.named_parameters())[n])]
    assert "bank" in " ".join(changed)  # the filters trained on after the reversion


def test_reverted_start_and_the_choice(trained_fit, moved_groups, brain_and_options) -> None:
    from napari_mesoscale.model.initial_model import InitialModel

    brain, _ = brain_and_options
    data = prepare_data(brain.activity, brain.positions, brain.stimulus, trained_fit.config)
    trained = InitialModel(trained_fit.net, trained_fit.config, None, None, None,
                           moved_groups, None)
    logits = trained_fit.net.logits.detach().clone()
    start = rv.reverted_start(trained, epochs=4)
    assert torch.equal(trained_fit.net.logits.detach(), logits)  # the trained fit untouched
    assert np.array_equal(_filters(start.net), moved_groups)
    assert np.array_equal(rv.moved_neurons(trained), np.arange(0, 30, 3))
    cfg = start.config
    assert (cfg.epochs, cfg.freeze_assignment_epochs, cfg.activity_assignment) == (4, 0, "motifs")
    assert cfg.tau_start == trained_fit.config.tau_end
    both = rv.choose_reverted(trained, start, data, moved=10, tolerance=np.inf)
    assert both["chosen"] == "reverted"
    assert both["ratio"] == pytest.approx(both["val_reverted"] / both["val_trained"])
    assert rv.choose_reverted(trained, start, data, 10, tolerance=-1.0)["chosen"] == "trained"


def test_revert_info_is_saved(reverted_fit, tmp_path) -> None:
    path = reverted_fit.save(tmp_path / "fit.pt")
    assert MesoscaleFit.load(path).assignment_choice == reverted_fit.assignment_choice
    side = json.loads(path.with_suffix(".pt.json").read_text())
    assert side["assignment_choice"] == reverted_fit.assignment_choice


def test_cancel_in_the_retraining_returns_it_marked(brain_and_options, moved_groups) -> None:
    in_retraining = {"stage": "epoch", "epochs": REVERT_EPOCHS}
    fit = _reverted(
        brain_and_options, moved_groups,
        callback=lambda info: {k: info.get(k) for k in in_retraining} != in_retraining,
    )
    assert fit.cancelled
    assert fit.assignment_choice == {
        "mode": "reverted", "chosen": "reverted", "moved": 10, "cancelled": True
    }
    assert np.array_equal(_filters(fit.net), moved_groups)


def test_resumed_reverted_fit_is_the_same(reverted_fit, brain_and_options, moved_groups,
                                          tmp_path) -> None:
    first = _reverted(brain_and_options, moved_groups, checkpoint_dir=tmp_path)
    assert (tmp_path / "reverted" / "checkpoint.pt").exists()
    again = _reverted(brain_and_options, moved_groups, checkpoint_dir=tmp_path, resume=True)
    assert again.assignment_choice == first.assignment_choice == reverted_fit.assignment_choice
    for name, p in first.net.named_parameters():
        assert torch.equal(p, dict(again.net.named_parameters())[name]), name


def test_retraining_reports_epochs_numbered_on(brain_and_options, moved_groups) -> None:
    """A loss plot keyed by epoch draws the retraining after the first training (it drops an
    epoch it has already drawn), and the status line says which training runs."""
    reports: list[dict] = []
    fit = _reverted(brain_and_options, moved_groups, callback=lambda info: reports.append(info))
    ends = [r for r in reports if r.get("epoch") is not None and r.get("stage") == "epoch"]
    epochs = [r["epoch"] for r in ends]
    assert epochs == sorted(set(epochs))  # one report per epoch, never numbered back
    first = fit.config.epochs
    after = [r for r in ends if r["epoch"] >= first]
    assert [r["epoch"] for r in after] == list(range(first, first + REVERT_EPOCHS))
    assert all("moves reverted: epoch" in r["message"] for r in after)
    assert not any("moves reverted" in r["message"] for r in ends if r["epoch"] < first)
    fractions = [r["fraction"] for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_describe_choice_and_retraining_epochs(reverted_fit, trained_fit) -> None:
    choice = reverted_fit.assignment_choice
    assert rv.describe_choice(choice) == (
        "training moved 10 cells off their initial motif, given back: the fit retrained around "
        f"the initial motifs has {choice['ratio']:.3f} x the validation error with the moves"
    )
    refused = {**choice, "chosen": "trained", "ratio": 1.0535}
    assert rv.describe_choice(refused).endswith(
        "kept: retrained without the moves the validation error is 1.054 x, over the 2 % bar"
    )
    assert rv.describe_choice({**choice, "cancelled": True}).endswith("cancelled before the "
                                                                      "fits were compared")
    assert rv.describe_choice({"mode": "reverted", "chosen": "trained", "moved": 0}) == ""
    assert rv.describe_choice(None) == rv.describe_choice({"chosen": "motifs"}) == ""
    assert rv.retraining_epochs(reverted_fit.history) == REVERT_EPOCHS
    assert rv.retraining_epochs(trained_fit.history) == 0
    assert rv.retraining_epochs(reverted_fit.history.to_dict("records")) == REVERT_EPOCHS


def test_the_bar_is_the_configs_revert_tolerance(brain_and_options, moved_groups) -> None:
    from napari_mesoscale.model import ModelConfig

    wide = _reverted(brain_and_options, moved_groups, revert_tolerance=0.5).assignment_choice
    assert wide["tolerance"] == 0.5
    assert wide["chosen"] == ("reverted" if wide["ratio"] <= 1.5 else "trained")
    assert ModelConfig().revert_tolerance == rv.FIT_TOLERANCE
    with pytest.raises(ValueError, match="revert_tolerance"):
        ModelConfig(revert_tolerance=-0.1).validate()
