"""``ModelConfig.activity_assignment="motifs_moved"``: the kept-motif fit (``"motifs"``), then
every neuron moves to another filter's best pair where that pair's validation one-step error
times ``1 + move_margin`` is below its own pair's; the moves are undone if the fit's validation
error rises.

Ground truth: the kept-motif fit of the same seed, the per-neuron validation errors of the
fit's own scoring, and the pair errors recomputed by setting a neuron's choice by hand.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
from napari_mesoscale.model import moved_assignment as ma
from napari_mesoscale.model import restored_assignment as ra


@pytest.fixture(scope="module")
def kept_and_moved(fits_by_mode):
    return fits_by_mode("motifs", "motifs_moved")


@pytest.fixture()
def net_and_data(kept_and_moved, copy_with_data):
    """A copy of the kept-motif fit's network and its prepared data."""
    return copy_with_data(kept_and_moved["motifs"])


def _filters(net) -> np.ndarray:
    return net.choice()[2].cpu().numpy()


def test_pair_errors_are_the_fits_own(net_and_data) -> None:
    """A neuron's own pair error is its validation error; another filter's best pair error is
    what the neuron scores when set there by hand (neurons that move alone)."""
    net, data = net_and_data
    own, best, slot, filt = ma.best_other_pairs(net, data)
    per_neuron, _ = ra.neuron_validation_errors(net, data)
    np.testing.assert_allclose(own, per_neuron, rtol=1e-5)
    assert np.all(filt != _filters(net))
    for neuron in (0, 17, 50):
        by_hand = copy.deepcopy(net)
        ra._give_back(by_hand, np.array([neuron]), filt[[neuron]], slot[[neuron]])
        assert _filters(by_hand)[neuron] == filt[neuron]
        assert by_hand.choice()[0][neuron].item() == slot[neuron]
        moved_error, _ = ra.neuron_validation_errors(by_hand, data)
        assert moved_error[neuron] == pytest.approx(best[neuron], rel=0.05)


def test_exactly_the_neurons_that_pay_move(net_and_data) -> None:
    net, data = net_and_data
    own, best, slot, filt = ma.best_other_pairs(net, data)
    before = _filters(net)
    report = ma.move_where_it_pays(net, data, margin=0.25)
    movers = np.flatnonzero(1.25 * best < own)
    assert movers.size > 0 and not report["undone"]  # this brain has moves that pay
    assert report["moved"] == movers.size
    after = _filters(net)
    assert np.array_equal(np.flatnonzero(after != before), movers)
    assert np.array_equal(after[movers], filt[movers])
    assert report["val_after"] <= report["val_before"]


def test_margin_decides_and_a_rising_fit_error_undoes_every_move(net_and_data, monkeypatch):
    net, data = net_and_data
    logits = net.logits.detach().clone()
    assert ma.move_where_it_pays(net, data, margin=np.inf)["moved"] == 0
    assert torch.equal(net.logits.detach(), logits)
    real = ma.neuron_validation_errors
    calls = []

    def rising(*args):
        per_neuron, overall = real(*args)
        calls.append(overall)
        return per_neuron, calls[0] * (1.0 + 0.001 * (len(calls) - 1))  # the second rises

    monkeypatch.setattr(ma, "neuron_validation_errors", rising)
    report = ma.move_where_it_pays(net, data, margin=0.0)
    assert report["undone"] and report["moved"] == 0
    assert torch.equal(net.logits.detach(), logits)


def test_moved_fit_is_the_kept_fit_with_the_moves(kept_and_moved, net_and_data) -> None:
    kept, moved = kept_and_moved["motifs"], kept_and_moved["motifs_moved"]
    net, data = net_and_data
    choice = moved.assignment_choice
    assert moved.config.activity_assignment == "motifs_moved"
    assert choice["mode"] == "motifs_moved" and choice["margin"] == ma.MOVE_MARGIN
    assert choice["val_before"] == pytest.approx(kept.scores["val_mse"], rel=1e-6)
    assert moved.scores["val_mse"] == pytest.approx(choice["val_after"], rel=1e-6)
    for name, p in kept.net.named_parameters():  # the same training as "motifs"
        if name != "logits":
            assert torch.equal(p, dict(moved.net.named_parameters())[name]), name
    expected = ma.move_where_it_pays(net, data)
    assert expected["moved"] == choice["moved"] > 0
    assert np.array_equal(_filters(moved.net), _filters(net))
    assert np.sum(moved.motif_labels != kept.motif_labels) <= choice["moved"]


def test_margin_is_a_config_field(brain_and_options) -> None:
    from napari_mesoscale.model.config import ModelConfig

    assert ModelConfig().move_margin == ma.MOVE_MARGIN
    brain, common = brain_and_options
    fit = fit_mesoscale(
        brain.activity, brain.positions, activity_assignment="motifs_moved", move_margin=0.0,
        **{**common, "epochs": 3},
    )
    assert fit.assignment_choice["margin"] == 0.0


def test_move_info_is_saved(kept_and_moved, tmp_path) -> None:
    fit = kept_and_moved["motifs_moved"]
    path = fit.save(tmp_path / "fit.pt")
    assert MesoscaleFit.load(path).assignment_choice == fit.assignment_choice
    side = json.loads(path.with_suffix(".pt.json").read_text())
    assert side["assignment_choice"] == fit.assignment_choice
