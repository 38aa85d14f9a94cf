"""Number of motifs from the data: the discovery's profile cut on zoo brains of 2-6 families.

``assignment="em", discover_motif_count="profile_cut"`` (model/reassign.py
``profile_motif_count``) cuts the complete-linkage tree of the communities' cross-prediction
profiles at ``discover_cut_distance`` with ``n_filters`` (here ``--max-motifs``) as an upper
bound. Brain ``i`` has ``2 + i % 5`` families (the true count varies), drawn from the
development families (``--families dev``, seeds 1000 and up: where the cut distance is
chosen, by sweeping ``--cut-distances``) or from the test-only families (``--families test``,
seeds 3000 and up, not the seeds of ``motif_zoo.py``: measured once with the chosen
distance), or toy brains (``--families toy``, ``synth.toy_brain`` seeds 0 and up, 300 neurons,
4 motifs, fitted without a connectome). For every brain a real ``fit_mesoscale(...,
assignment="em", init="random", n_filters=--max-motifs)`` runs up to its discovery
(``motif_discovery_dev.py``); the discovery then runs with each cut distance and with the true
count (``discover_motif_count="n_filters"``, n_filters = true), and the labels are scored
against the true motifs (ARI) before training.

    python benchmarks/motif_count.py --families dev --brains 40 --cut-distances 0.05 0.1 0.15 0.2
    python benchmarks/motif_count.py --families test --brains 20 --cut-distances 0.1
    python benchmarks/motif_count.py --families toy --brains 4 --neurons 300 --cut-distances 0.1

``--heterogeneity H --heterogeneity-scope instance`` (dev families only) gives every instance
its own speed and gain in [1 - H / 2, 1] (``make_zoo_brain(heterogeneity=...)``): dev brains
where the profile cut over-splits as it does on the test families, to design a count on
without looking at them. ``--loss-cuts`` adds ``discover_motif_count="loss_cut"`` (the
symmetric cross-prediction loss scaled by its 90th percentile per brain, cut at each value)
and ``--affine-cut-distances`` ``"affine_cut"`` (the profile cut after a per-neuron affine
refit):

    python benchmarks/motif_count.py --families dev --brains 40 --cut-distances 0.1 \
        --loss-cuts 0.07 0.1 0.13 --heterogeneity 0.5 --heterogeneity-scope instance \
        --out benchmarks/results/motif_count_loss_dev_heterogeneous.json

``--merge-tolerances`` / ``--merge-t`` add the merge tests after the cut
(``discover_motif_count="merge_test"`` / ``"merge_t"``, tolerance / t threshold each):

    python benchmarks/motif_count.py --families dev --brains 16 --cut-distances 0.1 \
        --merge-tolerances 0.005 0.01 --merge-t 2 5 10 20 \
        --out benchmarks/results/motif_count_merge_dev.json

``--wiring-merge-distances`` (crossed with ``--wiring-tolerances``) adds
``discover_motif_count="wiring_cut"``: the profile cut with the connectome's wiring as a
second view (model/reassign.py ``wiring_motif_groups``: communities whose own sub-circuits
are wired differently stay apart, groups with one wiring merge up to the merge distance):

    python benchmarks/motif_count.py --families dev --brains 20 --cut-distances 0.1 \
        --wiring-merge-distances 0.3 0.5 0.7 --wiring-tolerances 3 5 \
        --out benchmarks/results/motif_count_wiring_design.json

``--wiring-veto-tolerances`` sets the veto's own tolerance (1000: only communities with and
without synapses inside are kept apart; names ``wiring_cut_D_T_veto_V``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from _results import write_json
from motif_discovery_dev import capture_discovery_inputs
from napari_mesoscale.model import reassign
from napari_mesoscale.synth.motif_zoo import make_zoo_brain
from napari_mesoscale.synth.toy_brain import make_toy_brain

RESULTS = Path(__file__).parent / "results"
FIRST_SEED = {"dev": 1000, "test": 3000, "toy": 0}


def discover(captured: tuple, motif: np.ndarray, **changes) -> dict:
    """Discovery on a copy of the captured inputs with ``changes`` to the config."""
    (net, units, tensors, frames, cfg, *rest), kwargs = captured
    net = copy.deepcopy(net)
    # n_filters below the net's: the discovery fills the first n_filters filters only
    cfg = dataclasses.replace(cfg, **changes)
    cpu = time.process_time()
    figures = reassign.discover_assignment(net, units, tensors, frames, cfg, *rest, **kwargs)
    labels = net.logits.sum(1).argmax(-1).cpu().numpy()
    return {
        "motif_ari": float(adjusted_rand_score(motif, labels)),
        "n_motifs": int(np.unique(labels).size),
        "cpu_s": time.process_time() - cpu,
        "discover_k": int(figures.get("discover_k", cfg.n_filters)),
    }


def _wiring_name(distance: float, tolerance: float, veto: float | None) -> str:
    name = f"wiring_cut_{distance:g}_{tolerance:g}"
    return name if veto is None else f"{name}_veto_{veto:g}"


def summarise(rows: list[dict], names: list[str]) -> dict:
    out = {}
    for name in names:
        found = np.array([r[name]["n_motifs"] for r in rows])
        true = np.array([r["true_k"] for r in rows])
        aris = np.array([r[name]["motif_ari"] for r in rows])
        out[name] = {
            "median_motif_ari": float(np.median(aris)),
            "mean_motif_ari": float(aris.mean()),
            "at_least_0.9": int((aris >= 0.9).sum()),
            "found_equals_true": int((found == true).sum()),
            "within_one": int((np.abs(found - true) <= 1).sum()),
            "over": int((found > true).sum()),
            "under": int((found < true).sum()),
            "brains": len(rows),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", choices=("dev", "test", "toy"), default="dev")
    parser.add_argument("--brains", type=int, default=40)
    parser.add_argument("--max-motifs", type=int, default=8)
    parser.add_argument("--cut-distances", type=float, nargs="+", default=[0.1])
    parser.add_argument("--loss-cuts", type=float, nargs="*", default=[])
    parser.add_argument("--affine-cut-distances", type=float, nargs="*", default=[])
    parser.add_argument("--merge-tolerances", type=float, nargs="*", default=[])
    parser.add_argument("--merge-t", type=float, nargs="*", default=[])
    parser.add_argument(
        "--wiring-merge-distances", type=float, nargs="*", default=[],
        help="discover_motif_count='wiring_cut' with each discover_wiring_merge_distance",
    )
    parser.add_argument(
        "--wiring-tolerances", type=float, nargs="+", default=[5.0],
        help="discover_wiring_tolerance values crossed with --wiring-merge-distances",
    )
    parser.add_argument(
        "--wiring-veto-tolerances", type=float, nargs="*", default=[],
        help="discover_wiring_veto_tolerance values crossed with the above (default: each "
        "tolerance itself)",
    )
    parser.add_argument("--first-brain", type=int, default=0)
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument(
        "--heterogeneity", type=float, default=0.0,
        help="per-neuron speed / gain jitter of the zoo brains (make_zoo_brain), dev only",
    )
    parser.add_argument("--heterogeneity-scope", choices=("neuron", "instance"), default="neuron")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.heterogeneity and args.families != "dev":
        parser.error("--heterogeneity is for the dev families only (designing on them)")
    torch.set_num_threads(1)
    out = args.out or str(RESULTS / f"motif_count_{args.families}.json")
    names = [f"cut_{d:g}" for d in args.cut_distances]
    names += [f"loss_cut_{d:g}" for d in args.loss_cuts]
    names += [f"affine_cut_{d:g}" for d in args.affine_cut_distances]
    names += [f"merge_{m:g}" for m in args.merge_tolerances]
    names += [f"merge_t_{m:g}" for m in args.merge_t]
    vetoes = args.wiring_veto_tolerances or [None]
    wiring = [
        (d, t, v)
        for d in args.wiring_merge_distances for t in args.wiring_tolerances for v in vetoes
    ]
    names += [_wiring_name(*w) for w in wiring]
    rows, t0, load_before = [], time.perf_counter(), os.getloadavg()
    for i in range(args.first_brain, args.first_brain + args.brains):
        seed = FIRST_SEED[args.families] + i
        if args.families == "toy":
            brain = make_toy_brain(
                args.neurons, n_frames=args.frames, render=None, em=False, seed=seed
            )
        else:
            brain = make_zoo_brain(
                args.neurons, args.frames, args.families, n_families=2 + i % 5, seed=seed,
                heterogeneity=args.heterogeneity, heterogeneity_scope=args.heterogeneity_scope,
            )
        true_k = len(brain.motif_names)
        captured = capture_discovery_inputs(brain, args.max_motifs, args.families != "toy")
        row = {"seed": seed, "families": list(brain.motif_names), "true_k": true_k}
        for d, name in zip(args.cut_distances, names, strict=False):
            row[name] = discover(
                captured, brain.motif, discover_motif_count="profile_cut", discover_cut_distance=d
            )
        for d in args.loss_cuts:
            row[f"loss_cut_{d:g}"] = discover(
                captured, brain.motif, discover_motif_count="loss_cut", discover_loss_cut=d
            )
        for d in args.affine_cut_distances:
            row[f"affine_cut_{d:g}"] = discover(
                captured, brain.motif, discover_motif_count="affine_cut",
                discover_affine_cut_distance=d,
            )
        for m in args.merge_tolerances:
            row[f"merge_{m:g}"] = discover(
                captured, brain.motif, discover_motif_count="merge_test",
                discover_merge_tolerance=m,
            )
        for m in args.merge_t:
            row[f"merge_t_{m:g}"] = discover(
                captured, brain.motif, discover_motif_count="merge_t", discover_merge_t=m
            )
        for d, t, v in wiring:
            row[_wiring_name(d, t, v)] = discover(
                captured, brain.motif, discover_motif_count="wiring_cut",
                discover_wiring_merge_distance=d, discover_wiring_tolerance=t,
                discover_wiring_veto_tolerance=t if v is None else v,
            )
        row["given_true_k"] = discover(captured, brain.motif, n_filters=true_k)
        rows.append(row)
        print(seed, true_k, " ".join(
            f"{n}={row[n]['n_motifs']}/{row[n]['motif_ari']:.2f}" for n in names
        ), f"given_true_k={row['given_true_k']['motif_ari']:.2f}", flush=True)
    summary = summarise(rows, [*names, "given_true_k"])
    write_json(out, {
        "what": "number of motifs and discovery-only motif ARI, brains of 2-6 families",
        "args": vars(args), "seconds": time.perf_counter() - t0,
        "load_before": load_before, "load_after": os.getloadavg(),
        "summary": summary, "brains": rows,
    })
    for name, row in summary.items():
        print(name, row)


if __name__ == "__main__":
    main()
