"""*Correct motion* used by hand: what it refuses before it runs, and what it keeps.

Found walking the widget: a folder typed as the registered Zarr was emptied and replaced; a
(Z, Y, X) EM volume was "registered" with Z taken for time; a (T, Y, X) movie saved into a
results bundle came back as a ZYX volume. Each test failed on the code before.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


def _widget(viewer, data, **layer_kwargs):
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    layer = viewer.add_image(data, name="movie", **layer_kwargs)
    widget = CorrectMotionWidget(viewer)
    widget._movie.value = layer.name
    widget._plot_dock.value = False
    return widget


def test_an_existing_folder_is_refused_before_the_run(make_napari_viewer, tmp_path):
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "notes.txt").write_text("field notes")
    viewer = make_napari_viewer()
    movie = np.random.default_rng(0).random((6, 4, 24, 24)).astype(np.float32)
    widget = _widget(viewer, movie, scale=(1.0, 2.0, 1.0, 1.0))
    widget._output.value = folder
    widget.start()
    assert not widget.is_running
    assert "already exists; tick 'replace an existing registered Zarr'" in widget.last_error
    assert (folder / "notes.txt").read_text() == "field notes"
    widget._overwrite.value = True  # asked to replace: still never a folder that is not Zarr
    widget.start()
    assert "is not a Zarr store" in widget.last_error
    assert (folder / "notes.txt").exists()
    assert "movie registered" not in viewer.layers


def test_a_rerun_into_its_own_zarr_asks_then_replaces(make_napari_viewer, qtbot, tmp_path):
    path = tmp_path / "registered.zarr"
    viewer = make_napari_viewer()
    movie = np.random.default_rng(1).random((6, 4, 24, 24)).astype(np.float32)
    widget = _widget(viewer, movie, scale=(1.0, 2.0, 1.0, 1.0))
    widget._output.value = path
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None, widget.last_error
    widget.start()
    assert "already exists" in widget.last_error
    widget._overwrite.value = True
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None, widget.last_error
    assert "overwrite=True" in widget.last_call
    from napari_mesoscale.motion import correct_motion  # the console line, as typed there

    namespace = {"viewer": viewer, "correct_motion": correct_motion}
    exec(widget.last_call, namespace)
    assert namespace["motion"].registered.shape == movie.shape


def test_a_volume_is_refused_as_a_movie(make_napari_viewer):
    viewer = make_napari_viewer()
    volume = np.random.default_rng(2).random((8, 24, 24)).astype(np.float32)
    widget = _widget(viewer, volume, scale=(2.0, 1.0, 1.0), metadata={"axes": "ZYX"})
    widget.start()
    assert not widget.is_running
    assert "not a calcium movie" in widget.last_error
    assert "movie registered" not in viewer.layers


def test_a_plane_movie_keeps_its_time_axis_in_a_bundle(make_napari_viewer, tmp_path):
    from napari_mesoscale.io.bundle import load_bundle
    from napari_mesoscale.napari._writer import write_bundle

    viewer = make_napari_viewer()
    movie = np.random.default_rng(3).random((6, 24, 24)).astype(np.float32)
    viewer.add_image(movie, name="plane movie", scale=(1.0, 0.5, 0.5),
                     metadata={"axes": "TYX", "frame_rate_hz": 4.0})
    path = str(tmp_path / "plane.mesoscale")
    layer = viewer.layers["plane movie"]
    write_bundle(path, [(layer.data, layer._get_state(), "image")])
    [volume] = load_bundle(path).volumes.values()
    assert volume.axes == "TYX"
    assert volume.frame_rate == 4.0
