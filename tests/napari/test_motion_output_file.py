"""What *Correct motion* writes opens at the movie's scale (brief viewer-r, item 3).

Walking the README's widgets on the bundled sample: the registered Zarr the widget wrote
opened in napari at 1 µm per voxel (scale 1, 1, 1, 1), not the movie's 3 × 1.5 × 1.5 µm, so it
no longer lined up with the cells detected on the movie. Failed on the code before.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


def test_registered_zarr_reopens_at_the_movies_scale(make_napari_viewer, qtbot, tmp_path):
    from napari_mesoscale.napari._motion_widget import CorrectMotionWidget

    viewer = make_napari_viewer()
    # a short movie with the calcium sample's voxel size and frame rate (opening the sample
    # itself took 24 s of this test's 45)
    frames = np.random.default_rng(0).random((12, 6, 32, 32)).astype(np.float32)
    movie = viewer.add_image(
        frames, scale=(1.0, 3.0, 1.5, 1.5), metadata={"frame_rate_hz": 5.0}, name="movie"
    )
    widget = CorrectMotionWidget(viewer)
    widget._movie.value = movie.name
    path = tmp_path / "registered.zarr"
    widget._output.value = path
    widget._plot_dock.value = False
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=300_000)
    assert widget.last_error is None, widget.last_error
    [opened] = viewer.open(str(path), plugin="napari-mesoscale")
    np.testing.assert_allclose(opened.scale, movie.scale)
    np.testing.assert_allclose(opened.scale, (1.0, 3.0, 1.5, 1.5))
    assert opened.metadata["frame_rate_hz"] == movie.metadata["frame_rate_hz"]
    assert "frame_rate=" in widget.last_call
