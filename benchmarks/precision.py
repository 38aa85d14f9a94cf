"""Benchmark of training precision: float32 against bfloat16 autocast, side by side.

Writes ``benchmarks/results/precision.json``.

Usage::

    python benchmarks/precision.py               # default toy brain, 10 epochs, 3 rounds
    python benchmarks/precision.py --rounds 1

The same fit (default toy brain: 300 neurons, 500 frames, seed 0; connectome and stimulus)
runs with ``precision="fp32"`` and ``precision="bf16"`` in alternation, ``--rounds`` times
each, on one CPU thread (or on CUDA with ``--device cuda``). Reported: median wall time per
epoch, the ratio fp32 / bf16 (above 1: bfloat16 is faster), and the held-out one-step MSE of
each (normalised units, ``fit.scores["test_mse"]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "precision.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    torch.set_num_threads(args.threads)
    brain = make_toy_brain(render=None, em=False, seed=0)
    runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in runs:
            t0 = time.perf_counter()
            fit = fit_mesoscale(
                brain.activity,
                brain.positions,
                connectome=brain.adjacency,
                stimulus=brain.stimulus,
                epochs=args.epochs,
                seed=0,
                device=args.device,
                precision=precision,
            )
            seconds = time.perf_counter() - t0
            runs[precision].append(
                {
                    "seconds": seconds,
                    "seconds_per_epoch": float(np.median(fit.history["seconds"])),
                    "test_mse": float(fit.scores["test_mse"]),
                }
            )
            print(precision, runs[precision][-1], flush=True)
    summary = {
        p: {
            "median_seconds_per_epoch": float(np.median([r["seconds_per_epoch"] for r in rs])),
            "test_mse": float(np.median([r["test_mse"] for r in rs])),
        }
        for p, rs in runs.items()
    }
    summary["fp32_over_bf16_time"] = float(
        np.median(
            [
                a["seconds_per_epoch"] / b["seconds_per_epoch"]
                for a, b in zip(runs["fp32"], runs["bf16"], strict=True)
            ]
        )
    )
    result = {
        "benchmark": "precision",
        "settings": vars(args),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "runs": runs,
        "summary": summary,
    }
    write_json(RESULTS, result)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
