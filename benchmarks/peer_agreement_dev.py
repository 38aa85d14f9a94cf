"""Does agreement with an independent clustering tell whether the initialisation's motifs or
the discovery's are right on a brain? (Rule R8; issue #13; **dev families only**.)

Why it is asked: the held-in loss, the fits' validation error (``discovery_starts_dev.py``,
``motif_zoo.py --fits model em_random``) and the labels' split-half agreement (rule R7,
``split_half_agreement_dev.py``: right on 18 of 34 and 15 of 29 differing brains) did not
choose the better of the two: a wrong grouping is as predictive and as reproducible as the
right one. An independent method errs in its own way, so of two candidate groupings the one
closer to it may be the right one. The independent method is the naive peer that reads
dynamics: k-means of per-neuron AR(2) + stimulus coefficients with the true k
(``ar_kmeans_labels``, as ``motif_zoo.py``'s ``ar_kmeans_k``).

Rule R8, committed with this script before any of its data were generated: on each brain take
the discovery's labels (``init="random"`` then the discovery, as ``assignment="em"`` gives
them before training) when their ARI with the peer's labels is strictly higher than the
initialisation's (``init="dynamics"``), else the initialisation's. Judged as R7
(:func:`split_half_agreement_dev.judge`: on the brains where the two full-recording motif ARIs
differ by more than 0.05 it picks the better on at least 75 % of at least 5, and the picked
labels' median motif ARI is at least the higher of the two methods' medians) on fresh dev
brains 1264-1303 (40, plain) and 1304-1343 (40, per-neuron heterogeneity 0.5,
``make_zoo_brain``'s default scope); both sets must
pass before a fit option is built and measured once on the unused test brains 10000-10019.
Reported beside the verdict, not part of it: the same with the correlation-clustering peer
(spectral, true k) and the peers' own motif ARIs.

Usage::

    python benchmarks/peer_agreement_dev.py --seed-base 1264 --brains 40 \
        --out benchmarks/results/peer_agreement_dev.json
    python benchmarks/peer_agreement_dev.py --seed-base 1304 --brains 40 \
        --heterogeneity 0.5 --out benchmarks/results/peer_agreement_dev_heterogeneous.json
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.evaluate.motif_peers import ar_kmeans_labels, correlation_labels
from napari_mesoscale.synth.motif_zoo import make_zoo_brain
from split_half_agreement_dev import METHODS, judge, labels_before_training, pick


def run_brain(seed: int, args: argparse.Namespace) -> dict:
    brain = make_zoo_brain(args.neurons, args.frames, "dev", seed=seed, n_families=4,
                           heterogeneity=args.heterogeneity)
    k = len(brain.motif_names)
    peers = {"ar_kmeans_k": ar_kmeans_labels(brain.activity, brain.stimulus, n_clusters=k),
             "corr_spectral_k": correlation_labels(brain.activity, n_clusters=k)}
    row: dict = {"seed": seed, "peer_motif_ari": {
        name: float(adjusted_rand_score(brain.motif, labels)) for name, labels in peers.items()
    }}
    for method in METHODS:
        labels = labels_before_training(brain, slice(None), method)
        row[method] = {
            "motif_ari": float(adjusted_rand_score(brain.motif, labels)),
            "agreement": float(adjusted_rand_score(peers["ar_kmeans_k"], labels)),
            "corr_agreement": float(adjusted_rand_score(peers["corr_spectral_k"], labels)),
        }
    row["picked"] = pick(row)
    return row


def with_correlation_peer(rows: list[dict]) -> dict:
    """The same verdict with the correlation-clustering peer (descriptive, not R8)."""
    swapped = []
    for r in rows:
        s = {**r, **{m: {**r[m], "agreement": r[m]["corr_agreement"]} for m in METHODS}}
        s["picked"] = pick(s)
        swapped.append(s)
    return judge(swapped)


def summarise(rows: list[dict]) -> dict:
    """R8's verdict, the same with the correlation peer, the peers' own median motif ARIs."""
    peers = {name: float(np.median([r["peer_motif_ari"][name] for r in rows]))
             for name in rows[0]["peer_motif_ari"]}
    return {"rule_R8": judge(rows), "with_correlation_peer": with_correlation_peer(rows),
            "median_peer_motif_ari": peers}


def main() -> None:
    from _results import dev_brain_parser, run_brains  # benchmarks/ is on the path

    args = dev_brain_parser(__doc__, seed_base=1264).parse_args()
    run_brains(args, lambda b: run_brain(args.seed_base + b, args),
               lambda r: " ".join([str(r["seed"]), *(
                   f"{m} ari {r[m]['motif_ari']:.3f} peer {r[m]['agreement']:.3f}"
                   for m in METHODS), "picked", r["picked"]]),
               summarise)


if __name__ == "__main__":
    main()
