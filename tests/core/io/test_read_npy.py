"""``read_npy``: a ``.npy`` file that is not one (empty, cut short, pickled, text, ``.npz``) is
refused with a message naming the file and the problem, for every reader that uses it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.connectome.cli import read_activity
from napari_mesoscale.io import read_matrix, read_npy, read_positions


def _damaged(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.arange(100.0).reshape(10, 10))
    whole = good.read_bytes()
    files = {
        "empty": (b"", "empty (0 bytes)"),
        "cut_data": (whole[: len(whole) // 2], "truncated"),
        "cut_header": (whole[:40], "truncated"),
        "text": (b"hello world", "not a NumPy array file"),
    }
    paths = {}
    for name, (content, problem) in files.items():
        path = tmp_path / f"{name}.npy"
        path.write_bytes(content)
        paths[name] = (path, problem)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    paths["objects"] = (pickled, "Python objects")
    archive = tmp_path / "archive.npz"
    np.savez(archive, a=np.ones(3))
    renamed = archive.rename(tmp_path / "archive.npy")
    paths["archive"] = (renamed, ".npz archive")
    return paths


@pytest.mark.parametrize("mmap", [False, True])
def test_read_npy_names_the_file_and_the_problem(tmp_path, mmap):
    for path, problem in _damaged(tmp_path).values():
        with pytest.raises(ValueError) as caught:
            read_npy(path, "activity", mmap=mmap)
        message = str(caught.value)
        assert str(path) in message and problem in message, message
        assert message.startswith("activity file") and "numpy.save" in message


def test_read_npy_reads_a_good_file_and_refuses_a_missing_one(tmp_path):
    np.save(tmp_path / "good.npy", np.eye(3))
    np.testing.assert_array_equal(read_npy(tmp_path / "good.npy"), np.eye(3))
    mapped = read_npy(tmp_path / "good.npy", mmap=True)
    assert isinstance(mapped, np.memmap)
    with pytest.raises(FileNotFoundError, match="predictions file not found"):
        read_npy(tmp_path / "missing.npy", "predictions")


def test_activity_matrix_and_positions_readers_refuse_an_empty_npy(tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    for reader in (read_activity, read_matrix, read_positions):
        with pytest.raises(ValueError, match="empty .0 bytes."):
            reader(empty)
