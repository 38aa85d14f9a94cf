"""The plugin's readers meet damaged files with one line naming the file and the problem.

A damaged TIFF or Zarr opened with the volume reader, and a ``.mesoscale`` folder whose
``bundle.json`` is missing or broken, raise a ``ValueError`` saying so (napari shows it),
never an internal ``IndexError`` / ``KeyError`` or napari's bare "refused the file".
"""

from __future__ import annotations

import pytest

from napari_mesoscale.napari._reader import get_volume_reader


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
