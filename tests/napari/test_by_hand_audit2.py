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


def _console_of(viewer, monkeypatch) -> dict:
    """What the widgets push into napari's console, collected into one namespace."""
    namespace: dict = {}
    monkeypatch.setattr(
        type(viewer), "update_console", lambda _viewer, names: namespace.update(names)
    )
    return namespace


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
        return CoreCall(function=lambda callback=None: 41 + 1, python="answer = 42",
                        result_name="answer")

    def on_result(self, result):
        raise self.error


def test_a_result_that_cannot_be_shown_reaches_the_console_with_one_clear_error(
    make_napari_viewer, qtbot, monkeypatch, capsys, notifications
):
    """A failing ``on_result`` lost the result (never pushed to the console) and printed a
    traceback under the error, even for a ValueError written for the user."""
    viewer = make_napari_viewer()
    console = _console_of(viewer, monkeypatch)
    widget = _FailsToShow(viewer, ValueError("layer 'cells' was removed during the run"))
    _run(widget, qtbot)
    assert console["answer"] == 42 and console["last_call"] == "answer = 42"
    assert widget.last_error == (
        "Could not show the result: layer 'cells' was removed during the run"
    )
    assert widget._status.value == f"Error: {widget.last_error}"
    assert notifications == [("error", f"napari-mesoscale: {widget.last_error}")]
    assert "Traceback" not in capsys.readouterr().err
