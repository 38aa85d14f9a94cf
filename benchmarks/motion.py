"""Motion correction: shift error against the truth, detection with and without it, speed.

A toy brain is recorded moving by :func:`napari_mesoscale.motion.simulate.move_toy_brain` (its
scene moves, then the shot noise is drawn, as in a microscope) with the held-out preset
(``"heldout"``: jumps, drift and smooth warps, fixed before any measurement and never tuned
on) and registered by :func:`correct_motion`:

* rigid: the held-out preset's rigid motion alone, registered rigidly;
* non-rigid: the full held-out preset, registered piecewise non-rigidly.

Shift error: at a grid of points, the estimated displacement ``s(x)`` against the truth seen
from the registered frame, ``d(x + s(x))``, in voxels (per-axis µm / voxel size, then the
norm); the reference is itself a (blurred, slightly displaced) average of moved frames, so the
error is taken up to the reference's own displacement: a global offset (``*_global``) and, for
non-rigid motion, a static field per point (the reference's own warp; ``*_static``).
Detection: :func:`detect_point_sources` on the motion-free, moved and registered movies, and on
the moved movie resampled back with the true field (the ceiling of any registration that
resamples the movie: what it leaves is the resampling of noisy frames and the tissue that moved
out of the volume); F1 and median trace r against the truth (detections in the registered
frame are moved back by the reference's offset). Side by side with suite2p's registration on
2-D planes (T, Y, X) with 2-D held-out motion (its rigid part alone for rigid registration),
run in a separate environment (``--suite2p-python``) when it imports. Times are wall seconds
and this process's CPU seconds (the machine is shared: CPU seconds are the fairer figure).

Usage::

    python benchmarks/motion.py [--quick] [--suite2p-python /work/wt/f2-motion-venv/bin/python]

Writes ``benchmarks/results/motion.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402
from napari_mesoscale.motion import correct_motion  # noqa: E402
from napari_mesoscale.motion.simulate import apply_motion, move_toy_brain  # noqa: E402
from napari_mesoscale.segment import detect_point_sources, match_points  # noqa: E402
from napari_mesoscale.synth import make_toy_brain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "motion.json"
DIAMETER = 8.0


def _grid(shape, voxel_size, margin=6, step=6):
    axes = [np.arange(min(margin, n // 4), n - min(margin, n // 4), step) for n in shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape))
    return points * np.asarray(voxel_size, dtype=float)


def field_errors(estimate_at, truth, n_frames, shape, voxel_size) -> dict:
    """Shift errors in voxels; ``estimate_at(t, points_um) -> (N, ndim)`` µm."""
    vs = np.asarray(voxel_size, dtype=float)
    points = _grid(shape, vs)
    residual = []
    for t in range(n_frames):
        estimate = estimate_at(t, points)
        residual.append(truth.displacement_at(t, points + estimate) - estimate)
    residual = np.stack(residual)  # (T, N, ndim) µm: reference offset + error
    offset = np.median(residual.reshape(-1, len(vs)), axis=0)
    static = np.median(residual, axis=0)
    global_error = np.linalg.norm((residual - offset) / vs, axis=-1)
    static_error = np.linalg.norm((residual - static) / vs, axis=-1)
    return {
        "median_voxels_global": float(np.median(global_error)),
        "p90_voxels_global": float(np.percentile(global_error, 90)),
        "median_voxels_static": float(np.median(static_error)),
        "p90_voxels_static": float(np.percentile(static_error, 90)),
        "reference_offset_um": offset,
    }


def _detection(movie, brain, offset_um=None) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sources = detect_point_sources(
            movie,
            voxel_size=brain.voxel_size,
            cell_diameter=DIAMETER,
            frame_rate=brain.frame_rate,
        )
    positions = np.asarray(sources.positions, dtype=float)
    if offset_um is not None and len(positions):
        positions = positions - offset_um
    match = match_points(positions, brain.positions, DIAMETER / 2)
    corr = [
        float(np.corrcoef(sources.dff[:, i], brain.calcium[:, j])[0, 1])
        for i, j in zip(match.detected_index, match.truth_index, strict=True)
        if np.std(sources.dff[:, i]) > 0
    ]
    return {"f1": float(match.f1), "median_trace_r": float(np.median(corr)) if corr else None}


def perfectly_unmoved(moved, truth, voxel_size) -> np.ndarray:
    """The moved movie resampled back with the TRUE field (cubic B-spline): the best any
    registration that resamples the movie can do."""
    from scipy import ndimage

    vs = np.asarray(voxel_size, dtype=float)
    shape = moved.shape[1:]
    grid = np.indices(shape, dtype=float).reshape(len(shape), -1).T * vs
    out = np.empty_like(moved)
    for t in range(len(moved)):
        # moved(p) = movie(p - d(p)): solve p = q + d(p) for each output voxel q
        position = grid.copy()
        for _ in range(4):
            position = grid + truth.displacement_at(t, position)
        coords = (position / vs).T.reshape(len(shape), *shape)
        out[t] = ndimage.map_coordinates(moved[t], coords, order=3, mode="nearest")
    return out


def _timed(function, *args, **kwargs):
    """Result, wall seconds and this process's CPU seconds (the machine is shared)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    _timed.cpu_seconds = time.process_time() - cpu
    return result, time.perf_counter() - start


def volume_benchmark(brain, seed: int) -> dict:
    movie = np.asarray(brain.movie, dtype=np.float32)
    vs, shape, n = brain.voxel_size, movie.shape[1:], movie.shape[0]
    out: dict = {"movie_shape": list(movie.shape), "voxel_size_um": list(vs)}
    rigid_moved, rigid_truth = move_toy_brain(brain, "heldout", seed=seed, warp_modes=0)
    rigid, seconds = _timed(correct_motion, rigid_moved, voxel_size=vs, nonrigid=False)
    out["rigid"] = {
        **field_errors(rigid.displacement_at, rigid_truth, n, shape, vs),
        "max_true_shift_um": rigid_truth.max_rigid_um,
        "seconds": seconds,
        "cpu_seconds": _timed.cpu_seconds,
        "mvoxels_per_s": movie.size / seconds / 1e6,
        "mvoxels_per_cpu_s": movie.size / _timed.cpu_seconds / 1e6,
    }
    moved, truth = move_toy_brain(brain, "heldout", seed=seed)
    corrected, seconds = _timed(correct_motion, moved, voxel_size=vs)
    errors = field_errors(corrected.displacement_at, truth, n, shape, vs)
    out["nonrigid"] = {
        **errors,
        "max_true_rigid_shift_um": truth.max_rigid_um,
        "seconds": seconds,
        "cpu_seconds": _timed.cpu_seconds,
        "mvoxels_per_s": movie.size / seconds / 1e6,
        "mvoxels_per_cpu_s": movie.size / _timed.cpu_seconds / 1e6,
        "outlier_frames": int(corrected.outliers.sum()),
    }
    print(json.dumps({k: out[k] for k in ("rigid", "nonrigid")}, default=str, indent=1))
    out["detection"] = {
        "motion_free": _detection(movie, brain),
        "moved": _detection(moved, brain),
        "corrected": _detection(corrected.registered, brain, errors["reference_offset_um"]),
        "true_field_unmoved": _detection(perfectly_unmoved(moved, truth, vs), brain),
    }
    print(json.dumps(out["detection"], indent=1), flush=True)
    return out


_SUITE2P_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import types
# torchvision 0.28.0 does not import with torch 2.13.0 ("operator torchvision::nms does not
# exist"); suite2p imports cellpose (which imports torchvision) only for functions that its
# registration does not call, so stub those two modules
for name in ("cellpose", "cellpose.transforms", "cellpose.metrics"):
    module = types.ModuleType(name)
    module._intersection_over_union = module.mask_ious = None
    sys.modules[name] = module
sys.modules["cellpose"].transforms = sys.modules["cellpose.transforms"]
sys.modules["cellpose"].metrics = sys.modules["cellpose.metrics"]
from suite2p.registration import register
from suite2p.parameters import default_settings
movie = np.load(sys.argv[1]).astype(np.int16)  # (2, T, Y, X): rigid-only, full motion
out = {}
for nonrigid in (False, True):
    settings = default_settings()
    s = settings.get("registration", settings)
    frames = movie[0] if not nonrigid else movie[1]
    frames = frames.copy()
    cpu = torch.device("cpu")
    start, cpu_start = time.perf_counter(), time.process_time()
    index = np.linspace(0, len(frames) - 1, min(300, len(frames))).astype(int)
    ref = register.compute_reference(frames[index], s, device=cpu)
    block = (int(sys.argv[3]), int(sys.argv[3]))
    result = register.register_frames(
        frames, ref, f_align_out=np.zeros_like(frames), batch_size=100,
        nonrigid=nonrigid, block_size=block, device=cpu,
    )
    seconds = time.perf_counter() - start
    offsets, blocks = result[3], result[4]
    row = {"seconds": seconds, "cpu_seconds": time.process_time() - cpu_start}
    for key, i in (("yoff", 0), ("xoff", 1), ("yoff1", 3), ("xoff1", 4)):
        if i < 3 or nonrigid:
            row[key] = np.asarray(offsets[i]).tolist()
    if nonrigid:
        row["yblock"] = [list(map(int, b)) for b in blocks[0]]
        row["xblock"] = [list(map(int, b)) for b in blocks[1]]
        row["nblocks"] = list(map(int, blocks[2]))
    out["nonrigid" if nonrigid else "rigid"] = row
json.dump(out, open(sys.argv[2], "w"))
"""


def _suite2p_field(row, sign):
    from scipy import ndimage

    def at(t, points):
        total = np.zeros((len(points), 2))
        total[:, 0] += sign * row["yoff"][t]
        total[:, 1] += sign * row["xoff"][t]
        if "yoff1" in row:
            ny, nx = row["nblocks"]
            cy = np.array([np.mean(b) for b in row["yblock"]]).reshape(ny, nx)[:, 0]
            cx = np.array([np.mean(b) for b in row["xblock"]]).reshape(ny, nx)[0]
            coords = [
                np.interp(points[:, 0], cy, np.arange(ny)),
                np.interp(points[:, 1], cx, np.arange(nx)),
            ]
            for axis, key in enumerate(("yoff1", "xoff1")):
                grid = np.asarray(row[key][t]).reshape(ny, nx)
                total[:, axis] += sign * ndimage.map_coordinates(
                    grid, coords, order=1, mode="nearest"
                )
        return total

    return at


def plane_benchmark(brain, seed: int, suite2p_python: str | None, block: int) -> dict:
    plane = np.asarray(brain.movie[:, brain.movie.shape[1] // 2], dtype=np.float32)
    vs = tuple(brain.voxel_size[1:])
    motions = {
        "rigid": apply_motion(plane, vs, "heldout", seed=seed, warp_modes=0),
        "nonrigid": apply_motion(plane, vs, "heldout", seed=seed),
    }
    n, shape = plane.shape[0], plane.shape[1:]
    out: dict = {"plane_shape": list(plane.shape), "ours": {}, "suite2p": {}}
    for name, (moved, truth) in motions.items():
        result, seconds = _timed(
            correct_motion,
            moved,
            voxel_size=vs,
            nonrigid=name == "nonrigid",
            block_size_um=float(block),
        )
        out["ours"][name] = {
            **field_errors(result.displacement_at, truth, n, shape, vs),
            "seconds": seconds,
            "cpu_seconds": _timed.cpu_seconds,
            "mvoxels_per_s": plane.size / seconds / 1e6,
            "mvoxels_per_cpu_s": plane.size / _timed.cpu_seconds / 1e6,
        }
    if not suite2p_python:
        out["suite2p"] = {"error": "no --suite2p-python given"}
        return out
    with tempfile.TemporaryDirectory() as folder:
        source, target, script = (Path(folder) / n for n in ("m.npy", "r.json", "s2p.py"))
        both = np.stack([motions["rigid"][0], motions["nonrigid"][0]])
        scaled = both - both.min()
        np.save(source, (scaled * (20000 / max(scaled.max(), 1e-6))).astype(np.int16))
        script.write_text(_SUITE2P_SCRIPT)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        run = subprocess.run(
            [suite2p_python, str(script), str(source), str(target), str(block)],
            capture_output=True,
            text=True,
            env=env,
        )
        if run.returncode != 0:
            out["suite2p"] = {"error": run.stderr[-2000:]}
            return out
        rows = json.loads(target.read_text())
    out["suite2p"]["note"] = (
        "suite2p 1.1.0 in a separate venv; cellpose stubbed (torchvision 0.28.0 fails to import "
        "with torch 2.13.0: operator torchvision::nms does not exist); reference + registration "
        "timed, CPU, 1 thread; same block size in voxels as ours"
    )
    for name, row in rows.items():
        truth = motions[name][1]
        candidates = [field_errors(_suite2p_field(row, s), truth, n, shape, vs) for s in (1, -1)]
        best = min(candidates, key=lambda e: e["median_voxels_global"])
        out["suite2p"][name] = {
            **best,
            "seconds": row["seconds"],
            "cpu_seconds": row["cpu_seconds"],
            "mvoxels_per_s": plane.size / row["seconds"] / 1e6,
            "mvoxels_per_cpu_s": plane.size / row["cpu_seconds"] / 1e6,
        }
    return out


def _plane_summary(planes: dict) -> dict:
    return {
        f"mvoxels_per_{unit}_planes": {
            who: {
                k: v.get(f"mvoxels_per_{unit}")
                for k, v in planes[who].items()
                if isinstance(v, dict)
            }
            for who in ("ours", "suite2p")
        }
        for unit in ("s", "cpu_s")
    }


def _planes_only(args, brain) -> int:
    """Rerun the 2-D comparison alone; the volume figures stay as they were in ``args.out``."""
    report = json.loads(args.out.read_text())
    # warm up as the full run's volume section does (first-call set-up out of the timing)
    plane = np.asarray(brain.movie[:8, brain.movie.shape[1] // 2], dtype=np.float32)
    for nonrigid in (False, True):
        correct_motion(plane, voxel_size=brain.voxel_size[1:], nonrigid=nonrigid)
    planes = plane_benchmark(brain, args.seed + 2, args.suite2p_python, 24)
    report["planes"] = planes
    report["summary"].update(_plane_summary(planes))
    report["planes_rerun"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1min_at_end": os.getloadavg()[0],
        "note": "planes section and its summary entries rerun alone (--planes-only)",
    }
    write_json(args.out, report)
    print(json.dumps(_plane_summary(planes), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite2p-python", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--planes-only",
        action="store_true",
        help="rerun only the 2-D side-by-side with suite2p; keep the other sections of --out",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    n_frames, shape, n_neurons = (80, (24, 80, 80), 100) if args.quick else (150, (24, 96, 96), 150)
    brain = make_toy_brain(
        n_neurons, n_frames=n_frames, shape=shape, em=False, render="eager", seed=args.seed
    )
    if args.planes_only:
        return _planes_only(args, brain)
    volume = volume_benchmark(brain, args.seed + 1)
    planes = plane_benchmark(brain, args.seed + 2, args.suite2p_python, 24)
    det = volume["detection"]
    summary = {
        **_plane_summary(planes),
        "heldout_rigid_median_voxels": volume["rigid"]["median_voxels_global"],
        "heldout_nonrigid_median_voxels_global": volume["nonrigid"]["median_voxels_global"],
        "heldout_nonrigid_median_voxels_static": volume["nonrigid"]["median_voxels_static"],
        "f1": {k: v["f1"] for k, v in det.items()},
        "median_trace_r": {k: v["median_trace_r"] for k, v in det.items()},
        "mvoxels_per_s_3d": {k: volume[k]["mvoxels_per_s"] for k in ("rigid", "nonrigid")},
        "mvoxels_per_cpu_s_3d": {k: volume[k]["mvoxels_per_cpu_s"] for k in ("rigid", "nonrigid")},
        "targets": {"rigid_voxels": 0.3, "nonrigid_voxels": 0.5, "f1_and_r_within": 0.01},
    }
    report = {
        "benchmark": "motion",
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "torch_threads": 1,
            "device": "cpu",
        },
        "summary": summary,
        "volume": volume,
        "planes": planes,
    }
    if args.out.exists():  # the large-movie memory figures come from motion_memory.py
        previous = json.loads(args.out.read_text())
        if "memory" in previous:
            report["memory"] = previous["memory"]
    write_json(args.out, report)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
