"""Number of motifs by held-out prediction: time-blocked curves over K on zoo dev brains.

The count criterion issue #13 names (held-out likelihood), measured as such: the discovery's
inputs are captured as in ``motif_count.py`` and its linearised features built exactly as
``reassign.discover_assignment`` builds them (same seed, same random frames, which are in time
order). The first ``--fit-fraction`` of those frames is the fit part, the rest the held-out
part, split into ``--blocks`` consecutive time blocks. On the fit part only, the units'
cross-prediction (even frames fit, odd frames score) gives the profile tree (the default
grouping) and the loss tree (``"loss_cut"``'s); for every K = 1 ... ``--max-motifs`` the
tree's K groups are refined by the discovery's hard EM (fit part only), one pooled ridge
filter per group is fitted on the whole fit part and every neuron is scored under its group's
filter on every held-out block (log of its variance-normalised mean squared one-step error).
Three scores: the pooled prediction as it is (``plain``), after a per-neuron gain and offset
fitted on the fit part (``gain``), or a per-neuron refit on [prediction, own state, 1]
(``own``). The count rules (``RULES``: paired one-standard-error rules, a relative-gain rule,
and a BIC-style penalty on the fit part's own loss for comparison) pick a K from these curves;
the labels scored (motif ARI, motifs found vs true) are those of the discovery run with that K
on all its frames (``discover_motif_count="n_filters"``, n_filters = K), as ``motif_count.py``
scores its counts.

Design on brains 1000-1019, check on 1020-1039 (the summary keeps the two apart), plain and
heterogeneous dev brains; the test families are not touched:

    python benchmarks/motif_count_heldout.py --brains 40 \
        --out benchmarks/results/motif_count_heldout_dev.json
    python benchmarks/motif_count_heldout.py --brains 40 --heterogeneity 0.5 \
        --out benchmarks/results/motif_count_heldout_dev_heterogeneous.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster
from sklearn.metrics import adjusted_rand_score

from _results import write_json
from motif_count import summarise as summarise_counts
from motif_discovery_dev import capture_discovery_inputs
from napari_mesoscale.model import reassign as R
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

RESULTS = Path(__file__).parent / "results"
ALPHA = 1e-3  # the discovery's ridge
SCORES = ("plain", "gain", "own")
TREES = ("profile", "loss")


def discovery_features(captured: tuple):
    """(phi, data, units, cfg): the discovery's expanded features, as discover_assignment."""
    (net, units, tensors, frames, cfg, *rest), kwargs = captured
    seed = kwargs.get("seed", rest[0] if rest else 0)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    data = R._em_data(net, tensors, units, frames, 2 * cfg.reassign_frames, rng)
    f = data.feats.shape[-1]
    proj = torch.randn(f, 32, generator=gen).to(data.feats) / f**0.5
    phi = R._expand(data.feats, proj, 0.5 * torch.randn(32, generator=gen).to(data.feats))
    return phi, data, units, cfg


def tree_labels(tree, n_units: int, k: int) -> np.ndarray:
    if tree is None:
        return np.zeros(n_units, dtype=int)
    return np.arange(n_units) if n_units <= k else fcluster(tree, t=k, criterion="maxclust") - 1


def grouping_per_k(phi, data, units, rows, cand, tree_name, max_k, iterations):
    """Labels (U,) for K = 1..max_k: the tree's K groups refined by the discovery's EM."""
    normal = R._unit_normal_equations(phi, data, rows[0], units)
    coef = R._ridge_solve(normal, np.arange(units.n_units), ALPHA)[cand]
    cost = R._unit_cost(R._cross_errors(phi, data, rows[1], coef), units)
    square, n = cost[cand], len(cand)
    if tree_name == "profile":
        tree = R._profile_linkage(square) if n > 1 else None
    else:
        tree = R._loss_linkage(square) if n > 2 else None
    out = []
    for k in range(1, max_k + 1):
        full = R._extend_labels(cost, cand, tree_labels(tree, n, k), k)
        labels, _ = R._group_ridge_em(phi, data, rows, normal, units, full, k, ALPHA, iterations)
        out.append(labels)
    return out, square


def heldout_scores(phi, data, units, normal, labels, fit, blocks, refit: str) -> np.ndarray:
    """(N, blocks) log held-out error of every neuron under its group's pooled filter."""
    groups = np.unique(labels, return_inverse=True)[1]
    coef = R._ridge_solve(normal, groups, ALPHA).double()
    own = torch.as_tensor(groups[units.unit])

    def design(rows):
        pred = torch.einsum("tnp,np->tn", phi[rows].double(), coef[own])
        cols = [pred]
        if refit in ("gain", "own"):
            cols.append(torch.ones_like(pred))
        if refit == "own":
            cols.append(phi[rows, :, 0].double())  # the neuron's own state
        return torch.stack(cols, -1)

    beta = torch.zeros(phi.shape[1], 1, dtype=torch.float64)
    beta[:, 0] = 1.0
    if refit != "plain":
        x, w, y = design(fit), data.weight[fit].double(), data.target[fit].double()
        gram = torch.einsum("tni,tn,tnj->nij", x, w, x)
        rhs = torch.einsum("tni,tn,tn->ni", x, w, y)
        scale = torch.diagonal(gram, dim1=1, dim2=2).mean(1).clamp(min=1e-12)
        eye = torch.eye(x.shape[-1], dtype=x.dtype)
        beta = torch.linalg.solve(gram + 1e-6 * scale[:, None, None] * eye, rhs)
    out = []
    for rows in blocks:
        err = (torch.einsum("tni,ni->tn", design(rows), beta) - data.target[rows].double()) ** 2
        w = data.weight[rows].double()
        out.append(np.log((err * w).sum(0).numpy() / (w > 0).sum(0).clamp(min=1).numpy() + 1e-6))
    return np.stack(out, 1)


def unit_means(x: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """(K, U) mean over every unit's members of a (K, N) array."""
    out = np.zeros((x.shape[0], int(unit.max()) + 1))
    np.add.at(out, (slice(None), unit), x)
    return out / np.bincount(unit)[None]


def one_se_k(late: np.ndarray, unit: np.ndarray, over: str, multiple: float) -> int:
    """Smallest K whose held-out loss is within ``multiple`` paired standard errors of the
    best K's; the SE of the paired difference over neurons, units (communities) or blocks."""
    x = {"neurons": late.mean(2), "units": unit_means(late.mean(2), unit),
         "blocks": late.mean(1)}[over]  # (K, samples)
    best = int(np.argmin(x.mean(1)))
    diff = x - x[best]
    se = diff.std(1, ddof=1) / np.sqrt(diff.shape[1])
    return int(np.argmax(diff.mean(1) <= multiple * se)) + 1


def relative_k(late: np.ndarray, fraction: float) -> int:
    """Smallest K within ``fraction`` of the gain from K = 1 to the best K."""
    loss = late.mean((1, 2))
    return int(np.argmax(loss - loss.min() <= fraction * (loss[0] - loss.min()))) + 1


def penalised_k(held_in: np.ndarray, n_params: int, n_samples: int, weight: float) -> int:
    """BIC-style: mean held-in log error + weight K P log(n) / n, lowest wins."""
    k = np.arange(1, held_in.shape[0] + 1)
    crit = held_in.mean(1) + weight * k * n_params * np.log(n_samples) / n_samples
    return int(np.argmin(crit)) + 1


RULES = {
    **{f"se{m:g}_{o}": (lambda c, m=m, o=o: one_se_k(c["late"], c["unit"], o, m))
       for o in ("neurons", "units", "blocks") for m in (1, 2, 4)},
    **{f"se{m:g}_neurons_gap": (lambda c, m=m: one_se_k(c["late"][:, :, 1:], c["unit"],
                                                          "neurons", m)) for m in (1, 4)},
    **{f"rel{f:g}": (lambda c, f=f: relative_k(c["late"], f)) for f in (0.02, 0.05, 0.1)},
    **{f"bic{w:g}": (lambda c, w=w: penalised_k(c["held_in"], c["P"], c["n"], w))
       for w in (0.5, 1, 2)},
}


def brain_curves(captured: tuple, max_k: int, fit_fraction: float, n_blocks: int) -> dict:
    """Per-K held-out curves of both trees and all three scores, and the full-data labels."""
    phi, data, units, cfg = discovery_features(captured)
    t = phi.shape[0]
    cand = R._candidate_units(units, 256)
    split = int(fit_fraction * t)
    fit = torch.arange(split)
    blocks = [torch.as_tensor(b) for b in np.array_split(np.arange(split, t), n_blocks)]
    normal_fit = R._unit_normal_equations(phi, data, fit, units)
    curves = {}
    for tree in TREES:
        labels, _ = grouping_per_k(
            phi, data, units, (fit[0::2], fit[1::2]), cand, tree, max_k, cfg.discover_iterations
        )
        for refit in SCORES:
            curves[(tree, refit)] = {
                "late": np.stack([heldout_scores(phi, data, units, normal_fit, lab, fit, blocks,
                                                 refit) for lab in labels]),
                "held_in": np.stack([heldout_scores(phi, data, units, normal_fit, lab, fit, [fit],
                                                    refit)[:, 0] for lab in labels]),
                "unit": units.unit, "P": phi.shape[-1], "n": phi.shape[1] * split,
            }
    # the discovery itself with every K (all frames: even fit, odd score), and the old counts
    all_rows = (torch.arange(0, t, 2), torch.arange(1, t, 2))
    full, square = grouping_per_k(
        phi, data, units, all_rows, cand, "profile", max_k, cfg.discover_iterations
    )
    counts = {"cut_0.1": R.profile_motif_count(square, max_k, 0.1),
              "loss_cut_0.1": R.loss_motif_count(square, max_k, 0.1)}
    return {"curves": curves, "full": full, "counts": counts, "unit": units.unit}


def score_brain(result: dict, motif: np.ndarray, true_k: int) -> dict:
    """Chosen K, motifs found and motif ARI of every rule, tree and score; the old counts."""
    unit = result["unit"]

    def outcome(k: int) -> dict:
        labels = result["full"][k - 1][unit]
        return {"k": k, "n_motifs": int(np.unique(labels).size),
                "motif_ari": float(adjusted_rand_score(motif, labels))}

    row = {name: outcome(k) for name, k in result["counts"].items()}
    row["given_true_k"] = outcome(true_k)
    for (tree, refit), c in result["curves"].items():
        for rule, pick in RULES.items():
            row[f"{tree}_{refit}_{rule}"] = outcome(pick(c))
        row[f"{tree}_{refit}_curve"] = c["late"].mean((1, 2)).round(5).tolist()
    return row


def summarise(rows: list[dict]) -> dict:
    """:func:`motif_count.summarise` over every criterion the rows hold."""
    return summarise_counts(rows, [n for n in rows[0] if isinstance(rows[0][n], dict)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brains", type=int, default=40)
    parser.add_argument("--first-brain", type=int, default=0)
    parser.add_argument("--design-brains", type=int, default=20,
                        help="the first this many brains are the design set, the rest the check")
    parser.add_argument("--max-motifs", type=int, default=8)
    parser.add_argument("--fit-fraction", type=float, default=0.6)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--heterogeneity", type=float, default=0.0)
    parser.add_argument("--heterogeneity-scope", choices=("neuron", "instance"),
                        default="instance")
    parser.add_argument("--out", default=str(RESULTS / "motif_count_heldout_dev.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, t0, cpu0, load_before = [], time.perf_counter(), time.process_time(), os.getloadavg()
    for i in range(args.first_brain, args.first_brain + args.brains):
        brain = make_zoo_brain(
            240, 1500, "dev", n_families=2 + i % 5, seed=1000 + i,
            heterogeneity=args.heterogeneity, heterogeneity_scope=args.heterogeneity_scope,
        )
        true_k = len(brain.motif_names)
        captured = capture_discovery_inputs(brain, args.max_motifs, True)
        result = brain_curves(captured, args.max_motifs, args.fit_fraction, args.blocks)
        row = {"seed": 1000 + i, "true_k": true_k, "families": list(brain.motif_names)}
        row.update(score_brain(result, brain.motif, true_k))
        rows.append(row)
        print(row["seed"], true_k, {n: row[n]["n_motifs"] for n in
                                    ("cut_0.1", "loss_cut_0.1", "profile_plain_se1_neurons")},
              flush=True)
    cut = args.design_brains - args.first_brain
    write_json(args.out, {
        "what": "number of motifs by time-blocked held-out prediction, zoo dev brains",
        "args": vars(args), "rules": list(RULES), "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0,
        "load_before": load_before, "load_after": os.getloadavg(),
        "summary_design": summarise(rows[:cut]) if cut > 0 else {},
        "summary_check": summarise(rows[cut:]) if cut < len(rows) else {},
        "summary_all": summarise(rows), "brains": rows,
    })


if __name__ == "__main__":
    main()
