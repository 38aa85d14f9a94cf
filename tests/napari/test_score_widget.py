"""The Score predictions widget: paints per-neuron predictivity, reads fitted layers, explains
missing traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trial_data import population as _population
from trial_data import trials as _trials


@pytest.mark.viewer
def test_score_widget_paints_points(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget, color_points_by

    viewer = make_napari_viewer()
    truth, rng = _population(150, 40)
    noise = np.r_[np.full(20, 0.5), np.full(20, 3.0)]
    trials = truth[None] + noise * rng.standard_normal((8, *truth.shape))
    predicted = truth.copy()
    predicted[:, 30:] = rng.standard_normal((150, 10))  # ten neurons badly predicted
    positions = rng.uniform(0, 100, size=(40, 3))
    layer = viewer.add_points(positions, name="cells", metadata={"trials": trials})
    viewer.add_points(positions, name="model", metadata={"predicted": predicted})
    widget = ScorePredictionsWidget(viewer)
    widget._points.value = "cells"
    widget._pred_layer.value = "model"
    widget._n_splits.value = 20
    widget._n_eig.value = 16
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    scores = layer.features["predictivity"].to_numpy()
    assert np.median(scores[:30]) == pytest.approx(1.0, abs=0.1)
    assert np.all(np.abs(scores[30:]) < 0.4)
    assert {f"eig_{k}" for k in range(16)} <= set(layer.features.columns)
    colors = np.asarray(layer.face_color)
    assert not np.allclose(colors[0], colors[-1])  # painted by score
    assert "score_predictions(" in widget.last_call
    # colour by an eigenvector instead
    widget._color_by.value = "eig_1"
    assert layer.metadata["colored_by"]["column"] == "eig_1"
    assert color_points_by(layer, "eig_2")[0] < color_points_by(layer, "eig_2")[1]


@pytest.mark.viewer
def test_score_widget_reports_missing_traces(make_napari_viewer):
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((5, 3)), name="bare")
    widget = ScorePredictionsWidget(viewer)
    widget.start()
    assert not widget.is_running
    assert "metadata" in widget.last_error


@pytest.mark.viewer
def test_score_widget_opens_from_the_plugin_menu(make_napari_viewer):
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Score predictions")
    assert isinstance(widget, ScorePredictionsWidget)


@pytest.mark.viewer
def test_score_widget_reads_a_fitted_layer(make_napari_viewer, qtbot):
    """The fit widget's convention: metadata['activity'] (T, N) and ['predicted'], first row NaN."""
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    truth, rng = _population(240, 12)
    activity = truth + 0.3 * rng.standard_normal(truth.shape)
    predicted = truth.copy()
    predicted[0] = np.nan
    layer = viewer.add_points(
        rng.uniform(0, 50, (12, 3)),
        name="cells",
        metadata={"activity": activity, "predicted": predicted},
    )
    widget = ScorePredictionsWidget(viewer)
    assert widget._pred_layer.value == "cells"  # picked because it holds predictions
    widget._n_eig.value = 0
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    raw = np.array([np.corrcoef(truth[1:, k], activity[1:, k])[0, 1] for k in range(12)])
    np.testing.assert_allclose(layer.features["predictivity"], raw, rtol=1e-9)
    assert layer.features["reliability"].isna().all()  # one recording: no noise correction


@pytest.mark.viewer
def test_score_widget_eigenvectors_only_and_domain_summary(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    truth, rng = _population(200, 30)
    trials = _trials(truth, 1.0, 6, rng)
    layer = viewer.add_points(
        rng.uniform(0, 50, (30, 3)),
        name="cells",
        metadata={"trials": trials},
        features=pd.DataFrame({"domain": np.repeat([3, 7], 15)}),
    )
    widget = ScorePredictionsWidget(viewer)
    assert widget._pred_layer.value in (None, "(none)")
    widget._n_eig.value = 8
    widget.start()  # no predictions: eigenvector features only
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    assert [c for c in layer.features.columns if c.startswith("eig_")] == [
        f"eig_{k}" for k in range(8)
    ]
    assert "eigenvector_features_frame(" in widget.last_call
    assert layer.metadata["colored_by"]["column"] == "eig_0"
    # now with predictions: per-domain summary kept beside the per-neuron scores
    viewer.add_points(layer.data, name="model", metadata={"predicted": truth})
    widget._pred_layer.reset_choices()
    widget._pred_layer.value = "model"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    table = layer.metadata["predictivity_by_domain"]
    assert set(table["group"]) == {"all", 3, 7}
    assert table["median"].to_numpy() == pytest.approx(1.0, abs=0.05)


@pytest.mark.viewer
def test_score_widget_defaults_are_the_scoring_params(make_napari_viewer):
    from napari_mesoscale.evaluate import ScoringParams
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    widget = ScorePredictionsWidget(make_napari_viewer())
    defaults = ScoringParams.defaults()
    for hidden in ("max_neighbors", "seed"):  # code-only options
        defaults.pop(hidden)
    assert widget.params() == defaults
    assert widget._estimator.choices == ScoringParams.specs()["estimator"].choices


@pytest.mark.viewer
def test_score_widget_says_when_there_is_nothing_to_colour(make_napari_viewer, qtbot):
    """Found by hand on the worm sample: every predictivity NaN, yet the status read "points
    coloured by predictivity"."""
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    truth, rng = _population(150, 20)
    trials = np.ones((4, *truth.shape))  # flat traces: no variance to explain
    positions = rng.uniform(0, 100, size=(20, 3))
    viewer.add_points(positions, name="cells", metadata={"trials": trials})
    viewer.add_points(positions, name="model", metadata={"predicted": truth.copy()})
    widget = ScorePredictionsWidget(viewer)
    widget._points.value = "cells"
    widget._pred_layer.value = "model"
    widget._n_splits.value = 5
    widget._n_eig.value = 4
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    assert "no neuron could be scored" in widget._status.value
    assert "nothing to colour the points by" in widget._status.value
    assert "points coloured by" not in widget._status.value


@pytest.mark.viewer
def test_score_widget_reports_an_empty_predictions_file(make_napari_viewer, tmp_path):
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer()
    truth, rng = _population(60, 10)
    trials = truth[None] + rng.standard_normal((4, *truth.shape))
    viewer.add_points(rng.uniform(0, 50, (10, 3)), name="cells", metadata={"trials": trials})
    empty = tmp_path / "predicted.npy"
    empty.write_bytes(b"")  # a save that never finished
    widget = ScorePredictionsWidget(viewer)
    widget._points.value = "cells"
    widget._pred_file.value = empty
    widget._run_button.native.click()  # the user's click: no traceback out of the slot
    assert not widget.is_running
    assert str(empty) in widget.last_error and "empty" in widget.last_error
    assert widget._status.value.startswith("Error: predictions file")
