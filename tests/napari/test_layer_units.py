"""The scale bar reads µm on the plugin's layers, and a layer without a voxel size is named."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.viewer


def scale_bar_text(viewer) -> str:
    """What napari's scale bar shows (its vispy text), e.g. "15 µm"."""
    viewer.canvas.overlays.scale_bar.visible = True
    visuals = viewer.window._qt_viewer.canvas._viewer_overlay_to_visual
    [[bar]] = [v for overlay, v in visuals.items() if type(overlay).__name__ == "ScaleBarOverlay"]
    return bar.node.text.text


def test_the_samples_scale_bar_reads_micrometres(make_napari_viewer):
    """With napari's default unit the calcium sample's bar read "15 pixel" over 10 pixels
    of 1.5 µm."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "calcium")
    movie = viewer.layers["calcium movie"]
    assert [str(u) for u in movie.units] == ["pixel", "micrometer", "micrometer", "micrometer"]
    assert scale_bar_text(viewer).endswith(" µm")
    viewer.open_sample("napari-mesoscale", "connectome")  # points, vectors, labels
    assert all(str(u) == "micrometer" for u in viewer.layers.units[-3:])
    assert scale_bar_text(viewer).endswith(" µm")


def test_files_with_and_without_a_voxel_size(make_napari_viewer, tmp_path):
    from napari_mesoscale.io import write_tiff

    viewer = make_napari_viewer()
    volume = np.random.default_rng(0).random((4, 8, 8)).astype("float32")
    write_tiff(str(tmp_path / "em.ome.tif"), volume, voxel_size=(2.0, 0.5, 0.5), axes="ZYX")
    tifffile.imwrite(tmp_path / "plain.tif", volume, photometric="minisblack")  # no voxel size
    [em] = viewer.open(tmp_path / "em.ome.tif", plugin="napari-mesoscale")
    assert [str(u) for u in em.units] == ["micrometer"] * 3
    [plain] = viewer.open(tmp_path / "plain.tif", plugin="napari-mesoscale")
    assert [str(u) for u in plain.units] == ["pixel"] * 3 and tuple(plain.scale) == (1, 1, 1)


def _somata_from_labels(viewer, qtbot, name):
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = name
    widget._run_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    return widget


def _two_balls(shape=(20, 40, 40), radius=5) -> np.ndarray:
    z, y, x = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for label, centre in enumerate([(10, 12, 12), (10, 28, 28)], start=1):
        inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2
        labels[inside] = label
    return labels


def test_outputs_take_their_inputs_unit(make_napari_viewer, qtbot):
    """µm in, µm out; a layer of the user's in napari's default unit gives outputs in it, so
    the scale bar keeps one unit, and the status says that no voxel size was set."""
    viewer = make_napari_viewer()
    viewer.add_labels(_two_balls(), name="cells um", scale=(1.0, 1.0, 1.0), units="um")
    widget = _somata_from_labels(viewer, qtbot, "cells um")
    points = viewer.layers["cells um somata points"]
    assert len(points.data) == 2 and [str(u) for u in points.units] == ["micrometer"] * 3
    assert "no voxel size" not in widget._status.value  # µm given: 1 µm voxels are real

    viewer.layers.clear()
    viewer.add_labels(_two_balls(), name="cells")  # napari's defaults: scale 1, pixel
    widget = _somata_from_labels(viewer, qtbot, "cells")
    assert {str(u) for u in viewer.layers["cells somata points"].units} == {"pixel"}
    assert viewer.layers.units is not None  # one unit: napari's bar does not go unitless
    assert widget._status.value == (
        "2 somata. 'cells' has no voxel size (scale 1, no unit), so its voxels were taken as "
        "1 µm; if they are not, set its scale in µm (console: viewer.layers['cells'].scale = …) "
        "and run again."
    )
