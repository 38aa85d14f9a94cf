"""Why ridge VAR beats the mesoscale model on some zoo brains: resonators need a second lag.

Diagnosis only (nothing is chosen by it). On the test-family zoo brains of
``benchmarks/motif_zoo.py`` (same settings: 240 neurons, 1,500 frames, 4 families) it compares,
per family, the held-out one-step MSE (last 15 % of the frames; fitted on the first 70 %) of

* a per-neuron ridge regression on what a one-step mesoscale filter sees of a neuron without
  synapses: its present state, its instance's mean and the stimulus;
* the same with the neuron's previous state added (a second lag);
* ridge VAR (``baselines.RidgeVAR``), which reads every neuron's present state.

    python benchmarks/zoo_second_lag.py --seeds 2003 2008
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from _results import write_json
from napari_mesoscale import baselines
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

RESULTS = Path(__file__).parent / "results"


def per_neuron_ridge(columns: list[np.ndarray], x: np.ndarray, fit_stop: int) -> np.ndarray:
    """(T, N) one-step predictions of a ridge per neuron on ``columns`` (each (T, N) or (T, S))."""
    n_frames, n = x.shape
    pred = np.full_like(x, np.nan)
    for i in range(n):
        design = np.column_stack(
            [c[:, i] if c.shape[1] == n else c for c in columns] + [np.ones(n_frames)]
        )
        a, y = design[1 : fit_stop - 1], x[2:fit_stop, i]
        w = np.linalg.solve(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ y)
        pred[2:, i] = design[1:-1] @ w
    return pred


def diagnose(seed: int, neurons: int, frames: int) -> dict:
    brain = make_zoo_brain(neurons, frames, "test", n_families=4, seed=seed)
    x, u = brain.activity.astype(float), brain.stimulus.astype(float)
    n_frames = x.shape[0]
    fit_stop, test_start = int(0.7 * n_frames), int(0.85 * n_frames)
    means = [x[:, brain.instance == i].mean(1) for i in range(brain.instance.max() + 1)]
    instance_mean = np.stack(means, 1)[:, brain.instance]
    previous = np.vstack([x[:1], x[:-1]])
    preds = {
        "present_instance_stimulus": per_neuron_ridge([x, instance_mean, u], x, fit_stop),
        "with_previous_state": per_neuron_ridge([x, previous, instance_mean, u], x, fit_stop),
    }
    var = baselines.RidgeVAR()
    var.fit(x[:fit_stop], stimulus=u[:fit_stop])
    preds["ridge_var"] = var.predict(x, stimulus=u)
    out = {}
    for f, name in enumerate(brain.motif_names):
        members = brain.motif == f
        out[name] = {
            key: float(np.mean((p[test_start + 1 :, members] - x[test_start + 1 :, members]) ** 2))
            for key, p in preds.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2003, 2008])
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    args = parser.parse_args()
    rows = {seed: diagnose(seed, args.neurons, args.frames) for seed in args.seeds}
    for seed, families in rows.items():
        for name, mse in families.items():
            print(seed, f"{name:20s}", " ".join(f"{k} {v:.4f}" for k, v in mse.items()))
    write_json(RESULTS / "zoo_second_lag.json", {
        "what": "held-out one-step MSE per family: per-neuron ridge with / without the previous "
        "state vs ridge VAR", "args": vars(args), "load_average": os.getloadavg(),
        "brains": {str(k): v for k, v in rows.items()},
    })


if __name__ == "__main__":
    main()
