"""A user's own files, the shell and the console (the second walk by hand, brief byhand-o).

Each test failed before the fix it guards.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.viewer


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


def test_build_connectome_takes_the_neuron_table_opened_from_a_file(
    make_napari_viewer, qtbot, tmp_path
):
    """Cells detected in a movie, then neurons.csv and synapses.csv opened: the neurons picker
    stayed on the detected cells (the opened table carries no activity or adjacency) and the
    build failed ("synapses table refers to neuron ids that are not in the neurons table")."""
    import pandas as pd

    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    rng = np.random.default_rng(0)
    neurons = pd.DataFrame({"id": np.arange(5)})
    neurons[["z", "y", "x"]] = rng.uniform(0, 40, (5, 3))
    synapses = pd.DataFrame({"pre": [0, 1, 2, 3], "post": [1, 2, 3, 4]})
    synapses[["z", "y", "x"]] = rng.uniform(0, 40, (4, 3))
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    synapses.to_csv(tmp_path / "synapses.csv", index=False)
    viewer = make_napari_viewer()
    viewer.add_points(
        rng.uniform(0, 40, (7, 3)), name="movie points",
        features=pd.DataFrame({"id": np.arange(1, 8)}),
        metadata={"activity": rng.normal(size=(50, 7))},
    )
    build = ConnectomeWidget(viewer)
    viewer.open(tmp_path / "neurons.csv", plugin="napari-mesoscale")
    viewer.open(tmp_path / "synapses.csv", plugin="napari-mesoscale")
    assert build._synapses_layer.value == "synapses"
    assert build._neurons_layer.value == "neurons"
    build._view_3d.value = False
    build.start()
    qtbot.waitUntil(lambda: not build.is_running, timeout=30_000)
    assert build.last_error is None, build.last_error
    assert build.last_result.connectome.adjacency.sum() == 4


def test_segment_bundle_from_the_shell_opens_cells_that_fit_takes(make_napari_viewer, tmp_path):
    """``napari-mesoscale segment movie --out seg.mesoscale`` then File ▸ Open: only the ROI
    labels opened (the cells' table has no z, y, x columns), so there was nothing to fit."""
    from napari_mesoscale.cli import main
    from napari_mesoscale.napari._fit_widget import FitWidget
    from napari_mesoscale.napari._sample_data import sample_path

    bundle = tmp_path / "seg.mesoscale"
    assert main(["segment", str(sample_path("calcium")), "--out", str(bundle), "--quiet"]) == 0
    viewer = make_napari_viewer()
    layers = viewer.open(str(bundle), plugin="napari-mesoscale")
    assert [layer.name for layer in layers] == ["seg ROIs", "seg points"]
    rois, cells = layers
    np.testing.assert_allclose(rois.scale, (3.0, 1.5, 1.5))
    assert cells.metadata["activity"].shape == (200, len(cells.data))
    fit = FitWidget(viewer)
    assert (fit.cells.value, fit.rois.value) == ("seg points", "seg ROIs")


def test_fit_from_the_shell_writes_neurons_napari_opens(make_napari_viewer, tmp_path):
    """``napari-mesoscale fit`` wrote neurons.csv without ids or positions: napari could not
    open the fitted domains and motifs ("refused the file")."""
    import pandas as pd

    from napari_mesoscale.cli import main
    from napari_mesoscale.napari._sample_data import sample_path

    out = tmp_path / "fit"
    args = ["fit", str(sample_path("activity")), "--neurons", str(sample_path("neurons")),
            "--epochs", "1", "-o", str(out), "--quiet"]
    assert main(args) == 0
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(out / "neurons.csv"), plugin="napari-mesoscale")
    truth = pd.read_csv(sample_path("neurons"))
    np.testing.assert_allclose(layer.data, truth[["z", "y", "x"]].to_numpy())
    assert list(layer.features["id"]) == list(truth["id"])
    assert {"domain", "motif", "confidence"} <= set(layer.features.columns)
