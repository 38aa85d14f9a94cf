"""Dev seeds of the wiring signature in the assignment initialisation (issue 13).

For every toy-brain seed given (default 4-15, the dev seeds; seeds 0-3 are the held-out ones
of ``benchmarks/model.py --accuracy-only``), the initial motif ARI of the dynamics-feature
initialisation with the connectome, without and with ``ModelConfig.wiring_features`` at each
weight of ``--weights``, and the instances whose initial motif differs from their family's
(majority over the family's neurons). Initialisation only (no training): training keeps the
initial assignment on the toy brain (README). Writes ``benchmarks/results/wiring_dev.json``.
``--scopes neuron community subcircuit`` measures every weight with each
``ModelConfig.wiring_scope`` (keys ``w2_p0.3``, ``w2_p0.3_community``, ``w2_p0.3_subcircuit``);
every key also counts the impure communities (members of two true motifs or more) and their
minority members, against the toy brain's motif labels.

Usage::

    python benchmarks/wiring_dev.py --seeds 4 5 6 --weights 0 0.5 1 2
    python benchmarks/wiring_dev.py --seeds $(seq 4 31) --weights 0 1 2 --partner-weights 0.3 \
        --scopes neuron community --out benchmarks/results/wiring_community_dev.json
    python benchmarks/wiring_dev.py --seeds $(seq 4 47) --weights 2 --partner-weights 0.3 \
        --scopes community subcircuit --out benchmarks/results/wiring_subcircuit_dev.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "wiring_dev.json"


def mislabelled_instances(groups: np.ndarray, motif: np.ndarray, instance: np.ndarray) -> list:
    """Instances whose majority initial group is not their family's majority group."""
    out = []
    for fam in np.unique(motif):
        fam_major = np.bincount(groups[motif == fam]).argmax()
        for inst in np.unique(instance[motif == fam]):
            major = np.bincount(groups[instance == inst]).argmax()
            if major != fam_major:
                out.append(
                    {
                        "instance": int(inst),
                        "motif": int(fam),
                        "size": int((instance == inst).sum()),
                    }
                )
    return out


def impurity(communities: np.ndarray, motif: np.ndarray) -> dict:
    """Communities holding members of two true motifs or more, and their minority members."""
    counts = np.zeros((communities.max() + 1, motif.max() + 1))
    np.add.at(counts, (communities, motif), 1.0)
    minority = counts.sum(1) - counts.max(1)
    return {
        "n_communities": int(counts.shape[0]),
        "impure_communities": int(np.count_nonzero(minority)),
        "minority_neurons": int(minority.sum()),
    }


def _captured_communities(run):
    """Run ``run()`` and return its result with the final communities of the initialisation
    (those that pick the fields)."""
    from napari_mesoscale.model import initial_model

    seen = []
    pick_fields = initial_model.pick_fields

    def spy(groups, *args):
        seen.append(groups.copy())
        return pick_fields(groups, *args)

    initial_model.pick_fields = spy
    try:
        return run(), (seen[-1] if seen else None)
    finally:
        initial_model.pick_fields = pick_fields


def initial_ari(
    brain, weight: float, partner_weight: float, seed: int, scope: str = "neuron", **options
) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data

    cfg = ModelConfig(
        epochs=30,
        wiring_features=weight,
        wiring_partner_weight=partner_weight,
        wiring_scope=scope,
        **options,
    )
    data = prepare_data(brain.activity, brain.positions, brain.stimulus, cfg)
    init, communities = _captured_communities(
        lambda: initialise_model(data, cfg, brain.adjacency, seed)
    )
    groups = init.init_groups
    out = {
        "motif_ari": float(adjusted_rand_score(brain.motif, groups)),
        "mislabelled": mislabelled_instances(groups, brain.motif, brain.instance),
    }
    if communities is not None:
        out["impurity"] = impurity(communities, brain.motif)
        out["community_instance_ari"] = float(adjusted_rand_score(brain.instance, communities))
    return out


def main() -> None:
    import torch

    from napari_mesoscale.synth import make_toy_brain

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(4, 16)))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--partner-weights", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--scopes", nargs="+", default=["neuron"], choices=["neuron", "community", "subcircuit"]
    )
    parser.add_argument(
        "--option",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="further ModelConfig options of every fit, e.g. subcircuit_density_ratio=8",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    options = {k: float(v) for k, v in (o.split("=", 1) for o in args.option)}
    rows = []
    t0, c0 = time.perf_counter(), time.process_time()
    for seed in args.seeds:
        brain = make_toy_brain(render=None, em=False, seed=seed)
        row = {"seed": seed, "motif_names": list(getattr(brain, "motif_names", []))}
        for w in args.weights:
            for pw in args.partner_weights if w > 0 else [0.0]:
                for scope in args.scopes if w > 0 else ["neuron"]:
                    key = f"w{w:g}_p{pw:g}" + ("" if scope == "neuron" else f"_{scope}")
                    row[key] = initial_ari(brain, w, pw, seed, scope, **options)
                    ari, wrong = row[key]["motif_ari"], row[key]["mislabelled"]
                    print(seed, key, f"{ari:.3f}", wrong, row[key].get("impurity"), flush=True)
        rows.append(row)
    keys = [k for k in rows[0] if k.startswith("w")]
    summary = {
        k: {
            "median": float(np.median([r[k]["motif_ari"] for r in rows])),
            "min": float(np.min([r[k]["motif_ari"] for r in rows])),
            "mislabelled_instances": int(sum(len(r[k]["mislabelled"]) for r in rows)),
            "impure_communities": int(
                sum(r[k].get("impurity", {}).get("impure_communities", 0) for r in rows)
            ),
            "minority_neurons": int(
                sum(r[k].get("impurity", {}).get("minority_neurons", 0) for r in rows)
            ),
            "seeds_below_1": [r["seed"] for r in rows if r[k]["motif_ari"] < 1.0],
        }
        for k in keys
    }
    for k, v in summary.items():
        print(k, v)
    write_json(
        args.out,
        {
            "seeds": args.seeds,
            "options": options,
            "per_seed": rows,
            "summary": summary,
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "loadavg": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
