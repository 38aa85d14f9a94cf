"""Benchmark of noise-corrected predictivity (Nayebi 2022): accuracy of the estimators and speed.

Sections (all in one run, written to ``benchmarks/results/predictivity.json``):

``noise_sweep``
    Synthetic trials (200 stimuli, 100 neurons, 10 trials) of a known population at growing
    noise. The ground-truth model's median raw correlation, and its noise-corrected score under
    the three estimators: "half" (ours, default), "full" (Spearman–Brown on both reliabilities),
    "thesis" (the printed form: half-split numerator over SB-corrected reliabilities).
``mappings``
    A permuted copy of the population with its own noise (another "animal") under one-to-one,
    ridge and PLS; random features under ridge; a linear model in another basis under PLS.
``rsa``
    Noise-corrected RSA of the ground truth and of unrelated features.
``toy_brain``
    A toy brain (``make_toy_brain``) re-simulated 8 times with the same stimulus and different
    noise seeds: per-motif reliability, and the noise-corrected predictivity of the ideal
    one-step predictor (``brain.one_step`` on each trial) against persistence.
``timing``
    Median seconds of ``noise_corrected_predictivity`` (50 splits) and ``linear_predictivity``
    (ridge, 3 x 5 splits) at N = 500 and 2000 neurons (500 stimuli, 10 trials), and their ratio.

Usage::

    python benchmarks/predictivity.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from napari_mesoscale.evaluate.predictivity import (
    linear_predictivity,
    noise_corrected_predictivity,
    noise_corrected_rsa,
    split_half_reliability,
)
from napari_mesoscale.io.atomic import atomic_path

RESULTS = Path(__file__).resolve().parent / "results"


def _trials(truth, sigma, n_trials, rng):
    return truth[None] + sigma * rng.standard_normal((n_trials, *truth.shape))


def noise_sweep(rng) -> list[dict]:
    truth = rng.standard_normal((200, 100))
    rows = []
    for sigma in (0.5, 1.0, 2.0, 3.0, 4.0):
        trials = _trials(truth, sigma, 10, rng)
        row = {"sigma": sigma}
        for estimator in ("half", "full", "thesis"):
            res = noise_corrected_predictivity(truth, trials, n_splits=50, estimator=estimator)
            row[estimator] = res.median
            row[f"{estimator}_sem"] = res.sem
        row["raw"] = float(np.median(res.raw))
        row["reliability_sb"] = float(np.median(res.reliability))
        row["half_reliability"] = float(np.median(res.half_reliability))
        row["thesis_expected_bias"] = float(np.sqrt((1 + row["half_reliability"]) / 2))
        rows.append(row)
    return rows


def mappings(rng) -> dict:
    truth = rng.standard_normal((200, 60))
    trials = _trials(truth, 1.5, 10, rng)
    source = _trials(truth[:, rng.permutation(60)], 1.5, 10, rng)
    out = {}
    for mapping in ("one_to_one", "ridge", "pls"):
        res = linear_predictivity(source, trials, mapping=mapping, n_train_test=3, n_splits=8)
        out[f"permuted_copy_{mapping}"] = {
            "corrected": res.median,
            "sem": res.sem,
            "raw": float(np.median(res.raw)),
        }
    random = rng.standard_normal((200, 40))
    res = linear_predictivity(random, trials, mapping="ridge", n_train_test=3, n_splits=8)
    out["random_features_ridge"] = {"corrected": res.median, "sem": res.sem}
    latent = rng.standard_normal((240, 8))
    target = latent @ rng.standard_normal((8, 50))
    lin_trials = _trials(target, 2.0 * target.std(), 8, rng)
    feats = latent @ rng.standard_normal((8, 30))
    for mapping in ("ridge", "pls"):
        res = linear_predictivity(
            feats, lin_trials, mapping=mapping, n_components=8, n_train_test=3, n_splits=8
        )
        out[f"linear_model_{mapping}"] = {
            "corrected": res.median,
            "sem": res.sem,
            "raw": float(np.median(res.raw)),
        }
    return out


def rsa_section(rng) -> dict:
    truth = rng.standard_normal((60, 100))
    trials = _trials(truth, 2.0, 10, rng)
    out = {}
    for estimator in ("half", "full", "thesis"):
        res = noise_corrected_rsa(truth, trials, n_splits=30, estimator=estimator)
        out[f"ground_truth_{estimator}"] = {"raw": res.raw, "corrected": res.corrected}
    res = noise_corrected_rsa(rng.standard_normal((60, 30)), trials, n_splits=30)
    out["unrelated"] = {"raw": res.raw, "corrected": res.corrected}
    return out


def toy_brain(quick: bool) -> dict:
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.synth.dynamics import simulate

    n = 300 if quick else 600
    brain = make_toy_brain(n, n_frames=500, render=None, em=False, seed=0)
    trials = np.stack(
        [
            simulate(brain.dynamics, brain.stimulus, brain.activity[0], np.random.default_rng(k), 0)
            for k in range(8)
        ]
    ).astype(np.float64)
    reliability = split_half_reliability(trials, n_splits=50)
    one_step = np.stack([brain.one_step(trial) for trial in trials])  # row t predicts t + 1
    persistence = trials
    target = trials[:, 1:]
    out = {"n_neurons": n, "n_trials": 8, "n_frames": 500, "motifs": list(brain.motif_names)}
    for name, pred in (("ideal_one_step", one_step), ("persistence", persistence)):
        res = noise_corrected_predictivity(
            pred[:, :-1], target, n_splits=50, reliability_threshold=0.3
        )
        table = res.summary([brain.motif_names[m] for m in brain.motif])
        out[name] = table.to_dict(orient="records")
    out["reliability_median_by_motif"] = {
        brain.motif_names[m]: float(np.nanmedian(reliability[brain.motif == m]))
        for m in np.unique(brain.motif)
    }
    return out


def timing(rng, quick: bool) -> dict:
    out = {}
    sizes = (500,) if quick else (500, 2000)
    for n in sizes:
        truth = rng.standard_normal((500, n))
        trials = _trials(truth, 1.0, 10, rng)
        feats = truth @ rng.standard_normal((n, 64)) / np.sqrt(n)
        t_nc, t_lin = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            noise_corrected_predictivity(truth, trials, n_splits=50)
            t_nc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            linear_predictivity(feats, trials, mapping="ridge", n_train_test=3, n_splits=5)
            t_lin.append(time.perf_counter() - t0)
        out[str(n)] = {
            "noise_corrected_s": float(np.median(t_nc)),
            "ridge_mapping_s": float(np.median(t_lin)),
        }
    if len(sizes) == 2:
        a, b = (out[str(s)] for s in sizes)
        out["ratio_2000_over_500"] = {
            "noise_corrected": b["noise_corrected_s"] / a["noise_corrected_s"],
            "ridge_mapping": b["ridge_mapping_s"] / a["ridge_mapping_s"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller toy brain and timings")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    result = {
        "noise_sweep": noise_sweep(rng),
        "mappings": mappings(rng),
        "rsa": rsa_section(rng),
        "toy_brain": toy_brain(args.quick),
        "timing": timing(rng, args.quick),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    result["total_s"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("predictivity_quick.json" if args.quick else "predictivity.json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=float))
    print("| sigma | raw | half (ours) | full | thesis (printed) | SB reliability |")
    print("|---|---|---|---|---|---|")
    for r in result["noise_sweep"]:
        print(
            f"| {r['sigma']} | {r['raw']:.3f} | {r['half']:.3f} ± {r['half_sem']:.3f} | "
            f"{r['full']:.3f} | {r['thesis']:.3f} | {r['reliability_sb']:.2f} |"
        )
    print()
    for key, value in result["mappings"].items():
        print(f"{key}: {value}")
    for key, value in result["rsa"].items():
        print(f"rsa {key}: {value}")
    tb = result["toy_brain"]
    print("toy brain reliability by motif:", tb["reliability_median_by_motif"])
    for name in ("ideal_one_step", "persistence"):
        rows = [r for r in tb[name] if r["score"] == "corrected"]
        print(name, {r["group"]: (round(r["median"], 3), r["n"]) for r in rows})
    print("timing:", json.dumps(result["timing"]))
    print(f"wrote {path} in {result['total_s']:.0f} s")


if __name__ == "__main__":
    main()
