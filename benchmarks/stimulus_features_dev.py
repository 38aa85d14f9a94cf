"""Do channel-invariant stimulus features mend the initialisation's split motifs? (Rule R11;
issue #13; **dev families and toy dev seeds only**.)

Why it is asked: on fresh dev brains the default fit's initialisation is below motif ARI 0.9
on 37 of 160 (rules R7 / R8's brains), and on the ones looked at (1190, 1199, 1220, 1256) it
splits the rectified followers, whose instances each follow their own mix of stimulus
channels, into two groups and pays for it by merging two other families. Its stimulus
features are per channel (|ridge coefficient| and |lag-1 correlation| of every channel), so
followers of the pulse and followers of the drift look like two motifs. With
``stimulus_features="sorted"`` every neuron's values are sorted, largest first: how strongly
it follows its strongest input, not which input.

For every brain the default fit's initial motif labels are captured before training
(``labels_before_training(..., "initial")``), with ``stimulus_features="channels"`` (the
default) and ``"sorted"``, and scored against the true motifs. Nothing is trained.

Rule R11, committed with this script before any of its data were generated. Sets: fresh dev
brains 1584-1623 (40, plain) and 1624-1663 (40, per-neuron heterogeneity 0.5), 240 neurons,
1,500 frames, four dev families; toy dev seeds 100-107 (``make_toy_brain(render=None,
em=False, seed=s)``, fitted with their connectome and stimulus, as ``benchmarks/model.py``).
``"sorted"`` passes when (a) on both zoo sets its median motif ARI is at least the default's
and it has at least as many brains at >= 0.9, more on at least one set; (b) on the toy dev
seeds its median is at least the default's and no seed drops by more than 0.02. Only then
would it be measured as a fit (``motif_zoo.py`` with the option, fresh test brains) and
considered for a default.

Rule R12, committed after R11's data and before its own: ``"both"`` (the per-channel values
kept, the sorted ones appended), since R11 showed that the toy brain needs the channel (its
motifs are driven by different channels) and the zoo brains gain from the sorted values.
The same parts (a) and (b), on fresh dev brains 1672-1711 (plain) and 1712-1751 (per-neuron
heterogeneity 0.5) and toy dev seeds 108-115.

Usage::

    python benchmarks/stimulus_features_dev.py --out benchmarks/results/stimulus_features_dev.json
    python benchmarks/stimulus_features_dev.py --variant both --rule R12 --plain-seed 1672 \
        --heterogeneous-seed 1712 --toy-seed 108 \
        --out benchmarks/results/stimulus_features_both_dev.json
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.motif_zoo import make_zoo_brain
from split_half_agreement_dev import labels_before_training

DEFAULT = "channels"


class _ToyAsZoo:
    """The toy brain as :func:`labels_before_training` reads a zoo brain, fitted as
    benchmarks/model.py does (connectome = its adjacency, stimulus, n_filters = its motifs)."""

    def __init__(self, brain) -> None:
        self.activity, self.positions = brain.activity, brain.positions
        self.stimulus = brain.stimulus
        self.motif_names = brain.motif_names
        self._adjacency = brain.adjacency

    def connectome(self):
        return self._adjacency


def _scores(brain, motif: np.ndarray, variants: tuple[str, ...]) -> dict:
    return {v: float(adjusted_rand_score(motif, labels_before_training(
        brain, slice(None), "initial", stimulus_features=v))) for v in variants}


def score_zoo(seed: int, heterogeneity: float, variants: tuple[str, ...]) -> dict:
    brain = make_zoo_brain(240, 1500, "dev", seed=seed, n_families=4,
                           heterogeneity=heterogeneity)
    return {"seed": seed, **_scores(brain, brain.motif, variants)}


def score_toy(seed: int, variants: tuple[str, ...]) -> dict:
    brain = make_toy_brain(render=None, em=False, seed=seed)
    return {"seed": seed, **_scores(_ToyAsZoo(brain), brain.motif, variants)}


def judge(zoo: dict[str, list[dict]], toy: list[dict], candidate: str = "sorted") -> dict:
    """Rule R11's (or R12's) verdict on ``candidate`` against the default (module docstring)."""
    variants, new, old = (DEFAULT, candidate), candidate, DEFAULT
    sets = {}
    for name, rows in zoo.items():
        med = {v: float(np.median([r[v] for r in rows])) for v in variants}
        good = {v: int(sum(r[v] >= 0.9 for r in rows)) for v in variants}
        sets[name] = {"median": med, "at_least_0.9": good, "brains": len(rows)}
    part_a = (all(s["median"][new] >= s["median"][old]
                  and s["at_least_0.9"][new] >= s["at_least_0.9"][old]
                  for s in sets.values())
              and any(s["at_least_0.9"][new] > s["at_least_0.9"][old] for s in sets.values()))
    toy_med = {v: float(np.median([r[v] for r in toy])) for v in variants}
    worst = float(max(r[old] - r[new] for r in toy))
    part_b = toy_med[new] >= toy_med[old] and worst <= 0.02
    return {"zoo": sets, "toy": {"median": toy_med, "worst_drop": worst, "seeds": len(toy)},
            "part_a": bool(part_a), "part_b": bool(part_b), "passes": bool(part_a and part_b)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brains", type=int, default=40)
    parser.add_argument("--variant", default="sorted", choices=("sorted", "both"))
    parser.add_argument("--rule", default="R11")
    parser.add_argument("--plain-seed", type=int, default=1584)
    parser.add_argument("--heterogeneous-seed", type=int, default=1624)
    parser.add_argument("--toy-seed", type=int, default=100, help="first of 8 toy dev seeds")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json  # benchmarks/ is on the path as a script

    variants = (DEFAULT, args.variant)
    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    zoo = {}
    for name, base, heterogeneity in (("plain", args.plain_seed, 0.0),
                                      ("heterogeneous", args.heterogeneous_seed, 0.5)):
        zoo[name] = []
        for seed in range(base, base + args.brains):
            zoo[name].append(score_zoo(seed, heterogeneity, variants))
            print(name, zoo[name][-1], flush=True)
    toy = []
    for seed in range(args.toy_seed, args.toy_seed + 8):
        toy.append(score_toy(seed, variants))
        print("toy", toy[-1], flush=True)
    verdict = judge(zoo, toy, args.variant)
    result = {"args": vars(args), f"rule_{args.rule}": verdict, "zoo": zoo, "toy": toy,
              **run_record(t0, cpu0, load)}
    write_json(args.out, result)
    print(verdict)


if __name__ == "__main__":
    main()
