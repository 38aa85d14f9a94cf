"""Does split-half agreement tell whether the initialisation's motifs or the discovery's are
right on a brain? (Rule R7; issue #13; **dev families only**.)

Why it is asked: on the test brains 9000-9019 the default fit (the initialisation's motifs)
and ``assignment="em"`` (the discovery's, from a random start) fail on different brains, and on
fresh dev brains neither the discovery's held-in loss nor the fits' validation error chose
the better of the two (``discovery_starts_dev.py``; ``motif_zoo.py --fits model em_random``):
wrong groupings predict within 1-2 %. This asks a criterion that is not prediction error: how
well each method's labels agree with themselves when it runs on the first and on the second
half of the recording (neuron-level ARI between the two halves' labels). A method whose
answer on a brain follows the brain's dynamics should give the same grouping on both halves;
one that lands on an arbitrary grouping should not.

For every brain and every part of the recording (all frames, the first half, the second half)
a real ``fit_mesoscale`` runs up to its discovery twice: with the default initialisation
(``init="dynamics"``; its motif labels are the assignment before the discovery) and with
``init="random"`` (the discovery's labels, as ``assignment="em"`` from a random start gives
them). Nothing is trained: these are the labels both fits start training from.

Rule R7, committed with this script before any of its data were generated: on each brain take
the discovery's labels when their split-half agreement is strictly higher than the
initialisation's, else the initialisation's (the default). R7 passes on a set of brains when
(a) on the brains where the two methods' full-recording motif ARIs differ by more than 0.05 it
picks the better one on at least 75 % (and there are at least 5 such brains), and (b) the
median motif ARI of the picked labels is at least the higher of the two methods' medians. It
is judged on fresh dev brains 1184-1223 (40, plain) and 1224-1263 (40, per-neuron
heterogeneity 0.5, ``make_zoo_brain``'s default scope), as the usage lines below run it (the
text committed with the rule named 20 brains of each, 1184-1203 and 1204-1223: R7 fails on
those too); both sets must pass; only then would a fit option be built and measured once on
the unused test brains 10000-10019. Reported beside the verdict, not part of it: the rank
correlation, within each method, between a brain's split-half agreement and its motif ARI.

The fit option ``ModelConfig.motif_choice="split_half"`` (model/split_half_choice.py) was
built after R7 passed; it measures the agreement on the two halves of the *training block*
(each half all training frames for the untrained starts), not of the whole recording, so that
no validation or test frame enters the choice. ``--implemented`` judges that option by R7's
unchanged rule, on R7's brains and on fresh check brains 1504-1543 (plain) and 1544-1583
(per-neuron heterogeneity 0.5); both must pass before it is measured on the unused test brains
10000-10019 (``motif_zoo.py --fits model model_split_half init``).

Usage::

    python benchmarks/split_half_agreement_dev.py --seed-base 1184 --brains 40 \
        --out benchmarks/results/split_half_agreement_dev.json
    python benchmarks/split_half_agreement_dev.py --seed-base 1224 --brains 40 \
        --heterogeneity 0.5 --out benchmarks/results/split_half_agreement_dev_heterogeneous.json
    python benchmarks/split_half_agreement_dev.py --implemented --seed-base 1184 ... (R7's
        brains, both sets) and --seed-base 1504 / 1544 --heterogeneity 0.5 (check brains)
"""

from __future__ import annotations

import argparse
from unittest import mock

import numpy as np
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale import fit_mesoscale
from napari_mesoscale.model import fit as fit_module
from napari_mesoscale.model import reassign, training
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

METHODS = ("initial", "discovery")
PARTS = ("all", "first_half", "second_half")


class _Stop(Exception):
    """Raised inside the fit once the labels are held."""


def labels_before_training(
    brain, frames: slice, method: str, n_filters: int | None = None, seed: int = 0,
    **fit_options,
) -> np.ndarray:
    """(N,) motif labels a fit on ``frames`` with ``seed`` starts training from, with
    ``n_filters`` filters (None: the brain's true number of motifs) and ``fit_options``.

    ``method``: ``"initial"``, the default fit's initialisation (what ``motif_zoo.py``'s
    ``init`` row keeps); ``"em_start"``, the dynamics start of the ``assignment="em"`` path
    (k-means of per-neuron dynamics features over correlation communities, without the
    default's wiring features and sub-circuit scope: ``reassign._start_groups``); or
    ``"discovery"``, the discovery's labels (``assignment="em", init="random"``).
    """
    held: dict = {}

    def hold(net, *args, **kwargs):
        if method == "discovery":
            reassign.discover_assignment(net, *args, **kwargs)
        held["labels"] = net.choice()[2].cpu().numpy()
        raise _Stop

    if method == "initial":
        target, options = (fit_module, "train_model"), {}
    elif method in ("em_start", "discovery"):
        init = "dynamics" if method == "em_start" else "random"
        target, options = (training, "discover_assignment"), {"assignment": "em", "init": init}
    else:
        raise ValueError(f"method must be 'initial', 'em_start' or 'discovery'; got {method!r}")
    stimulus = None if brain.stimulus is None else brain.stimulus[frames]
    with mock.patch.object(*target, hold):
        try:
            fit_mesoscale(brain.activity[frames], brain.positions,
                          connectome=brain.connectome(), stimulus=stimulus,
                          n_filters=n_filters or len(brain.motif_names), epochs=1, seed=seed,
                          device="cpu", **options, **fit_options)
        except _Stop:
            pass
    if "labels" not in held:
        raise RuntimeError(f"the fit never reached the point where {method!r} labels are held")
    return held["labels"]


def run_brain(seed: int, args: argparse.Namespace) -> dict:
    brain = make_zoo_brain(args.neurons, args.frames, "dev", seed=seed, n_families=4,
                           heterogeneity=args.heterogeneity)
    half = args.frames // 2
    parts = {"all": slice(None), "first_half": slice(0, half),
             "second_half": slice(half, None)}
    row: dict = {"seed": seed}
    if args.implemented:
        return _implemented_row(brain, row)
    for method in METHODS:
        labels = {p: labels_before_training(brain, parts[p], method) for p in PARTS}
        row[method] = {
            "motif_ari": float(adjusted_rand_score(brain.motif, labels["all"])),
            "half_aris": [float(adjusted_rand_score(brain.motif, labels[p])) for p in PARTS[1:]],
            "agreement": float(adjusted_rand_score(labels["first_half"],
                                                   labels["second_half"])),
        }
    row["picked"] = pick(row)
    return row


def _implemented_row(brain, row: dict) -> dict:
    """``--implemented``: the agreements ``motif_choice="split_half"`` measures inside the fit
    (halves of the training block; model/split_half_choice.py), the motif ARIs of both methods'
    labels on the whole recording, and the fit's own choice (which must be R7's)."""
    fit = fit_mesoscale(brain.activity, brain.positions, connectome=brain.connectome(),
                        stimulus=brain.stimulus, n_filters=len(brain.motif_names), epochs=1,
                        seed=0, device="cpu", motif_choice="split_half")
    for method in METHODS:
        labels = labels_before_training(brain, slice(None), method)
        row[method] = {"motif_ari": float(adjusted_rand_score(brain.motif, labels)),
                       "agreement": fit.motif_choice[f"agreement_{method}"]}
    row["picked"] = pick(row)
    if row["picked"] != fit.motif_choice["chosen"]:
        raise RuntimeError(f"brain {row['seed']}: the fit chose {fit.motif_choice['chosen']}, "
                           f"R7 picks {row['picked']}")
    return row


def pick(row: dict) -> str:
    """Rule R7's choice on one brain: the discovery's labels when their split-half agreement
    is strictly higher than the initialisation's, else the initialisation's."""
    return "discovery" if row["discovery"]["agreement"] > row["initial"]["agreement"] else "initial"


def _spearman(rows: list[dict], method: str) -> float | None:
    """Rank correlation of split-half agreement and motif ARI over the brains (descriptive)."""
    from scipy.stats import spearmanr

    agree = [r[method]["agreement"] for r in rows]
    ari = [r[method]["motif_ari"] for r in rows]
    if len(rows) < 3 or np.ptp(agree) == 0 or np.ptp(ari) == 0:
        return None
    return float(spearmanr(agree, ari).statistic)


def judge(rows: list[dict], gap: float = 0.05, share: float = 0.75, least: int = 5) -> dict:
    """Rule R7's verdict on one set of brains (see the module docstring)."""
    ari = {m: np.array([r[m]["motif_ari"] for r in rows]) for m in METHODS}
    picked = np.array([r[r["picked"]]["motif_ari"] for r in rows])
    differ = np.abs(ari["initial"] - ari["discovery"]) > gap
    better = np.maximum(ari["initial"], ari["discovery"])
    right = int((picked[differ] >= better[differ]).sum())
    medians = {m: float(np.median(v)) for m, v in ari.items()}
    part_a = bool(differ.sum() >= least and right >= share * differ.sum())
    part_b = bool(np.median(picked) >= max(medians.values()))
    return {
        "brains": len(rows),
        "median_motif_ari": {**medians, "picked": float(np.median(picked))},
        "differ_by_more_than_gap": int(differ.sum()),
        "picked_the_better_where_they_differ": right,
        "discovery_picked": int(sum(r["picked"] == "discovery" for r in rows)),
        "median_agreement": {m: float(np.median([r[m]["agreement"] for r in rows]))
                             for m in METHODS},
        "agreement_vs_ari_spearman": {m: _spearman(rows, m) for m in METHODS},
        "part_a": part_a,
        "part_b": part_b,
        "passes": part_a and part_b,
    }


def main() -> None:
    from _results import dev_brain_parser, run_brains  # benchmarks/ is on the path

    parser = dev_brain_parser(__doc__, seed_base=1184)
    parser.add_argument(
        "--implemented", action="store_true",
        help="the agreements of the fit option motif_choice='split_half' (halves of the "
        "training block) instead of this script's halves of the whole recording")
    args = parser.parse_args()
    run_brains(args, lambda b: run_brain(args.seed_base + b, args), describe,
               lambda rows: {"rule_R7": judge(rows)})


def describe(row: dict) -> str:
    """One printed line per brain: both methods' motif ARI and agreement, the pick."""
    parts = (f"{m} ari {row[m]['motif_ari']:.3f} agree {row[m]['agreement']:.3f}"
             for m in METHODS)
    return " ".join([str(row["seed"]), *parts, "picked", row["picked"]])


if __name__ == "__main__":
    main()
