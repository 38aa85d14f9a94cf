"""Benchmark of the whole pipeline on sample-like calcium movies: trained vs frozen drive weights.

Writes ``benchmarks/results/pipeline_calcium.json`` and prints a markdown table.

Usage::

    python benchmarks/pipeline_calcium.py                     # seeds 0-6, 200 and 600 frames
    python benchmarks/pipeline_calcium.py --seeds 1 2 --frames 200

Every brain is made with the bundled sample's settings (``scripts/make_sample_data.py``: 100
neurons, 20 x 48 x 48 voxels of 3 x 1.5 x 1.5 µm, 5 frames/s) and a given number of frames;
seed 0 with 200 frames is the bundled sample itself. :func:`napari_mesoscale.workflow.run_pipeline`
runs detection, connectome, registration, fit (60 epochs) and scoring twice per movie:

* ``trained`` — drive weights on the connectome's edges, started from ridge and trained
  (``fit_mesoscale``'s default; ``edge_init="ridge", freeze_edges=False``);
* ``frozen kernels`` — drive weights fixed at the connectome kernels of seed 004
  (``edge_init="connectome", freeze_edges=True``; ``run_pipeline``'s default since this
  benchmark).

Scores are those of the pipeline's summary: held-out one-step MSE of every baseline divided by
the model's (above 1: the model is better), and motif / domain ARI of the registered cells
against the truth.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "pipeline_calcium.json"
VARIANTS = {
    "trained": {"edge_init": "ridge", "freeze_edges": False},
    "frozen kernels": {"edge_init": "connectome", "freeze_edges": True},
}


def _sample_parameters() -> dict:
    path = Path(__file__).parents[1] / "scripts" / "make_sample_data.py"
    spec = importlib.util.spec_from_file_location("make_sample_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.SAMPLE_PARAMETERS)


def run_movie(seed: int, frames: int, epochs: int) -> dict:
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.workflow import run_pipeline

    params = {**_sample_parameters(), "n_frames": frames}
    params.pop("em_voxel_size", None)
    out: dict = {"seed": seed, "frames": frames, "variants": {}}
    try:
        brain = make_toy_brain(**params, render="eager", em=False, seed=seed)
    except ValueError as error:  # e.g. somata that do not fit the sample's small volume
        out["skipped"] = str(error)
        print(f"seed {seed} frames {frames} skipped: {error}", flush=True)
        return out
    for name, options in VARIANTS.items():
        t0 = time.perf_counter()
        result = run_pipeline(
            brain.movie,
            voxel_size=brain.voxel_size,
            frame_rate=brain.frame_rate,
            neurons=brain.neurons,
            synapses=brain.synapses,
            stimulus=brain.stimulus,
            epochs=epochs,
            seed=0,
            **options,
        )
        s = result.summary
        ratios = {r["model"]: r["mse_ratio_to_model"] for r in s["test_one_step"]}
        ratios.pop("mesoscale model", None)
        out["variants"][name] = {
            "mse_ratio_to_model": ratios,
            "model_mse": next(
                r["mse"] for r in s["test_one_step"] if r["model"] == "mesoscale model"
            ),
            "beats_every_baseline": bool(min(ratios.values()) > 1.0),
            "motif_ari": s.get("motif_ari"),
            "domain_ari": s.get("domain_ari"),
            "cells": s["point_sources"],
            "matched": s["matched_to_connectome"],
            "n_params": int(result.fit.n_params),
            "seconds": time.perf_counter() - t0,
        }
        print(f"seed {seed} frames {frames} {name}: {out['variants'][name]}", flush=True)
    return out


def summarise(movies: list[dict]) -> dict:
    summary = {}
    for frames in sorted({m["frames"] for m in movies}):
        group = [m for m in movies if m["frames"] == frames and "skipped" not in m]
        entry = {"movies": len(group), "seeds": [m["seed"] for m in group]}
        if not group:
            continue
        for name in VARIANTS:
            rows = [m["variants"][name] for m in group]
            baselines = rows[0]["mse_ratio_to_model"].keys()
            entry[name] = {
                "median_ratio": {
                    b: float(np.median([r["mse_ratio_to_model"][b] for r in rows]))
                    for b in baselines
                },
                "min_ratio": {
                    b: float(np.min([r["mse_ratio_to_model"][b] for r in rows])) for b in baselines
                },
                "beats_every_baseline": int(sum(r["beats_every_baseline"] for r in rows)),
                "motif_ari": float(np.median([r["motif_ari"] for r in rows])),
                "domain_ari": float(np.median([r["domain_ari"] for r in rows])),
            }
        entry["frozen_over_trained_mse"] = [
            m["variants"]["frozen kernels"]["model_mse"] / m["variants"]["trained"]["model_mse"]
            for m in group
        ]
        summary[str(frames)] = entry
    return summary


def markdown(summary: dict) -> str:
    lines = [
        "| frames | drive weights | persistence | connectome-linear | ridge VAR | GRU | beats all "
        "| motif ARI | domain ARI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for frames, entry in summary.items():
        for name in VARIANTS:
            r = entry[name]
            m = r["median_ratio"]
            lines.append(
                f"| {frames} | {name} | {m['persistence']:.2f} | {m['connectome_linear']:.2f} | "
                f"{m['ridge_var']:.2f} | {m['gru']:.2f} | {r['beats_every_baseline']}/"
                f"{entry['movies']} | {r['motif_ari']:.2f} | {r['domain_ari']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 600])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "pipeline_calcium",
        "settings": {**vars(args), "variants": VARIANTS},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "movies": [],
    }
    t0 = time.perf_counter()
    for frames in args.frames:
        for seed in args.seeds:
            result["movies"].append(run_movie(seed, frames, args.epochs))
            result["summary"] = summarise(result["movies"])
            result["seconds"] = time.perf_counter() - t0
            write_json(RESULTS, result)
    print(markdown(result["summary"]))


if __name__ == "__main__":
    main()
