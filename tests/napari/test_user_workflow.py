"""The README's workflow clicked through in one viewer, as a new user meets it (issue 17).

Open the samples → detect somata → build the connectome (3D view) → fit (cancel, then rerun) →
score → save everything as a bundle and reopen it with ``viewer.open(path, plugin=None)``
(drag-and-drop's path) → run each widget's ``last_call`` in the console namespace. Docks are
checked on screen: rendered, not blank.

The full walk fits the model twice (a cancelled and a short run), so it is marked slow; the
unmarked walk does everything but the fit and scoring.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


def _run(widget, qtbot, timeout=600_000):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)
    assert widget.last_error is None, widget.last_error


def _not_blank(image: np.ndarray, what: str) -> None:
    rgb = np.asarray(image)[..., :3].astype(float)
    assert rgb.size and rgb.std() > 3, f"{what} is blank"


def _grab(widget) -> np.ndarray:
    """A Qt widget drawn as an (H, W, 4) array, as it is on screen."""
    from qtpy.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    height, width = image.height(), image.width()
    buffer = image.constBits()
    buffer.setsize(height * image.bytesPerLine())
    rows = np.frombuffer(buffer, np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : width * 4].reshape(height, width, 4).copy()


def _console(viewer, monkeypatch) -> dict:
    namespace: dict = {}
    monkeypatch.setattr(
        type(viewer), "update_console", lambda _viewer, names: namespace.update(names)
    )
    return namespace


def _detect_and_build(viewer, qtbot, namespace):
    """Detect somata from the sample's segmentation, then build the connectome in 3D."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    somata = DetectSomataWidget(viewer)
    viewer.window.add_dock_widget(somata, name="Detect somata (EM)")
    somata._method.value = "from a labels layer"
    somata._segmentation.value = "somata (truth)"
    _run(somata, qtbot)
    assert somata._status.value == f"{len(somata.last_result)} somata."
    console = dict(namespace)
    exec(console["last_call"], console)
    np.testing.assert_allclose(console["somata"].positions, somata.last_result.positions)

    build = ConnectomeWidget(viewer)
    viewer.window.add_dock_widget(build, name="Build connectome")
    build._source.value = "Points layer"
    build._neurons_layer.value = "neurons (truth)"
    build._synapses_layer.value = "synapses"
    _run(build, qtbot)
    assert viewer.dims.ndisplay == 3
    assert "synapses" in viewer.layers  # the user's kept, and shows the built synapses:
    assert "synapses_2" not in viewer.layers  # no copy of it
    console = dict(namespace)
    exec(console["last_call"], console)
    np.testing.assert_allclose(
        console["build"].connectome.adjacency.toarray(),
        build.last_result.connectome.adjacency.toarray(),
    )
    return somata, build


def _save_and_reopen(viewer, make_napari_viewer, tmp_path, names):
    from napari_mesoscale.napari._writer import write_bundle

    layers = [viewer.layers[name].as_layer_data_tuple() for name in names]
    [path] = write_bundle(str(tmp_path / "run"), layers)
    reopened = make_napari_viewer(show=True)
    added = reopened.open(path, plugin=None)
    assert [layer.name for layer in added] == list(names)
    for name in names:
        before, after = viewer.layers[name], reopened.layers[name]
        np.testing.assert_allclose(np.asarray(after.data), np.asarray(before.data))
    return reopened


@pytest.mark.slow
def test_readme_workflow_through_the_gui(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, reader_preferences
):
    from napari_mesoscale.napari._fit_widget import FitWidget
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "connectome")
    namespace = _console(viewer, monkeypatch)
    _detect_and_build(viewer, qtbot, namespace)
    viewer.mouse_over_canvas = True  # the mouse rests on the 3D canvas, unmoved

    fit = FitWidget(viewer)
    viewer.window.add_dock_widget(fit, name="Fit mesoscale model")
    fit.cells.value = "neurons (truth)"
    fit.rois.value = "somata (truth)"
    fit.connectome.value = "neurons (truth)"
    fit.stimulus.value = "neurons (truth)"
    fit.epochs.value = 300
    bar: list[int] = []
    fit._progress_bar.changed.connect(lambda value: bar.append(int(value)))
    fit.start()
    qtbot.waitUntil(lambda: len(fit.loss_plot.epochs) >= 2, timeout=600_000)
    fit.cancel()
    qtbot.waitUntil(lambda: not fit.is_running, timeout=600_000)
    assert fit._status.value.startswith("Cancelled: partial result shown"), fit._status.value
    assert fit.report is not None and fit.report.fit.stopped == "cancelled"
    assert bar == sorted(bar), "the progress bar moved back"

    fit.epochs.value = 3
    bar.clear()
    messages: list[str] = []
    fit._relay.progress.connect(lambda event: messages.append(event[1].get("message", "")))
    _run(fit, qtbot)  # rerun after the cancel, in 3D view
    assert fit.report.fit.stopped != "cancelled"
    assert bar == sorted(bar) and bar[-1] >= 900
    assert any(m.startswith("fit: ") for m in messages), messages  # every stage is named
    assert any("baselines" in m for m in messages), messages
    for name in ("functional domains", "motifs", "predicted activity"):
        assert name in viewer.layers
    cells = viewer.layers["neurons (truth)"]
    assert cells.face_color[:, 3].min() >= 0.4 - 1e-6
    console = dict(namespace)
    exec(console["last_call"], console)
    np.testing.assert_allclose(console["report"].predicted, fit.report.predicted, atol=1e-4)

    score = ScorePredictionsWidget(viewer)
    viewer.window.add_dock_widget(score, name="Score predictions")
    score._points.value = "neurons (truth)"
    score._pred_layer.value = "neurons (truth)"
    _run(score, qtbot)
    assert "predictivity" in cells.features
    console = dict(namespace)
    exec(console["last_call"], console)
    np.testing.assert_allclose(
        console["scores"]["predictivity"], score.last_result["predictivity"], equal_nan=True
    )

    qtbot.wait(200)
    for dock in (fit.loss_plot, fit.trace_plot, fit.native, score.native):
        _not_blank(_grab(dock), type(dock).__name__)
    _not_blank(viewer.screenshot(canvas_only=True, flash=False), "the 3D canvas")

    reopened = _save_and_reopen(
        viewer, make_napari_viewer, tmp_path, ["neurons (truth)", "functional domains"]
    )
    restored = reopened.layers["neurons (truth)"]
    assert restored.metadata["adjacency"].nnz == cells.metadata["adjacency"].nnz
    np.testing.assert_allclose(restored.face_color, cells.face_color)
    refit = FitWidget(reopened)  # the reopened layer drives a new fit: it is offered
    assert "neurons (truth)" in refit.connectome.choices


def test_readme_workflow_without_the_fit(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, reader_preferences
):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "connectome")
    namespace = _console(viewer, monkeypatch)
    somata, build = _detect_and_build(viewer, qtbot, namespace)
    qtbot.wait(200)
    for widget in (somata, build):
        _not_blank(_grab(widget.native), type(widget).__name__)
    _not_blank(viewer.screenshot(canvas_only=True, flash=False), "the 3D canvas")
    assert tuple(viewer.dims.axis_labels)[-3:] == ("z", "y", "x")
    reopened = _save_and_reopen(
        viewer, make_napari_viewer, tmp_path, ["neurons (truth)", "somata (truth) somata points"]
    )
    adjacency = reopened.layers["neurons (truth)"].metadata["adjacency"]
    assert adjacency.nnz == viewer.layers["neurons (truth)"].metadata["adjacency"].nnz
