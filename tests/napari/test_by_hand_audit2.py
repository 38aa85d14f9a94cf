"""The viewer used by hand (audit 2): plane ROIs saved, training saved, layers deleted mid-run.

Each test failed before the fix it guards.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget

pytestmark = pytest.mark.viewer


def _run(widget, qtbot, timeout=120_000):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)


@pytest.fixture
def notifications():
    """The (severity, message) of every napari notification during the test."""
    from napari.utils.notifications import notification_manager

    shown: list[tuple[str, str]] = []

    def keep(notification):
        shown.append((str(notification.severity), notification.message))

    notification_manager.notification_ready.connect(keep)
    yield shown
    notification_manager.notification_ready.disconnect(keep)


def _plane_rois() -> np.ndarray:
    rois = np.zeros((12, 14), dtype=np.uint16)
    rois[2:5, 3:6], rois[7:10, 8:12] = 1, 2
    return rois


@pytest.mark.parametrize("file_name", ["plane_rois.ome.tif", "plane.mesoscale"])
def test_plane_labels_are_saved_and_reopen_with_their_pixel_size(
    make_napari_viewer, tmp_path, reader_preferences, file_name
):
    """ROIs of a (T, Y, X) movie are a 2D Labels layer: the labels writer refused it ("must be
    3D … or 4D") and so did the results bundle ("bundles hold 3D or 4D data")."""
    viewer = make_napari_viewer()
    rois = viewer.add_labels(_plane_rois(), name="plane ROIs", scale=(0.8, 0.7))
    [path] = viewer.layers.save(str(tmp_path / file_name), plugin="napari-mesoscale")

    reopened = make_napari_viewer()
    [layer] = reopened.open(path, plugin=None)  # as File ▸ Open: napari picks the reader
    assert layer.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(np.asarray(layer.data), rois.data)
    np.testing.assert_allclose(layer.scale, (0.8, 0.7))


class _FailsToShow(CoreTaskWidget):
    """A widget whose result cannot be shown: ``on_result`` refuses it with ``error``."""

    def __init__(self, viewer, error):
        super().__init__(viewer)
        self.error = error
        self.add_controls()

    def prepare(self):
        return CoreCall(
            function=lambda callback=None: 41 + 1, python="answer = 42", result_name="answer"
        )

    def on_result(self, result):
        raise self.error


def test_a_result_that_cannot_be_shown_reaches_the_console_with_one_clear_error(
    make_napari_viewer, qtbot, console_names, capsys, notifications
):
    """A failing ``on_result`` lost the result (never pushed to the console) and printed a
    traceback under the error, even for a ValueError written for the user."""
    viewer = make_napari_viewer()
    widget = _FailsToShow(viewer, ValueError("layer 'cells' was removed during the run"))
    _run(widget, qtbot)
    assert console_names["answer"] == 42 and console_names["last_call"] == "answer = 42"
    assert widget.last_error == "layer 'cells' was removed during the run"
    assert widget._status.value == f"Error: {widget.last_error}"
    assert notifications == [("error", f"napari-mesoscale: {widget.last_error}")]
    assert "Traceback" not in capsys.readouterr().err


def _held_until(released, function):
    """``function``, made to wait in the worker until ``released`` is set."""

    def held(*args, **kwargs):
        assert released.wait(60), "the test never released the worker"
        return function(*args, **kwargs)

    return held


def _delete_during_the_run(viewer, widget, name, released, qtbot):
    widget.start()
    assert widget.is_running
    viewer.layers.remove(name)  # the user deletes the input while the worker runs
    released.set()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=240_000)


def test_fit_keeps_its_result_when_the_cells_are_deleted_during_the_run(
    make_napari_viewer, qtbot, monkeypatch, console_names, capsys, notifications
):
    """Deleting the cells layer while the fit ran ended in a KeyError traceback, and the fit
    was lost with it."""
    import threading

    from napari_mesoscale.napari import _fit_widget

    released = threading.Event()
    monkeypatch.setattr(
        _fit_widget, "fit_and_score", _held_until(released, _fit_widget.fit_and_score)
    )
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    widget = _fit_widget.FitWidget(viewer)
    widget.cells.value = "neurons (truth)"
    widget.epochs.value = 1
    _delete_during_the_run(viewer, widget, "neurons (truth)", released, qtbot)
    message = (
        "layer 'neurons (truth)' was removed during the run; the result is in the console as "
        "`report`"
    )
    assert message in widget.last_error
    assert console_names["report"] is widget.last_result and widget.last_result.fit is not None
    assert [severity for severity, _ in notifications] == ["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_score_keeps_its_result_when_the_points_are_deleted_during_the_run(
    make_napari_viewer, qtbot, monkeypatch, console_names, capsys, notifications
):
    """Deleting the scored points while the worker ran ended in ``KeyError: "'cells' not
    found"`` with a traceback, and the scores were lost."""
    import threading

    from napari_mesoscale.napari import _score_widget

    released = threading.Event()
    monkeypatch.setattr(
        _score_widget,
        "score_predictions",
        _held_until(released, _score_widget.score_predictions),
    )
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((60, 12))
    trials = truth[None] + 0.5 * rng.standard_normal((4, 60, 12))
    viewer = make_napari_viewer()
    viewer.add_points(
        rng.uniform(0, 50, (12, 3)), name="cells", metadata={"trials": trials, "predicted": truth}
    )
    widget = _score_widget.ScorePredictionsWidget(viewer)
    assert widget._points.value == widget._pred_layer.value == "cells"
    _delete_during_the_run(viewer, widget, "cells", released, qtbot)
    message = "layer 'cells' was removed during the run; the result is in the console as `scores`"
    assert message in widget.last_error
    assert console_names["scores"] is widget.last_result
    assert len(widget.last_result) == 12 and "predictivity" in widget.last_result
    assert [severity for severity, _ in notifications] == ["error"]
    assert "Traceback" not in capsys.readouterr().err


def _train_widget(viewer, save_to):
    """The training widget on a small EM volume painted with somata and background."""
    from napari_mesoscale.napari._detect_widgets import TrainSomaDetectorWidget

    viewer.add_image(np.zeros((8, 16, 16), np.float32), name="em", scale=(1.0, 0.5, 0.5))
    train = TrainSomaDetectorWidget(viewer)
    train._volume.value = "em"
    annotations = train.add_annotation_layer()
    data = np.zeros((8, 16, 16), np.uint8)
    data[2:5, 4:8, 4:8], data[:, 12:, 12:] = 2, 1
    annotations.data = data
    train._epochs.value, train._steps.value = 1, 1
    train._save.value = save_to
    return train


def test_training_refuses_a_folder_to_save_to_before_it_starts(
    make_napari_viewer, tmp_path, notifications
):
    """A folder chosen as 'save detector to' failed only after the whole training
    (IsADirectoryError), with a traceback."""
    train = _train_widget(make_napari_viewer(), tmp_path)
    train.start()
    assert not train.is_running  # refused before the worker started
    assert train.last_error == (
        f"'save detector to' is a folder ({tmp_path}); choose a file in it, e.g. "
        f"{tmp_path / 'detector.pt'}, or leave it empty."
    )
    assert [severity for severity, _ in notifications] == ["error"]


def test_a_detector_that_cannot_be_saved_is_kept_with_one_clear_error(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, console_names, capsys, notifications
):
    """Saving after training failed (a full disk): the error came as a traceback plus a second
    error, and the user was not told that the trained detector is still there."""
    import torch

    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget
    from napari_mesoscale.segment import SomaDetector

    torch.set_num_threads(1)

    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SomaDetector, "save", full_disk)
    viewer = make_napari_viewer()
    train = _train_widget(viewer, tmp_path / "detector.pt")
    _run(train, qtbot)
    assert train.detector is train.last_result is console_names["detector"]
    assert DetectSomataWidget(viewer).trained_detector() is train.detector
    assert train.last_error.startswith(
        f"the detector was trained but could not be saved to {tmp_path / 'detector.pt'} "
        "([Errno 28] No space left on device). It is kept: 'Detect somata (EM)' uses it"
    )
    assert notifications == [("error", f"napari-mesoscale: {train.last_error}")]
    assert "Traceback" not in capsys.readouterr().err


def test_build_connectome_refuses_one_layer_as_both_neurons_and_synapses(
    make_napari_viewer, notifications
):
    """Picking the sample's ``synapses`` layer as the neurons too built a connectome of
    synapses, every synapse a neuron."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    build = ConnectomeWidget(viewer)
    build._neurons_layer.value = build._synapses_layer.value = "synapses"
    build.start()
    assert not build.is_running  # refused before the worker started
    assert build.last_error.startswith(
        "'synapses' is chosen as both the neurons and the synapses layer"
    )
    assert [severity for severity, _ in notifications] == ["error"]
