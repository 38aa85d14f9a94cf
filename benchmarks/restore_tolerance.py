"""How far ``activity_assignment="restored"`` gets back to the initialisation's motifs, by the
per-neuron tolerance: one default fit per zoo brain, then the restoration at several tolerances
(the fit's tolerance off) on copies of its network. Development data only (information for a
later rule, never evidence for one on the same brains). JSON.

Usage::

    python benchmarks/restore_tolerance.py --seed-base 1100 --brains 2 --start 0 \
        --out benchmarks/results/restore_tolerance_dev.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TOLERANCES = (0.0, 0.05, 0.1, 0.25, 0.5, float("inf"))


def _labels(net) -> tuple[np.ndarray, np.ndarray]:
    """Motif (the chosen filter) and domain (the chosen field-filter pair) of every neuron."""
    _, field, filt = net.choice()
    field, filt = field.cpu().numpy(), filt.cpu().numpy()
    _, domain = np.unique(field.astype(np.int64) * net.n_filters + filt, return_inverse=True)
    return filt, domain


def _scores(fit, brain, te: tuple[int, int]) -> dict:
    from motif_zoo import _mse
    from napari_mesoscale.evaluate import recovery_scores

    motif, domain = _labels(fit.net)
    row = recovery_scores(motif, brain.motif, brain.instance, domain_labels=domain)
    row["mse"] = _mse(fit.predict(brain.activity, stimulus=brain.stimulus), brain.activity, *te)
    return row


def run_brain(seed: int, args: argparse.Namespace) -> dict:
    from motif_zoo import _blocks
    from napari_mesoscale import fit_mesoscale
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.model.restored_assignment import restore_initial_motifs
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(args.neurons, args.frames, "dev", n_families=4, seed=seed)
    fit = fit_mesoscale(
        brain.activity, brain.positions, connectome=brain.connectome(),
        stimulus=brain.stimulus, n_filters=len(brain.motif_names), seed=0, epochs=args.epochs,
        activity_assignment="trained",
    )
    te = _blocks(brain.activity.shape[0])["test"]
    data = prepare_data(brain.activity, brain.positions, brain.stimulus, fit.config)
    trained = _scores(fit, brain, te)
    # self-check: labels read from the network are the fit's own
    from napari_mesoscale.evaluate import recovery_scores

    own = recovery_scores(fit, brain.motif, brain.instance)
    assert np.isclose(own["motif_ari"], trained["motif_ari"]), (own, trained)
    init_ari = recovery_scores(
        fit.init_groups, brain.motif, brain.instance, domain_labels=fit.init_groups
    )["motif_ari"]
    out = {"seed": seed, "trained": trained, "init_motif_ari": init_ari, "tolerances": []}
    for tol in TOLERANCES:
        copy_fit = copy.deepcopy(fit)
        report = restore_initial_motifs(
            copy_fit.net, data, fit.init_groups, neuron_tolerance=tol, fit_tolerance=np.inf
        )
        row = _scores(copy_fit, brain, te)
        row.update(
            tolerance=tol, moved=report["moved"], restored=report["restored"],
            val_ratio=report["val_after"] / report["val_before"],
            mse_ratio=row["mse"] / trained["mse"],
        )
        out["tolerances"].append(row)
        print(seed, tol, {k: round(float(row[k]), 4) for k in
                          ("motif_ari", "domain_ari", "restored", "val_ratio", "mse_ratio")},
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-base", type=int, required=True)
    parser.add_argument("--brains", type=int, default=2)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from _results import write_json

    t0 = time.perf_counter()
    seeds = range(args.seed_base + args.start, args.seed_base + args.start + args.brains)
    brains = [run_brain(s, args) for s in seeds]
    write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()},
                          "tolerances": list(TOLERANCES), "brains": brains,
                          "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
