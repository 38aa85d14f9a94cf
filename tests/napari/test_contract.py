"""The metadata contract between widgets: typed fields, checked shapes, one layer picker."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from napari_mesoscale.napari import _contract


def test_write_then_read_gives_the_typed_fields_and_keeps_notes():
    from napari.layers import Points

    layer = Points(np.zeros((3, 3)), metadata={"n_shown": 3})
    activity = np.arange(12.0).reshape(4, 3)  # (T, N)
    _contract.write(layer, activity=activity, adjacency=sp.eye(3, format="csr"), roi_labels="r")
    meta = _contract.read(layer)
    np.testing.assert_array_equal(meta.activity, activity)
    assert meta.adjacency.shape == (3, 3) and meta.roi_labels == "r"
    assert meta.notes == {"n_shown": 3}  # undeclared keys survive, untyped
    assert layer.metadata["n_shown"] == 3
    assert set(meta.arrays()) == {"activity"}


def test_layer_data_tuples_use_the_same_contract():
    attributes = {"name": "cells", "metadata": {}}
    _contract.write(attributes, stimulus=np.zeros(5), frame_rate_hz=2)
    meta = _contract.read(attributes)
    assert meta.frame_rate_hz == 2.0 and meta.stimulus.shape == (5,)


def test_wrong_shapes_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="'activity'"):
        _contract.metadata_dict(activity=np.zeros(5))
    with pytest.raises(ValueError, match="'adjacency'"):
        _contract.metadata_dict(adjacency=sp.csr_matrix((2, 3)))


def test_layer_names_pick_by_type_dimensions_and_metadata():
    from napari.components import ViewerModel
    from napari.layers import Image, Labels, Layer, Points

    viewer = ViewerModel()
    viewer.add_image(np.zeros((4, 5, 6)), name="volume")
    viewer.add_image(np.zeros((5, 6)), name="plane")
    viewer.add_labels(np.zeros((4, 5, 6), dtype=int), name="rois")
    viewer.add_points(np.zeros((2, 3)), name="cells", metadata={"stimulus": np.zeros(3)})
    assert _contract.layer_names(viewer, Image) == ["volume", "plane"]
    assert _contract.layer_names(viewer, Image, ndims=(3,)) == ["volume"]
    assert _contract.layer_names(viewer, Labels) == ["rois"]
    assert _contract.layer_names(viewer, Points) == ["cells"]
    assert _contract.layer_names(viewer, Layer, having=("stimulus",)) == ["cells"]
