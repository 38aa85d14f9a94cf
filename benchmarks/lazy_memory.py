"""Peak memory of ``napari-mesoscale segment`` on movies larger than memory (issue 18).

Target: the lazy path through the command line stays under 2 GiB resident for any input
size. A calcium movie (T, Z, Y, X) float32 of 8×256×256 voxels per frame (2 MiB) is written
as a ``.npy`` file and, optionally, as an OME-Zarr; only T grows with the size asked for, so
the outputs (traces, T × cells) stay small beside the movie. The movie is a block of frames
(noise plus Gaussian cells with their own calcium-like activity) written over and over: cheap
to make on a small machine, and every slab the detector reads is real data.

Every run is a separate process under ``/usr/bin/time``; its peak resident set (VmHWM, file
pages that are mapped at the time included) is what is reported. Input files are deleted
after each run unless ``--keep``.

Usage::

    python benchmarks/lazy_memory.py --sizes-gb 2 8 20 --formats npy zarr

Writes ``benchmarks/results/lazy_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "lazy_memory.json"
FRAME = (8, 256, 256)  # Z, Y, X voxels of one frame
VOXEL_UM = (4.0, 1.0, 1.0)
BLOCK_FRAMES = 100
TARGET_GIB = 2.0


def _block(rng: np.random.Generator, n_cells: int = 120) -> np.ndarray:
    """BLOCK_FRAMES frames: baseline, shot noise and cells (8 µm) with random transients."""
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in FRAME), indexing="ij")
    movie = rng.normal(100.0, 4.0, (BLOCK_FRAMES, *FRAME)).astype(np.float32)
    for _ in range(n_cells):
        cz, cy, cx = (rng.uniform(1, s - 1) for s in FRAME)
        blob = np.exp(
            -(((z - cz) * VOXEL_UM[0]) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * 3.0**2)
        )
        box = blob > 0.01
        spikes = (rng.random(BLOCK_FRAMES) < 0.05).astype(np.float32)
        activity = 30.0 + 60.0 * np.convolve(spikes, np.exp(-np.arange(20) / 5.0))[:BLOCK_FRAMES]
        movie[:, box] += activity[:, None] * blob[box][None, :]
    return movie


def _write_npy(path: Path, n_frames: int, block: np.ndarray) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_frames, *FRAME))
    for start in range(0, n_frames, BLOCK_FRAMES):
        stop = min(start + BLOCK_FRAMES, n_frames)
        out[start:stop] = block[: stop - start]
        out.flush()
    del out


def _write_zarr(npy: Path, path: Path) -> None:
    from napari_mesoscale.io import read_volume, write_ome_zarr

    movie = read_volume(npy, lazy=True).data
    write_ome_zarr(path, movie, voxel_size=VOXEL_UM, axes="TZYX", chunks=(16, *FRAME))


def _segment(movie: Path, work: Path, timeout_s: float) -> dict:
    """Run the CLI under /usr/bin/time; peak RSS (MiB), wall and CPU seconds, exit status."""
    code = "import sys; from napari_mesoscale.cli import main; sys.exit(main())"
    args = [str(movie), "--voxel-size", *map(str, VOXEL_UM), "--cell-diameter", "8"]
    args += ["--frame-rate", "10", "--csv", str(work / "sources.csv"), "--quiet", "--overwrite"]
    stats = work / "time.txt"
    command = ["/usr/bin/time", "-o", str(stats), "-f", "%M %e %U %S"]
    command += [sys.executable, "-c", code, "segment", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout_s:.0f} s"}
    fields = stats.read_text().split()[-4:]
    n_sources = None
    if (work / "sources.csv").exists():
        n_sources = sum(1 for _ in open(work / "sources.csv")) - 1
    return {
        "status": done.returncode,
        "stderr_tail": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
        "peak_rss_mib": int(fields[0]) / 1024.0,
        "wall_s": float(fields[1]),
        "cpu_s": float(fields[2]) + float(fields[3]),
        "n_sources": n_sources,
    }


def _one_size(size_gb: float, formats: list[str], args: argparse.Namespace, block) -> list[dict]:
    n_frames = max(BLOCK_FRAMES, int(size_gb * 1e9 / (np.prod(FRAME) * 4)))
    rows = []
    work = Path(tempfile.mkdtemp(prefix="lazy_memory.", dir=args.dir))
    try:
        npy = work / "movie.npy"
        started = time.perf_counter()
        _write_npy(npy, n_frames, block)
        made = {"npy": time.perf_counter() - started}
        if "zarr" in formats:
            started = time.perf_counter()
            _write_zarr(npy, work / "movie.zarr")
            made["zarr"] = time.perf_counter() - started
        for kind in formats:
            movie = npy if kind == "npy" else work / "movie.zarr"
            if kind == "zarr" and "npy" not in formats:
                npy.unlink(missing_ok=True)
            result = _segment(movie, work, args.timeout_s)
            row = {"format": kind, "size_gb": npy.stat().st_size / 1e9 if npy.exists() else None}
            row.update(n_frames=n_frames, frame=list(FRAME), write_s=made[kind], **result)
            row["load_after"] = os.getloadavg()
            print(row, flush=True)
            rows.append(row)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[2.0, 8.0, 20.0])
    parser.add_argument("--formats", nargs="+", default=["npy", "zarr"], choices=["npy", "zarr"])
    parser.add_argument("--dir", default=None, help="where the movies are written (deleted)")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--append", action="store_true", help="add to the runs already in --out")
    args = parser.parse_args()
    block = _block(np.random.default_rng(0))
    load_before = os.getloadavg()
    rows = []
    if args.append and Path(args.out).exists():
        rows = json.loads(Path(args.out).read_text())["runs"]
    for size in args.sizes_gb:
        rows += _one_size(size, args.formats, args, block)
    peaks = [r["peak_rss_mib"] for r in rows if "peak_rss_mib" in r]
    write_json(
        args.out,
        {
            "benchmark": "lazy_memory",
            "target_peak_gib": TARGET_GIB,
            "runs": rows,
            "max_peak_rss_gib": max(peaks) / 1024.0 if peaks else None,
            "meets_target": bool(peaks) and max(peaks) / 1024.0 < TARGET_GIB,
            "machine": {
                "cpus": os.cpu_count(),
                "load_before_last_call": load_before,
                "python": platform.python_version(),
            },
        },
    )


if __name__ == "__main__":
    main()
