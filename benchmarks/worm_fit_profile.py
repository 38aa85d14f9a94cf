"""Where a default fit of the C. elegans sample spends its time on the CPU (one thread).

Fits the worm sample as the *Fit mesoscale model* widget does with its defaults (the neurons'
activity, adjacency and stimulus; the pipeline's drive; ``ModelConfig`` defaults) for a few
epochs under cProfile, and records the wall and CPU seconds of each stage named on the
progress bar, the seconds per epoch, the network's shape (fields a neuron may join, filters,
passes per Adam step) and the functions with the most cumulative time. Needs the ``worm``
data packages::

    OMP_NUM_THREADS=1 python benchmarks/worm_fit_profile.py --epochs 5

Writes ``benchmarks/results/worm_fit_profile.json`` (one entry per ``--epochs``, merged).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path

import numpy as np
import torch

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "worm_fit_profile.json"


def worm_inputs() -> dict:
    """The neurons layer's data as the fit widget passes it (activity, positions, ...)."""
    from napari_mesoscale.napari._worm_sample import worm_sample

    data, attributes, _ = worm_sample()[1]
    meta = attributes["metadata"]
    return {
        "activity": np.asarray(meta["activity"], dtype=float),
        "positions": np.asarray(data, dtype=float),
        "connectome": meta["adjacency"],
        "stimulus": meta["stimulus"],
    }


def stage_times(ticks: list[tuple[float, float, str]]) -> list[dict]:
    """Wall and CPU seconds from each progress message's stage to the next stage's."""
    stages: list[dict] = []
    for wall, cpu, message in ticks:
        name = message.split(": epoch")[0].split(": step")[0]
        if not stages or stages[-1]["stage"] != name:
            stages.append({"stage": name, "wall_start": wall, "cpu_start": cpu})
    for stage, following in zip(stages, [*stages[1:], None], strict=True):
        end = following or {"wall_start": ticks[-1][0], "cpu_start": ticks[-1][1]}
        stage["wall_s"] = round(end["wall_start"] - stage.pop("wall_start"), 2)
        stage["cpu_s"] = round(end["cpu_start"] - stage.pop("cpu_start"), 2)
    return stages


def network_shape(report) -> dict:
    """Candidate fields per neuron, filters and passes per Adam step of the fitted network."""
    from napari_mesoscale.model.training import micro_batches

    fit = report.fit
    net, cfg = fit.net, fit.config
    pairs = int(net.cand.shape[1]) * int(net.n_filters)
    run = type("Run", (), {"device": torch.device("cpu"), "world": 1})()
    passes = micro_batches(cfg.batch_frames, fit.n_neurons, pairs, cfg, run)
    return {
        "neurons": fit.n_neurons,
        "candidate_fields_per_neuron": int(net.cand.shape[1]),
        "filters": int(net.n_filters),
        "pairs_per_neuron": pairs,
        "batch_frames": cfg.batch_frames,
        "passes_per_step": len(passes),
        "n_params": fit.n_params,
    }


def profile_fit(epochs: int) -> dict:
    from napari_mesoscale.workflow import fit_and_score, pipeline_config

    inputs = worm_inputs()
    config = pipeline_config()
    ticks: list[tuple[float, float, str]] = []

    def callback(info: dict) -> bool:
        ticks.append((time.perf_counter(), time.process_time(), str(info.get("message", ""))))
        return True

    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    report = fit_and_score(
        **inputs, epochs=epochs, seed=0, device="cpu", edge_init=config.edge_init,
        freeze_edges=config.freeze_edges, callback=callback,
    )
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    history = report.fit.history
    return {
        "epochs": epochs,
        "frames": int(inputs["activity"].shape[0]),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "stages": stage_times(ticks),
        "seconds_per_epoch": [round(float(s), 2) for s in history["seconds"]],
        "network": network_shape(report),
        "profile_top": [line for line in text.getvalue().splitlines() if line.strip()][:40],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures = profile_fit(args.epochs)
    figures["loadavg"] = os.getloadavg()
    figures["threads"] = torch.get_num_threads()
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[f"epochs_{args.epochs}"] = figures
    write_json(RESULTS, merged)
    print({k: v for k, v in figures.items() if k != "profile_top"})


if __name__ == "__main__":
    main()
