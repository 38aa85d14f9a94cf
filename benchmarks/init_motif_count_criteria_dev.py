"""Classical criteria for the number of clusters on the initialisation's community
descriptions, beside rule R14's silhouette (design data for issue #13; **dev families
only**: every brain R14 was designed and judged on, 1000-1039 plain and with instance
heterogeneity 0.5, 1772-1811 plain, 1812-1851 heterogeneous; nothing chosen, no option).

For every brain a real default fit (``n_filters`` = 8) is held where it clusters its
communities (``community_descriptors``); the size-weighted k-means for k = 1..8 (at most one
fewer than the communities) gives the within-motif sum of squares W_k (each community
weighted by its size), and each criterion picks a k among those whose every motif holds a
share of the neurons (0.08, R14's, unless ``share 0``):

* ``r14``: R14 (smallest k within 0.02 of the best size-weighted silhouette);
* ``gap``: Tibshirani's gap statistic, the reference made by permuting every descriptor
  column over the communities (10 draws), the smallest k with Gap(k) >= Gap(k+1) - s(k+1);
  ``gap_max``: the k of the largest gap;
* ``calinski_harabasz``: the largest (B_k / (k - 1)) / (W_k / (C - k)), C communities;
* ``jump``: Sugar and James's largest jump of (W_k / (N P))^(-y), y = P / 2 and y = 1;
* ``hartigan``: the smallest k with (W_k / W_k+1 - 1)(C - k - 1) at most 5, 10 or 20.

    python benchmarks/init_motif_count_criteria_dev.py \
        --out benchmarks/results/init_motif_count_criteria_dev.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score

from init_motif_count_design import community_inputs
from napari_mesoscale.model.initialise import (
    _weighted_kmeans,
    community_descriptors,
    size_weighted_silhouette,
)
from napari_mesoscale.model.initialise import _within_sum as within_sum
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

#: name: (first seed, instance heterogeneity); brain i has 2 + i % 5 dev families
SETS = {"design_plain": (1000, 0.0), "design_heterogeneous": (1000, 0.5),
        "r14_plain": (1772, 0.0), "r14_heterogeneous": (1812, 0.5)}
MAX_MOTIFS = 8
SHARE = 0.08
REFERENCE_DRAWS = 10


def clusterings(x: np.ndarray, size: np.ndarray) -> dict[int, np.ndarray]:
    top = min(MAX_MOTIFS, x.shape[0] - 1)
    out = {1: np.zeros(x.shape[0], dtype=np.int64)}
    out.update({k: _weighted_kmeans(x, size, k, 0) for k in range(2, top + 1)})
    return out


def brain_figures(x: np.ndarray, size: np.ndarray, seed: int = 0) -> dict:
    """W_k, the smallest motif's share, the silhouette and the gap of every k."""
    labels = clusterings(x, size)
    ks = sorted(labels)
    rng = np.random.default_rng(seed)
    reference = np.zeros((REFERENCE_DRAWS, len(ks)))
    for draw in range(REFERENCE_DRAWS):
        shuffled = np.column_stack([rng.permutation(column) for column in x.T])
        for j, ref in enumerate(clusterings(shuffled, size).values()):
            reference[draw, j] = np.log(within_sum(shuffled, ref, size))
    within = {k: within_sum(x, labels[k], size) for k in ks}
    return {
        "labels": labels,
        "within": within,
        "share": {k: float(np.bincount(labels[k], weights=size, minlength=k).min()
                           / size.sum()) for k in ks},
        "silhouette": {k: size_weighted_silhouette(x, labels[k], size) for k in ks if k > 1},
        "gap": {k: float(reference[:, j].mean() - np.log(within[k])) for j, k in enumerate(ks)},
        "gap_spread": {k: float(reference[:, j].std() * np.sqrt(1 + 1 / REFERENCE_DRAWS))
                       for j, k in enumerate(ks)},
        "communities": x.shape[0], "neurons": float(size.sum()), "dims": x.shape[1],
    }


def allowed(f: dict, share: float) -> list[int]:
    return [k for k in sorted(f["within"]) if k == 1 or f["share"][k] >= share]


def r14(f: dict, share: float = SHARE, parsimony: float = 0.02) -> int:
    scores = {k: f["silhouette"][k] for k in allowed(f, share) if k > 1}
    if not scores:
        return 1
    best = max(scores.values())
    return min(k for k, s in scores.items() if s >= best - parsimony)


def gap(f: dict, share: float = SHARE) -> int:
    ks = allowed(f, share)
    for k, after in zip(ks, ks[1:], strict=False):
        if f["gap"][k] >= f["gap"][after] - f["gap_spread"][after]:
            return k
    return ks[-1]


def gap_max(f: dict, share: float = SHARE) -> int:
    return max(allowed(f, share), key=lambda k: f["gap"][k])


def calinski_harabasz(f: dict, share: float = SHARE) -> int:
    total, c = f["within"][1], f["communities"]
    scores = {k: ((total - f["within"][k]) / (k - 1)) / (f["within"][k] / max(c - k, 1))
              for k in allowed(f, share) if k > 1}
    return max(scores, key=scores.get) if scores else 1


def jump(f: dict, share: float = SHARE, power: float | None = None) -> int:
    ks = allowed(f, share)
    y = f["dims"] / 2 if power is None else power
    distortion = {k: (f["within"][k] / (f["neurons"] * f["dims"])) ** (-y) for k in ks}
    jumps = {k: distortion[k] - (distortion[ks[i - 1]] if i else 0.0) for i, k in enumerate(ks)}
    return max(jumps, key=jumps.get)


def hartigan(f: dict, share: float = SHARE, bar: float = 10.0) -> int:
    ks, c = allowed(f, share), f["communities"]
    for k, after in zip(ks, ks[1:], strict=False):
        if (f["within"][k] / f["within"][after] - 1) * (c - k - 1) <= bar:
            return k
    return ks[-1]


CRITERIA: dict[str, Callable[[dict], int]] = {
    "r14": r14,
    "gap": gap,
    "gap share 0": lambda f: gap(f, share=0.0),
    "gap_max": gap_max,
    "calinski_harabasz": calinski_harabasz,
    "calinski_harabasz share 0": lambda f: calinski_harabasz(f, share=0.0),
    "jump y=P/2": jump,
    "jump y=1": lambda f: jump(f, power=1.0),
    "hartigan 5": lambda f: hartigan(f, bar=5.0),
    "hartigan 10": hartigan,
    "hartigan 20": lambda f: hartigan(f, bar=20.0),
}


def score_brain(seed: int, index: int, heterogeneity: float) -> dict:
    brain = make_zoo_brain(240, 1500, "dev", n_families=2 + index % 5, seed=seed,
                           heterogeneity=heterogeneity, heterogeneity_scope="instance")
    held = community_inputs(brain, MAX_MOTIFS)
    comm = held["communities"]
    x, size = community_descriptors(held["features"], comm, held["signature"], held["weight"])
    f = brain_figures(x, size)
    true_k = len(brain.motif_names)
    row = {"seed": seed, "true_k": true_k, "communities": f["communities"], "criteria": {}}
    if true_k in f["labels"]:
        row["given_motif_ari"] = float(adjusted_rand_score(brain.motif, f["labels"][true_k][comm]))
    for name, criterion in CRITERIA.items():
        k = criterion(f)
        row["criteria"][name] = {
            "n_motifs": int(k),
            "motif_ari": float(adjusted_rand_score(brain.motif, f["labels"][k][comm])),
        }
    return row


def summarise(rows: dict[str, list[dict]]) -> dict:
    out: dict = {}
    for name in CRITERIA:
        out[name] = {"exact_of_all": 0}
        for set_name, brains in rows.items():
            found = np.array([r["criteria"][name]["n_motifs"] for r in brains])
            true = np.array([r["true_k"] for r in brains])
            out[name][set_name] = {
                "exact": int((found == true).sum()), "over": int((found > true).sum()),
                "under": int((found < true).sum()),
                "median_motif_ari": float(np.median([r["criteria"][name]["motif_ari"]
                                                     for r in brains])),
            }
            out[name]["exact_of_all"] += out[name][set_name]["exact"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brains", type=int, default=40)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json  # benchmarks/ is on the path as a script

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = {name: [score_brain(first + i, i, het) for i in range(args.brains)]
            for name, (first, het) in SETS.items()}
    summary = summarise(rows)
    write_json(args.out, {"args": vars(args), "summary": summary, "brains": rows,
                          **run_record(t0, cpu0, load)})
    print(json.dumps({name: s["exact_of_all"] for name, s in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
