"""False positives of calcium detection on movies without cells, and toy-brain F1 beside them.

Noise-only movies (no cells): white Gaussian, Poisson shot noise (bright and photon-starved),
spatially correlated noise (Gaussian blur of about a voxel, as after interpolation or
registration) and temporally correlated noise (AR(1)), at several volume sizes and seeds.
For each, the number of sources :func:`detect_point_sources` returns with its defaults. Beside
them, the detection F1 on toy brains (one-to-one matching within half a cell diameter) so a
cut of false positives is seen together with its cost in recall.

Seeds: 0-2 are the dev seeds (used to design the null model); ``--seeds`` other than those
are the check seeds (the tests use seeds >= 10).

Usage::

    python benchmarks/detection_noise.py [--tag before] [--seeds 0 1 2] [--quick]

Writes ``benchmarks/results/detection_noise[_TAG].json``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from _results import write_json
from napari_mesoscale.segment import detect_point_sources, match_points
from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.render import CAMERA_OFFSET, smooth_field

RESULTS = Path(__file__).resolve().parent / "results"
VOXEL = (2.0, 1.0, 1.0)  # the toy brain's calcium voxel (µm)
DIAMETER = 8.0


def noise_movie(kind: str, shape, n_frames: int, seed: int) -> np.ndarray:
    """A (T, Z, Y, X) movie of noise only."""
    rng = np.random.default_rng([seed, 0x5EED])
    size = (n_frames, *shape)
    if kind == "gauss":
        return (100 + 10 * rng.standard_normal(size, dtype=np.float32)).astype(np.float32)
    if kind == "poisson_100":
        return rng.poisson(100, size=size).astype(np.uint16)
    if kind == "poisson_3":
        return rng.poisson(3, size=size).astype(np.uint16)
    if kind == "toy_background":  # the toy brain's camera, background and photon scale
        lam = 30.0 * smooth_field(rng, shape, 16, 0.1, 0.3)
        frames = lam + np.sqrt(lam) * rng.standard_normal(size, dtype=np.float32)
        return np.clip(np.rint(CAMERA_OFFSET + frames), 0, 65535).astype(np.uint16)
    white = rng.standard_normal(size, dtype=np.float32)
    if kind == "blurred":
        blurred = ndimage.gaussian_filter(white, (0, 0.5, 1.0, 1.0))
        return 100 + 10 * blurred / blurred.std()
    if kind == "ar1":
        rho = 0.8
        for t in range(1, n_frames):
            white[t] = rho * white[t - 1] + np.sqrt(1 - rho**2) * white[t]
        return 100 + 10 * white
    raise ValueError(kind)


MIN_ACTIVITY: dict = {}  # {"min_activity": value} when --min-activity is given


def _detect(movie, frame_rate=5.0):
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detect_point_sources(
            movie, voxel_size=VOXEL, cell_diameter=DIAMETER, frame_rate=frame_rate, **MIN_ACTIVITY
        )
    return result, time.process_time() - start


def noise_rows(kinds, sizes, seeds) -> list[dict]:
    rows = []
    for shape, n_frames, n_seeds in sizes:
        for kind in kinds:
            for seed in seeds[:n_seeds]:
                movie = noise_movie(kind, shape, n_frames, seed)
                result, cpu = _detect(movie)
                del movie
                volume_mm3 = float(np.prod(np.multiply(shape, VOXEL))) * 1e-9
                rows.append(
                    {
                        "kind": kind,
                        "shape": list(shape),
                        "n_frames": n_frames,
                        "seed": seed,
                        "n_sources": len(result),
                        "per_mm3": len(result) / volume_mm3,
                        "threshold_used": result.parameters.get("threshold_used"),
                        "noise_correction": result.parameters.get("noise_correction"),
                        "cpu_s": round(cpu, 2),
                    }
                )
                print(rows[-1], flush=True)
    return rows


TOY = [  # (n_neurons, shape, n_frames, snr, drift)
    (60, (24, 64, 64), 150, 3.0, False),  # the detection tests' brain
    (100, (32, 96, 96), 200, 5.0, False),
    (150, (32, 96, 96), 200, 2.0, False),
    (100, (32, 96, 96), 200, 5.0, True),
]


def toy_rows(seeds, configs) -> list[dict]:
    rows = []
    for n, shape, n_frames, snr, drift in configs:
        for seed in seeds:
            brain = make_toy_brain(
                n,
                n_frames=n_frames,
                shape=shape,
                em=False,
                snr=snr,
                drift=drift,
                seed=seed,
                render="eager",
            )
            result, cpu = _detect(brain.movie, brain.frame_rate)
            match = match_points(result.positions, brain.positions, max_distance=DIAMETER / 2)
            rows.append(
                {
                    "n_neurons": n,
                    "shape": list(shape),
                    "n_frames": n_frames,
                    "snr": snr,
                    "drift": drift,
                    "seed": seed,
                    **{k: float(v) for k, v in match.scores().items()},
                    "noise_correction": result.parameters.get("noise_correction"),
                    "cpu_s": round(cpu, 2),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="small volumes only")
    parser.add_argument("--min-activity", type=float, default=None, help="detection gate")
    parser.add_argument("--toy-only", action="store_true", help="skip the noise movies")
    args = parser.parse_args()
    if args.min_activity is not None:
        MIN_ACTIVITY["min_activity"] = args.min_activity
    kinds = ["gauss", "poisson_100", "poisson_3", "toy_background", "blurred", "ar1"]
    sizes = [((16, 64, 64), 200, 3), ((32, 96, 96), 200, 3)]
    if not args.quick:
        sizes.append(((64, 128, 128), 100, 1))  # the toy brain's default volume, one seed
    result = {
        "load_average_start": os.getloadavg(),
        "dev_seeds": [0, 1, 2],
        "seeds": args.seeds,
        "min_activity": args.min_activity,
        "noise": [] if args.toy_only else noise_rows(kinds, sizes, args.seeds),
        "toy": toy_rows(args.seeds[:2], TOY if not args.quick else TOY[:2]),
        "load_average_end": os.getloadavg(),
    }
    suffix = f"_{args.tag}" if args.tag else ""
    print(write_json(RESULTS / f"detection_noise{suffix}.json", result))


if __name__ == "__main__":
    main()
