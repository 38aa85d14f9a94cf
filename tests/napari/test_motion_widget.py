"""The "Correct motion" widget in a real viewer: registered layer, shift plot, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.viewer


def _moving_movie():
    rng = np.random.default_rng(0)
    frame = ndimage.gaussian_filter(rng.normal(size=(8, 48, 48)), 1.5).astype(np.float32)
    shifts = np.zeros((12, 3))
    shifts[6:, 2] = 3.0  # a jump of 3 voxels in x at frame 6
    movie = np.stack([ndimage.shift(frame, s, order=1, mode="nearest") for s in shifts])
    return movie * 100 + 500, shifts


def test_correct_motion_widget_adds_layer_and_plot(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    movie, shifts = _moving_movie()
    viewer = make_napari_viewer()
    viewer.add_image(movie, name="movie", scale=(1.0, 2.0, 1.0, 1.0))
    _, widget = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Correct motion (calcium)")
    assert isinstance(widget, CorrectMotionWidget)
    widget._params["block_size_um"].value = 24.0
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None, widget.last_error
    result = widget.last_result
    layer = viewer.layers["movie registered"]
    np.testing.assert_allclose(layer.scale, (1.0, 2.0, 1.0, 1.0))
    jump = np.median(result.shifts_um[6:, 2]) - np.median(result.shifts_um[:6, 2])
    assert abs(jump - 3.0) < 0.3
    assert "correct_motion(" in widget.last_call
    plot = widget.plot
    assert plot is not None and len(plot.axes.get_lines()) >= 3
    # one legend, above the axes: two legends inside them hid the curves' jumps
    legend = plot.axes.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "shift z", "shift y", "shift x", "max patch", "quality", "outlier"
    ]
    assert plot.quality_axes.get_legend() is None
    plot.canvas.draw()
    renderer = plot.figure.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    assert legend_box.y0 >= plot.axes.get_window_extent(renderer).y1 - 1
    assert legend_box.x0 >= 0 and legend_box.x1 <= plot.figure.bbox.width + 1  # not cut off
    viewer.dims.set_current_step(0, 7)
    qtbot.waitUntil(lambda: plot.frame == 7, timeout=5_000)


def test_correct_motion_widget_cancel(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    movie, _ = _moving_movie()
    viewer = make_napari_viewer()
    viewer.add_image(np.concatenate([movie] * 20), name="movie", scale=(1.0, 2.0, 1.0, 1.0))
    widget = CorrectMotionWidget(viewer)
    widget._params["batch_frames"].value = 1
    widget.start()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error == "cancelled"
    assert "movie registered" not in viewer.layers


def test_correct_motion_widget_reports_bad_layer(make_napari_viewer):
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    viewer = make_napari_viewer()
    widget = CorrectMotionWidget(viewer)
    widget.start()
    assert widget.last_error and "add a calcium movie" in widget.last_error


def test_calcium_detection_widget_offers_motion_correction_first(make_napari_viewer):
    """The detection widget's "correct motion first" choice reaches detect_point_sources."""
    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    movie, _ = _moving_movie()
    viewer = make_napari_viewer()
    viewer.add_image(movie, name="movie", scale=(1.0, 2.0, 1.0, 1.0))
    widget = DetectPointSourcesWidget(viewer)
    widget._movie.value = "movie"
    assert widget._motion.value == "auto"
    expected = {"auto": "auto", "yes": True, "no": False}
    for choice, value in expected.items():
        widget._motion.value = choice
        call = widget.prepare()
        assert call.kwargs["register_motion"] == value
        assert f"register_motion={value!r}" in call.python
