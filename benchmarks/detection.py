"""Point-source detection on toy brains: accuracy, trace quality, speed, memory; EM somata.

Calcium: for each SNR level and cell density, a toy brain's movie is detected with the
defaults of :func:`detect_point_sources`; detections are matched one-to-one to the true
somata within half a cell diameter (Hungarian matching, ``segment.match_points``) and the
dF/F of matched cells is correlated with the true calcium. Speed: a 500-frame 64×256×256 movie
is rendered once to a memory-mapped ``.npy`` file (not timed) and detected from it (timed);
medians of repeated runs where ``--repeats`` > 1. Peak memory: ``tracemalloc`` peak of the
detection call (numpy allocations included) and the process's peak RSS.

EM: the classical pipeline, and the U-Net trained on 10 painted somata (their true masks) plus
painted background, then applied to the whole volume; F1 within half a soma diameter.

Usage::

    python benchmarks/detection.py            # full run (several minutes on 2 cores)
    python benchmarks/detection.py --quick    # smaller movies, fewer levels (~1-2 min)

Writes ``benchmarks/results/detection.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_mesoscale.io import atomic_path
from napari_mesoscale.segment import (
    detect_point_sources,
    detect_somata_em,
    match_points,
    train_soma_detector,
)
from napari_mesoscale.synth import make_toy_brain

RESULTS = Path(__file__).resolve().parent / "results" / "detection.json"
DIAMETER = 8.0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(function, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def _trace_correlations(sources, brain, match) -> np.ndarray:
    values = []
    for i, j in zip(match.detected_index, match.truth_index, strict=True):
        a, b = sources.dff[:, i], brain.calcium[:, j]
        if np.std(a) > 0 and np.std(b) > 0:
            values.append(float(np.corrcoef(a, b)[0, 1]))
    return np.asarray(values)


def calcium_accuracy(snrs, densities, n_frames, shape, seed) -> list[dict]:
    rows = []
    for n_neurons in densities:
        for snr in snrs:
            brain = make_toy_brain(
                n_neurons,
                n_frames=n_frames,
                shape=shape,
                snr=snr,
                em=False,
                render="eager",
                seed=seed,
            )
            movie = np.asarray(brain.movie)
            sources, seconds, peak = _measure(
                detect_point_sources,
                movie,
                voxel_size=brain.voxel_size,
                cell_diameter=DIAMETER,
                frame_rate=brain.frame_rate,
            )
            match = match_points(sources.positions, brain.positions, DIAMETER / 2)
            corr = _trace_correlations(sources, brain, match)
            volume_um3 = float(np.prod(np.asarray(shape) * np.asarray(brain.voxel_size)))
            row = {
                "snr": snr,
                "n_neurons": n_neurons,
                "density_per_1e5_um3": 1e5 * n_neurons / volume_um3,
                "movie_shape": list(movie.shape),
                **{k: float(v) for k, v in match.scores().items()},
                "median_position_error_um": float(np.median(match.distances))
                if match.n_matched
                else None,
                "median_trace_correlation": float(np.median(corr)) if len(corr) else None,
                "p10_trace_correlation": float(np.percentile(corr, 10)) if len(corr) else None,
                "threshold_used": sources.parameters.get("threshold_used"),
                "seconds": seconds,
                "mvoxels_per_s": movie.size / seconds / 1e6,
                "peak_traced_mib": peak,
            }
            rows.append(row)
            print(
                f"calcium snr={snr} n={n_neurons}: F1 {row['f1']:.3f} (P {row['precision']:.3f} "
                f"R {row['recall']:.3f}) trace r {row['median_trace_correlation']:.3f} "
                f"{row['mvoxels_per_s']:.0f} Mvox/s",
                flush=True,
            )
    return rows


def calcium_speed(n_frames, shape, n_neurons, repeats, seed, workdir: Path) -> dict:
    brain = make_toy_brain(
        n_neurons, n_frames=n_frames, shape=shape, em=False, render="lazy", seed=seed
    )
    path = workdir / "detection_benchmark_movie.npy"
    start = time.perf_counter()
    movie = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=brain.movie.shape)
    step = 25
    for t0 in range(0, n_frames, step):
        movie[t0 : t0 + step] = np.asarray(brain.movie[t0 : t0 + step])
    movie.flush()
    render_seconds = time.perf_counter() - start
    del movie
    times, peaks, result = [], [], None
    try:
        for _ in range(repeats):
            movie = np.load(path, mmap_mode="r")
            result, seconds, peak = _measure(
                detect_point_sources,
                movie,
                voxel_size=brain.voxel_size,
                cell_diameter=DIAMETER,
                frame_rate=brain.frame_rate,
            )
            times.append(seconds)
            peaks.append(peak)
            del movie
    finally:
        path.unlink(missing_ok=True)
    match = match_points(result.positions, brain.positions, DIAMETER / 2)
    voxels = n_frames * int(np.prod(shape))
    median = statistics.median(times)
    row = {
        "movie_shape": [n_frames, *shape],
        "n_neurons": n_neurons,
        "render_seconds_untimed": render_seconds,
        "seconds_runs": times,
        "seconds_median": median,
        "mvoxels_per_s": voxels / median / 1e6,
        "movie_gib": voxels * 2 / 2**30,
        "peak_traced_mib": max(peaks),
        "f1": match.f1,
        "target_seconds": 60.0,
    }
    print(
        f"speed {row['movie_shape']}: {median:.1f} s ({row['mvoxels_per_s']:.0f} Mvox/s), "
        f"peak {row['peak_traced_mib']:.0f} MiB traced for a {row['movie_gib']:.1f} GiB movie",
        flush=True,
    )
    return row


def _paint(brain, n_somata: int, seed: int) -> np.ndarray:
    """Sparse annotations a user could paint: whole somata (2), a background outline around
    each of them and background blobs in the neuropil (1)."""
    rng = np.random.default_rng(seed)
    labels = brain.em_labels
    ids = rng.choice(np.unique(labels[labels > 0]), n_somata, replace=False)
    annotations = np.zeros(labels.shape, dtype=np.uint8)
    painted = np.isin(labels, ids)
    annotations[painted] = 2
    # the user outlines each painted soma with background just outside its membrane
    outside = ndimage.distance_transform_edt(~painted, sampling=brain.em_voxel_size)
    annotations[(outside > 0.5) & (outside <= 1.5) & (labels == 0)] = 1
    far = ndimage.distance_transform_edt(labels == 0, sampling=brain.em_voxel_size) > 1.5
    candidates = np.argwhere(far)
    half = np.maximum(1, np.round(1.5 / np.asarray(brain.em_voxel_size))).astype(int)
    for c in candidates[rng.choice(len(candidates), 80, replace=False)]:
        sl = tuple(slice(max(0, a - h), a + h + 1) for a, h in zip(c, half, strict=True))
        block = annotations[sl]
        block[(block == 0) & far[sl]] = 1
    return annotations


def em_accuracy(n_neurons, shape, epochs, steps, seed) -> dict:
    brain = make_toy_brain(n_neurons, n_frames=10, shape=shape, render=None, em=True, seed=seed)
    em = brain.em
    classical, seconds, peak = _measure(
        detect_somata_em, em, voxel_size=brain.em_voxel_size, soma_diameter=DIAMETER
    )
    m_classical = match_points(classical.positions, brain.positions, DIAMETER / 2)
    print(f"EM classical: F1 {m_classical.f1:.3f} in {seconds:.1f} s", flush=True)
    annotations = _paint(brain, 10, seed)
    start = time.perf_counter()
    detector = train_soma_detector(
        em,
        annotations,
        voxel_size=brain.em_voxel_size,
        epochs=epochs,
        steps_per_epoch=steps,
        batch_size=4,
        patch_size=24,
        seed=seed,
    )
    train_seconds = time.perf_counter() - start
    unet, predict_seconds, unet_peak = _measure(
        detect_somata_em, em, voxel_size=brain.em_voxel_size, detector=detector
    )
    m_unet = match_points(unet.positions, brain.positions, DIAMETER / 2)
    print(
        f"EM U-Net: F1 {m_unet.f1:.3f}, training {train_seconds:.0f} s, "
        f"prediction + detection {predict_seconds:.0f} s",
        flush=True,
    )
    return {
        "em_shape": list(em.shape),
        "em_voxel_size": list(brain.em_voxel_size),
        "n_neurons": n_neurons,
        "classical": {
            **{k: float(v) for k, v in m_classical.scores().items()},
            "seconds": seconds,
            "peak_traced_mib": peak,
        },
        "unet": {
            **{k: float(v) for k, v in m_unet.scores().items()},
            "painted_somata": 10,
            "painted_background_voxels": int((annotations == 1).sum()),
            "epochs": epochs,
            "steps_per_epoch": steps,
            "train_seconds": train_seconds,
            "final_loss": detector.history[-1]["loss"],
            "device": detector.device,
            "predict_and_detect_seconds": predict_seconds,
            "peak_traced_mib": unet_peak,
        },
        "target_f1": 0.9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of the speed movie")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the U-Net")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        snrs, densities = (0.5, 1.0, 5.0), (150, 400)
        accuracy = calcium_accuracy(snrs, densities, 150, (48, 96, 96), args.seed)
        speed = calcium_speed(100, (64, 256, 256), 1200, args.repeats, args.seed, args.workdir)
        em = em_accuracy(120, (40, 96, 96), 6, 10, args.seed)
    else:
        snrs, densities = (0.5, 1.0, 2.0, 5.0), (300, 800)
        accuracy = calcium_accuracy(snrs, densities, 300, (64, 128, 128), args.seed)
        speed = calcium_speed(500, (64, 256, 256), 1200, args.repeats, args.seed, args.workdir)
        em = em_accuracy(300, (64, 128, 128), 20, 10, args.seed)
    default_snr = 5.0
    low_snr = min(snrs)
    at_default = [r for r in accuracy if r["snr"] == default_snr]
    at_low = [r for r in accuracy if r["snr"] == low_snr]
    summary = {
        "f1_at_default_snr_min": min(r["f1"] for r in at_default),
        "f1_at_low_snr_min": min(r["f1"] for r in at_low),
        "low_snr": low_snr,
        "median_trace_correlation_at_default_snr_min": min(
            r["median_trace_correlation"] for r in at_default
        ),
        "speed_seconds_500x64x256x256": speed["seconds_median"] if not args.quick else None,
        "em_f1_classical": em["classical"]["f1"],
        "em_f1_unet": em["unet"]["f1"],
        "targets": {
            "f1_default": 0.95,
            "f1_low": 0.85,
            "trace_correlation_default": 0.9,
            "speed_seconds": 60.0,
            "em_f1": 0.9,
        },
    }
    report = {
        "benchmark": "detection",
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "torch_threads": args.threads,
        },
        "summary": summary,
        "calcium_accuracy": accuracy,
        "calcium_speed": speed,
        "em": em,
        "peak_rss_mib": _peak_rss_mib(),
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
