"""Robustness of connectome-derived filters (Chu et al. 2022) to graph perturbation and smoothing.

The graph-kernel forecaster of ``benchmarks/connectome_filters.py``
(:func:`napari_mesoscale.forecasters.graph_kernel.fit_kernel_forecaster`, same settings: 4
basis filters, hidden 4, 200 Adam steps, batches of 128 transitions, held-out last 25 % of
the frames) is fitted on toy brains with kernels (each neuron's adjacency column, signed
synapse counts, L1-normalised) built from a perturbed or smoothed copy of the true wiring:

* ``drop p`` — every edge removed with probability p
  (:func:`~napari_mesoscale.connectome.graph_ops.perturb_graph`; p = 1 leaves no drive);
* ``add f`` — ``f · E`` spurious edges between random unconnected pairs, weights drawn from
  the true ones;
* ``rewire f`` — ``f · E / 2`` degree-preserving double-edge swaps
  (:func:`~napari_mesoscale.connectome.graph_ops.degree_preserving_shuffle`; each swap moves
  the post end of two edges, so about ``f · E`` edge moves, the measured fraction of true
  edges kept is reported); ``rewire 1`` is the full shuffle (10 swaps per edge), the
  degree-preserving-shuffle reference;
* ``reverse 1`` — every edge reversed (unless its reverse exists): pre and post swapped;
* ``weight noise σ`` — every weight multiplied by ``exp(σ ε)``;
* ``diffusion α`` (``, 2 hops``) — :func:`~napari_mesoscale.connectome.graph_ops.smooth_graph`:
  each neuron's outgoing row mixed with its neighbours' rows, ``(1 - α) A + α P^h A``;
* ``…, then diffusion 0.5`` — a perturbed graph smoothed (does smoothing regularise it?).

Each graph is used frozen (the kernel is fixed, a per-neuron gain is learned) and trainable
(the kernel values are trained from it; its trainable parameter count grows with the number of
edges, reported). Reported per seed and as medians: held-out one-step MSE, its ratio to the
unperturbed graph of the same seed and mode, the fraction of the true edges the graph keeps and
of its edges that are spurious. With ``--mesoscale`` (the default) three of the graphs also
drive ``fit_mesoscale(edge_init="connectome")`` (trainable edges, 20 epochs) on 500-frame brains
of the first two seeds (those of ``connectome_filters_mesoscale.py``).
Writes ``benchmarks/results/connectome_robustness.json`` after every seed and prints markdown.

    python benchmarks/connectome_robustness.py --threads 1        # 3 seeds, ~10 min
    python benchmarks/connectome_robustness.py --quick            # 1 seed, few conditions
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from _results import write_json
from napari_mesoscale.connectome.graph_ops import (
    degree_preserving_shuffle,
    perturb_graph,
    smooth_graph,
)
from napari_mesoscale.forecasters.graph_kernel import connectome_kernels, fit_kernel_forecaster
from napari_mesoscale.model import fit_mesoscale
from napari_mesoscale.synth import make_toy_brain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from connectome_filters import add_forecaster_arguments  # noqa: E402
from connectome_filters_mesoscale import test_mse as mesoscale_test_mse  # noqa: E402

Graph = Callable[[sp.csr_matrix, int], sp.csr_matrix]


def _rewire(fraction: float) -> Graph:
    def graph(adj: sp.csr_matrix, seed: int) -> sp.csr_matrix:
        if fraction >= 1.0:
            return degree_preserving_shuffle(adj, seed=seed)
        swaps = int(round(fraction * adj.nnz / 2))
        return degree_preserving_shuffle(adj, n_swaps=swaps, seed=seed)

    return graph


def _perturb(**kw: float) -> Graph:
    return lambda adj, seed: perturb_graph(adj, seed=seed, **kw)


def _smooth(**kw: float) -> Graph:
    return lambda adj, seed: smooth_graph(adj, method="diffusion", **kw)


def _then(first: Graph, alpha: float = 0.5) -> Graph:
    return lambda adj, seed: smooth_graph(first(adj, seed), method="diffusion", alpha=alpha)


UNPERTURBED = "unperturbed"
SHUFFLE = "rewire 1 (degree-preserving shuffle)"
# name -> (family, level, graph); the order is the table's
CONDITIONS: dict[str, tuple[str, float, Graph]] = {
    UNPERTURBED: ("none", 0.0, lambda adj, seed: adj),
    **{f"drop {p:g}": ("drop", p, _perturb(drop=p)) for p in (0.1, 0.25, 0.5, 1.0)},
    **{f"add {f:g}": ("add", f, _perturb(add=f)) for f in (0.1, 0.25, 0.5, 1.0)},
    **{f"rewire {f:g}": ("rewire", f, _rewire(f)) for f in (0.1, 0.25, 0.5)},
    SHUFFLE: ("rewire", 1.0, _rewire(1.0)),
    "reverse 1": ("reverse", 1.0, _perturb(reverse=1.0)),
    **{f"weight noise {s:g}": ("weight_noise", s, _perturb(weight_noise=s)) for s in (0.5, 1.0)},
    **{f"diffusion {a:g}": ("diffusion", a, _smooth(alpha=a)) for a in (0.25, 0.5, 1.0)},
    "diffusion 0.5, 2 hops": ("diffusion_2hops", 0.5, _smooth(alpha=0.5, hops=2)),
    "drop 0.5, then diffusion 0.5": ("drop+diffusion", 0.5, _then(_perturb(drop=0.5))),
    "rewire 0.5, then diffusion 0.5": ("rewire+diffusion", 0.5, _then(_rewire(0.5))),
}
QUICK = (UNPERTURBED, "drop 0.5", "rewire 0.5", SHUFFLE, "diffusion 0.5")
MESOSCALE = (UNPERTURBED, "drop 0.5", "diffusion 0.5")
MODES = ("frozen", "trainable")


def graph_stats(true: sp.csr_matrix, graph: sp.csr_matrix) -> dict:
    """Edges of ``graph``, the fraction of the true edges it keeps (same direction) and the
    fraction of its edges that are not true edges."""
    support = (graph != 0).astype(np.int8)
    kept = int(true.multiply(support).nnz)
    n = int(support.nnz)
    return {
        "n_edges": n,
        "true_edges_kept": kept / max(true.nnz, 1),
        "spurious_fraction": (n - kept) / n if n else 0.0,
    }


def run_seed(seed: int, names: list[str], args: argparse.Namespace) -> dict:
    brain = make_toy_brain(args.neurons, n_frames=args.frames, render=None, em=False, seed=seed)
    x, u, adj = brain.activity, brain.stimulus, sp.csr_matrix(brain.adjacency)
    split = int(round((args.frames - 1) * 0.75))
    target = x[split + 1 :]
    out: dict = {
        "seed": seed,
        "n_neurons": brain.n_neurons,
        "n_edges": int(adj.nnz),
        "noise_floor_mse": float(np.mean((brain.one_step()[split:-1] - target) ** 2)),
        "persistence_mse": float(np.mean((x[split:-1] - target) ** 2)),
        "graphs": {},
        "rows": {},
        "mesoscale": {},
    }
    for name in names:
        graph = CONDITIONS[name][2](adj, seed)
        out["graphs"][name] = graph_stats(adj, graph)
        kernels = connectome_kernels(graph, orientation="in", normalise="l1")
        out["rows"][name] = {}
        for mode in MODES:
            if mode == "trainable" and kernels.nnz == 0:  # nothing to train: the frozen fit
                out["rows"][name][mode] = {**out["rows"][name]["frozen"], "same_as": "frozen"}
                continue
            t0 = time.perf_counter()
            fit = fit_kernel_forecaster(
                x,
                kernels,
                mode=mode,
                stimulus=u,
                n_filters=args.filters,
                hidden=args.hidden,
                steps=args.steps,
                lr=args.lr,
                batch_frames=args.batch,
                seed=seed,
            )
            row = {
                "test_mse": fit.test_mse,
                "test_r2": fit.test_r2,
                "n_params": fit.n_params,
                "seconds": time.perf_counter() - t0,
            }
            out["rows"][name][mode] = row
            print(
                f"seed {seed} {name:38s} {mode:9s} edges {out['graphs'][name]['n_edges']:6d} "
                f"mse {row['test_mse']:.5f} params {row['n_params']} ({row['seconds']:.1f} s)",
                flush=True,
            )
    if args.mesoscale and seed in args.seeds[: args.mesoscale_seeds]:
        small = make_toy_brain(
            args.neurons, n_frames=args.mesoscale_frames, render=None, em=False, seed=seed
        )
        for name in (m for m in MESOSCALE if m in names):
            graph = CONDITIONS[name][2](sp.csr_matrix(small.adjacency), seed)
            t0 = time.perf_counter()
            fit = fit_mesoscale(
                small.activity,
                small.positions,
                connectome=graph,
                stimulus=small.stimulus,
                epochs=args.mesoscale_epochs,
                seed=seed,
                edge_init="connectome",
            )
            row = {
                "test_mse": mesoscale_test_mse(fit, small.activity, small.stimulus),
                "n_params": int(fit.n_params),
                "seconds": time.perf_counter() - t0,
            }
            out["mesoscale"][name] = row
            print(
                f"seed {seed} mesoscale {name:28s} mse {row['test_mse']:.5f} "
                f"params {row['n_params']} ({row['seconds']:.0f} s)",
                flush=True,
            )
    return out


def _ratios(seeds: list[dict], get: Callable[[dict, str], float], name: str) -> dict:
    mse = [get(s, name) for s in seeds]
    ratio = [get(s, name) / get(s, UNPERTURBED) for s in seeds]
    return {
        "test_mse_median": statistics.median(mse),
        "test_mse_per_seed": mse,
        "ratio_vs_unperturbed_median": statistics.median(ratio),
        "ratio_vs_unperturbed_per_seed": ratio,
    }


def summarise(seeds: list[dict], names: list[str]) -> dict:
    summary: dict = {"conditions": {}, "mesoscale": {}}
    for name in names:
        family, level, _ = CONDITIONS[name]
        entry: dict = {"family": family, "level": level}
        for key in ("n_edges", "true_edges_kept", "spurious_fraction"):
            entry[f"{key}_median"] = statistics.median(s["graphs"][name][key] for s in seeds)
        for mode in MODES:
            entry[mode] = _ratios(seeds, lambda s, n, m=mode: s["rows"][n][m]["test_mse"], name)
            entry[mode]["n_params_median"] = statistics.median(
                s["rows"][name][mode]["n_params"] for s in seeds
            )
        summary["conditions"][name] = entry
    for name in MESOSCALE:
        done = [s for s in seeds if name in s["mesoscale"]]
        if done:
            entry = _ratios(done, lambda s, n: s["mesoscale"][n]["test_mse"], name)
            entry["seeds"] = [s["seed"] for s in done]
            entry["n_params_median"] = statistics.median(
                s["mesoscale"][name]["n_params"] for s in done
            )
            summary["mesoscale"][name] = entry
    for key in ("noise_floor_mse", "persistence_mse"):
        summary[f"{key}_median"] = statistics.median(s[key] for s in seeds)
    return summary


def markdown(summary: dict, n_seeds: int) -> str:
    lines = [
        "| graph | edges | true edges kept | spurious | frozen: MSE (× unperturbed) "
        "| trainable: MSE (× unperturbed) | trainable params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["conditions"].items():
        fz, tr = r["frozen"], r["trainable"]
        lines.append(
            f"| {name} | {r['n_edges_median']:.0f} | {r['true_edges_kept_median']:.2f} "
            f"| {r['spurious_fraction_median']:.2f} "
            f"| {fz['test_mse_median']:.5f} ({fz['ratio_vs_unperturbed_median']:.2f}) "
            f"| {tr['test_mse_median']:.5f} ({tr['ratio_vs_unperturbed_median']:.2f}) "
            f"| {tr['n_params_median']:.0f} |"
        )
    lines.append(
        f"| noise floor (exact conditional mean) | | | | {summary['noise_floor_mse_median']:.5f} "
        f"| {summary['noise_floor_mse_median']:.5f} | |"
    )
    lines.append(f"\nMedians of {n_seeds} seeds; ratios are medians of per-seed ratios.")
    if summary["mesoscale"]:
        lines += [
            "",
            "| graph → fit_mesoscale(edge_init='connectome'), seeds "
            f"{next(iter(summary['mesoscale'].values()))['seeds']} "
            "| MSE (× unperturbed) | trainable params |",
            "|---|---|---|",
        ]
        for name, r in summary["mesoscale"].items():
            lines.append(
                f"| {name} | {r['test_mse_median']:.5f} ({r['ratio_vs_unperturbed_median']:.2f}) "
                f"| {r['n_params_median']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_forecaster_arguments(parser)
    parser.add_argument("--conditions", nargs="*", default=None, help="run only these graphs")
    parser.add_argument(
        "--mesoscale",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also drive fit_mesoscale(edge_init='connectome') with a few graphs",
    )
    parser.add_argument("--mesoscale-seeds", type=int, default=2, help="on the first N seeds")
    parser.add_argument("--mesoscale-frames", type=int, default=500)
    parser.add_argument("--mesoscale-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one seed, 5 graphs, 100 steps")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "connectome_robustness.json")
    )
    args = parser.parse_args()
    names = list(args.conditions or CONDITIONS)
    if args.quick:
        args.seeds, args.steps, args.mesoscale = [0], 100, False
        names = list(QUICK)
    unknown = sorted(set(names) - set(CONDITIONS))
    if unknown or UNPERTURBED not in names:
        parser.error(f"unknown conditions {unknown}; {UNPERTURBED!r} is always needed.")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seeds: list[dict] = []
    for seed in args.seeds:  # the JSON is rewritten after every seed (partial runs are kept)
        seeds.append(run_seed(seed, names, args))
        summary = summarise(seeds, names)
        result = {
            "benchmark": "connectome_robustness",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "seeds_done": [s["seed"] for s in seeds],
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "load_average_at_end": os.getloadavg(),
            "total_seconds": time.perf_counter() - t0,
            "summary": summary,
            "per_seed": seeds,
        }
        write_json(out, result)
    print()
    print(markdown(summary, len(seeds)))
    print(f"total {result['total_seconds']:.0f} s on {torch.get_num_threads()} threads -> {out}")


if __name__ == "__main__":
    main()
