"""Benchmark of response localisation (Dyer & Griffin 2022): LeNet, toy brain, scale.

Sections (one run, written to ``benchmarks/results/localisation.json``, tables printed as
markdown):

``lenet``
    The small LeNet (826 units) trained on scikit-learn's digits; its units are localised from
    GAUSSIAN / IMPULSE / DIGITS features and their concatenation (CONCAT) with the classifier
    bank and the Hungarian algorithm on the paper's checkerboard ("perfect") half split. The
    per-layer RMS graph-distance error table for seed 0, and the mean over layers for each
    network seed (networks, stimuli and forests all change with the seed).
``toy_brain``
    Supervised baseline on a toy brain: half of each motif instance labelled, the other half
    assigned to (motif, instance) one-to-one (Hungarian over the held-out slots) or freely
    (argmax over known combinations); accuracies and chance levels.
``eigen_scaling``
    Time and peak traced memory (``tracemalloc``: numpy allocations) of
    ``correlation_eigenfeatures`` with the dense and the chunked sparse method at growing N
    (T = 500), and the agreement of the two methods where both run.

Usage::

    python benchmarks/localisation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.evaluate import correlation_eigenfeatures
from napari_mesoscale.io.atomic import atomic_path
from napari_mesoscale.reproductions.localisation import localise_neurons
from napari_mesoscale.reproductions.localisation.lenet_digits import (
    markdown_table,
    run_reproduction,
)

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("GAUSSIAN", "IMPULSE", "DIGITS", "CONCAT", "RANDOM")


def lenet(seeds: list[int]) -> dict:
    runs = []
    first_table = None
    for seed in seeds:
        t0 = time.perf_counter()
        out = run_reproduction(seed=seed)
        mean = out["table"].iloc[-1]
        runs.append(
            {
                "seed": seed,
                "seconds": time.perf_counter() - t0,
                "digit_accuracy": out["accuracy"],
                "silent_units": out["silent"],
                "exact_fraction": out["exact"],
                **{name: float(mean[name]) for name in SETS},
            }
        )
        if first_table is None:
            first_table = out["table"]
        print(f"seed {seed}: " + ", ".join(f"{k} {mean[k]:.2f}" for k in SETS), flush=True)
    frame = pd.DataFrame(runs)
    summary = {
        name: {"mean": float(frame[name].mean()), "sd": float(frame[name].std(ddof=1))}
        for name in SETS
    }
    orders = [" < ".join(sorted(SETS, key=lambda k, r=r: r[k])) for r in runs]
    return {
        "table_seed0": first_table.to_dict(orient="records"),
        "runs": runs,
        "summary": summary,
        "orderings": orders,
        "n_units": 826,
    }


def toy_brain(quick: bool, model_epochs: int = 0) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    n = 300 if quick else 600
    brain = make_toy_brain(n, n_frames=500, render=None, em=False, seed=0)
    labels = pd.DataFrame({"motif": brain.motif, "instance": brain.instance})
    rng = np.random.default_rng(0)
    train, test = [], []
    for inst in np.unique(brain.instance):
        idx = rng.permutation(np.flatnonzero(brain.instance == inst))
        train.append(idx[: idx.size // 2])
        test.append(idx[idx.size // 2 :])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    feats = correlation_eigenfeatures(brain.activity, 16)
    out = {"n_neurons": n, "n_instances": int(np.unique(brain.instance).size)}
    truth = labels.iloc[test]
    for mode, slots in (("hungarian", truth), ("argmax", None)):
        t0 = time.perf_counter()
        res = localise_neurons(
            None, labels.iloc[train], train, test, slots=slots, features=feats, seed=0
        )
        out[mode] = {
            "motif_accuracy": res.accuracy(truth, ["motif"]),
            "instance_accuracy": res.accuracy(truth, ["instance"]),
            "seconds": time.perf_counter() - t0,
        }
        ari = {
            "motif_ari": adjusted_rand_score(truth["motif"], res.assigned["motif"]),
            "instance_ari": adjusted_rand_score(truth["instance"], res.assigned["instance"]),
        }
        out[mode].update(ari)
    if model_epochs:
        # the mesoscale model's unsupervised assignment, scored on the same held-out neurons
        from napari_mesoscale.model import fit_mesoscale

        t0 = time.perf_counter()
        try:
            fit = fit_mesoscale(
                brain.activity,
                brain.positions,
                stimulus=brain.stimulus,
                epochs=model_epochs,
                device="cpu",
                seed=0,
            )
            out["mesoscale_model"] = {
                "epochs": model_epochs,
                "motif_ari": adjusted_rand_score(truth["motif"], fit.motif_labels[test]),
                "instance_ari": adjusted_rand_score(truth["instance"], fit.domain_labels[test]),
                "motif_ari_all_neurons": adjusted_rand_score(brain.motif, fit.motif_labels),
                "seconds": time.perf_counter() - t0,
            }
        except Exception as error:  # noqa: BLE001 - report, do not hide, a failing model
            out["mesoscale_model"] = {"error": f"{type(error).__name__}: {error}"}
    out["chance"] = {
        "motif": float(np.max(np.bincount(brain.motif)) / n),
        "instance": 1.0 / out["n_instances"],
    }
    return out


def _measure(activity: np.ndarray, method: str) -> tuple[np.ndarray, float, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    feats = correlation_eigenfeatures(activity, 16, n_moments=0, method=method)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return feats, seconds, peak


def _smooth_population(n: int, rng: np.random.Generator) -> np.ndarray:
    """Activity (500, n) of neurons on a line, driven by 200 latent sources with local reach."""
    pos = np.sort(rng.uniform(0, 1, n))
    centres = rng.uniform(0, 1, 200)
    kernel = np.exp(-0.5 * ((pos[None] - centres[:, None]) / 0.03) ** 2).astype(np.float32)
    latent = rng.standard_normal((500, 200)).astype(np.float32)
    return latent @ kernel + 0.5 * rng.standard_normal((500, n)).astype(np.float32)


def _subspace_overlap(a: np.ndarray, b: np.ndarray, k: int = 8) -> float:
    """Mean squared cosine of the principal angles between the top-k eigenvector subspaces."""
    qa, _ = np.linalg.qr(a[:, :k])
    qb, _ = np.linalg.qr(b[:, :k])
    return float(np.sum((qa.T @ qb) ** 2) / k)


def eigen_scaling(quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    sizes = (1000, 2000, 5000) if quick else (1000, 2000, 5000, 10000)
    for n in sizes:
        activity = _smooth_population(n, rng)
        row = {"n_neurons": n, "n_frames": 500}
        dense = None
        if n <= 2000:
            dense, row["dense_s"], row["dense_peak_mib"] = _measure(activity, "dense")
        sparse, row["sparse_s"], row["sparse_peak_mib"] = _measure(activity, "sparse")
        if dense is not None:
            row["top8_subspace_overlap"] = _subspace_overlap(dense, sparse)
        rows.append(row)
        print(row, flush=True)
    big = [r for r in rows if r["n_neurons"] >= 2000]
    if len(big) >= 2:
        n0, n1 = big[0]["n_neurons"], big[-1]["n_neurons"]
        slope = np.log(big[-1]["sparse_s"] / big[0]["sparse_s"]) / np.log(n1 / n0)
        rows.append({"sparse_time_exponent": float(slope), "between": [n0, n1]})
    return rows


def big_sparse(n: int, n_frames: int) -> dict:
    """Sparse eigenfeatures at one large N: seconds, traced peak memory and process peak RSS."""
    import resource

    rng = np.random.default_rng(0)
    pos = np.sort(rng.uniform(0, 1, n))
    centres = rng.uniform(0, 1, 2000)
    activity = 0.5 * rng.standard_normal((n_frames, n)).astype(np.float32)
    # each neuron listens to the latent sources near it (sparse reach, built in blocks)
    latent = rng.standard_normal((n_frames, centres.size)).astype(np.float32)
    nearest = np.clip(np.searchsorted(np.sort(centres), pos), 0, centres.size - 1)
    order = np.argsort(centres)
    for shift in (-1, 0, 1):
        src = order[np.clip(nearest + shift, 0, centres.size - 1)]
        activity += latent[:, src]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    last = [time.perf_counter()]

    def progress(info: dict) -> None:
        if time.perf_counter() - last[0] > 30:
            print(f"  {info['fraction']:.2f} {info['message']}", flush=True)
            last[0] = time.perf_counter()

    tracemalloc.start()
    t0 = time.perf_counter()
    feats = correlation_eigenfeatures(activity, 16, method="sparse", callback=progress)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "n_neurons": n,
        "n_frames": n_frames,
        "sparse_s": seconds,
        "traced_peak_mib": peak,
        "input_mib": activity.nbytes / 2**20,
        "process_peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "rss_before_gib": rss_before,
        "features_finite": bool(np.isfinite(feats).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one LeNet seed, smaller sizes")
    parser.add_argument(
        "--model-epochs",
        type=int,
        default=0,
        help="also fit the mesoscale model for this many epochs and report its assignment",
    )
    parser.add_argument(
        "--big", type=int, default=0, help="only time sparse eigenfeatures at this many neurons"
    )
    args = parser.parse_args()
    if args.big:
        row = big_sparse(args.big, 200)
        print(row)
        RESULTS.mkdir(parents=True, exist_ok=True)
        with atomic_path(RESULTS / "localisation_big.json") as tmp:
            tmp.write_text(json.dumps(row, indent=2))
        return
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    result = {
        "lenet": lenet([0] if args.quick else [0, 1, 2]),
        "toy_brain": toy_brain(args.quick, args.model_epochs),
        "eigen_scaling": eigen_scaling(args.quick),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    result["total_s"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("localisation_quick.json" if args.quick else "localisation.json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=float))
    print("\nPer-layer RMS graph-distance error, seed 0 (checkerboard split):\n")
    print(markdown_table(pd.DataFrame(result["lenet"]["table_seed0"])))
    print("\nMean over layers, by network seed:\n")
    print("| seed | " + " | ".join(SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    for run in result["lenet"]["runs"]:
        print(f"| {run['seed']} | " + " | ".join(f"{run[k]:.2f}" for k in SETS) + " |")
    s = result["lenet"]["summary"]
    print("| mean ± sd | " + " | ".join(f"{s[k]['mean']:.2f} ± {s[k]['sd']:.2f}" for k in SETS))
    print("\norderings:", result["lenet"]["orderings"])
    print("toy brain:", json.dumps(result["toy_brain"]))
    print(f"wrote {path} in {result['total_s']:.0f} s")


if __name__ == "__main__":
    main()
