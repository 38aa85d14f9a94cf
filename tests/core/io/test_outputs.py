"""Outputs never clobber data: CLI overwrite rules, folder swap under kill -9, one-line errors,
and lazy reading measured in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.cli import main
from napari_mesoscale.io.outputs import output_folder

SRC = str(Path(__file__).resolve().parents[3] / "src")


def _project(tmp: Path, n: int = 40, t: int = 120) -> Path:
    rng = np.random.default_rng(0)
    proj = tmp / "proj"
    proj.mkdir()
    np.save(proj / "act.npy", rng.normal(size=(t, n)).astype(np.float32))
    table = pd.DataFrame(rng.uniform(0, 100, (n, 3)), columns=["z", "y", "x"])
    table.insert(0, "id", np.arange(n))
    table.to_csv(proj / "neurons.csv", index=False)
    return proj


def test_fit_refuses_to_write_over_its_input(tmp_path, capsys):
    proj = _project(tmp_path)
    before = (proj / "neurons.csv").read_bytes()
    argv = ["fit", str(proj / "act.npy"), "--neurons", str(proj / "neurons.csv"), "-o", str(proj)]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, *extra, "--epochs", "1", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "would replace the input" in err and "Traceback" not in err
    assert (proj / "neurons.csv").read_bytes() == before


def test_existing_outputs_need_overwrite(tmp_path, capsys):
    proj = _project(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    argv = ["fit", str(proj / "act.npy"), "--positions", str(proj / "neurons.csv")]
    assert main([*argv, "-o", str(out), "--epochs", "1", "--quiet"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "user data"
    existing_file = tmp_path / "file.txt"
    existing_file.write_text("x")
    assert main([*argv, "-o", str(existing_file), "--epochs", "1", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_segment_csv_needs_overwrite(tmp_path, capsys):
    movie = np.random.default_rng(0).normal(size=(10, 32, 32)).astype(np.float32)
    np.save(tmp_path / "m.npy", movie)
    (tmp_path / "cells.csv").write_text("precious\n")
    argv = ["segment", str(tmp_path / "m.npy"), "--voxel-size", "1", "1", "--quiet"]
    assert main([*argv, "--csv", str(tmp_path / "cells.csv")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "cells.csv").read_text() == "precious\n"
    assert main([*argv, "--csv", str(tmp_path / "m.npy"), "--overwrite"]) == 2
    assert "would replace the input" in capsys.readouterr().err


_SEGMENT = ["segment", "--voxel-size", "1", "1", "--frame-rate", "10"]


def _bad_movies(tmp: Path) -> dict[str, Path]:
    """A good movie and damaged copies: a corrupt Zarr chunk, a truncated TIFF, bad OME axes."""
    import json

    from napari_mesoscale.io import write_ome_zarr, write_tiff

    movie = np.random.default_rng(0).normal(100, 5, (20, 32, 32)).astype(np.float32)
    np.save(tmp / "mov.npy", movie)
    corrupt = write_ome_zarr(
        tmp / "c.zarr", movie, voxel_size=(1, 1, 1), axes="TYX", chunks=(5, 16, 16)
    )
    chunk = next(p for p in sorted((corrupt / "0").rglob("*")) if p.is_file() and p.name[0] != ".")
    chunk.write_bytes(b"garbage" * 10)
    tiff = write_tiff(
        tmp / "t.tif", movie.astype(np.uint16), voxel_size=(1, 1, 1), axes="TYX", compression=None
    )
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 3])
    axes = write_ome_zarr(
        tmp / "a.zarr", movie, voxel_size=(1, 1, 1), axes="TYX", chunks=(5, 16, 16)
    )
    attrs = json.loads((axes / ".zattrs").read_text())
    attrs["multiscales"][0]["axes"] = attrs["multiscales"][0]["axes"][:2]
    (axes / ".zattrs").write_text(json.dumps(attrs))
    return {"mov": tmp / "mov.npy", "zc": corrupt, "tif": tiff, "axes": axes}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["fit", "{a}", "--positions", "{p}", "-o", "{o}", "--device", "tpu"], "not a torch"),
        (["fit", "{a}", "--positions", "{p}", "-o", "{o}", "--batch-frames", "0"], "batch_frames"),
        (["evaluate", "{a}", "--fit", "{junk}"], "not a readable saved fit"),
        (["evaluate", "{a}", "--fit", "{empty}"], "is empty"),
        (["evaluate", "{a}", "--fit", "{list}"], "holds a list"),
        (["evaluate", "{a}", "--fit", "{keys}"], "not a complete"),
        (["fit", "{a}", "--positions", "{p}", "-o", "{o}", "--device", "cuda"], "cuda"),
        (["fit", "{a}", "--positions", "{p}", "-o", "{p}", "--overwrite"], "replace the input"),
        ([*_SEGMENT, "{zc}", "--csv", "{csv}"], "cannot be decoded"),
        ([*_SEGMENT, "{tif}", "--csv", "{csv}"], "damaged"),
        ([*_SEGMENT, "{axes}", "--csv", "{csv}"], "names 2 axes"),
        ([*_SEGMENT, "{mov}", "--csv", "{csv}", "--threshold", "-1"], "threshold=-1"),
    ],
    ids=[
        "device-tpu",
        "batch-frames-0",
        "evaluate-junk-fit",
        "evaluate-empty-fit",
        "evaluate-fit-holding-a-list",
        "evaluate-fit-missing-keys",
        "device-cuda-on-cpu-torch",
        "fit-output-is-an-input",
        "segment-corrupt-zarr-chunk",
        "segment-truncated-tiff",
        "segment-ome-axes-mismatch",
        "segment-negative-threshold",
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, fragment):
    import torch

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proj = _project(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"junk" * 50)
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"format": "napari-mesoscale-fit"}, tmp_path / "keys.pt")
    names = {
        "a": proj / "act.npy",
        "p": proj / "neurons.csv",
        "o": tmp_path / "o",
        "junk": tmp_path / "junk.pt",
        "empty": tmp_path / "empty.pt",
        "list": tmp_path / "list.pt",
        "keys": tmp_path / "keys.pt",
        "csv": tmp_path / "cells.csv",
        **_bad_movies(tmp_path),
    }
    assert main([a.format(**names) for a in argv] + (["--quiet"] if argv[0] == "fit" else [])) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_output_folder_swap_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with output_folder(out) as staging:
        (staging / "a.txt").write_text("old a")
        (staging / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError), output_folder(out, overwrite=True) as staging:
        (staging / "a.txt").write_text("new a")
        raise RuntimeError("crash mid-save")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "old a", "b.txt": "old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporaries left


_KILL_MID_SAVE = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import napari_mesoscale.model.cli as fit_cli
from napari_mesoscale.cli import main
calls = []
real = fit_cli._write_csv
def dying_write(table, path):
    calls.append(path)
    if len(calls) == 2:  # fit.pt and neurons.csv written, domains.csv not yet
        os.kill(os.getpid(), signal.SIGKILL)
    real(table, path)
fit_cli._write_csv = dying_write
sys.exit(main(sys.argv[1:]))
"""


def test_fit_output_survives_kill_during_save(tmp_path):
    proj = _project(tmp_path)
    out = tmp_path / "run"
    argv = ["fit", str(proj / "act.npy"), "--positions", str(proj / "neurons.csv"), "-o"]
    argv += [str(out), "--epochs", "1", "--quiet", "--device", "cpu"]
    assert main([*argv, "--seed", "0"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    script = tmp_path / "die.py"
    script.write_text(textwrap.dedent(_KILL_MID_SAVE))
    env = {"PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script), *argv, "--seed", "1", "--overwrite"],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # the old results, all of them, unchanged


_LAZY_MEMORY = """
import sys
import numpy as np
from napari_mesoscale.io import read_volume
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
import dask.array
start = peak_kib()
volume = read_volume(sys.argv[1], lazy=True)
total = float(volume.data.mean().compute(scheduler="synchronous"))
print(total, start, peak_kib())
"""


def test_lazy_npy_does_not_load_the_file(tmp_path):
    path = tmp_path / "big.npy"
    frames = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(64, 512, 512, 8))
    frames[:] = 1.0  # 512 MiB
    del frames
    script = tmp_path / "lazy.py"
    script.write_text(_LAZY_MEMORY)
    done = subprocess.run(
        [sys.executable, str(script), str(path)],
        env={"PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    mean, start, peak = done.stdout.split()
    assert float(mean) == 1.0
    growth_mib = (int(peak) - int(start)) / 1024
    # one 64 MiB chunk and its reduction at a time (the old reader copied all 512 MiB)
    assert growth_mib < 200, f"peak grew by {growth_mib:.0f} MiB reading a 512 MiB file"
