"""I/O round trips and bad input for volumes, tables and results bundles."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.io import (
    ResultsBundle,
    Volume,
    check_voxel_size,
    load_bundle,
    read_table,
    read_volume,
    restore_values,
    store_values,
    write_ome_zarr,
    write_table,
    write_tiff,
)


@pytest.fixture
def movie() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 4000, size=(6, 5, 12, 14), dtype=np.uint16)


def test_tiff_round_trip_keeps_voxel_size_frame_rate_and_metadata(tmp_path, movie):
    path = write_tiff(
        tmp_path / "m.ome.tif",
        movie,
        voxel_size=(2.5, 0.8, 0.7),
        axes="TZYX",
        frame_rate=4.0,
        metadata={"seed": 3},
    )
    volume = read_volume(path)
    assert volume.axes == "TZYX"
    assert volume.voxel_size == (2.5, 0.8, 0.7)
    assert volume.frame_rate == pytest.approx(4.0)
    assert volume.metadata == {"seed": 3}
    np.testing.assert_array_equal(volume.data, movie)


def test_tiff_is_lazy_on_request_and_identical(tmp_path, movie):
    path = write_tiff(tmp_path / "m.tif", movie, voxel_size=(2, 1, 1), axes="TZYX")
    volume = read_volume(path, lazy=True)
    assert isinstance(volume.data, da.Array)
    np.testing.assert_array_equal(volume.data[2].compute(), movie[2])


def test_tiff_with_same_uuid_is_byte_identical(tmp_path, movie):
    a = write_tiff(tmp_path / "a.tif", movie, voxel_size=(1, 1, 1), axes="TZYX", uuid="fixed")
    b = write_tiff(tmp_path / "b.tif", movie, voxel_size=(1, 1, 1), axes="TZYX", uuid="fixed")
    assert a.read_bytes() == b.read_bytes()


def test_tiff_writes_dask_arrays_without_loading_them(tmp_path, movie):
    lazy = da.from_array(movie, chunks=(1, 5, 12, 14))
    path = write_tiff(tmp_path / "lazy.tif", lazy, voxel_size=(2, 1, 1), axes="TZYX")
    np.testing.assert_array_equal(read_volume(path).data, movie)


@pytest.mark.parametrize(("axes", "shape"), [("YX", (12, 14)), ("TYX", (5, 12, 14))])
def test_tiff_of_a_plane_keeps_its_yx_pixel_size(tmp_path, axes, shape):
    """A (Y, X) plane or (T, Y, X) plane movie has no z: write_tiff refused its (y, x) pixel
    size ("must have 3 values") and the reader dropped one written without a z size."""
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    frame_rate = 4.0 if "T" in axes else None
    path = write_tiff(
        tmp_path / "plane.ome.tif", data, voxel_size=(0.8, 0.7), axes=axes, frame_rate=frame_rate
    )
    volume = read_volume(path)
    assert volume.axes == axes
    assert volume.voxel_size == (0.8, 0.7)
    assert volume.frame_rate == (pytest.approx(4.0) if frame_rate else None)
    np.testing.assert_array_equal(volume.data, data)
    with pytest.raises(ValueError, match="voxel_size must have 3 values"):
        write_tiff(tmp_path / "v.tif", data[None], voxel_size=(0.8, 0.7), axes="Z" + axes)


def test_ome_zarr_round_trip_is_lazy(tmp_path, movie):
    path = write_ome_zarr(
        tmp_path / "m.zarr", movie, voxel_size=(3, 1, 1), axes="TZYX", frame_rate=2.0
    )
    volume = read_volume(path, lazy=True)
    assert isinstance(volume.data, da.Array)
    assert volume.data.chunks[0] == (1,) * movie.shape[0]
    assert volume.voxel_size == (3.0, 1.0, 1.0)
    assert volume.frame_rate == pytest.approx(2.0)
    np.testing.assert_array_equal(volume.data.compute(), movie)


def test_plain_zarr_array_reads_with_its_attributes(tmp_path, movie):
    import zarr

    array = zarr.open_array(
        str(tmp_path / "plain.zarr"),
        mode="w",
        shape=movie.shape,
        dtype=movie.dtype,
        chunks=(1, 5, 12, 14),
    )
    array[...] = movie
    array.attrs["voxel_size"] = [2, 1, 1]
    volume = read_volume(tmp_path / "plain.zarr", lazy=True)
    assert volume.axes == "TZYX" and volume.voxel_size == (2.0, 1.0, 1.0)
    np.testing.assert_array_equal(volume.data.compute(), movie)


def test_layer_scale_is_micrometres_in_space_and_frames_in_time():
    from napari_mesoscale.napari._layers import volume_layer

    volume = Volume(np.zeros((2, 3, 4, 5)), "TZYX", (2.0, 0.5, 0.5), frame_rate=10.0)
    _, attributes, layer_type = volume_layer(volume, "movie")
    assert layer_type == "image"
    assert attributes["scale"] == (1.0, 2.0, 0.5, 0.5)
    assert attributes["metadata"]["frame_rate_hz"] == 10.0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(tmp_path, suffix):
    table = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "z": [0.5, 1.0, 2.0],
            "y": [1.0, 2, 3],
            "x": [3.0, 2, 1],
            "type": ["a", "b", "a"],
        }
    )
    path = write_table(table, tmp_path / f"neurons{suffix}")
    pd.testing.assert_frame_equal(read_table(path, required=["id", "z"]), table)


def test_bundle_round_trip_and_atomic_replacement(tmp_path, movie):
    labels = (movie[0] > 2000).astype(np.int32)
    bundle = ResultsBundle(
        tables={"neurons": pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0], "motif": [2]})},
        arrays={"traces": np.arange(12.0).reshape(3, 4)},
        volumes={"roi_labels": Volume(labels, "ZYX", (2.0, 1.0, 1.0))},
        metadata={"seed": 7, "n_filters": 4},
    )
    path = bundle.save(tmp_path / "run")
    assert path.name == "run.mesoscale"
    restored = load_bundle(path)
    pd.testing.assert_frame_equal(restored.tables["neurons"], bundle.tables["neurons"])
    np.testing.assert_array_equal(restored.arrays["traces"], bundle.arrays["traces"])
    np.testing.assert_array_equal(restored.volumes["roi_labels"].data.compute(), labels)
    assert restored.volumes["roi_labels"].voxel_size == (2.0, 1.0, 1.0)
    assert restored.metadata == {"seed": 7, "n_filters": 4}

    bundle.metadata["seed"] = 8
    bundle.save(path)
    assert load_bundle(path).metadata["seed"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.mesoscale"]


def test_bundle_keeps_each_kind_of_metadata_value(tmp_path):
    """Layer metadata round trip: arrays as .npy (not JSON lists), sparse as COO arrays, frames
    as tables with their index, plain values as JSON; objects are named, not dropped silently."""
    import json

    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    activity = rng.standard_normal((200, 100)).astype(np.float32)
    by_domain = pd.DataFrame(
        {"median": [0.5, 0.7], "sem": [0.1, 0.2]}, index=pd.Index([3, 5], name="domain")
    )
    values = {
        "activity": activity,
        "labels": np.array(["a", "bc"]),
        "scalar_array": np.array(2.5),
        "adjacency": sp.csr_matrix(rng.poisson(0.1, (30, 30))),
        "coo_array": sp.coo_array(np.eye(4, dtype=np.int8)),
        "by_domain": by_domain,
        "plain_table": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        "roi_labels": "somata (truth)",
        "voxel_size_um": (3.0, 1.5, 1.5),
        "frame_rate_hz": 5.0,
        "seed": np.int64(7),
        "flag": np.bool_(True),
        "missing": None,
        "nan": float("nan"),
        "colored_by": {"column": "motif", "limits": (0.0, 1.0)},
        "shape": [20, 48, 48],
        "odd key / with spaces": 1,
        "fit": object(),
        "objects": np.array([object()], dtype=object),
        "nested_array": {"x": np.zeros(3)},
        "mixed_table": pd.DataFrame({"a": [1, "x"]}),  # Parquet cannot write mixed objects
        5: "non-string key",
    }
    bundle = ResultsBundle()
    description, left_out = store_values(bundle, "cells.metadata", values)
    assert left_out == ["fit", "objects", "nested_array", "mixed_table", "5"]
    bundle.metadata["cells"] = description
    path = bundle.save(tmp_path / "run")
    assert len(json.dumps(json.loads((path / "bundle.json").read_text()))) < 5_000
    restored = restore_values(load_bundle(path), load_bundle(path).metadata["cells"])

    assert set(restored) == set(values) - {"fit", "objects", "nested_array", "mixed_table", 5}
    for key in ("activity", "labels", "scalar_array"):
        np.testing.assert_array_equal(restored[key], values[key])
        assert restored[key].dtype == values[key].dtype
    assert restored["adjacency"].format == "csr" and sp.isspmatrix(restored["adjacency"])
    assert (restored["adjacency"] != values["adjacency"]).nnz == 0
    assert restored["coo_array"].format == "coo" and not sp.isspmatrix(restored["coo_array"])
    np.testing.assert_array_equal(restored["coo_array"].toarray(), np.eye(4))
    pd.testing.assert_frame_equal(restored["by_domain"], by_domain)
    pd.testing.assert_frame_equal(restored["plain_table"], values["plain_table"])
    assert np.isnan(restored.pop("nan"))
    plain = ("roi_labels", "voxel_size_um", "frame_rate_hz", "seed", "flag", "missing",
             "colored_by", "shape", "odd key / with spaces")
    assert {k: restored[k] for k in plain} == {k: values[k] for k in plain}
    assert isinstance(restored["voxel_size_um"], tuple)
    assert isinstance(restored["colored_by"]["limits"], tuple)
    assert type(restored["seed"]) is int and type(restored["flag"]) is bool


def test_failed_bundle_write_leaves_the_old_bundle(tmp_path):
    path = ResultsBundle(metadata={"version": "old"}).save(tmp_path / "run")
    broken = ResultsBundle(tables={"bad name!": pd.DataFrame({"a": [1]})})
    with pytest.raises(ValueError, match="bad name"):
        broken.save(path)
    assert load_bundle(path).metadata == {"version": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.mesoscale"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        read_volume(tmp_path / "absent.tif")
    with pytest.raises(FileNotFoundError, match="table not found"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(FileNotFoundError, match="No such results bundle"):
        load_bundle(tmp_path / "absent.mesoscale")


def test_unknown_formats_are_refused_with_the_supported_list(tmp_path):
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="Unknown volume format.*TIFF"):
        read_volume(tmp_path / "movie.avi")
    (tmp_path / "neurons.xlsx").write_bytes(b"PK")
    with pytest.raises(ValueError, match="unknown table format"):
        read_table(tmp_path / "neurons.xlsx")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a napari-mesoscale results bundle"):
        load_bundle(tmp_path / "folder")


def test_missing_columns_are_named(tmp_path):
    path = write_table(pd.DataFrame({"id": [1], "z": [0.0]}), tmp_path / "n.csv")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['y', 'x'\]"):
        read_table(path, required=["id", "z", "y", "x"])


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1, 1, 1, 1), (1.0, -1.0, 1.0), (np.nan, 1, 1), None])
def test_wrong_voxel_size_is_refused(bad):
    with pytest.raises(ValueError, match="voxel_size"):
        check_voxel_size(bad)


def test_wrong_dimensions_are_refused(tmp_path, movie):
    with pytest.raises(ValueError, match="axes 'ZYX' do not describe an array with 4"):
        write_tiff(tmp_path / "m.tif", movie, voxel_size=(1, 1, 1), axes="ZYX")
    with pytest.raises(ValueError, match="voxel_size must have 3 values"):
        write_ome_zarr(tmp_path / "m.zarr", movie, voxel_size=(1, 1), axes="TZYX")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_files_and_folders_get_the_usual_modes(tmp_path):
    """Files written atomically were 0600 and folders 0700 (mkstemp / mkdtemp modes): a CSV,
    an OME-TIFF or a results folder written on a shared server was unreadable to colleagues."""
    from napari_mesoscale.io import write_ome_zarr, write_table, write_tiff

    previous = os.umask(0o022)
    try:
        table = write_table(pd.DataFrame({"id": [1], "z": [0.0], "y": [0.0], "x": [0.0]}),
                            tmp_path / "cells.csv")
        tiff = write_tiff(tmp_path / "m.ome.tif", np.zeros((2, 4, 4), "uint8"),
                          voxel_size=(1.0, 1.0, 1.0))
        store = write_ome_zarr(tmp_path / "m.ome.zarr", np.zeros((2, 4, 4), "uint8"),
                               voxel_size=(1.0, 1.0, 1.0))
    finally:
        os.umask(previous)
    for path in (table, tiff):
        assert (Path(path).stat().st_mode & 0o777) == 0o644, path
    assert (Path(store).stat().st_mode & 0o777) == 0o755
