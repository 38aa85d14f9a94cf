"""Ablation of connectome-derived drive filters on the mesoscale model itself (Chu et al. 2022).

``fit_mesoscale`` is fitted on toy brains; only the drive edges and their initial weights change
between rows:

* ``connectome, ridge init`` — the true connectome's edges, weights initialised by the
  per-neuron ridge fit and trained (the default behaviour with ``connectome=``);
* ``shuffled, ridge init`` — the same on a degree-preserving shuffle of the adjacency;
* ``connectome kernels, frozen`` — weights = the connectome kernels (each neuron's adjacency
  column, signed synapse counts, L1-normalised; ``edge_init="connectome"``), not trained
  (``freeze_edges=True``);
* ``shuffled kernels, frozen`` — the same from the shuffle;
* ``connectome kernels, trainable`` / ``shuffled kernels, trainable`` — kernels as initial
  values, then trained;
* ``learned (no connectome)`` — no connectome: local gather over the nearest neurons (the
  default ``max_neighbors=32``), ridge-initialised and trained (fully learned filters);
* ``learned (no connectome), matched`` — the same with ``max_neighbors`` chosen per brain so
  that the local gather has as many edges as the connectome has drive edges (the count of
  ``local_edges`` at the model's default gather radius closest to the connectome's), hence
  about the parameter count of the trainable connectome rows.

Shuffled rows have exactly the same number of edges (every in/out-degree is kept), hence the
same trainable parameter count as the matching connectome rows; the unmatched learned row has
about 1.5x their parameters, the matched one within a few per cent (ratio reported).
Held-out one-step MSE on the test block (``evaluate_forecast`` in data units), motif and domain
ARI against the toy brain's truth, trainable parameters (``fit.n_params``) and the noise floor
(the toy dynamics' exact conditional mean). Writes
``benchmarks/results/connectome_filters_mesoscale.json`` and prints a markdown table.

    python benchmarks/connectome_filters_mesoscale.py             # 2 seeds, 20 epochs
    python benchmarks/connectome_filters_mesoscale.py --seeds 0   # 1 seed
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _results import write_json
from napari_mesoscale.connectome.graph_ops import degree_preserving_shuffle
from napari_mesoscale.evaluate import evaluate_forecast, recovery_scores
from napari_mesoscale.model import ModelConfig, fit_mesoscale
from napari_mesoscale.model.fit import auto_diameter
from napari_mesoscale.model.initialise import connectome_edges, local_edges
from napari_mesoscale.synth import make_toy_brain

#: option value resolved per brain by :func:`matched_max_neighbors`
MATCH_CONNECTOME_EDGES = "match connectome edges"
# name -> (graph, options); graph in {"true", "shuffled", None}
ROWS: dict[str, tuple[str | None, dict]] = {
    "connectome, ridge init": ("true", {}),
    "shuffled, ridge init": ("shuffled", {}),
    "connectome kernels, frozen": ("true", {"edge_init": "connectome", "freeze_edges": True}),
    "shuffled kernels, frozen": ("shuffled", {"edge_init": "connectome", "freeze_edges": True}),
    "connectome kernels, trainable": ("true", {"edge_init": "connectome"}),
    "shuffled kernels, trainable": ("shuffled", {"edge_init": "connectome"}),
    "learned (no connectome)": (None, {}),
    "learned (no connectome), matched": (None, {"max_neighbors": MATCH_CONNECTOME_EDGES}),
}
MATCHED = ("connectome kernels, trainable", "learned (no connectome), matched")


def matched_max_neighbors(
    positions: np.ndarray, adjacency: Any, k_max: int = 64
) -> tuple[int, int]:
    """The ``max_neighbors`` whose local gather (at fit_mesoscale's default radius, half the
    automatic receptive-field diameter) has the edge count closest to the connectome's drive
    edges (self loops excluded, as fit_mesoscale does). Returns (max_neighbors, gather edges)."""
    target = connectome_edges(adjacency)[0].shape[1]
    radius = auto_diameter(positions) / 2
    counts = [local_edges(positions, radius, k).shape[1] for k in range(1, k_max + 1)]
    best = int(np.argmin([abs(c - target) for c in counts]))
    return best + 1, counts[best]


def gather_coverage(positions: np.ndarray, adjacency: Any, max_neighbors: int) -> float:
    """Fraction of the connectome's drive edges that the default local gather includes."""
    n = positions.shape[0]
    true = connectome_edges(adjacency)[0]
    gather = local_edges(positions, auto_diameter(positions) / 2, max_neighbors)
    hit = np.isin(true[0] * n + true[1], gather[0] * n + gather[1])
    return float(hit.mean()) if hit.size else 0.0


def test_mse(fit, x: np.ndarray, u: np.ndarray) -> float:
    t0, t1 = fit.blocks["test"]
    pred = fit.predict(x, stimulus=u)
    return float(evaluate_forecast(pred, x, frames=slice(t0 + 1, t1))[1]["mse"])


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    brain = make_toy_brain(args.neurons, n_frames=args.frames, render=None, em=False, seed=seed)
    x, u = brain.activity, brain.stimulus
    graphs = {
        "true": brain.adjacency,
        "shuffled": degree_preserving_shuffle(brain.adjacency, seed=seed),
        None: None,
    }
    out: dict = {"seed": seed, "n_synapse_pairs": int(brain.adjacency.nnz), "rows": {}}
    floor_pred = np.full_like(x, np.nan)
    floor_pred[1:] = brain.one_step()[:-1]
    for name, (graph, options) in ROWS.items():
        if args.rows and name not in args.rows:
            continue
        if options.get("max_neighbors") == MATCH_CONNECTOME_EDGES:
            k, n_gather = matched_max_neighbors(brain.positions, brain.adjacency)
            options = {**options, "max_neighbors": k}
            out["matched_gather"] = {"max_neighbors": k, "gather_edges": n_gather}
        t0 = time.perf_counter()
        fit = fit_mesoscale(
            x,
            brain.positions,
            connectome=graphs[graph],
            stimulus=u,
            epochs=args.epochs,
            seed=seed,
            **options,
        )
        seconds = time.perf_counter() - t0
        rec = recovery_scores(fit, brain.motif, brain.instance)
        row = {
            "graph": graph,
            "options": options,
            "test_mse": test_mse(fit, x, u),
            "test_mse_normalised": float(fit.scores["test_mse"]),
            "motif_ari": float(rec["motif_ari"]),
            "domain_ari": float(rec["domain_ari"]),
            "n_params": int(fit.n_params),
            "n_edges": int(fit._p["n_edges"]),
            "seconds": seconds,
            "epochs_run": int(len(fit.history)),
        }
        if graph is None:  # how much of the true wiring the local gather happens to contain
            k = int(options.get("max_neighbors", ModelConfig().max_neighbors))
            row["true_edges_in_gather"] = gather_coverage(brain.positions, brain.adjacency, k)
        if "noise_floor_mse" not in out:
            t_0, t_1 = fit.blocks["test"]
            out["noise_floor_mse"] = float(
                evaluate_forecast(floor_pred, x, frames=slice(t_0 + 1, t_1))[1]["mse"]
            )
        out["rows"][name] = row
        print(
            f"seed {seed} {name}: mse {row['test_mse']:.5f} motif ARI {row['motif_ari']:.3f} "
            f"domain ARI {row['domain_ari']:.3f} params {row['n_params']} ({seconds:.0f} s)",
            flush=True,
        )
    return out


def summarise(seeds: list[dict]) -> dict:
    names = [n for n in ROWS if all(n in s["rows"] for s in seeds)]
    summary = {}
    for name in names:
        rows = [s["rows"][name] for s in seeds]
        summary[name] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("test_mse", "motif_ari", "domain_ari", "n_params", "seconds")
        }
        summary[name]["test_mse_per_seed"] = [r["test_mse"] for r in rows]
    pairs = [
        ("connectome, ridge init", "shuffled, ridge init"),
        ("connectome kernels, frozen", "shuffled kernels, frozen"),
        ("connectome kernels, trainable", "shuffled kernels, trainable"),
    ]
    ratios = {}
    for a, b in pairs:
        if a in names and b in names:
            per = [s["rows"][a]["test_mse"] / s["rows"][b]["test_mse"] for s in seeds]
            ratios[f"{a} / {b}"] = {"median": statistics.median(per), "per_seed": per}
    matched = {}
    if all(n in names for n in MATCHED):
        per = [s["rows"][MATCHED[1]]["n_params"] / s["rows"][MATCHED[0]]["n_params"] for s in seeds]
        matched = {
            "rows": list(MATCHED),
            "n_params_ratio_per_seed": per,
            "max_neighbors_per_seed": [s["matched_gather"]["max_neighbors"] for s in seeds],
            "true_edges_in_gather_per_seed": [
                s["rows"][MATCHED[1]]["true_edges_in_gather"] for s in seeds
            ],
            "mse_ratio_per_seed": [
                s["rows"][MATCHED[1]]["test_mse"] / s["rows"][MATCHED[0]]["test_mse"] for s in seeds
            ],
        }
    return {"rows": summary, "mse_ratio_true_over_shuffled": ratios, "matched_params": matched}


def markdown(summary: dict, floor: float) -> str:
    lines = [
        "| drive filters | held-out 1-step MSE | motif ARI | domain ARI | trainable params |",
        "|---|---|---|---|---|",
    ]
    for name, r in summary["rows"].items():
        lines.append(
            f"| {name} | {r['test_mse']:.5f} | {r['motif_ari']:.2f} | {r['domain_ari']:.2f} "
            f"| {int(r['n_params'])} |"
        )
    lines.append(f"| noise floor (exact conditional mean) | {floor:.5f} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--neurons", type=int, default=300)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", nargs="*", default=None, help="run only these rows")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent / "results" / "connectome_filters_mesoscale.json"),
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seeds: list[dict] = []
    for s in args.seeds:  # the JSON is rewritten after every seed (partial runs are kept)
        seeds.append(run_seed(s, args))
        summary = summarise(seeds)
        floor = statistics.median(r["noise_floor_mse"] for r in seeds)
        result = {
            "benchmark": "connectome_filters_mesoscale",
            "settings": {
                "seeds": args.seeds,
                "seeds_done": [r["seed"] for r in seeds],
                "neurons": args.neurons,
                "frames": args.frames,
                "epochs": args.epochs,
                "threads": args.threads,
                "split": "model default (0.7, 0.15, 0.15); targets = test block frames 2..",
                "stimulus": True,
            },
            "summary": summary,
            "noise_floor_mse_median": floor,
            "per_seed": seeds,
            "total_seconds": time.perf_counter() - t0,
            "machine": {"python": platform.python_version(), "torch": torch.__version__},
        }
        write_json(out, result)
    print(markdown(summary, floor))
    for k, v in summary["mse_ratio_true_over_shuffled"].items():
        print(f"MSE ratio {k}: median {v['median']:.3f} per seed {np.round(v['per_seed'], 3)}")
    if summary["matched_params"]:
        m = summary["matched_params"]
        print(
            f"matched learned row: max_neighbors {m['max_neighbors_per_seed']}, params ratio "
            f"{np.round(m['n_params_ratio_per_seed'], 3)} vs {MATCHED[0]!r}, MSE ratio "
            f"{np.round(m['mse_ratio_per_seed'], 3)}; its gather holds "
            f"{np.round(m['true_edges_in_gather_per_seed'], 3)} of the true edges"
        )
    print(f"total {result['total_seconds']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
