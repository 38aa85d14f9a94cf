"""Ablation of connectome-derived filters (Chu et al. 2022) on toy brains.

Each neuron's next state is predicted by a graph-kernel forecaster
(:func:`napari_mesoscale.forecasters.graph_kernel.fit_kernel_forecaster`): a softmax mixture of
B shared basis filters fed its own state, its kernel-weighted neighbour drive and its stimulus
drive. Only the kernel changes between rows:

* ``no drive`` — empty kernel (own state and stimulus only), a reference;
* ``connectome, frozen`` — kernel = the neuron's adjacency column (signed synapse counts,
  L1-normalised), frozen; a per-neuron gain is learned;
* ``shuffled, frozen`` — the same from a degree-preserving shuffle of the adjacency
  (directed edge swaps: every in/out-degree kept, weights stay with their pre-synaptic neuron);
* ``connectome domain, frozen`` — the connectome kernel restricted to the sub-graph enclosed
  by the receptive field of the neuron's domain (nearest field, diameter 60 µm);
* ``connectome, trainable`` / ``shuffled, trainable`` — kernel values trained, initialised
  from the connectome / the shuffle;
* ``connectome support, from zero`` — trained from zero on the connectome's support (what the
  support alone is worth, without the synapse counts as initial values);
* ``learned`` — kernel values trained from zero on each neuron's in-degree nearest neighbours
  in space (exactly as many trainable weights as the three rows above); ``learned, 4x steps``
  the same with four times the training steps (is it the budget or the support?);
  ``learned, 3x support`` on three times as many nearest neighbours (NOT matched: about
  twice the trainable parameters of the matched rows; is it the capacity?).

Frozen rows have equal parameter counts among themselves, trainable rows too. Held-out
one-step MSE and R² on the last 25 % of the frames; the noise floor is the toy brain's exact
conditional mean. Writes ``benchmarks/results/connectome_filters.json`` and prints a markdown
table.

    python benchmarks/connectome_filters.py            # 3 seeds, ~3-5 min on 2 threads
    python benchmarks/connectome_filters.py --quick    # 1 seed, fewer steps
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from _results import write_json
from napari_mesoscale.connectome import receptive_field_grid
from napari_mesoscale.connectome.graph_ops import degree_preserving_shuffle
from napari_mesoscale.forecasters.graph_kernel import (
    connectome_kernels,
    domain_kernels,
    fit_kernel_forecaster,
    nearest_field,
    nearest_support,
)
from napari_mesoscale.synth import make_toy_brain

ROWS = (
    ("no drive", "frozen"),
    ("connectome, frozen", "frozen"),
    ("shuffled, frozen", "frozen"),
    ("connectome domain, frozen", "frozen"),
    ("connectome, trainable", "trainable"),
    ("shuffled, trainable", "trainable"),
    ("connectome support, from zero", "learned"),
    ("learned", "learned"),
    ("learned, 4x steps", "learned"),
    ("learned, 3x support", "learned"),
)


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    brain = make_toy_brain(args.neurons, n_frames=args.frames, render=None, em=False, seed=seed)
    x, u, n = brain.activity, brain.stimulus, brain.n_neurons
    adjacency = brain.adjacency
    conn = connectome_kernels(adjacency, orientation="in", normalise="l1")
    shuffled_adj = degree_preserving_shuffle(adjacency, seed=seed)
    shuf = connectome_kernels(shuffled_adj, orientation="in", normalise="l1")
    grid = receptive_field_grid(brain.positions, diameter=args.field_diameter)
    domain = domain_kernels(adjacency, grid, nearest_field(grid, brain.positions))
    support = nearest_support(brain.positions, np.diff(conn.indptr))
    kernels = {
        "no drive": sp.csr_matrix((n, n)),
        "connectome, frozen": conn,
        "shuffled, frozen": shuf,
        "connectome domain, frozen": domain,
        "connectome, trainable": conn,
        "shuffled, trainable": shuf,
        "connectome support, from zero": conn,
        "learned": support,
        "learned, 4x steps": support,
        "learned, 3x support": nearest_support(
            brain.positions, np.minimum(3 * np.diff(conn.indptr), n - 1)
        ),
    }
    split = int(round((args.frames - 1) * 0.75))
    target = x[split + 1 :]
    exact = brain.one_step()[split:-1]
    out = {
        "seed": seed,
        "n_neurons": n,
        "n_edges": int(adjacency.nnz),
        "edges_kept_by_shuffle": int(adjacency.multiply(shuffled_adj != 0).nnz),
        "domain_edges": int(domain.nnz),
        "learned_support_true_edges": int(support.multiply(conn != 0).nnz),
        "noise_floor_mse": float(np.mean((exact - target) ** 2)),
        "persistence_mse": float(np.mean((x[split:-1] - target) ** 2)),
        "test_variance": float(np.mean((target - target.mean(0)) ** 2)),
        "rows": {},
    }
    for name, mode in ROWS:
        t0 = time.perf_counter()
        fit = fit_kernel_forecaster(
            x,
            kernels[name],
            mode=mode,
            stimulus=u,
            n_filters=args.filters,
            hidden=args.hidden,
            steps=4 * args.steps if name.endswith("4x steps") else args.steps,
            lr=args.lr,
            batch_frames=args.batch,
            seed=seed,
        )
        seconds = time.perf_counter() - t0
        out["rows"][name] = {
            "mode": mode,
            "kernel_entries": int(kernels[name].nnz),
            "n_params": fit.n_params,
            "test_mse": fit.test_mse,
            "test_r2": fit.test_r2,
            "final_train_loss": float(np.mean(fit.losses[-20:])),
            "fit_seconds": seconds,
        }
        print(
            f"seed {seed} {name:28s} mse {fit.test_mse:.5f} r2 {fit.test_r2:.3f} "
            f"params {fit.n_params} ({seconds:.1f} s)",
            flush=True,
        )
    return out


def summarise(seeds: list[dict]) -> dict:
    summary = {}
    for name, mode in ROWS:
        mse = [s["rows"][name]["test_mse"] for s in seeds]
        r2 = [s["rows"][name]["test_r2"] for s in seeds]
        params = sorted({s["rows"][name]["n_params"] for s in seeds})
        summary[name] = {
            "mode": mode,
            "test_mse_median": statistics.median(mse),
            "test_mse_mean": statistics.fmean(mse),
            "test_mse_sd": statistics.stdev(mse) if len(mse) > 1 else 0.0,
            "test_r2_median": statistics.median(r2),
            "test_r2_min": min(r2),
            "test_r2_max": max(r2),
            "n_params": params,
        }
    ratio = {
        key: [s["rows"][b]["test_mse"] / s["rows"][a]["test_mse"] for s in seeds]
        for key, (a, b) in {
            "shuffled_over_connectome_frozen": ("connectome, frozen", "shuffled, frozen"),
            "shuffled_over_connectome_trainable": ("connectome, trainable", "shuffled, trainable"),
            "learned_over_connectome_trainable": ("connectome, trainable", "learned"),
            "learned4x_over_connectome_trainable": ("connectome, trainable", "learned, 4x steps"),
            "learned3x_support_over_connectome_trainable": (
                "connectome, trainable",
                "learned, 3x support",
            ),
        }.items()
    }
    summary["ratios"] = {
        k: {"per_seed": v, "median": statistics.median(v)} for k, v in ratio.items()
    }
    summary["noise_floor_mse_median"] = statistics.median(s["noise_floor_mse"] for s in seeds)
    summary["persistence_mse_median"] = statistics.median(s["persistence_mse"] for s in seeds)
    return summary


def markdown(summary: dict, n_seeds: int) -> str:
    lines = [
        f"| kernel | trainable params | held-out MSE, median of {n_seeds} (sd) "
        "| R², median (range) |",
        "|---|---|---|---|",
    ]
    for name, _ in ROWS:
        r = summary[name]
        params = "/".join(str(p) for p in r["n_params"])
        lines.append(
            f"| {name} | {params} | {r['test_mse_median']:.5f} ({r['test_mse_sd']:.5f}) | "
            f"{r['test_r2_median']:.3f} ({r['test_r2_min']:.3f}–{r['test_r2_max']:.3f}) |"
        )
    floor = summary["noise_floor_mse_median"]
    lines.append(f"| noise floor (exact conditional mean) | – | {floor:.5f} | – |")
    lines.append(f"| persistence | 0 | {summary['persistence_mse_median']:.5f} | – |")
    return "\n".join(lines)


def add_forecaster_arguments(parser: argparse.ArgumentParser) -> None:
    """Toy brains and forecaster settings shared with ``connectome_robustness.py``."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--neurons", type=int, default=300)
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--filters", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_forecaster_arguments(parser)
    parser.add_argument("--field-diameter", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one seed, 100 steps")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "connectome_filters.json")
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = [0], 100
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    seeds = [run_seed(s, args) for s in args.seeds]
    summary = summarise(seeds)
    result = {
        "benchmark": "connectome_filters",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "load_average_at_end": os.getloadavg(),
        "total_seconds": time.perf_counter() - t0,
        "summary": summary,
        "seeds": seeds,
    }
    out = write_json(args.out, result)
    print()
    print(markdown(summary, len(seeds)))
    print()
    for key, value in summary["ratios"].items():
        per_seed = [round(v, 2) for v in value["per_seed"]]
        print(f"{key}: median {value['median']:.2f} (per seed {per_seed})")
    print(f"total {result['total_seconds']:.0f} s on {torch.get_num_threads()} threads -> {out}")


if __name__ == "__main__":
    main()
