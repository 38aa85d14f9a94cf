"""Counts of motifs read off other views of the initialisation's community descriptions
(design data for issue #13; **dev families only**, every dev brain a count rule has seen:
1000-1039 plain and with instance heterogeneity 0.5, R14's 1772-1851, R15's 1852-1931;
nothing chosen, no option).

Why it was asked: R14's count (the smallest k within 0.02 of the best size-weighted
silhouette of the communities' k-means) under-counts about a third of the dev brains, and
the criteria study (``init_motif_count_criteria_dev.py``) found no classical criterion on the
same clusterings that counts better. Read off R14's under-counts on the design brains, the
merged motifs are the two damped rotations (one circuit at periods of 40 and 16 frames) and
the units without a circuit of their own (rectified followers, adapting onset units, AR(1)
noise). This study asks whether the merge is in the criterion's view of the descriptions
rather than in the descriptions: each variant counts with R14's silhouette rule (share guard
0.08, parsimony 0.02) and labels the communities with the default descriptions' k-means at
that count (what the initialisation would then use):

* ``r14``: the default descriptions (R14 itself);
* ``split_restd_<bar>`` / ``split_raw_<bar>``: from R14's motifs, split the motif whose
  2-means split has the highest size-weighted silhouette, if at least ``bar`` and both
  halves hold 0.08 of the neurons, until no split passes or 8 motifs; the silhouette in
  the motif's own re-standardised columns (``restd``: small differences between two merged
  families count as much as large ones between families) or in the descriptions as they are;
* ``stimulus_sorted`` / ``stimulus_dropped``: each community's per-channel stimulus columns
  sorted (largest first) or left out, so that instances of one family that follow different
  channels look alike;
* ``pca<m>`` / ``whitened<m>``: the first m principal components (size-weighted), as they
  are or scaled to unit variance;
* ``autocorrelation_x<w>``: the autocorrelation columns (lags 1-10) weighted by w.

It also records, for every motif of R14's count with two or more communities, the best
2-means split's silhouette (re-standardised and raw), for motifs that merge two families
(each at least 0.08 of the neurons) and for motifs of one family: if the first ran higher
than the second, a split bar would count right.

    python benchmarks/init_motif_count_descriptions_dev.py --sets design_plain design_het \
        r14_plain --out /tmp/a.json
    python benchmarks/init_motif_count_descriptions_dev.py --sets r14_het r15_plain r15_het \
        --out /tmp/b.json
    python benchmarks/init_motif_count_descriptions_dev.py --merge /tmp/a.json /tmp/b.json \
        --out benchmarks/results/init_motif_count_descriptions_dev.json
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
    silhouette_count,
    size_weighted_silhouette,
)
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

#: name: (first seed, instance heterogeneity); brain i has 2 + i % 5 dev families
SETS = {
    "design_plain": (1000, 0.0),
    "design_het": (1000, 0.5),
    "r14_plain": (1772, 0.0),
    "r14_het": (1812, 0.5),
    "r15_plain": (1852, 0.0),
    "r15_het": (1892, 0.5),
}
MAX_MOTIFS = 8
SHARE = 0.08
PARSIMONY = 0.02
AUTOCORRELATION_LAGS = 10  # dynamics_features' max_lag: its first columns


def r14_count(x: np.ndarray, size: np.ndarray, seed: int) -> tuple[int, dict]:
    """R14's count on descriptions ``x`` and the k-means labels of every k tried."""
    k, labels, _ = silhouette_count(x, size, MAX_MOTIFS, SHARE, PARSIMONY, seed)
    return k, labels


def restandardised(x: np.ndarray, size: np.ndarray) -> np.ndarray:
    centre = np.average(x, axis=0, weights=size)
    spread = np.sqrt(np.average((x - centre) ** 2, axis=0, weights=size))
    return (x - centre) / (spread + 1e-9)


def best_split(x: np.ndarray, size: np.ndarray, restd: bool) -> tuple[float, np.ndarray]:
    """The 2-means split of communities ``x`` and its size-weighted silhouette."""
    view = restandardised(x, size) if restd else x
    halves = _weighted_kmeans(view, size, 2, 0)
    return size_weighted_silhouette(view, halves, size), halves


def refined(x, size, labels, bar: float, restd: bool) -> np.ndarray:
    """``labels`` with motifs split while a split's silhouette reaches ``bar``."""
    labels = labels.copy()
    total = size.sum()
    while np.unique(labels).size < MAX_MOTIFS:
        best = None
        for motif in np.unique(labels):
            inside = np.flatnonzero(labels == motif)
            if inside.size < 2 or size[inside].sum() < 2 * SHARE * total:
                continue
            score, halves = best_split(x[inside], size[inside], restd)
            parts = np.bincount(halves, weights=size[inside], minlength=2)
            if parts.min() >= SHARE * total and score >= bar and (best is None or score > best[0]):
                best = (score, inside[halves == 1])
        if best is None:
            break
        labels[best[1]] = labels.max() + 1
    return labels


def stimulus_columns(n_columns: int) -> list[tuple[int, int]]:
    """Where dynamics_features puts the per-channel stimulus columns (ridge, correlation):
    10 autocorrelations, S ridge, 3 self, 4 more, S correlations, then 4 wiring columns."""
    s = (n_columns - 4 - AUTOCORRELATION_LAGS - 7) // 2
    first = AUTOCORRELATION_LAGS
    return [(first, first + s), (first + s + 7, first + 2 * s + 7)]


def stimulus_view(x: np.ndarray, feature_columns: int, drop: bool) -> np.ndarray:
    blocks = stimulus_columns(feature_columns)
    if drop:
        keep = [j for j in range(x.shape[1]) if not any(a <= j < b for a, b in blocks)]
        return x[:, keep]
    y = x.copy()
    for a, b in blocks:
        y[:, a:b] = -np.sort(-y[:, a:b], axis=1)
    return y


def components(x: np.ndarray, size: np.ndarray, m: int, whiten: bool) -> np.ndarray:
    centre = np.average(x, axis=0, weights=size)
    weighted = (x - centre) * np.sqrt(size / size.sum())[:, None]
    _, spread, axes = np.linalg.svd(weighted, full_matrices=False)
    z = (x - centre) @ axes[:m].T
    return z / (spread[:m] + 1e-9) if whiten else z


def views(feature_columns: int) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    out: dict[str, Callable] = {"r14": lambda x, size: x}
    out["stimulus_sorted"] = lambda x, size: stimulus_view(x, feature_columns, False)
    out["stimulus_dropped"] = lambda x, size: stimulus_view(x, feature_columns, True)
    for m in (3, 5, 8):
        out[f"pca{m}"] = lambda x, size, m=m: components(x, size, m, False)
        out[f"whitened{m}"] = lambda x, size, m=m: components(x, size, m, True)
    for w in (0.5, 2.0):

        def weighted(x, size, w=w):
            y = x.copy()
            y[:, :AUTOCORRELATION_LAGS] *= w
            return y

        out[f"autocorrelation_x{w:g}"] = weighted
    return out


SPLITS = [(restd, bar) for restd in (True, False) for bar in (0.3, 0.4, 0.5)]


def split_figures(x, size, labels, majority, n_families) -> list[dict]:
    """Best split silhouettes of R14's motifs of two or more communities, mixed or pure."""
    out = []
    for motif in np.unique(labels):
        inside = np.flatnonzero(labels == motif)
        if inside.size < 2:
            continue
        mass = np.bincount(majority[inside], weights=size[inside], minlength=n_families)
        mixed = np.sort(mass)[-2] >= SHARE * size.sum() if n_families > 1 else False
        out.append(
            {
                "mixed": bool(mixed),
                "communities": int(inside.size),
                "restd": best_split(x[inside], size[inside], True)[0],
                "raw": best_split(x[inside], size[inside], False)[0],
            }
        )
    return out


def score_brain(seed: int, index: int, heterogeneity: float) -> dict:
    brain = make_zoo_brain(
        240,
        1500,
        "dev",
        n_families=2 + index % 5,
        seed=seed,
        heterogeneity=heterogeneity,
        heterogeneity_scope="instance",
    )
    held = community_inputs(brain, MAX_MOTIFS)
    comm, kseed = held["communities"], held["seed"]
    x, size = community_descriptors(held["features"], comm, held["signature"], held["weight"])
    true_k = len(brain.motif_names)
    row: dict = {
        "seed": seed,
        "true_k": true_k,
        "families": list(brain.motif_names),
        "variants": {},
    }

    def record(name: str, labels: np.ndarray) -> None:
        row["variants"][name] = {
            "n_motifs": int(np.unique(labels).size),
            "motif_ari": float(adjusted_rand_score(brain.motif, labels[comm])),
        }

    k14, labels14 = r14_count(x, size, kseed)
    for name, view in views(held["features"].shape[1]).items():
        k, _ = r14_count(view(x, size), size, kseed)
        record(name, labels14[k])  # the default descriptions' k-means at that count
    for restd, bar in SPLITS:
        record(
            f"split_{'restd' if restd else 'raw'}_{bar:g}",
            refined(x, size, labels14[k14], bar, restd),
        )
    majority = np.array(
        [np.bincount(brain.motif[comm == c], minlength=true_k).argmax() for c in range(x.shape[0])]
    )
    row["splits"] = split_figures(x, size, labels14[k14], majority, true_k)
    return row


def summarise(rows: dict[str, list[dict]]) -> dict:
    names = list(next(iter(rows.values()))[0]["variants"])
    out: dict = {}
    for name in names:
        per_set = {}
        for set_name, brains in rows.items():
            found = np.array([r["variants"][name]["n_motifs"] for r in brains])
            true = np.array([r["true_k"] for r in brains])
            per_set[set_name] = {
                "exact": int((found == true).sum()),
                "over": int((found > true).sum()),
                "under": int((found < true).sum()),
                "median_motif_ari": float(
                    np.median([r["variants"][name]["motif_ari"] for r in brains])
                ),
            }
        out[name] = {
            "exact_of_all": sum(s["exact"] for s in per_set.values()),
            "lowest_set_median_motif_ari": min(s["median_motif_ari"] for s in per_set.values()),
            "sets": per_set,
        }
    splits = [s for brains in rows.values() for r in brains for s in r["splits"]]
    out["split_silhouettes"] = {
        kind: {
            view: [
                float(q)
                for q in np.quantile(
                    [s[view] for s in splits if s["mixed"] == mixed] or [np.nan],
                    [0.1, 0.25, 0.5, 0.75, 0.9],
                )
            ]
            for view in ("restd", "raw")
        }
        | {"motifs": sum(s["mixed"] == mixed for s in splits)}
        for kind, mixed in (("mixed", True), ("one_family", False))
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=list(SETS))
    parser.add_argument("--brains", type=int, default=40)
    parser.add_argument("--merge", nargs="+", default=None, help="JSON files of --sets runs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json  # benchmarks/ is on the path as a script

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    if args.merge:
        rows: dict[str, list[dict]] = {}
        for path in args.merge:
            with open(path) as f:
                rows.update(json.load(f)["brains"])
    else:
        rows = {
            name: [score_brain(SETS[name][0] + i, i, SETS[name][1]) for i in range(args.brains)]
            for name in args.sets
        }
    summary = summarise(rows)
    write_json(
        args.out,
        {"args": vars(args), "summary": summary, "brains": rows, **run_record(t0, cpu0, load)},
    )
    print(
        json.dumps(
            {
                name: (s["exact_of_all"], round(s["lowest_set_median_motif_ari"], 3))
                for name, s in summary.items()
                if "exact_of_all" in s
            },
            indent=1,
        )
    )
    print(json.dumps(summary["split_silhouettes"], indent=1))


if __name__ == "__main__":
    main()
