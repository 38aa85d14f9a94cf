"""The package's response field gives the benchmark row's figures: one outer fold, one seed.

The row ``learned receptive field, winsorised 0.99`` of ``signal_propagation.py`` now trains
:class:`napari_mesoscale.model.response_field.ResponseField`. This script reruns one outer
fold with one seed (the fold's first seed, as in the outer pass) and compares its Pearson r
with the committed outer pass (``signal_propagation_seventh_pass_both_strains.json``); with
``--save-prediction`` it also keeps the prediction, to compare two checkouts bit for bit.
Needs the ``worm`` data packages.

    OMP_NUM_THREADS=1 python benchmarks/response_field_identity.py --strain wt --fold 0
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strain", default="wt", choices=celegans.STRAINS)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "response_field_identity.json")
    parser.add_argument("--save-prediction", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    r, prediction = one_fold(args.strain, args.fold)
    if args.save_prediction is not None:
        np.save(args.save_prediction, prediction)
    committed = json.loads(COMMITTED.read_text())["strains"][args.strain]["models"][ROW]
    reference = committed["pearson_r_per_fold_per_seed"][args.fold][0]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"checks": []}
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
    write_json(
        args.out,
        {
            "benchmark": "response_field_identity",
            "row": ROW,
            "committed": COMMITTED.name,
            "checks": [*checks, check],
        },
    )
    print(json.dumps(check))


if __name__ == "__main__":
    main()
