"""Rule R5: does a wider bar for keeping the reverted fit (``ModelConfig.revert_tolerance``)
keep the initial motifs where training's moves bought little, without costing prediction?

Why it is asked: with ``activity_assignment="reverted"`` the fit that gives training's moved
neurons their initial filter back is kept when its validation one-step error is at most 1 %
above the trained fit's. On the test-family brains 8000-8019 the reversion was refused on 4
brains (validation 1.4-2.1 % above), and 3 of them ended below the initialisation's motif ARI.
That observation came from test data, so the tolerance is chosen here on **dev data only**,
fresh (never generated before this rule was committed), and the test families are measured
again only on fresh brains (9000-9019), once, after the decision.

Data (dev only):
    dev zoo brains 1132-1139 with instance 0 replaced by damped oscillators (a second-order
    family built in ``benchmarks/_zoo_osc.py``, not a test family), 240 neurons, 1,500 frames,
    60 epochs, ``n_filters`` = the true count::

        python benchmarks/motif_zoo.py --families dev --oscillators --seed-base 1132 \
            --brains 2 --start 0|2|4|6 --neurons 240 --frames 1500 --epochs 60 \
            --fits model model_revert_always init --no-gru --out PART.json

    ``model`` is the default (bar 1 %), ``model_revert_always`` the same fit with the bar at
    1e6 (the reverted fit whenever training moved a neuron). Both share the trained and the
    reverted fit, so a bar T picks ``model_revert_always``'s row where the recorded ratio
    (reverted / trained validation error) is <= 1 + T and ``model``'s row otherwise.

Candidates: T in {0.02, 0.03, 0.05}. A candidate passes when, over the 8 brains,
    (a) its median motif ARI >= the default's and on no brain is it below the default's by
        more than 0.02;
    (b) its median domain ARI >= the default's - 0.01;
    (c) its held-out MSE is below every baseline (persistence, mean, ridge VAR,
        connectome-linear, per-neuron AR(2)) on at least as many brains as the default's;
    (d) its held-out MSE <= 1.03 x the default's on every brain;
    (e) it changes the choice on at least one brain (else the data cannot judge it).
The largest passing T becomes the default; if none passes, the default stays 0.01.

Usage::

    python benchmarks/revert_tolerance_rule.py PART.json ... --out OUT.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CANDIDATES = (0.02, 0.03, 0.05)
DEFAULT = 0.01
BASELINES = ("persistence", "mean", "ridge_var", "connectome_linear", "ar2_neuron")
RULE = __doc__.split("Candidates:")[1].split("Usage::")[0].strip()


def _chosen(brain: dict, tolerance: float) -> dict:
    """The row a bar ``tolerance`` keeps on ``brain`` (see module)."""
    default, always = brain["model"], brain["model_revert_always"]
    ratio = default.get("assignment_val_ratio")
    if default.get("moved", 0) and ratio is not None and ratio <= 1.0 + tolerance:
        return always
    return default


def _below_every(brain: dict, row: dict) -> bool:
    return all(row["mse"] < brain[b]["mse"] for b in BASELINES)


def _consistent(brain: dict) -> None:
    """Both fits share the trained and reverted fits: their recorded ratios must agree."""
    a = brain["model"].get("assignment_val_ratio")
    b = brain["model_revert_always"].get("assignment_val_ratio")
    if (a is None) != (b is None) or (a is not None and not np.isclose(a, b, rtol=1e-6)):
        raise RuntimeError(f"brain {brain['seed']}: ratios {a} and {b} differ")


def compare(brains: list[dict], base: list[dict], cand: list[dict]) -> dict:
    """Parts (a)-(d) of the rule (and their figures) for the candidate's rows ``cand``
    against the default's ``base``, one row per brain."""
    motif_b = np.array([r["motif_ari"] for r in base])
    motif_c = np.array([r["motif_ari"] for r in cand])
    domain_b = np.median([r["domain_ari"] for r in base])
    domain_c = np.median([r["domain_ari"] for r in cand])
    below_b = sum(_below_every(b, r) for b, r in zip(brains, base, strict=True))
    below_c = sum(_below_every(b, r) for b, r in zip(brains, cand, strict=True))
    mse = np.array([c["mse"] / d["mse"] for c, d in zip(cand, base, strict=True)])
    parts = {
        "a": bool(np.median(motif_c) >= np.median(motif_b) and (motif_b - motif_c).max() <= 0.02),
        "b": bool(domain_c >= domain_b - 0.01),
        "c": bool(below_c >= below_b),
        "d": bool(mse.max() <= 1.03),
    }
    return {
        "parts": parts,
        "median_motif_ari": [float(np.median(motif_b)), float(np.median(motif_c))],
        "worst_motif_ari_drop": float((motif_b - motif_c).max()),
        "median_domain_ari": [float(domain_b), float(domain_c)],
        "below_every_baseline": [int(below_b), int(below_c), len(brains)],
        "mse_ratio_max": float(mse.max()),
    }


def verdict(key: str, value: float, figures: dict, changed: list[int]) -> dict:
    """The candidate's verdict: parts (a)-(d) of ``figures`` and (e) ``changed`` not empty."""
    parts = {**figures["parts"], "e": bool(changed)}
    rest = {k: v for k, v in figures.items() if k != "parts"}
    return {key: value, "passes": all(parts.values()), "parts": parts, **rest,
            "changed": changed}


def decision(rule: str, brains: list[dict], verdict: dict, candidate: str, adopted) -> dict:
    """A one-candidate rule's result: its text, its verdict, what is adopted, and every brain's
    figures
    for the default fit (``model``), the candidate's fit (row ``candidate``) and ``init``."""
    keys = ("model", candidate, "init")
    per_brain = [
        {
            "seed": b["seed"],
            "moved": [b[k].get("moved", 0) for k in keys[:2]],
            "ratio": [b[k].get("assignment_val_ratio") for k in keys[:2]],
            "chosen": [b[k].get("assignment_chosen") for k in keys[:2]],
            "motif_ari": {k: b[k]["motif_ari"] for k in keys},
            "domain_ari": {k: b[k]["domain_ari"] for k in keys},
            "mse_ratio": b[candidate]["mse"] / b["model"]["mse"],
        }
        for b in brains
    ]
    return {"rule": rule, "candidate": verdict, "adopted": adopted, "brains": per_brain}


def judge(brains: list[dict], tolerance: float) -> dict:
    """Criteria (a)-(e) of the rule for one candidate bar."""
    base = [_chosen(b, DEFAULT) for b in brains]
    cand = [_chosen(b, tolerance) for b in brains]
    changed = [b["seed"] for b, c, d in zip(brains, cand, base, strict=True) if c is not d]
    return verdict("tolerance", tolerance, compare(brains, base, cand), changed)


def decide(brains: list[dict]) -> dict:
    for brain in brains:
        _consistent(brain)
    verdicts = [judge(brains, t) for t in CANDIDATES]
    passing = [v["tolerance"] for v in verdicts if v["passes"]]
    per_brain = [
        {
            "seed": b["seed"],
            "moved": b["model"].get("moved", 0),
            "ratio": b["model"].get("assignment_val_ratio"),
            "motif_ari": {k: b[k]["motif_ari"] for k in ("model", "model_revert_always", "init")},
            "domain_ari": {k: b[k]["domain_ari"] for k in ("model", "model_revert_always", "init")},
        }
        for b in brains
    ]
    return {
        "rule": RULE,
        "candidates": verdicts,
        "adopted": max(passing) if passing else DEFAULT,
        "brains": per_brain,
    }


def run_cli(doc: str, decide, verdicts: str, key: str) -> None:
    """Command line of a rule's judge: read the dev brains of the given motif_zoo.py files,
    ``decide`` on them, write the decision and print ``result[verdicts]``' every ``key``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("parts", nargs="+", help="motif_zoo.py result files (the dev brains)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import write_json  # benchmarks/ is on the path when run as a script

    brains = [b for p in args.parts for b in json.loads(Path(p).read_text())["brains"]]
    result = decide(sorted(brains, key=lambda b: b["seed"]))
    write_json(args.out, result)
    found = result[verdicts]
    for v in found if isinstance(found, list) else [found]:
        print(v[key], v["passes"], v["parts"], v["changed"])
    print("adopted:", result["adopted"])


def main() -> None:
    run_cli(__doc__, decide, "candidates", "tolerance")


if __name__ == "__main__":
    main()
