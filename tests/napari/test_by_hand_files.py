"""A user's own files, the shell and the console (the second walk by hand, brief byhand-o).

Each test failed before the fix it guards.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.settings import get_settings

pytestmark = pytest.mark.viewer


@pytest.fixture
def reader_preferences():
    """:func:`prefer_mesoscale_readers` applied in memory only (never the user's settings file)."""
    from napari_mesoscale.napari import prefer_mesoscale_readers

    settings = get_settings()
    saving, preferences = settings._save_on_change, dict(settings.plugins.extension2reader)
    settings._save_on_change = False
    prefer_mesoscale_readers()
    yield settings
    settings.plugins.extension2reader = preferences
    settings._save_on_change = saving


def test_ome_zarr_opens_without_plugin_argument_after_preferring_the_plugin(
    make_napari_viewer, tmp_path, reader_preferences
):
    """``viewer.open(movie.ome.zarr, plugin=None)`` raised MultipleReaderError: the preferences
    covered ``*.ome.tif`` but not ``*.ome.zarr`` (a folder, matched with a trailing separator)."""
    from napari_mesoscale.io import write_ome_zarr

    movie = np.random.default_rng(0).integers(0, 200, (6, 3, 8, 8)).astype("uint16")
    path = write_ome_zarr(
        tmp_path / "movie.ome.zarr", movie, voxel_size=(3.0, 1.5, 1.5), axes="TZYX", frame_rate=5.0
    )
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=None)
    np.testing.assert_allclose(layer.scale, (1.0, 3.0, 1.5, 1.5))
    np.testing.assert_array_equal(np.asarray(layer.data), movie)
    assert layer.metadata["frame_rate_hz"] == 5.0
