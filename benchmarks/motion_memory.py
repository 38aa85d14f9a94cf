"""Memory of motion correction on a large Zarr movie: peak RSS against the movie's size.

A float32 Zarr movie of ``--gb`` GB (frames of 32 × 256 × 256 voxels, one chunk per frame,
uncompressed: a textured volume moved by a random walk of whole voxels) is registered by
:func:`correct_motion` to a Zarr output in a child process, which records its resident memory
(RSS) after every batch and its peak (``ru_maxrss``). A wall-clock cap (``--cap-s``) cancels
the registration through its progress callback when the movie is too large to finish on this
machine in time: the figures then cover the frames registered before the cap, and the RSS
trace over those frames shows whether memory grows with the frames read. Inputs and outputs
are written to ``--folder`` and deleted afterwards.

Usage::

    python benchmarks/motion_memory.py --gb 2 20 --cap-s 300 [--nonrigid]

Updates the ``memory`` section of ``benchmarks/results/motion.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "motion.json"
FRAME = (32, 256, 256)

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch, zarr
    torch.set_num_threads(1)
    from napari_mesoscale.motion import MotionCancelled, correct_motion

    source, target, cap, nonrigid = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    movie = zarr.open_array(source, mode="r")

    def rss_mib():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 / 2**20

    start = time.perf_counter()
    cpu_start = time.process_time()
    trace = []

    def callback(info):
        if "frames_done" in info:
            trace.append([int(info["frames_done"]), round(rss_mib(), 1)])
        return time.perf_counter() - start < cap

    cancelled = False
    try:
        correct_motion(movie, voxel_size=(2.0, 1.0, 1.0), output=target,
                       nonrigid=nonrigid == "nonrigid", n_reference_frames=20,
                       reference_iterations=1, callback=callback)
    except MotionCancelled:
        cancelled = True
    print(json.dumps({
        "frames_registered": trace[-1][0] if trace else 0,
        "cancelled_at_cap": cancelled,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib_by_frames": trace,
    }))
    """
)


def write_movie(
    path: Path, gigabytes: float, seed: int = 0, frame: tuple[int, ...] = FRAME
) -> tuple[int, ...]:
    """A float32 Zarr movie of about ``gigabytes`` GB: a texture moved by whole voxels.

    Nine positions of the texture are rendered once; each frame's chunk file (Zarr v2,
    uncompressed: the frame's bytes in C order) is then written as it is, so that writing
    tens of GB is bound by the disk rather than by a loaded CPU.
    """
    import zarr
    from scipy import ndimage

    n_frames = max(2, int(round(gigabytes * 1e9 / (np.prod(frame) * 4))))
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.normal(size=frame), 2).astype(np.float32) * 100 + 500
    movie = zarr.open_array(
        str(path),
        mode="w",
        shape=(n_frames, *frame),
        chunks=(1, *frame),
        dtype="float32",
        zarr_format=2,
        compressor=None,
        fill_value=0.0,
    )
    offsets = [(0, dy, dx) for dy in (-3, 0, 3) for dx in (-3, 0, 3)]
    frames = [np.roll(texture, o, axis=(0, 1, 2)).tobytes() for o in offsets]
    which = rng.integers(0, len(frames), n_frames)
    for t in range(n_frames):
        (path / f"{t}.0.0.0").write_bytes(frames[which[t]])
    return movie.shape


def measure(
    gigabytes: float, folder: Path, cap_s: float, nonrigid: bool, frame: tuple[int, ...] = FRAME
) -> dict:
    """Write a movie of ``gigabytes`` GB, register it in a child process, delete both."""
    source, target = folder / f"raw_{gigabytes:g}gb.zarr", folder / f"reg_{gigabytes:g}gb.zarr"
    start = time.perf_counter()
    shape = write_movie(source, gigabytes, frame=frame)
    written_s = time.perf_counter() - start
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(source),
                str(target),
                str(cap_s),
                "nonrigid" if nonrigid else "rigid",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if run.returncode != 0:
            return {"error": run.stderr[-2000:]}
        row = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(target.with_name(target.name + ".tmp"), ignore_errors=True)
    voxels = row["frames_registered"] * int(np.prod(frame))
    trace = row["rss_mib_by_frames"]
    return {
        "movie_shape": list(shape),
        "movie_gb": float(np.prod(shape) * 4 / 1e9),
        "registration": "nonrigid" if nonrigid else "rigid",
        "input_write_seconds": written_s,
        **{k: v for k, v in row.items() if k != "rss_mib_by_frames"},
        "gb_registered": voxels * 4 / 1e9,
        "mvoxels_per_s": voxels / max(row["seconds"], 1e-9) / 1e6,
        "rss_mib_first_batch": trace[0][1] if trace else None,
        "rss_mib_last_batch": trace[-1][1] if trace else None,
        "rss_mib_by_frames": trace[:: max(1, len(trace) // 20)],
        "cap_s": cap_s,
    }


def previous_runs(path: Path) -> list[dict]:
    """The memory runs already recorded in ``path``."""
    if not path.exists():
        return []
    return json.loads(path.read_text()).get("memory", {}).get("runs", [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, nargs="+", default=[2.0, 20.0])
    parser.add_argument("--cap-s", type=float, default=300.0)
    parser.add_argument("--nonrigid", action="store_true")
    parser.add_argument("--frame", type=int, nargs=3, default=list(FRAME), help="Z Y X voxels")
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "mesoscale_motion_memory"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the runs already recorded")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for gigabytes in args.gb:
            runs.append(
                measure(gigabytes, args.folder, args.cap_s, args.nonrigid, tuple(args.frame))
            )
            print(json.dumps(runs[-1], indent=1), flush=True)
    finally:
        shutil.rmtree(args.folder, ignore_errors=True)
    report = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "motion"}
    runs = [*previous_runs(args.out), *runs] if args.keep else runs
    report["memory"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1min_at_end": os.getloadavg()[0],
        "target_peak_rss_mib": 2048,
        "runs": runs,
    }
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
