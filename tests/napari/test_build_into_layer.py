"""Build connectome from a Points layer writes into that layer (brief viewer-r, item 1).

Built from a user's layer named ``neurons``, the widget added its result as a second layer
``neurons_2`` of the same points. Each test failed on the code before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.viewer


def _tables(tmp_path, n=6):
    rng = np.random.default_rng(1)
    neurons = pd.DataFrame({"id": np.arange(10, 10 + n), "type": ["a", "b"] * (n // 2)})
    neurons[["z", "y", "x"]] = rng.uniform(0, 40, (n, 3))
    pre = np.array([10, 11, 12, 13, 14, 15, 10, 12])
    post = np.array([11, 12, 13, 14, 15, 10, 13, 15])
    synapses = pd.DataFrame({"pre": pre, "post": post})
    synapses[["z", "y", "x"]] = rng.uniform(0, 40, (len(pre), 3))
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    synapses.to_csv(tmp_path / "synapses.csv", index=False)
    return neurons, synapses


def _build(widget, qtbot):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error


def test_build_from_a_users_neurons_layer_updates_it(make_napari_viewer, qtbot, tmp_path):
    """neurons.csv and synapses.csv opened, Build connectome: no ``neurons_2``; the opened
    ``neurons`` layer carries the node features and the connectome, its points, scale and
    colours unchanged; a rebuild with other options rewrites them in the same layer."""
    from napari_mesoscale.connectome.build import build_connectome
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    neurons, synapses = _tables(tmp_path)
    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._view_3d.value = False
    viewer.open(tmp_path / "neurons.csv", plugin="napari-mesoscale")
    viewer.open(tmp_path / "synapses.csv", plugin="napari-mesoscale")
    layer = viewer.layers["neurons"]
    data, scale = np.array(layer.data), np.array(layer.scale)
    colours = np.array(layer.face_color)
    assert (widget._source.value, widget._neurons_layer.value) == ("Points layer", "neurons")
    _build(widget, qtbot)

    names = [item.name for item in viewer.layers]
    assert not any(name.startswith("neurons_") for name in names), names
    assert viewer.layers["neurons"] is layer and names.count("neurons") == 1
    expected = build_connectome(neurons, synapses)
    np.testing.assert_array_equal(layer.features["id"], neurons["id"])
    np.testing.assert_array_equal(layer.features["type"], neurons["type"])  # its own columns
    np.testing.assert_array_equal(layer.features["out_degree"], expected.features["out_degree"])
    assert "neighbourhood_2" in layer.features
    connectome = layer.metadata["connectome"]
    assert abs(connectome.adjacency - expected.connectome.adjacency).sum() == 0
    np.testing.assert_array_equal(layer.data, data)
    np.testing.assert_array_equal(layer.scale, scale)
    np.testing.assert_array_equal(layer.face_color, colours)
    assert "written into 'neurons'" in widget._status.value

    widget._hops.value = 3  # a rebuild: the same layer, the earlier neighbourhood column gone
    _build(widget, qtbot)
    assert [item.name for item in viewer.layers] == names
    assert "neighbourhood_3" in layer.features and "neighbourhood_2" not in layer.features
    assert layer.metadata["connectome"] is widget.last_result.connectome

    from napari_mesoscale.napari._fit_widget import FitWidget

    assert FitWidget(viewer).connectome.value == "neurons"  # Fit finds the connectome there


def test_build_from_points_in_voxels_keeps_their_scale(make_napari_viewer, qtbot, tmp_path):
    """Neurons as voxel indices with a scale in µm: the build reads their world positions and
    writes its features into them; their data and scale stay (the earlier second layer was in
    µm with scale 1, drawn over them)."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    neurons, synapses = _tables(tmp_path)
    voxel = np.array([3.0, 1.5, 1.5])
    viewer = make_napari_viewer()
    layer = viewer.add_points(
        neurons[["z", "y", "x"]].to_numpy() / voxel, scale=voxel, name="neurons",
        features=neurons[["id"]],
    )
    viewer.open(tmp_path / "synapses.csv", plugin="napari-mesoscale")
    widget = ConnectomeWidget(viewer)
    widget._view_3d.value = False
    assert widget._neurons_layer.value == "neurons"
    _build(widget, qtbot)
    names = [item.name for item in viewer.layers]
    assert names[:2] == ["neurons", "synapses"] and len(names) == 3, names
    assert names[2].startswith("edges")
    np.testing.assert_allclose(layer.scale, voxel)
    np.testing.assert_allclose(layer.data * voxel, neurons[["z", "y", "x"]].to_numpy())
    np.testing.assert_allclose(
        layer.metadata["connectome"].positions, neurons[["z", "y", "x"]].to_numpy()
    )
    assert layer.features["degree"].sum() == 2 * len(synapses)


def test_rebuild_from_the_layers_an_earlier_build_added(make_napari_viewer, qtbot, tmp_path):
    """Built from table files, then rebuilt from the neurons and synapses layers that build
    added: both stay (the rebuild's inputs; the synapses layer was removed as the earlier
    build's output while the status said the build's synapses were those of 'synapses'), the
    neurons get the new node features; a build from the files again replaces them."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    _tables(tmp_path)
    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._view_3d.value = False
    widget._neurons_file.value = tmp_path / "neurons.csv"
    widget._synapses_file.value = tmp_path / "synapses.csv"
    _build(widget, qtbot)
    first = {layer.name: layer for layer in viewer.layers}
    assert {"neurons", "synapses"} <= set(first)
    widget._source.value = "Points layer"
    widget._neurons_layer.value = "neurons"
    widget._synapses_layer.value = "synapses"
    widget._hops.value = 3
    _build(widget, qtbot)
    names = [layer.name for layer in viewer.layers]
    assert viewer.layers["neurons"] is first["neurons"], names
    assert viewer.layers["synapses"] is first["synapses"], names
    assert len(names) == len(first) and "neighbourhood_3" in first["neurons"].features
    assert "'synapses': not added again" in widget._status.value
    widget._source.value = "table files"
    _build(widget, qtbot)
    assert first["neurons"] not in viewer.layers and first["synapses"] not in viewer.layers
    assert sorted(layer.name for layer in viewer.layers) == sorted(names)
