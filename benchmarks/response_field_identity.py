"""The package's response field gives the benchmark row's figures: one outer fold, one seed.

The row ``learned receptive field, winsorised 0.99`` of ``signal_propagation.py`` now trains
:class:`napari_mesoscale.model.response_field.ResponseField`. This script reruns one outer
fold with one seed (the fold's first seed, as in the outer pass) and compares its Pearson r
with the committed outer pass (``signal_propagation_seventh_pass_both_strains.json``); with
``--save-prediction`` it also keeps the prediction, to compare two checkouts bit for bit.
``--package-default`` instead scores what ``celegans.predict_response`` fits — the package's
``fit_response_field`` with its defaults, no connectome-linear component, on the DataFrames of
``celegans.response_matrix`` — on the same outer folds (one fit per fold; chooses nothing).
Needs the ``worm`` data packages.

    OMP_NUM_THREADS=1 python benchmarks/response_field_identity.py --strain wt --fold 0
    OMP_NUM_THREADS=1 python benchmarks/response_field_identity.py --strain wt --package-default
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import signal_propagation as bench
from _results import write_json
from napari_mesoscale.datasets import celegans

RESULTS = Path(__file__).parent / "results"
COMMITTED = RESULTS / "signal_propagation_seventh_pass_both_strains.json"
ROW = "learned receptive field, winsorised 0.99"


def one_fold(strain: str, fold: int) -> tuple[float, np.ndarray]:
    """r and prediction of the row on outer fold ``fold`` (seed ``fold``), as ``run_strain``."""
    neurons = celegans.neurons()
    names = neurons["id"].tolist()
    positions = neurons[["z", "y", "x"]].to_numpy()
    A = bench.anatomy_adjacency(names, "white_1986")
    R = bench.response_matrix(names, strain)
    stimulated = np.flatnonzero(np.isfinite(R).sum(axis=0) >= 5)
    folds = np.array_split(np.random.default_rng(0).permutation(stimulated), 5)
    test = np.sort(folds[fold])
    train = np.setdiff1d(stimulated, test)
    setting = SimpleNamespace(protocol=bench.SELECTED_PROTOCOL, seeds=1)
    args = (setting, names, positions, A, R, strain, train, test, {"fold": fold})
    predictions, _ = bench.predict_fold(ROW, *args)
    return bench.pearson(predictions[0], R[:, test]), predictions[0]


def package_default(strain: str) -> dict:
    """r per outer fold of the package's default fit (no connectome-linear component)."""
    from napari_mesoscale.model import fit_response_field

    responses = celegans.response_matrix(strain)
    R = responses.to_numpy()
    stimulated = np.flatnonzero(np.isfinite(R).sum(axis=0) >= 5)
    folds = np.array_split(np.random.default_rng(0).permutation(stimulated), 5)
    rs, cpu = [], []
    for held_out in folds:
        names = responses.columns[np.sort(held_out)].tolist()
        start = time.process_time()
        fit = fit_response_field(responses, celegans.neurons(), exclude=names)
        rs.append(bench.pearson(fit.predict(names).to_numpy(), responses[names].to_numpy()))
        cpu.append(round(time.process_time() - start, 1))
    committed = json.loads(COMMITTED.read_text())["strains"][strain]["models"]
    row = committed[ROW]["pearson_r_per_fold"]
    linear = committed["connectome linear"]["pearson_r_per_fold"]
    rng = np.random.default_rng(0)
    return {
        "strain": strain,
        "pearson_r_per_fold": rs,
        "pearson_r_mean": float(np.mean(rs)),
        "pearson_r_ci95_bootstrap_over_folds": bench.bootstrap(rs, rng),
        "row_pearson_r_per_fold_3_seeds": row,
        "minus_row_per_fold": [a - b for a, b in zip(rs, row, strict=True)],
        "over_connectome_linear_per_fold": [a - b for a, b in zip(rs, linear, strict=True)],
        "fit_cpu_seconds_per_fold": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strain", default="wt", choices=celegans.STRAINS)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "response_field_identity.json")
    parser.add_argument("--save-prediction", type=Path, default=None)
    parser.add_argument("--package-default", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"checks": []}
    if args.package_default:
        block = {
            **package_default(args.strain),
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "load_average_at_end": os.getloadavg(),
        }
        previous.setdefault("package_default_no_linear", {})[args.strain] = block
        write_json(args.out, previous)
        print(json.dumps(block))
        return
    r, prediction = one_fold(args.strain, args.fold)
    if args.save_prediction is not None:
        np.save(args.save_prediction, prediction)
    committed = json.loads(COMMITTED.read_text())["strains"][args.strain]["models"][ROW]
    reference = committed["pearson_r_per_fold_per_seed"][args.fold][0]
    check = {
        "strain": args.strain,
        "fold": args.fold,
        "seed": args.fold,
        "pearson_r": r,
        "committed_pearson_r": reference,
        "difference": r - reference,
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average_at_end": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    checks = [c for c in previous["checks"] if (c["strain"], c["fold"]) != (args.strain, args.fold)]
    previous.update(benchmark="response_field_identity", row=ROW, committed=COMMITTED.name)
    previous["checks"] = [*checks, check]
    write_json(args.out, previous)
    print(json.dumps(check))


if __name__ == "__main__":
    main()
