"""Rule R13: does a gain per neuron on its own past (``ModelConfig.neuron_gains``) make the
reversion to the initial motifs cheaper, without costing motifs or prediction?

Why it is asked: with ``activity_assignment="reverted"`` the neurons training moved get their
initial filter back, and that fit is kept when its validation one-step error is at most 2 %
above the trained fit's. On the test brains 9000-9019 two reversions were refused (3.4 and
4.0 %), both on brains whose resonators differ neuron by neuron in period and gain; a shared
filter fits one period per field, so a neuron whose own period differs can be predicted
better by another motif's filter. A trainable gain per neuron on x[t] (and x[t-1]) lets one
filter serve all of them (tests/core/model/test_neuron_gains.py: 40 oscillators of periods
7-14 frames and one filter, the held-out error above the noise floor halved). That
observation only sets the question: the option is judged here on **fresh dev data only**
(generated after this rule was committed), and the test families are measured again only on
fresh brains (10000-10019), once, after the decision.

Data (dev only): dev zoo brains with instance 0 replaced by damped oscillators of per-neuron
periods 9-11 frames (``benchmarks/_zoo_osc.py``), 240 neurons, 1,500 frames, 60 epochs,
``n_filters`` = the true count; brains 1752-1757 with every other neuron's own speed and gain
drawn (``--heterogeneity 0.5``, neuron scope), brains 1758-1763 without::

    python benchmarks/motif_zoo.py --families dev --oscillators --heterogeneity 0.5 \
        --seed-base 1752 --brains 3 --start 0|3 --neurons 240 --frames 1500 --epochs 60 \
        --fits model model_gains init --no-gru --out PART.json
    python benchmarks/motif_zoo.py --families dev --oscillators --seed-base 1752 \
        --brains 3 --start 6|9 ... (the same)

``model`` is the default fit, ``model_gains`` the same with ``neuron_gains=True``.

Candidate: neuron_gains = True. It passes when, over the 12 brains,
    (a) its median motif ARI >= the default's and on no brain is it below the default's by
        more than 0.02;
    (b) its median domain ARI >= the default's - 0.01;
    (c) its held-out MSE is below every baseline (persistence, mean, ridge VAR,
        connectome-linear, per-neuron AR(2)) on at least as many brains as the default's;
    (d) its held-out MSE <= 1.03 x the default's on every brain, and its median ratio to the
        default's <= 1;
    (e) the reversion is cheaper: over the brains where training moved neurons in both fits,
        the median validation ratio reverted / trained is lower than the default's, and the
        reversion is refused on no more brains than the default's.
If it passes, the toy seeds 0-3 are fitted with it next (their figures must be kept) before
it can become the default; if not, ``neuron_gains`` stays off.

Toy part (written after the dev verdict, before the toy fits): the default fit and the fit
with ``neuron_gains=True`` of toy seeds 0-3, side by side in one run::

    python benchmarks/model.py --accuracy-only --seeds 0 1 | 2 3 --connectome-only \
        --only default_connectome [--neuron-gains] --out TOY.json

It passes when, with neuron gains, (t1) every seed meets the toy targets (motif ARI >= 0.9,
domain ARI >= 0.8, one-step MSE below every baseline's, fewer parameters than ridge VAR),
(t2) every seed's motif ARI is >= 0.95 (issue #13's toy target) and at most 0.02 below the
default's, and (t3) the median one-step MSE is at most the default's.

Usage::

    python benchmarks/neuron_gains_rule.py PART.json ... --out OUT.json
    python benchmarks/neuron_gains_rule.py --toy DEFAULT.json ... --gains GAINS.json ... \
        --out OUT.json
"""

from __future__ import annotations

import numpy as np

from revert_tolerance_rule import compare, decision, run_cli

CANDIDATE = True
DEFAULT = False
RULE = __doc__.split("Candidate:")[1].split("Usage::")[0].strip()


def _reversion(rows: list[dict]) -> tuple[list[float], int]:
    """Validation ratios reverted / trained of ``rows`` and how many reversions were refused."""
    ratios = [r.get("assignment_val_ratio") for r in rows]
    refused = sum(r.get("moved", 0) > 0 and r.get("assignment_chosen") == "trained" for r in rows)
    return ratios, int(refused)


def judge(brains: list[dict]) -> dict:
    """Criteria (a)-(e) of the rule for the candidate against the default."""
    base = [b["model"] for b in brains]
    cand = [b["model_gains"] for b in brains]
    figures = compare(brains, base, cand)
    mse = np.array([c["mse"] / d["mse"] for c, d in zip(cand, base, strict=True)])
    ratios_b, refused_b = _reversion(base)
    ratios_c, refused_c = _reversion(cand)
    both = [(b, c) for b, c in zip(ratios_b, ratios_c, strict=True)
            if b is not None and c is not None]
    median_b = float(np.median([b for b, _ in both])) if both else None
    median_c = float(np.median([c for _, c in both])) if both else None
    parts = {
        **figures["parts"],
        "d": bool(figures["parts"]["d"] and np.median(mse) <= 1.0),
        "e": bool(both) and median_c < median_b and refused_c <= refused_b,
    }
    rest = {k: v for k, v in figures.items() if k != "parts"}
    return {
        "neuron_gains": CANDIDATE,
        "passes": all(parts.values()),
        "parts": parts,
        **rest,
        "mse_ratio_median": float(np.median(mse)),
        "median_reversion_ratio": [median_b, median_c, len(both)],
        "refused": [refused_b, refused_c],
        "changed": [
            b["seed"]
            for b, c, d in zip(brains, cand, base, strict=True)
            if c.get("assignment_chosen") != d.get("assignment_chosen")
        ],
    }


def decide(brains: list[dict]) -> dict:
    verdict = judge(brains)
    adopted = CANDIDATE if verdict["passes"] else DEFAULT
    return decision(RULE, brains, verdict, "model_gains", adopted)


def toy_part(default: list[dict], gains: list[dict]) -> dict:
    """Parts (t1)-(t3) on the ``per_seed`` rows of ``benchmarks/model.py`` (variant
    ``default_connectome``) of the default fits and of the fits with neuron gains."""
    def rows(per_seed: list[dict]) -> dict[int, dict]:
        return {s["brain"]["seed"]: s["model"]["default_connectome"] for s in per_seed}

    base, cand = rows(default), rows(gains)
    if sorted(base) != sorted(cand):
        raise ValueError(f"seeds differ: {sorted(base)} and {sorted(cand)}")
    seeds = sorted(base)
    motif = {s: (base[s]["motif_ari"], cand[s]["motif_ari"]) for s in seeds}
    mse = {s: (base[s]["mse_1"], cand[s]["mse_1"]) for s in seeds}
    parts = {
        "t1": all(cand[s]["targets"]["all"] for s in seeds),
        "t2": all(c >= 0.95 and c >= b - 0.02 for b, c in motif.values()),
        "t3": bool(np.median([c for _, c in mse.values()])
                   <= np.median([b for b, _ in mse.values()])),
    }
    return {"passes": all(parts.values()), "parts": parts, "motif_ari": motif, "mse_1": mse}


def _toy_cli() -> None:
    import argparse
    import json
    from pathlib import Path

    from _results import write_json

    parser = argparse.ArgumentParser(description="rule R13, toy part")
    parser.add_argument("--toy", nargs="+", required=True, help="model.py JSON, default fits")
    parser.add_argument("--gains", nargs="+", required=True, help="the same, --neuron-gains")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    def per_seed(paths: list[str]) -> list[dict]:
        return [s for p in paths for s in json.loads(Path(p).read_text())["per_seed"]]

    result = {"rule": RULE, "toy": toy_part(per_seed(args.toy), per_seed(args.gains))}
    write_json(args.out, result)
    print(result["toy"])


def main() -> None:
    import sys

    if "--toy" in sys.argv:
        _toy_cli()
        return
    run_cli(__doc__, decide, "candidate", "neuron_gains")


if __name__ == "__main__":
    main()
