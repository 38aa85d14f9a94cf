"""Does the em discovery agree with itself across seeds where it is right, and not where it
is wrong? Design data for a choice between the default initialisation's motifs and the
discovery's (issue #13; dev families only, nothing here is a rule).

Why it is asked: on the test-family brains 9000-9019 the default fit and ``assignment="em"``
from a random start fail on different brains, and neither the validation error nor the
agreement between halves of the recording nor agreement with a peer picked the better of the
two on dev brains (docs/results/motifs.md). A wrong grouping found by a search from random
seeds might differ from seed to seed while the right one recurs; this measures it, on label
sets before training (``labels_before_training``: a real ``fit_mesoscale`` stopped where
training would start), for fresh dev brains of four dev families (``motif_zoo.py``'s design,
240 neurons, 1,500 frames), plain and with heterogeneity 0.5:

* ``initial``: the default fit's initialisation (what the default fit keeps), true count;
* ``discovery`` from ``--seeds`` seeds (``assignment="em", init="random"``), true count;
* the four naive peers of ``motif_zoo.py``.

Usage::

    python benchmarks/em_seed_agreement_dev.py --seed-base 1932 --brains 20 \
        --out benchmarks/results/em_seed_agreement_dev_plain.json
    python benchmarks/em_seed_agreement_dev.py --seed-base 1952 --brains 20 \
        --heterogeneity 0.5 --out benchmarks/results/em_seed_agreement_dev_het.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

from sklearn.metrics import adjusted_rand_score as ari

from motif_zoo import PEERS, _peer_labels
from napari_mesoscale.synth.motif_zoo import make_zoo_brain
from split_half_agreement_dev import labels_before_training


def score_brain(seed: int, heterogeneity: float, seeds: int) -> dict:
    brain = make_zoo_brain(240, 1500, "dev", n_families=4, seed=seed,
                           heterogeneity=heterogeneity)
    k = len(brain.motif_names)
    initial = labels_before_training(brain, slice(None), "initial")
    found = [labels_before_training(brain, slice(None), "discovery", seed=s)
             for s in range(seeds)]
    return {
        "seed": seed, "true_k": k, "families": list(brain.motif_names),
        "initial": float(ari(brain.motif, initial)),
        "discovery": [float(ari(brain.motif, labels)) for labels in found],
        "discovery_vs_initial": [float(ari(initial, labels)) for labels in found],
        "discovery_pairs": [float(ari(a, b)) for a, b in itertools.combinations(found, 2)],
        "peers": {p: float(ari(brain.motif, _peer_labels(p, brain, k))) for p in PEERS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-base", type=int, required=True)
    parser.add_argument("--brains", type=int, default=20)
    parser.add_argument("--heterogeneity", type=float, default=0.0)
    parser.add_argument("--seeds", type=int, default=5, help="discovery seeds a brain")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json  # benchmarks/ is on the path as a script

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = []
    for seed in range(args.seed_base, args.seed_base + args.brains):
        rows.append(score_brain(seed, args.heterogeneity, args.seeds))
        r = rows[-1]
        print(seed, f"init {r['initial']:.2f}", "disc", [round(a, 2) for a in r["discovery"]],
              "pairs min", round(min(r["discovery_pairs"]), 2),
              "peers max", round(max(r["peers"].values()), 2), flush=True)
    write_json(args.out, {"args": vars(args), "brains": rows, **run_record(t0, cpu0, load)})


if __name__ == "__main__":
    main()
