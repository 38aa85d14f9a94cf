"""The npe2 plugin: manifest, sample data in a real viewer, readers and writers."""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.io import ResultsBundle, Volume, read_table, read_volume, write_tiff
from napari_mesoscale.napari._sample_data import sample_path


def test_manifest_is_valid_and_discovered():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-mesoscale")
    assert manifest.name == "napari-mesoscale"
    keys = {sample.key for sample in manifest.contributions.sample_data}
    assert {"calcium", "em", "connectome"} <= keys
    for command in manifest.contributions.commands:
        assert command.python_name, command.id
        module_name, attribute = command.python_name.split(":")
        module = __import__(module_name, fromlist=[attribute])
        assert callable(getattr(module, attribute)), command.python_name


def _assert_not_blank(viewer) -> np.ndarray:
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 10
    rgb = shot[..., :3].astype(float)
    assert rgb.std() > 5, "screenshot is blank"
    return shot


@pytest.mark.viewer
def test_calcium_sample_opens_with_micrometre_scale(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "calcium")
    layer = viewer.layers["calcium movie"]
    movie = read_volume(sample_path("calcium"))
    assert layer.data.shape == movie.data.shape and layer.ndim == 4
    assert tuple(layer.scale) == (1.0, *movie.voxel_size)
    viewer.dims.set_point(0, layer.data.shape[0] // 2)
    _assert_not_blank(viewer)


@pytest.mark.viewer
def test_em_sample_opens_with_truth_labels(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "em")
    em = viewer.layers["EM volume"]
    labels = viewer.layers["EM somata (truth)"]
    assert em.data.ndim == 3 and labels.data.shape == em.data.shape
    assert tuple(em.scale) == tuple(read_volume(sample_path("em")).voxel_size)
    assert labels.data.max() > 0
    _assert_not_blank(viewer)


@pytest.mark.viewer
def test_connectome_sample_opens_with_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "connectome")
    neurons = viewer.layers["neurons (truth)"]
    table = read_table(sample_path("neurons"))
    np.testing.assert_allclose(neurons.data, table[["z", "y", "x"]].to_numpy())
    assert {"motif", "instance"} <= set(neurons.features.columns)
    assert len(np.unique(neurons.face_color, axis=0)) >= 4  # one colour per motif
    edges = viewer.layers["connections"]
    synapses = read_table(sample_path("synapses"))
    assert len(edges.data) == len(synapses.groupby(["pre", "post"]))
    assert tuple(viewer.layers["somata (truth)"].scale) == tuple(
        read_volume(sample_path("somata")).voxel_size
    )
    viewer.dims.ndisplay = 3
    _assert_not_blank(viewer)


@pytest.mark.viewer
def test_volume_reader_gives_scale_and_labels(make_napari_viewer, tmp_path):
    labels = np.zeros((4, 10, 10), dtype=np.int32)
    labels[1:3, 2:5, 2:5] = 1
    path = write_tiff(tmp_path / "roi_labels.tif", labels, voxel_size=(3, 0.5, 0.5))
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(str(path), plugin="napari-mesoscale")
    assert isinstance(layer, napari.layers.Labels)
    assert tuple(layer.scale) == (3.0, 0.5, 0.5)


@pytest.mark.viewer
def test_bundle_reader_restores_layers(make_napari_viewer, tmp_path):
    labels = np.zeros((4, 10, 10), dtype=np.int32)
    labels[1:3, 2:5, 2:5] = 7
    bundle = ResultsBundle(
        tables={"cells": pd.DataFrame({"z": [2.0], "y": [1.5], "x": [2.0], "motif": [1]})},
        volumes={"domains": Volume(labels, "ZYX", (2.0, 0.5, 0.5))},
        metadata={
            "layers": [
                {"name": "domains", "type": "labels", "source": "volumes/domains"},
                {
                    "name": "cells",
                    "type": "points",
                    "source": "tables/cells",
                    "kwargs": {"size": 3.0},
                },
            ]
        },
    )
    path = bundle.save(tmp_path / "run")
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-mesoscale")
    assert tuple(viewer.layers["domains"].scale) == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(np.asarray(viewer.layers["domains"].data), labels)
    assert viewer.layers["cells"].features["motif"].tolist() == [1]


@pytest.mark.viewer
def test_writers_save_points_in_micrometres_and_labels_with_voxel_size(
    make_napari_viewer, tmp_path
):
    viewer = make_napari_viewer(show=True)
    points = viewer.add_points(
        np.array([[1.0, 2.0, 3.0]]), scale=(2.0, 1.0, 1.0), features=pd.DataFrame({"snr": [4.5]})
    )
    csv = tmp_path / "cells.csv"
    points.save(str(csv), plugin="napari-mesoscale")
    table = read_table(csv)
    assert table[["z", "y", "x"]].to_numpy().tolist() == [[2.0, 2.0, 3.0]]
    assert table["snr"].tolist() == [4.5]

    labels = viewer.add_labels(np.eye(5, dtype=np.int32)[None].repeat(3, 0), scale=(4, 1, 1))
    tif = tmp_path / "labels.tif"
    labels.save(str(tif), plugin="napari-mesoscale")
    volume = read_volume(tif)
    assert volume.voxel_size == (4.0, 1.0, 1.0)
    np.testing.assert_array_equal(volume.data, labels.data)


@pytest.mark.viewer
def test_saving_all_layers_as_a_bundle_restores_them(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    viewer.open_sample("napari-mesoscale", "calcium")
    before = {layer.name: layer for layer in viewer.layers}
    [path] = viewer.layers.save(str(tmp_path / "session.mesoscale"), plugin="napari-mesoscale")
    restored = make_napari_viewer()
    restored.open(path, plugin="napari-mesoscale")
    assert [layer.name for layer in restored.layers] == list(before)
    for name, layer in before.items():
        again = restored.layers[name]
        assert type(again) is type(layer), name
        np.testing.assert_allclose(again.scale, layer.scale, err_msg=name)
        np.testing.assert_allclose(np.asarray(again.data), np.asarray(layer.data), err_msg=name)
    cells = restored.layers["neurons (truth)"]
    np.testing.assert_array_equal(
        cells.features["motif"], before["neurons (truth)"].features["motif"]
    )
    np.testing.assert_allclose(
        cells.metadata["activity"], before["neurons (truth)"].metadata["activity"]
    )
