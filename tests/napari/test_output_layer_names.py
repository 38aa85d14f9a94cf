"""Output layer names: a step run on a layer that is itself a step's output appends its suffix
once, not again ("X somata somata points", "X ROIs points", "X points points" before)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.napari._layers import output_name


@pytest.mark.parametrize(
    ("source", "suffix", "expected"),
    [
        ("X", " points", "X points"),
        ("X points", " points", "X points"),
        ("X ROIs", " points", "X points"),
        ("X somata ROIs", " somata points", "X somata points"),
        ("X somata points", " somata ROIs", "X somata ROIs"),
        ("X somata (U-Net) ROIs", " somata points", "X somata points"),
        ("X somata ROIs", " somata (U-Net) points", "X somata (U-Net) points"),
        ("movie registered", " registered", "movie registered"),
        ("movie registered", " points", "movie registered points"),
        ("movie registered points", " ROIs", "movie registered ROIs"),
        ("X somata points_2", " somata points", "X somata points"),
        # the user's own qualifiers and numbers are part of the name
        ("EM somata (truth)", " somata points", "EM somata (truth) somata points"),
        ("scan (U-Net)", " points", "scan (U-Net) points"),
        ("scan_2", " points", "scan_2 points"),
        ("pointsX", " points", "pointsX points"),
    ],
)
def test_output_name_drops_the_plugins_own_suffixes_only(source, suffix, expected):
    assert output_name(source, suffix) == expected


def _run(widget, qtbot):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None, widget.last_error


def _repeats(name: str) -> list[str]:
    """The plugin's suffix words that occur more than once in ``name``."""
    words = name.split()
    return [word for word in ("somata", "ROIs", "points", "registered") if words.count(word) > 1]


@pytest.mark.viewer
def test_somata_from_a_detected_roi_layer_repeat_no_suffix(make_napari_viewer, qtbot):
    """Detect somata from the ROIs a detection added: 'EM somata (truth) somata ROIs somata
    points' before."""
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "em")
    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "EM somata (truth)"
    _run(widget, qtbot)
    assert "EM somata (truth) somata ROIs" in viewer.layers
    before = {layer.name for layer in viewer.layers}
    widget._segmentation.value = "EM somata (truth) somata ROIs"
    _run(widget, qtbot)
    added = {layer.name for layer in viewer.layers} - before
    assert len(added) == 2, added
    for name in added:
        assert name.startswith("EM somata (truth) somata "), added
        assert _repeats(name.removeprefix("EM somata (truth)")) == [], added


@pytest.mark.viewer
def test_registering_the_registered_movie_again_keeps_its_name(make_napari_viewer, qtbot):
    """'movie registered registered' before."""
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    rng = np.random.default_rng(0)
    viewer = make_napari_viewer()
    viewer.add_image(rng.random((6, 4, 32, 32)).astype(np.float32) * 100, name="movie")
    widget = CorrectMotionWidget(viewer)
    widget._params["block_size_um"].value = 16.0
    _run(widget, qtbot)
    assert "movie registered" in viewer.layers
    widget._movie.value = "movie registered"
    _run(widget, qtbot)
    names = [layer.name for layer in viewer.layers]
    assert all(_repeats(name) == [] for name in names), names
    assert names[-1].startswith("movie registered"), names
