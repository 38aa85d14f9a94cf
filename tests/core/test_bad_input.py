"""Catalogue of bad inputs: each is built here, handed to the API, and must be refused with a
clear message (error type + a fragment of the message). Add every new bad input found.

Security cases also check that nothing ran: a crafted pickle would create a marker file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_mesoscale.io import ResultsBundle, load_bundle, read_volume, write_ome_zarr
from napari_mesoscale.model import MesoscaleFit, fit_mesoscale

torch.set_num_threads(1)

MARKER = "pwned.marker"


class _RunsCode:
    """Unpickling this runs ``open(marker, "w")``: proof of code execution if it happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_torch_file(path: Path, extra: dict | None = None) -> Path:
    torch.save(
        {
            "format": "napari-mesoscale-fit",
            "payload": _RunsCode(path.parent / MARKER),
            **(extra or {}),
        },
        path,
    )
    return path


# ---------------------------------------------------------------- builders of bad inputs
def _fit_evil(tmp):
    MesoscaleFit.load(_evil_torch_file(tmp / "fit.pt"))


def _detector_evil(tmp):
    from napari_mesoscale.segment import SomaDetector

    torch.save(
        {
            "format": "napari-mesoscale-soma-detector",
            "state_dict": {},
            "config": _RunsCode(tmp / MARKER),
        },
        tmp / "det.pt",
    )
    SomaDetector.load(tmp / "det.pt")


def _fit_empty(tmp):
    (tmp / "fit.pt").write_bytes(b"")
    MesoscaleFit.load(tmp / "fit.pt")


def _fit_junk(tmp):
    (tmp / "fit.pt").write_bytes(b"junk" * 100)
    MesoscaleFit.load(tmp / "fit.pt")


def _detector_text_file(tmp):  # was refused as holding objects that "could run code"
    from napari_mesoscale.segment import SomaDetector

    (tmp / "det.pt").write_text("a text file, not a detector\n" * 20)
    SomaDetector.load(tmp / "det.pt")


def _fit_truncated(tmp):
    torch.save({"x": torch.zeros(10_000)}, tmp / "fit.pt")
    raw = (tmp / "fit.pt").read_bytes()
    (tmp / "fit.pt").write_bytes(raw[: len(raw) // 2])
    MesoscaleFit.load(tmp / "fit.pt")


def _fit_list(tmp):
    torch.save([1, 2, 3], tmp / "fit.pt")
    MesoscaleFit.load(tmp / "fit.pt")


def _fit_missing_keys(tmp):
    torch.save({"format": "napari-mesoscale-fit", "format_version": 1}, tmp / "fit.pt")
    MesoscaleFit.load(tmp / "fit.pt")


def _bundle(tmp, contents, **files) -> Path:
    folder = tmp / "run.mesoscale"
    folder.mkdir()
    header = {"format": "napari-mesoscale-bundle", "version": 1, "metadata": {}}
    if contents is not None:
        header["contents"] = contents
    (folder / "bundle.json").write_text(json.dumps(header))
    return folder


def _bundle_table_traversal(tmp):
    victim = tmp / "outside_dir"
    victim.mkdir()
    pd.DataFrame({"secret": [1]}).to_parquet(victim / "victim.parquet")
    folder = _bundle(tmp, {"tables": ["../../outside_dir/victim"]})
    load_bundle(folder)


def _bundle_linked_table(tmp):
    secret = tmp / "secret.parquet"
    pd.DataFrame({"secret": [1]}).to_parquet(secret)
    folder = _bundle(tmp, {"tables": ["t"]})
    (folder / "tables").mkdir()
    (folder / "tables" / "t.parquet").symlink_to(secret)
    load_bundle(folder)


def _bundle_linked_files(tmp):
    secret = tmp / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("secret")
    folder = _bundle(tmp, {"files": ["model"]})
    (folder / "files").mkdir()
    (folder / "files" / "model").symlink_to(secret, target_is_directory=True)
    load_bundle(folder)


def _bundle_link_inside_files(tmp):
    secret = tmp / "secret.txt"
    secret.write_text("secret")
    folder = _bundle(tmp, {"files": ["model"]})
    (folder / "files" / "model").mkdir(parents=True)
    (folder / "files" / "model" / "key.txt").symlink_to(secret)
    load_bundle(folder)


def _bundle_save_escaping_link(tmp):
    secret = tmp / "secret.txt"
    secret.write_text("secret")
    source = tmp / "attachment"
    source.mkdir()
    (source / "key.txt").symlink_to(secret)
    ResultsBundle(files={"model": source}).save(tmp / "out.mesoscale")


def _bundle_no_contents(tmp):
    load_bundle(_bundle(tmp, None))


def _bundle_empty_folder(tmp):
    (tmp / "run.mesoscale").mkdir()
    load_bundle(tmp / "run.mesoscale")


def _bundle_json_not_json(tmp):
    (tmp / "run.mesoscale").mkdir()
    (tmp / "run.mesoscale" / "bundle.json").write_text("{not json")
    load_bundle(tmp / "run.mesoscale")


def _bundle_array_truncated(tmp):
    path = ResultsBundle(arrays={"activity": np.ones((50, 4))}).save(tmp / "run")
    array = path / "arrays" / "activity.npy"
    array.write_bytes(array.read_bytes()[:200])
    load_bundle(path)


def _bundle_table_missing(tmp):
    path = ResultsBundle(tables={"cells": pd.DataFrame({"z": [1.0]})}).save(tmp / "run")
    (path / "tables" / "cells.parquet").unlink()
    load_bundle(path)


def _bundle_bad_version(tmp):
    folder = _bundle(tmp, {})
    (folder / "bundle.json").write_text(
        json.dumps({"format": "napari-mesoscale-bundle", "version": "x", "contents": {}})
    )
    load_bundle(folder)


def _bundle_metadata_names_missing_array(tmp):
    from napari_mesoscale.io import restore_values

    path = ResultsBundle(metadata={"cells": {"arrays": {"activity": "cells.activity"}}}).save(
        tmp / "run"
    )
    bundle = load_bundle(path)
    restore_values(bundle, bundle.metadata["cells"])


def _positions(n, spread=100.0, seed=0):
    return np.random.default_rng(seed).uniform(0, spread, (n, 3))


def _rf_tiny(tmp):
    x = np.random.default_rng(0).normal(size=(60, 30)).astype(np.float32)
    fit_mesoscale(x, _positions(30), rf_diameter=1e-6, epochs=1)


def _batch_zero(tmp):
    x = np.random.default_rng(0).normal(size=(60, 30)).astype(np.float32)
    fit_mesoscale(x, _positions(30), epochs=1, batch_frames=0)


def _device_tpu(tmp):
    x = np.random.default_rng(0).normal(size=(60, 30)).astype(np.float32)
    fit_mesoscale(x, _positions(30), epochs=1, device="tpu")


def _device_unavailable(tmp):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    x = np.random.default_rng(0).normal(size=(60, 30)).astype(np.float32)
    fit_mesoscale(x, _positions(30), epochs=1, device="cuda")


def _movie():
    return np.random.default_rng(0).normal(size=(20, 4, 48, 48)).astype(np.float32)


def _cell_huge(tmp):
    from napari_mesoscale.segment import detect_point_sources

    detect_point_sources(_movie(), voxel_size=(2.0, 1.0, 1.0), cell_diameter=1000)


def _cell_astronomic(tmp):
    from napari_mesoscale.segment import detect_point_sources

    detect_point_sources(_movie(), voxel_size=(2.0, 1.0, 1.0), cell_diameter=1e6)


def _ome(tmp, data=None, scale=None, axes=None) -> Path:
    data = np.ones((4, 8, 8), np.uint8) if data is None else data
    path = write_ome_zarr(tmp / "v.zarr", data, voxel_size=(1, 1, 1), chunks=(2, 4, 4))
    attrs_file = path / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    image = attrs["multiscales"][0]
    if scale is not None:
        image["datasets"][0]["coordinateTransformations"][0]["scale"] = scale
    if axes is not None:
        image["axes"] = axes
    attrs_file.write_text(json.dumps(attrs))
    return path


def _ome_negative_scale(tmp):
    read_volume(_ome(tmp, scale=[-2, 0, 1]))


def _ome_scale_length(tmp):
    read_volume(_ome(tmp, scale=[1, 1]))


def _ome_axes_mismatch(tmp):
    read_volume(_ome(tmp, axes=[{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]))


def _ome_missing_chunks(tmp):
    path = _ome(tmp)
    chunks = sorted(p for p in (path / "0").rglob("*") if p.is_file() and p.name[0] != ".")
    for chunk in chunks[: len(chunks) // 2]:
        chunk.unlink()
    read_volume(path)


def _npy_pickled(tmp):
    np.save(tmp / "x.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    read_volume(tmp / "x.npy", lazy=True)


def _npy_5d(tmp):
    np.save(tmp / "x.npy", np.zeros((1, 1, 1, 1, 1)))
    read_volume(tmp / "x.npy")


def _tiff_truncated(tmp):
    from napari_mesoscale.io import write_tiff

    path = write_tiff(
        tmp / "v.tif", np.ones((4, 32, 32), np.uint16), voxel_size=(1, 1, 1), compression=None
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    np.asarray(read_volume(path, lazy=False).data)


def _tiff_header_only(tmp):
    (tmp / "v.tif").write_bytes(b"II*\x00garbage")  # a TIFF signature, then no image
    read_volume(tmp / "v.tif")


def _tiff_empty(tmp):
    (tmp / "v.tif").write_bytes(b"")
    read_volume(tmp / "v.tif")


def _zarr_array_metadata_empty(tmp):
    (tmp / "v.zarr").mkdir()
    (tmp / "v.zarr" / ".zarray").write_text("{}")
    read_volume(tmp / "v.zarr")


def _zarr_metadata_not_json(tmp):
    (tmp / "v.zarr").mkdir()
    (tmp / "v.zarr" / "zarr.json").write_text("{not json")
    read_volume(tmp / "v.zarr")


def _zarr_empty_folder(tmp):
    (tmp / "v.zarr").mkdir()
    read_volume(tmp / "v.zarr")


def _ome_datasets_empty(tmp):
    path = _ome(tmp)
    attributes = json.loads((path / ".zattrs").read_text())
    attributes["multiscales"][0]["datasets"] = []
    (path / ".zattrs").write_text(json.dumps(attributes))
    read_volume(path)


def _zarr_corrupt_chunk(tmp, lazy=True):
    path = _ome(tmp)
    chunk = next(p for p in sorted((path / "0").rglob("*")) if p.is_file() and p.name[0] != ".")
    chunk.write_bytes(b"garbage" * 10)
    volume = read_volume(path, lazy=lazy)
    np.asarray(volume.data)


def _registration_identical_points(tmp):
    from napari_mesoscale.connectome import register_point_sources

    register_point_sources(np.ones((10, 3)), _positions(10))


def _transform_identical_source(tmp):
    from napari_mesoscale.connectome import fit_transform

    fit_transform(np.full((10, 3), 5.0), _positions(10))


def _threshold_negative(tmp):
    from napari_mesoscale.segment import detect_point_sources

    detect_point_sources(_movie(), voxel_size=(2.0, 1.0, 1.0), cell_diameter=8, threshold=-1)


def _soma_threshold_negative(tmp):
    from napari_mesoscale.segment import detect_somata_em

    volume = np.random.default_rng(0).normal(size=(8, 48, 48)).astype(np.float32)
    detect_somata_em(volume, voxel_size=(1.0, 1.0, 1.0), threshold=-1)


def _adjacency_nan(tmp):
    x = np.random.default_rng(0).normal(size=(60, 30)).astype(np.float32)
    adjacency = np.zeros((30, 30))
    adjacency[0, 1] = adjacency[2, 3] = 1.0
    adjacency[4, 5] = np.nan
    fit_mesoscale(x, _positions(30), connectome=adjacency, edge_init="ridge", epochs=1)


CASES = [
    # (id, builder, error type, message fragment)
    ("fit-pickle-runs-code", _fit_evil, ValueError, "could run code"),
    ("detector-pickle-runs-code", _detector_evil, ValueError, "could run code"),
    ("fit-empty-file", _fit_empty, ValueError, "is empty"),
    ("fit-junk-bytes", _fit_junk, ValueError, "not a readable saved fit"),
    ("detector-text-file", _detector_text_file, ValueError, "no file written by torch.save"),
    ("fit-truncated", _fit_truncated, ValueError, "not a readable saved fit"),
    ("fit-holds-a-list", _fit_list, ValueError, "holds a list"),
    ("fit-missing-keys", _fit_missing_keys, ValueError, "not a complete"),
    ("bundle-table-path-traversal", _bundle_table_traversal, ValueError, "refused"),
    ("bundle-table-link-outside", _bundle_linked_table, ValueError, "outside the bundle"),
    ("bundle-files-link-outside", _bundle_linked_files, ValueError, "outside the bundle"),
    ("bundle-link-inside-files", _bundle_link_inside_files, ValueError, "outside"),
    ("bundle-save-escaping-link", _bundle_save_escaping_link, ValueError, "outside"),
    ("bundle-without-contents", _bundle_no_contents, ValueError, "no 'contents'"),
    ("bundle-version-not-int", _bundle_bad_version, ValueError, "integer versions"),
    ("bundle-empty-folder", _bundle_empty_folder, ValueError, "it has no bundle.json"),
    ("bundle-json-not-json", _bundle_json_not_json, ValueError, "bundle.json is damaged"),
    ("bundle-array-truncated", _bundle_array_truncated, ValueError,
     "arrays/activity.npy, listed in its bundle.json, is damaged"),
    ("bundle-table-missing", _bundle_table_missing, ValueError,
     "tables/cells.parquet, listed in its bundle.json, is missing"),
    ("bundle-metadata-names-missing-array", _bundle_metadata_names_missing_array, ValueError,
     "holds no such member"),
    ("rf-diameter-tiny", _rf_tiny, ValueError, "rf_diameter"),
    ("batch-frames-zero", _batch_zero, ValueError, "batch_frames"),
    ("device-unknown", _device_tpu, ValueError, "not a torch device"),
    ("device-unavailable", _device_unavailable, ValueError, "not available"),
    ("cell-diameter-larger-than-movie", _cell_huge, ValueError, "cell_diameter=1000"),
    ("cell-diameter-astronomic", _cell_astronomic, ValueError, "cell_diameter"),
    ("ome-negative-zero-scale", _ome_negative_scale, ValueError, "positive and finite"),
    ("ome-scale-length", _ome_scale_length, ValueError, "has 2 values"),
    ("ome-axes-mismatch", _ome_axes_mismatch, ValueError, "names 2 axes"),
    ("ome-missing-chunks", _ome_missing_chunks, ValueError, "chunks of the image are missing"),
    ("npy-object-pickle", _npy_pickled, ValueError, "not a readable .npy"),
    ("npy-5d", _npy_5d, ValueError, "5-D arrays"),
    ("tiff-truncated", _tiff_truncated, ValueError, "damaged"),
    ("tiff-header-only", _tiff_header_only, ValueError, "v.tif is damaged"),
    ("tiff-empty", _tiff_empty, ValueError, "v.tif is damaged"),
    ("zarr-array-metadata-empty", _zarr_array_metadata_empty, ValueError, "v.zarr is damaged"),
    ("zarr-metadata-not-json", _zarr_metadata_not_json, ValueError, "v.zarr is damaged"),
    ("zarr-empty-folder", _zarr_empty_folder, ValueError, "v.zarr is damaged"),
    ("ome-datasets-empty", _ome_datasets_empty, ValueError, "'datasets' metadata"),
    ("zarr-corrupt-chunk-lazy", _zarr_corrupt_chunk, ValueError, "cannot be decoded"),
    (
        "zarr-corrupt-chunk-eager",
        lambda tmp: _zarr_corrupt_chunk(tmp, lazy=False),
        ValueError,
        "cannot be decoded",
    ),
    ("registration-identical-points", _registration_identical_points, ValueError, "moving: all 10"),
    ("transform-identical-source", _transform_identical_source, ValueError, "degenerate"),
    ("detection-threshold-negative", _threshold_negative, ValueError, "threshold=-1"),
    ("soma-threshold-negative", _soma_threshold_negative, ValueError, "threshold=-1"),
    ("adjacency-nan-weights", _adjacency_nan, ValueError, "1 NaN or infinite weights"),
]


@pytest.mark.parametrize(
    ("build", "error", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused(tmp_path, build, error, fragment):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        build(work)
    assert not (work / MARKER).exists(), "a crafted file ran code"


# ---------------------------------------------------------------- resume and checkpoints
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    folder = tmp_path_factory.mktemp("ck")
    kw = dict(seed=2, device="cpu", batch_frames=32, rollout=2, n_filters=4)
    fit_mesoscale(brain.activity, brain.positions, epochs=1, checkpoint_dir=folder, **kw)
    return brain, folder, kw


def _resume(checkpoint, tmp_path, **changes):
    brain, folder, kw = checkpoint
    copy = tmp_path / "ck"
    shutil.copytree(folder, copy)
    return fit_mesoscale(
        brain.activity,
        brain.positions,
        epochs=2,
        checkpoint_dir=copy,
        resume=True,
        **{**kw, **changes},
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"n_filters": 5}, "n_filters: checkpoint 4, now 5"),
        ({"freeze_edges": True}, "freeze_edges: checkpoint False, now True"),
    ],
    ids=["n-filters", "freeze-edges"],
)
def test_resume_refuses_other_settings(checkpoint, tmp_path, changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        _resume(checkpoint, tmp_path, **changes)


def test_resume_refuses_code_in_checkpoint_and_accepts_a_real_one(checkpoint, tmp_path):
    brain, folder, kw = checkpoint
    evil = tmp_path / "evil"
    evil.mkdir()
    _evil_torch_file(evil / "checkpoint.pt")
    with pytest.raises(ValueError, match="could run code"):
        fit_mesoscale(
            brain.activity, brain.positions, epochs=2, checkpoint_dir=evil, resume=True, **kw
        )
    assert not (evil / MARKER).exists()
    # a stale temporary from a killed writer is cleared once the run writes again
    stale = tmp_path / "ck" / ".checkpoint.pt.killed123"
    shutil.copytree(folder, tmp_path / "ck")
    stale.write_bytes(b"partial")
    fit = fit_mesoscale(
        brain.activity, brain.positions, epochs=2, checkpoint_dir=tmp_path / "ck", resume=True, **kw
    )
    assert len(fit.history) == 2 and not stale.exists()


def test_resume_clears_dead_writers_temporaries_even_without_training(checkpoint, tmp_path):
    import subprocess
    import sys

    brain, folder, kw = checkpoint
    copy = tmp_path / "ck"
    shutil.copytree(folder, copy)
    writer = subprocess.Popen([sys.executable, "-c", "pass"])
    writer.wait()  # a writer that is gone (killed mid-save)
    dead = copy / f".checkpoint.pt.{writer.pid}.tmpabc"
    live = copy / f".checkpoint.pt.{os.getppid()}.tmpdef"  # a running process's write
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    # epochs=1 is what the checkpoint holds: nothing more to train, no checkpoint written
    fit = fit_mesoscale(
        brain.activity, brain.positions, epochs=1, checkpoint_dir=copy, resume=True, **kw
    )
    assert len(fit.history) == 1
    assert not dead.exists() and live.exists()


def test_bundle_round_trip_still_copies_inside_links(tmp_path):
    source = tmp_path / "attachment"
    source.mkdir()
    (source / "a.txt").write_text("a")
    (source / "b.txt").symlink_to(source / "a.txt")
    path = ResultsBundle(files={"model": source}).save(tmp_path / "out")
    again = load_bundle(path)
    assert (again.files["model"] / "b.txt").read_text() == "a"
    assert os.path.realpath(again.files["model"]).startswith(os.path.realpath(path))
