"""The plugin's readers meet damaged files with one line naming the file and the problem.

A damaged TIFF or Zarr opened with the volume reader, and a ``.mesoscale`` folder whose
``bundle.json`` is missing or broken, raise a ``ValueError`` saying so (napari shows it),
never an internal ``IndexError`` / ``KeyError`` or napari's bare "refused the file".
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_mesoscale.io import ResultsBundle
from napari_mesoscale.napari._reader import get_bundle_reader, get_volume_reader, read_bundle_layers


def _bad_tiff(folder):
    path = folder / "bad.tif"
    path.write_bytes(b"II*\x00garbage")  # a TIFF signature, then no image
    return path


def _bad_zarr(folder):
    path = folder / "bad.zarr"
    path.mkdir()
    (path / ".zarray").write_text("{}")  # array metadata without its fields
    return path


@pytest.mark.parametrize("make", [_bad_tiff, _bad_zarr], ids=["tiff", "zarr"])
def test_volume_reader_says_a_damaged_volume_is_damaged(tmp_path, make):
    path = make(tmp_path)
    reader = get_volume_reader(str(path))
    assert reader is not None
    with pytest.raises(ValueError, match="is damaged") as caught:
        reader(str(path))
    assert path.name in str(caught.value)


def _empty_bundle(folder):
    path = folder / "empty.mesoscale"
    path.mkdir()
    return path, "has no bundle.json"


def _broken_bundle(folder):
    path = folder / "broken.mesoscale"
    path.mkdir()
    (path / "bundle.json").write_text("{not json")
    return path, "bundle.json is damaged"


def _bundle_missing_array(folder):
    path = ResultsBundle(arrays={"edges": np.ones((2, 2, 3))}).save(folder / "cut.mesoscale")
    (path / "arrays" / "edges.npy").unlink()
    return path, "arrays/edges.npy, listed in its bundle.json, is missing"


def _bundle_bad_layer_entry(folder):
    bundle = ResultsBundle(metadata={"layers": [{"name": "cells", "type": "points"}]})
    return bundle.save(folder / "entry.mesoscale"), "entry of layer 'cells' is damaged"


@pytest.mark.parametrize(
    "make",
    [_empty_bundle, _broken_bundle, _bundle_missing_array, _bundle_bad_layer_entry],
    ids=["empty", "bundle-json-not-json", "missing-array", "layer-entry-without-source"],
)
def test_bundle_reader_claims_a_damaged_bundle_and_says_what_is_damaged(tmp_path, make):
    path, problem = make(tmp_path)
    for given in (str(path), f"{path}/"):  # napari passes folders with or without the slash
        reader = get_bundle_reader(given)
        assert reader is read_bundle_layers, given
    with pytest.raises(ValueError, match=re.escape(problem)):
        reader(str(path))


def test_bundle_reader_leaves_other_folders_to_other_readers(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "readme.txt").write_text("x")
    (tmp_path / "file.mesoscale").write_text("not a folder")
    assert get_bundle_reader(str(tmp_path / "plain")) is None
    assert get_bundle_reader(str(tmp_path / "file.mesoscale")) is None
    assert get_bundle_reader([str(tmp_path / "plain")]) is None


@pytest.mark.viewer
def test_opening_a_damaged_bundle_shows_what_is_damaged(make_napari_viewer, tmp_path):
    path, problem = _broken_bundle(tmp_path)
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match=re.escape(problem)):
        viewer.open(str(path), plugin="napari-mesoscale")
    assert len(viewer.layers) == 0
