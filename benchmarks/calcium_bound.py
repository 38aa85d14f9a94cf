"""How well could any model forecast dF/F one step ahead? Readouts given the true next rate.

    python benchmarks/calcium_bound.py --preset realistic --frames 600 --seeds 0 1 2 3 5

For each sample-like movie (the cells of :mod:`calcium_init_ari`'s ``load``: detected,
registered, the matched cells only) and the calcium fit's training / test blocks, per cell a
least-squares readout of dF/F(t+1) from the recording's past (dF/F(t), dF/F(t-1)) and the
*true* activity at t+1 (the rate the toy brain draws the spikes from: A, A², and A(t)); it is
scored on the test block beside connectome-linear fitted on the same training block. A model
that forecast the rate perfectly, read out this way, would reach that error: the spikes at
t+1 are Poisson around the rate, so what is left is spike noise and the indicator's and the
movie's noise. ``spikes`` puts the true spike counts at t+1 in the readout instead (what a
perfect deconvolution of the next frame would know: the floor set by the indicator and the
movie alone). Writes ``benchmarks/results/calcium_bound_<preset>_<frames>.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS_DIR = Path(__file__).parent / "results"


def readout_mse(y: np.ndarray, columns: list[np.ndarray], train, test) -> float:
    """Test MSE of per-cell least squares y(t+1) ~ columns (each (T, N), row t+1) + 1."""
    t, n = y.shape
    fit_rows, test_rows = slice(train[0], train[1] - 1), slice(test[0] - 1, test[1] - 1)
    sse = count = 0.0
    for i in range(n):
        x = np.stack([c[1:, i] for c in columns] + [np.ones(t - 1)], axis=1)
        target = y[1:, i]
        xtx = x[fit_rows].T @ x[fit_rows] + 1e-8 * np.eye(x.shape[1])
        weights = np.linalg.solve(xtx, x[fit_rows].T @ target[fit_rows])
        residual = x[test_rows] @ weights - target[test_rows]
        ok = np.isfinite(residual)
        sse += float(np.sum(residual[ok] ** 2))
        count += int(ok.sum())
    return sse / max(count, 1)


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    """x delayed by k frames (the first k rows repeat row 0)."""
    return np.vstack([np.repeat(x[:1], k, axis=0), x[:-k]])


def bound_movie(d: dict) -> dict:
    from napari_mesoscale.baselines import default_baselines
    from napari_mesoscale.model.fit import _calcium_latent
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.workflow import pipeline_config

    dff, det, stim = d["dff"], d["det"], d["stim"]
    blocks = prepare_data(_calcium_latent(dff)[0], d["pos"], stim, pipeline_config()).blocks
    train, test = blocks["train"], blocks["test"]
    linear = default_baselines(d["adj"], seed=0)["connectome_linear"]
    linear.fit(dff[slice(*train)], stimulus=stim[slice(*train)])
    pred = linear.predict(dff, steps=1, stimulus=stim)[:, det]
    y = dff[:, det]
    rows = slice(*test)
    mse = {
        "connectome_linear": float(np.nanmean((pred[rows] - y[rows]) ** 2)),
        "persistence": float(np.nanmean((y[test[0] - 1 : test[1] - 1] - y[rows]) ** 2)),
    }
    past = [_lag(y, 1), _lag(y, 2)]
    rate, spikes = d["act"], d["spikes"]
    mse["true_rate"] = readout_mse(y, past + [rate, rate**2, _lag(rate, 1)], train, test)
    mse["true_spikes"] = readout_mse(y, past + [spikes, spikes**2], train, test)
    ratio = {k: mse["connectome_linear"] / v for k, v in mse.items()}
    return {"blocks": blocks, "mse": mse, "connectome_linear_over": ratio}


def main() -> None:
    from calcium_init_ari import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realistic")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 5])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    movies = []
    for seed in args.seeds:
        movie = {"seed": seed, **bound_movie(load(args.preset, args.frames, seed))}
        movies.append(movie)
        print(seed, {k: round(v, 3) for k, v in movie["connectome_linear_over"].items()})
    median = {
        k: float(np.median([m["connectome_linear_over"][k] for m in movies]))
        for k in movies[0]["connectome_linear_over"]
    }
    print("median connectome-linear MSE over each:", median)
    write_json(
        RESULTS_DIR / f"calcium_bound_{args.preset}_{args.frames}.json",
        {
            "benchmark": "calcium_bound",
            "settings": vars(args),
            "movies": movies,
            "median_connectome_linear_over": median,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "loadavg": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
