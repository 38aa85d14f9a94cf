"""The viewer used by hand (audit 2): plane ROIs saved, training saved, layers deleted mid-run.

Each test failed before the fix it guards.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


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
