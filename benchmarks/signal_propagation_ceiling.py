"""The noise ceiling of ``signal_propagation.py``'s score: how high a Pearson r over held-out
(responder, stimulated) pairs any model could reach, given the trial-to-trial noise of the
atlas's pair means.

The atlas stores every pair's single-trial amplitudes (``dFF_all``; ``celegans.atlas`` column
``dff_trials``, whose mean is the scored ΔF/F exactly). A model's prediction can at best equal a
pair's *true* mean response; the measured mean is that plus noise of variance σ²/n (n trials),
so the best r over a set of pairs is sqrt(var(true) / var(measured)). Two estimates, per strain,
over the pairs the benchmark scores (stimulated neurons with ≥ 5 observed responders):

* **split-half** (pairs with ≥ 2 trials): each pair's trials split at random into halves, r of
  the half means over pairs (mean over ``--splits`` random splits; also the stored odd/even
  split), Spearman–Brown corrected to the reliability of the full mean, ceiling = its root.
  This ignores the pairs with a single trial (a quarter of wild type's, over half of
  unc-31's), whose means are noisier.
* **half covariance** (every scored pair, the ceiling of the benchmark's score as computed):
  var(true) = the covariance of the two half means over the pairs with ≥ 2 trials (noise
  cancels in it), assumed the same for the single-trial pairs; ceiling = sqrt(var(true) /
  var(measured means over all scored pairs)). Also per outer fold (the benchmark's folds;
  reading the held-out columns' trial noise chooses nothing).
* **variance decomposition**, as a check: var(true) = var(measured means) − mean σ²_ij / n_ij,
  σ²_ij the pair's own trial variance (pairs with ≥ 2 trials). For the single-trial pairs it
  cannot be used: the amplitudes are so heavy-tailed (kurtosis of the pair means in the
  thousands) that the responder's pooled trial variance exceeds the variance of those pairs'
  means, i.e. a ceiling of 0 (kept in the JSON as ``ceiling_decomposition_pooled_noise``).

95 % intervals: bootstrap over stimulated neurons (columns resampled). The fraction of the
ceiling a model reaches is its outer r (from the benchmark's JSON) over the ceiling.

    OMP_NUM_THREADS=1 python benchmarks/signal_propagation_ceiling.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import signal_propagation as sprop
from _results import write_json
from napari_mesoscale.datasets import celegans

RESULTS = Path(__file__).parent / "results" / "signal_propagation_ceiling.json"
SIXTH_PASS = Path(__file__).parent / "results" / "signal_propagation_sixth_pass_both_strains.json"
#: The rows whose outer r is set against the ceiling (sixth pass figures).
ROWS = (
    "connectome linear",
    "receptive-field readout, scale chosen",
    "mesoscale (readout residual, seed ensemble)",
)


def pair_table(names: list[str], strain: str, columns: np.ndarray) -> dict[str, np.ndarray]:
    """The scored pairs of ``columns`` (stimulated indices): responder, stimulated, n, mean,
    trial variance (NaN for a single trial) and the trials themselves."""
    index = {n: k for k, n in enumerate(names)}
    table = celegans.atlas(strain)
    table = table[np.isfinite(table["dff"])]
    responder = table["responder"].map(index).to_numpy()
    stimulated = table["stimulated"].map(index).to_numpy()
    keep = np.isin(stimulated, columns) & (responder != stimulated)
    trials = [np.asarray(t, float) for t in table["dff_trials"].to_numpy()[keep]]
    n = np.array([t.size for t in trials])
    return {
        "responder": responder[keep],
        "stimulated": stimulated[keep],
        "n": n,
        "mean": table["dff"].to_numpy()[keep],
        "variance": np.array([t.var(ddof=1) if t.size > 1 else np.nan for t in trials]),
        "trials": trials,
    }


def noise_variance(pairs: dict[str, np.ndarray]) -> np.ndarray:
    """σ²_ij / n_ij for every pair: its own trial variance, or for a single trial the
    responder's pooled trial variance (global pooled without repeats)."""
    variance = pairs["variance"].copy()
    repeated = np.isfinite(variance)
    dof = np.where(repeated, pairs["n"] - 1, 0)
    pooled_global = np.sum(np.nan_to_num(variance) * dof) / dof.sum()
    for i in np.unique(pairs["responder"][~repeated]):
        mine = pairs["responder"] == i
        own = dof[mine].sum()
        pooled = np.sum(np.nan_to_num(variance[mine]) * dof[mine]) / own if own else pooled_global
        variance[mine & ~repeated] = pooled
    return variance / pairs["n"]


def decomposition_ceiling(mean: np.ndarray, noise: np.ndarray) -> float:
    total = mean.var()
    return float(np.sqrt(max(total - noise.mean(), 0.0) / total))


def half_means(trials: list[np.ndarray], rng: np.random.Generator | None) -> np.ndarray:
    """(2, pairs) the two half means; halves at random (``rng``) or odd/even trials."""
    halves = np.empty((2, len(trials)))
    for k, t in enumerate(trials):
        order = rng.permutation(t.size) if rng is not None else np.arange(t.size)
        halves[:, k] = t[order[0::2]].mean(), t[order[1::2]].mean()
    return halves


def split_half_r(trials: list[np.ndarray], rng: np.random.Generator | None) -> float:
    return float(np.corrcoef(half_means(trials, rng))[0, 1])


def half_covariance(trials: list[np.ndarray], rng, splits: int) -> float:
    """The true means' variance over these pairs: cov of the half means (noise cancels)."""
    return float(np.mean([np.cov(half_means(trials, rng))[0, 1] for _ in range(splits)]))


def covariance_ceiling(true_variance: float, mean: np.ndarray) -> float:
    return float(np.sqrt(max(true_variance, 0.0) / mean.var()))


def spearman_brown(r: float) -> float:
    return 2 * r / (1 + r)


def ceilings(pairs: dict[str, np.ndarray], noise: np.ndarray, splits: int, rng) -> dict:
    repeated = pairs["n"] >= 2
    trials = [t for t, ok in zip(pairs["trials"], repeated, strict=True) if ok]
    random_r = float(np.mean([split_half_r(trials, rng) for _ in range(splits)]))
    true_variance = half_covariance(trials, rng, splits)
    return {
        "pairs": int(pairs["n"].size),
        "pairs_with_2_or_more_trials": int(repeated.sum()),
        "split_half_r_random": random_r,
        "split_half_r_odd_even": split_half_r(trials, None),
        "spearman_brown_reliability": spearman_brown(random_r),
        "ceiling_split_half": float(np.sqrt(max(spearman_brown(random_r), 0.0))),
        "true_variance_half_covariance": true_variance,
        "measured_variance": float(pairs["mean"].var()),
        "ceiling_half_covariance": covariance_ceiling(true_variance, pairs["mean"]),
        "ceiling_half_covariance_pairs_with_2_or_more_trials": covariance_ceiling(
            true_variance, pairs["mean"][repeated]
        ),
        "ceiling_decomposition_pairs_with_2_or_more_trials": decomposition_ceiling(
            pairs["mean"][repeated], noise[repeated]
        ),
        "ceiling_decomposition_pooled_noise": decomposition_ceiling(pairs["mean"], noise),
    }


def bootstrap_columns(pairs, noise, stimulated, rng, n_boot: int, splits: int) -> dict:
    """Percentile intervals of every ceiling figure with the stimulated neurons resampled."""
    by_column = {j: np.flatnonzero(pairs["stimulated"] == j) for j in stimulated}
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        rows = np.concatenate([by_column[j] for j in rng.choice(stimulated, stimulated.size)])
        sample = {k: [v[r] for r in rows] if k == "trials" else v[rows] for k, v in pairs.items()}
        for key, value in ceilings(sample, noise[rows], splits, rng).items():
            draws.setdefault(key, []).append(value)
    return {k: [float(np.percentile(v, q)) for q in (2.5, 97.5)] for k, v in draws.items()}


def outer_rows(strain: str) -> dict[str, list[float]]:
    """Outer r per fold of the sixth pass's rows (what the ceiling is set against)."""
    if not SIXTH_PASS.exists():
        return {}
    models = json.loads(SIXTH_PASS.read_text())["strains"][strain]["models"]
    return {m: models[m]["pearson_r_per_fold"] for m in ROWS if m in models}


def strain_ceiling(strain: str, names: list[str], args, rng) -> dict:
    R = sprop.response_matrix(names, strain)
    stimulated = np.flatnonzero(np.isfinite(R).sum(axis=0) >= args.min_responders)
    folds = np.array_split(np.random.default_rng(0).permutation(stimulated), args.folds)
    pairs = pair_table(names, strain, stimulated)
    noise = noise_variance(pairs)
    block = {"stimulated_neurons": int(stimulated.size)}
    block |= ceilings(pairs, noise, args.splits, rng)
    block["ci95_bootstrap_over_stimulated"] = bootstrap_columns(
        pairs, noise, stimulated, rng, args.bootstrap, 1
    )
    per_fold = []
    for test in folds:
        mine = np.isin(pairs["stimulated"], test)
        trials = [t for t, ok in zip(pairs["trials"], mine & (pairs["n"] >= 2), strict=True) if ok]
        per_fold.append(
            covariance_ceiling(half_covariance(trials, rng, args.splits), pairs["mean"][mine])
        )
    block["ceiling_half_covariance_per_outer_fold"] = per_fold
    block["ceiling_half_covariance_mean_over_outer_folds"] = float(np.mean(per_fold))
    block["fraction_of_ceiling"] = {
        model: {
            "outer_r_mean": float(np.mean(rs)),
            "fraction_of_mean_ceiling": float(np.mean(rs) / np.mean(per_fold)),
            "fraction_of_all_pairs_ceiling": float(np.mean(rs) / block["ceiling_half_covariance"]),
        }
        for model, rs in outer_rows(strain).items()
    }
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strains", nargs="+", default=["wt", "unc31"])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-responders", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    names = celegans.neurons()["id"].tolist()
    rng = np.random.default_rng(0)
    results = {
        "benchmark": "signal_propagation_ceiling",
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "strains": {s: strain_ceiling(s, names, args, rng) for s in args.strains},
        "random_splits": args.splits,
        "bootstrap_draws": args.bootstrap,
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average_at_end": os.getloadavg(),
    }
    write_json(args.out, results)
    strains = results["strains"].items()
    brief = {s: {k: v for k, v in b.items() if "ci95" not in k} for s, b in strains}
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
