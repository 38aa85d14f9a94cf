"""The number of motifs as the largest k whose community k-means two halves of the frames
reproduce (design data for issue #13; **dev families only**, the R14 design brains
1000-1039; nothing chosen, no option).

Why it was asked: rule R14 (``init_motif_count="silhouette"``) under-counts, merging two
families whose descriptions are close beside the others (the silhouette prefers the coarser
grouping), and the issue names stability as a criterion. Here the initialisation's inputs of
a real default fit (``n_filters`` = 8) are held, its per-neuron features recomputed on the
first and on the second half of the initialisation frames (ridge, neighbour correlations,
``motif_features`` with the same neighbours, partners and wiring), and the same communities
described from each half (``community_descriptors``). For every k from 2 to 8 the
size-weighted k-means of each half's descriptions is compared (neuron-level ARI between the
halves' labels: ``stability``); the count is the largest k whose stability is at least a
bar and whose every motif holds a minimum share of the neurons (the full-frame k-means). The
grid of (share, bar) is summarised beside R14's count on the same brains.

    python benchmarks/init_motif_count_stability_dev.py \
        --out benchmarks/results/init_motif_count_stability_dev.json
"""

from __future__ import annotations

import json
import os
import time
from unittest import mock

import numpy as np
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.model import initial_model
from napari_mesoscale.model.initialise import (
    _weighted_kmeans,
    community_descriptors,
    community_motif_count,
    community_motifs,
    motif_features,
    neighbour_correlation,
    per_neuron_ridge,
)
from napari_mesoscale.synth.motif_zoo import make_zoo_brain
from split_half_agreement_dev import labels_before_training

SETS = {"plain": 0.0, "heterogeneous": 0.5}
SHARES = (0.04, 0.06, 0.08, 0.1)
BARS = (0.8, 0.9, 0.95, 0.99)
MAX_MOTIFS = 8


def held_inputs(brain) -> dict:
    """The arguments of the initialisation's ``motif_features`` and community k-means."""
    held: dict = {}
    features = initial_model.motif_features

    def hold_features(*args, **kwargs):
        held["motif_features"] = args
        return features(*args, **kwargs)

    def hold_communities(feats, communities, signature, weight, n_filters, seed=0):
        held.update(features=feats, communities=communities, signature=signature,
                    weight=weight)
        return community_motifs(feats, communities, signature, weight, n_filters, seed)

    with (mock.patch.object(initial_model, "motif_features", hold_features),
          mock.patch.object(initial_model, "community_motifs", hold_communities)):
        labels_before_training(brain, slice(None), "initial", n_filters=MAX_MOTIFS)
    if "features" not in held:
        raise RuntimeError("the initialisation never clustered its communities")
    return held


def half_features(held: dict) -> list[np.ndarray]:
    """Per-neuron features on the first and on the second half of the frames."""
    z, _, edges, u, spatial, _, cfg, partners, wiring = held["motif_features"]
    t = z.shape[0]
    out = []
    for half in (slice(0, t // 2), slice(t // 2, t)):
        zh, uh = z[half], None if u is None else u[half]
        ridge = per_neuron_ridge(zh, edges, uh)
        weights = np.clip(neighbour_correlation(zh, spatial), 0, None)
        out.append(motif_features(zh, ridge, edges, uh, spatial, weights, cfg, partners, wiring))
    return out


def score_brain(seed: int, index: int, heterogeneity: float) -> dict:
    brain = make_zoo_brain(240, 1500, "dev", n_families=2 + index % 5, seed=seed,
                           heterogeneity=heterogeneity, heterogeneity_scope="instance")
    held = held_inputs(brain)
    comm, signature, weight = held["communities"], held["signature"], held["weight"]
    full, size = community_descriptors(held["features"], comm, signature, weight)
    halves = [community_descriptors(f, comm, signature, weight)[0] for f in half_features(held)]
    row: dict = {"seed": seed, "true_k": len(brain.motif_names), "k": {}}
    for k in range(2, min(MAX_MOTIFS, full.shape[0] - 1) + 1):
        labels = _weighted_kmeans(full, size, k, 0)
        first, second = (_weighted_kmeans(h, size, k, 0) for h in halves)
        row["k"][k] = {
            "share": float(np.bincount(labels, weights=size, minlength=k).min() / size.sum()),
            "stability": float(adjusted_rand_score(first[comm], second[comm])),
            "motif_ari": float(adjusted_rand_score(brain.motif, labels[comm])),
        }
    k, labels = community_motif_count(held["features"], comm, signature, weight, MAX_MOTIFS,
                                      0.08, 0.02)
    row["r14"] = {"n_motifs": int(k),
                  "motif_ari": float(adjusted_rand_score(brain.motif, labels[comm]))}
    return row


def stable_count(row: dict, share: float, bar: float) -> tuple[int, float]:
    """(count, motif ARI) of the largest k that is stable and keeps every motif's share."""
    ok = {int(k): v for k, v in row["k"].items() if v["share"] >= share and v["stability"] >= bar}
    if not ok:
        return 1, 0.0
    return max(ok), ok[max(ok)]["motif_ari"]


def tally(found: list[int], true: list[int], aris: list[float]) -> dict:
    f, t = np.array(found), np.array(true)
    return {"exact": int((f == t).sum()), "over": int((f > t).sum()),
            "under": int((f < t).sum()), "median_motif_ari": float(np.median(aris))}


def summarise(rows: dict[str, list[dict]]) -> dict:
    out: dict = {"r14": {}, "grid": {}}
    for name, brains in rows.items():
        true = [r["true_k"] for r in brains]
        out["r14"][name] = tally([r["r14"]["n_motifs"] for r in brains], true,
                                 [r["r14"]["motif_ari"] for r in brains])
        for share in SHARES:
            for bar in BARS:
                counts = [stable_count(r, share, bar) for r in brains]
                out["grid"].setdefault(f"{share:g}_{bar:g}", {})[name] = tally(
                    [c for c, _ in counts], true, [a for _, a in counts])
    return out


def main() -> None:
    from _results import run_record, seeded_study_parser, write_json  # benchmarks/ on the path

    args = seeded_study_parser(__doc__).parse_args()

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = {name: [score_brain(args.first_seed + i, i, het) for i in range(args.brains)]
            for name, het in SETS.items()}
    summary = summarise(rows)
    best = max(summary["grid"], key=lambda key: sum(s["exact"]
                                                    for s in summary["grid"][key].values()))
    result = {"args": vars(args), "summary": summary, "most_exact": best, "brains": rows,
              **run_record(t0, cpu0, load)}
    write_json(args.out, result)
    print(json.dumps({"r14": summary["r14"], "most_exact": best,
                      "at_most_exact": summary["grid"][best]}, indent=1))


if __name__ == "__main__":
    main()
