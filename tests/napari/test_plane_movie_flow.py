"""A single-plane (T, Y, X) movie goes all the way: detect, fit, domains painted in its plane.

Found walking the widgets by hand: cells detected in a (T, Y, X) movie are (y, x) points and
(Y, X) ROIs, which *Fit* refused ("must hold 3D points") although the README lists (T, Y, X)
movies as input. They now lie at z = 0 µm for the model, and the domains, motifs and predicted
activity are painted into the plane's own ROIs at its scale. Failed on the code before.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.viewer


def _plane_movie(frames: int = 240, cells: int = 10) -> np.ndarray:
    """Flickering Gaussian cells on a 64 x 64 plane, AR(1) activity, a little noise."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(12, 56, 13), np.arange(12, 56, 13)), -1)
    centres = grid.reshape(-1, 2)[:cells]
    footprints = np.zeros((cells, 64, 64))
    for i, (y, x) in enumerate(centres):
        footprints[i, y, x] = 1.0
        footprints[i] = ndimage.gaussian_filter(footprints[i], 2.0)
        footprints[i] /= footprints[i].max()
    activity = np.zeros((frames, cells))
    for t in range(1, frames):
        spikes = rng.exponential(0.3, cells) * (rng.random(cells) < 0.1)
        activity[t] = 0.9 * activity[t - 1] + spikes
    movie = np.einsum("tc,cyx->tyx", 1.0 + activity, footprints)
    movie += 0.05 * rng.random((frames, 64, 64))
    return (100 * movie).astype(np.float32)


def test_cells_of_one_plane_are_fitted_and_painted_in_the_plane(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget
    from napari_mesoscale.napari._fit_widget import FitWidget

    viewer = make_napari_viewer()
    viewer.add_image(_plane_movie(), name="plane", scale=(1.0, 1.5, 1.5),
                     metadata={"frame_rate_hz": 5.0, "axes": "TYX"})
    detect = DetectPointSourcesWidget(viewer)
    detect._movie.value = "plane"
    detect.start()
    qtbot.waitUntil(lambda: not detect.is_running, timeout=120_000)
    assert detect.last_error is None, detect.last_error
    cells = viewer.layers["plane points"]
    assert cells.data.shape[1] == 2 and len(cells.data) >= 5
    fit = FitWidget(viewer)
    fit.cells.value = "plane points"
    fit.epochs.value = 2
    fit.start()
    qtbot.waitUntil(lambda: not fit.is_running, timeout=300_000)
    assert fit.last_error is None, fit.last_error
    domains = viewer.layers["functional domains"]
    assert domains.data.shape == (64, 64)
    np.testing.assert_allclose(domains.scale, (1.5, 1.5))
    rois = np.asarray(viewer.layers["plane ROIs"].data)
    painted = np.asarray(domains.data)
    assert (painted[rois > 0] > 0).all() and (painted[rois == 0] == 0).all()
    predicted = viewer.layers["predicted activity"]
    assert predicted.data.shape == (240, 64, 64)
    np.testing.assert_allclose(predicted.scale, (1.0, 1.5, 1.5))
    assert predicted.axis_labels == ("t", "y", "x")  # the slider said "z" for time
    assert domains.axis_labels == ("y", "x")
    viewer.dims.ndisplay = 3  # the plane's layers in the 3D view
    viewer.dims.ndisplay = 2


def test_cells_of_one_plane_are_saved_and_reopened_in_the_plane(
    make_napari_viewer, tmp_path, reader_preferences
):
    """Both writers refused (y, x) points ("need 3D coordinates"), and napari only said the
    plugin 'is not a valid writer'."""
    import pandas as pd

    viewer = make_napari_viewer()
    positions = np.array([[10.0, 20.0], [30.0, 5.0]])
    features = pd.DataFrame({"activity_mean": [0.5, 1.5], "name": ["a", "b"]})
    viewer.add_points(positions, name="plane cells", scale=(1.5, 1.5), features=features)
    csv = tmp_path / "cells.csv"
    assert viewer.layers["plane cells"].save(str(csv), plugin="napari-mesoscale")
    table = pd.read_csv(csv)
    assert list(table.columns[:2]) == ["y", "x"] and "z" not in table.columns
    np.testing.assert_allclose(table[["y", "x"]].to_numpy(), positions * 1.5)
    bundle = str(tmp_path / "plane.mesoscale")
    assert viewer.layers["plane cells"].save(bundle, plugin="napari-mesoscale")
    [reopened] = viewer.open(bundle, plugin=None)  # as File > Open: napari picks the reader
    np.testing.assert_allclose(np.asarray(reopened.data), positions * 1.5)
    assert list(reopened.features["activity_mean"]) == [0.5, 1.5]
