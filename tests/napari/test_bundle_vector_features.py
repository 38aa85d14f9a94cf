"""Results bundles keep the features of Vectors layers (connections, edges, transmission):
pre, post, synapses, sign, bin, first_frame, frequency come back after save and reopen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.io import ResultsBundle
from napari_mesoscale.napari._reader import read_bundle_layers
from napari_mesoscale.napari._writer import write_bundle


def _edges(n: int = 6) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 50, (n, 2, 3))
    features = pd.DataFrame(
        {
            "pre": np.arange(n),
            "post": np.arange(n)[::-1],
            "synapses": rng.integers(1, 9, n),
            "sign": np.where(np.arange(n) % 2, -1.0, 1.0),
            "name": [f"AVA{i}" for i in range(n)],  # string neuron ids are kept too
            "fit": [object() for _ in range(n)],  # Python objects are not
        }
    )
    return data, features


def test_write_bundle_keeps_vector_features(tmp_path):
    data, features = _edges()
    meta = {"name": "edges (top 3/neuron)", "features": features, "edge_width": 1.0}
    [path] = write_bundle(str(tmp_path / "run.mesoscale"), [(data, meta, "vectors")])
    [(restored, attributes, layer_type)] = read_bundle_layers(path)
    assert layer_type == "vectors"
    np.testing.assert_allclose(restored, data)
    kept = features.drop(columns=["fit"])
    pd.testing.assert_frame_equal(attributes["features"], kept)


def test_bundle_without_vector_features_still_opens(tmp_path):
    data, _ = _edges()
    spec = {"name": "edges", "type": "vectors", "source": "arrays/edges", "kwargs": {}}
    path = ResultsBundle(arrays={"edges": data}, metadata={"layers": [spec]}).save(
        tmp_path / "old.mesoscale"
    )
    [(restored, attributes, _)] = read_bundle_layers(str(path))
    np.testing.assert_allclose(restored, data)
    assert "features" not in attributes


@pytest.mark.viewer
def test_saved_vectors_layer_reopens_with_its_features(make_napari_viewer, tmp_path):
    data, features = _edges()
    viewer = make_napari_viewer()
    transmission = np.zeros((len(data), 2, 4))
    transmission[:, :, 1:] = data
    transmission[:, 0, 0] = np.arange(len(data)) % 3
    bins = pd.DataFrame(
        {"pre": features["pre"], "post": features["post"], "bin": transmission[:, 0, 0],
         "first_frame": transmission[:, 0, 0] * 10, "frequency": np.linspace(0, 1, len(data))}
    )
    viewer.add_vectors(data, features=features.drop(columns=["fit"]), name="edges")
    viewer.add_vectors(transmission, features=bins, name="transmission", scale=(10, 1, 1, 1))
    [path] = viewer.layers.save(str(tmp_path / "session.mesoscale"), plugin="napari-mesoscale")
    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-mesoscale")
    for layer in viewer.layers:
        again = reopened.layers[layer.name]
        pd.testing.assert_frame_equal(
            again.features.reset_index(drop=True), layer.features.reset_index(drop=True)
        )
    np.testing.assert_allclose(reopened.layers["transmission"].scale, (10, 1, 1, 1))
