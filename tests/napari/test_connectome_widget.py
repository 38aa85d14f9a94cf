"""napari side of the connectome: layer conversion, the table reader, the widget in a viewer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_mesoscale.connectome import build_connectome
from napari_mesoscale.napari._connectome_layers import (
    connectome_layers,
    strongest_edges,
    transmission_vectors,
)
from napari_mesoscale.napari._connectome_reader import get_table_reader, table_kind
from napari_mesoscale.synth import make_toy_brain


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(200, n_frames=200, render=None, em=False, seed=1)


def test_strongest_edges_per_neuron():
    adjacency = sp.csr_matrix(
        np.array([[0, 5, -7, 1], [2, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=float)
    )
    chosen = strongest_edges(adjacency, 2)
    rows = np.repeat(np.arange(4), np.diff(adjacency.indptr))[chosen]
    cols = adjacency.indices[chosen]
    pairs = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert {(0, 2), (0, 1), (1, 0)} <= pairs and (0, 3) not in pairs
    assert (rows == 3).sum() == 2 and len(pairs) == 5
    with pytest.raises(ValueError, match="≥ 1"):
        strongest_edges(adjacency, 0)


def test_layers_carry_micrometres_features_and_counts(brain):
    build = build_connectome(
        brain.neurons, brain.synapses, activity=brain.activity, grid_diameter=40.0
    )
    layers = {
        attrs["name"].split(" ")[0]: (data, attrs, kind)
        for data, attrs, kind in connectome_layers(build, per_neuron=2, max_edges=150)
    }
    assert set(layers) == {"neurons", "synapses", "edges", "receptive", "transmission"}
    data, attrs, kind = layers["neurons"]
    assert kind == "points" and "scale" not in attrs  # µm positions, scale 1
    np.testing.assert_allclose(data, brain.positions)
    features = attrs["features"]
    for column in ("degree", "information_flow", "weighted_degree", "motif", "neighbourhood_2"):
        assert column in features
    np.testing.assert_array_equal(features["motif"], brain.neurons["motif"])
    data, attrs, kind = layers["edges"]
    assert kind == "vectors" and data.shape == (150, 2, 3)
    assert attrs["metadata"]["n_shown"] == 150
    assert attrs["metadata"]["n_edges_total"] == build.connectome.n_edges
    assert "150 of" in attrs["name"]
    # every shown vector joins a real pre -> post pair
    ends = data[:, 0] + data[:, 1]
    index = {tuple(p): i for i, p in enumerate(np.round(brain.positions, 6))}
    pre = [index[tuple(p)] for p in np.round(data[:, 0], 6)]
    post = [index[tuple(p)] for p in np.round(ends, 6)]
    assert (np.asarray(brain.adjacency[pre, post]).ravel() != 0).all()
    data, attrs, kind = layers["receptive"]
    assert attrs["visible"] is False and attrs["size"] == 40.0
    np.testing.assert_allclose(data, build.grid.centers)
    data, attrs, kind = layers["transmission"]
    assert data.shape[1:] == (2, 4) and attrs["scale"][0] == build.transmission.bin_size
    assert data.shape[0] == build.transmission.edge_ids.size  # fewer than the per-bin cap


def test_transmission_layer_caps_edges_per_bin(brain):
    build = build_connectome(brain.neurons, brain.synapses, activity=brain.activity)
    data, attrs, _ = transmission_vectors(build.transmission, build.connectome, max_per_bin=3)
    sizes = np.minimum(build.transmission.sizes(), 3)
    assert data.shape[0] == sizes.sum()
    assert attrs["metadata"]["n_transmitting_total"] == build.transmission.edge_ids.size
    capped, attrs, _ = transmission_vectors(
        build.transmission, build.connectome, max_per_bin=3, max_total=2 * build.transmission.n_bins
    )
    assert capped.shape[0] == np.minimum(build.transmission.sizes(), 2).sum()
    assert attrs["metadata"]["max_per_bin"] == 2


def test_table_reader_recognises_neurons_and_synapses(brain, tmp_path):
    brain.neurons.to_csv(tmp_path / "neurons.csv", index=False)
    brain.synapses.to_parquet(tmp_path / "synapses.parquet", index=False)
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "other.csv", index=False)
    assert table_kind(tmp_path / "neurons.csv") == "neurons"
    assert table_kind(tmp_path / "synapses.parquet") == "synapses"
    assert get_table_reader(str(tmp_path / "other.csv")) is None
    assert get_table_reader(str(tmp_path / "missing.csv")) is None
    reader = get_table_reader(str(tmp_path / "neurons.csv"))
    ((data, attrs, kind),) = reader(str(tmp_path / "neurons.csv"))
    np.testing.assert_allclose(data, brain.positions)
    assert "motif" in attrs["features"] and kind == "points"
    ((data, attrs, kind),) = reader(str(tmp_path / "synapses.parquet"))
    assert data.shape == (len(brain.synapses), 3) and "pre" in attrs["features"]


@pytest.mark.viewer
def test_widget_builds_layers_from_table_files(make_napari_viewer, qtbot, brain, tmp_path):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    brain.neurons.to_csv(tmp_path / "neurons.csv", index=False)
    brain.synapses.to_csv(tmp_path / "synapses.csv", index=False)
    np.save(tmp_path / "activity.npy", brain.activity)
    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._neurons_file.value = tmp_path / "neurons.csv"
    widget._synapses_file.value = tmp_path / "synapses.csv"
    widget._activity_file.value = tmp_path / "activity.npy"
    widget._diameter.value = 40.0
    widget._bin_size.value = 5
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    names = [layer.name for layer in viewer.layers]
    neurons = viewer.layers["neurons"]
    np.testing.assert_allclose(neurons.data, brain.positions)
    np.testing.assert_allclose(neurons.scale, 1.0)
    structure = brain.adjacency != 0
    expected_degree = np.diff(structure.tocsr().indptr) + np.diff(structure.tocsc().indptr)
    np.testing.assert_array_equal(neurons.features["degree"], expected_degree)
    assert "motif" in neurons.features
    grid = next(layer for layer in viewer.layers if layer.name.startswith("receptive"))
    assert not grid.visible
    edges = next(layer for layer in viewer.layers if layer.name.startswith("edges"))
    assert edges.metadata["n_shown"] == len(edges.data) > 0
    transmission = next(layer for layer in viewer.layers if layer.name.startswith("transmission"))
    assert transmission.ndim == 4
    assert viewer.dims.ndisplay == 3
    # the time slider selects the edges of the current bin, on each of its frames (world time
    # in frames; without a movie layer the slider steps by whole bins)
    result = widget.last_result.transmission
    busy = int(np.argmax(result.sizes()))
    for frame in (busy * result.bin_size, (busy + 1) * result.bin_size - 1):
        viewer.dims.set_point(0, frame)
        qtbot.waitUntil(lambda: len(transmission._view_data) == result.sizes()[busy], timeout=5_000)
        shown = np.asarray(transmission._view_indices)
        assert (transmission.features["bin"].to_numpy()[shown] == busy).all()
    assert "build_connectome(" in widget.last_call
    assert len(names) == 5
    # a second run replaces the layers instead of piling them up
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert len(viewer.layers) == 5


@pytest.mark.viewer
def test_widget_from_points_layer_and_bad_input(make_napari_viewer, qtbot, brain):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    # opened through the plugin manifest, as the Plugins menu does
    _, widget = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Build connectome")
    assert isinstance(widget, ConnectomeWidget)
    widget.start()  # no neurons table chosen
    assert widget.last_error is not None and "neurons table" in widget.last_error
    features = brain.neurons.drop(columns=["z", "y", "x"])
    viewer.add_points(
        brain.positions / 2,
        scale=(2, 2, 2),
        features=features,
        name="cells",
        metadata={"activity": brain.activity},
    )
    viewer.add_points(
        brain.synapses[["z", "y", "x"]].to_numpy(),
        name="syn",
        features=brain.synapses[["pre", "post"]],
    )
    widget._source.value = "Points layer"
    widget._neurons_layer.value = "cells"
    widget._synapses_layer.value = "syn"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    build = widget.last_result
    np.testing.assert_allclose(build.connectome.positions, brain.positions)  # world µm
    assert (build.connectome.adjacency != brain.adjacency).nnz == 0
    assert build.transmission is not None  # activity came from the layer's metadata
    widget._synapses_layer.value = "cells"  # no pre/post features
    widget.start()
    assert "needs 'pre' and 'post'" in widget.last_error


@pytest.mark.viewer
def test_widget_defaults_are_the_connectome_params(make_napari_viewer):
    from napari_mesoscale.connectome import ConnectomeParams
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    widget = ConnectomeWidget(make_napari_viewer())
    defaults = ConnectomeParams.defaults()
    defaults.pop("grid_stride")  # not a control: half the diameter unless given in code
    assert widget.params() == defaults
    assert widget._hops.max == ConnectomeParams.specs()["hops"].maximum


@pytest.mark.viewer
def test_widget_reports_a_truncated_activity_file(make_napari_viewer, brain, tmp_path):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    brain.neurons.to_csv(tmp_path / "neurons.csv", index=False)
    np.save(tmp_path / "whole.npy", brain.activity)
    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._neurons_file.value = tmp_path / "neurons.csv"
    for name, content in (("empty", b""), ("cut", (tmp_path / "whole.npy").read_bytes()[:500])):
        activity = tmp_path / f"{name}.npy"
        activity.write_bytes(content)
        widget._activity_file.value = activity
        widget._run_button.native.click()  # the user's click: no traceback out of the slot
        assert not widget.is_running
        assert str(activity) in widget.last_error, widget.last_error
        assert ("empty" if name == "empty" else "truncated") in widget.last_error
        assert widget._status.value.startswith("Error: activity file")
