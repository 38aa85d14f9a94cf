"""Design check on inner folds only: the models of ``signal_propagation.py`` scored on inner
folds of one outer fold's training neurons (the outer fold's held-out neurons are never read).

    OMP_NUM_THREADS=1 python benchmarks/signal_propagation_inner.py --inner-folds 0 1 \\
        --models "connectome linear" "receptive-field readout" "mesoscale (readout drive)"
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import signal_propagation as sprop
from _results import write_json
from napari_mesoscale.datasets import celegans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strain", default="wt")
    parser.add_argument("--outer-fold", type=int, default=0)
    parser.add_argument("--inner-folds", type=int, nargs="+", default=[0])
    parser.add_argument("--split-seed", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder keeping each inner fold's connectome-linear fits (outer and inner splits) "
        "between runs, so that variants of the cheap models are compared on the same fits",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    neurons = celegans.neurons()
    names = neurons["id"].tolist()
    positions = neurons[["z", "y", "x"]].to_numpy()
    A = sprop.anatomy_adjacency(names, "white_1986")
    R = sprop.response_matrix(names, args.strain)
    stimulated = np.flatnonzero(np.isfinite(R).sum(axis=0) >= 5)
    outer = np.array_split(np.random.default_rng(0).permutation(stimulated), 5)
    outer_train = np.setdiff1d(stimulated, outer[args.outer_fold])  # held-out never read
    inner = np.array_split(np.random.default_rng(args.split_seed).permutation(outer_train), 5)
    setting = SimpleNamespace(
        protocol=sprop.SELECTED_PROTOCOL, seeds=args.seeds, epochs=args.epochs, device="cpu"
    )
    results = {"strain": args.strain, "outer_fold": args.outer_fold, "rows": []}
    for m in args.inner_folds:
        test = np.sort(inner[m])
        train = np.setdiff1d(outer_train, test)
        cache = {"fold": 100 + m}
        stored = None if args.cache is None else args.cache / f"{args.strain}_{m}.pickle"
        if stored is not None and stored.exists():
            cache |= pickle.loads(stored.read_bytes())
        for model in args.models:
            start, cpu = time.perf_counter(), time.process_time()
            predictions, info = sprop.predict_fold(
                model, setting, names, positions, A, R, args.strain, train, test, cache
            )
            rs = [sprop.pearson(p, R[:, test]) for p in predictions]
            ensemble = sprop.pearson(np.mean(predictions, axis=0), R[:, test])
            row = {
                "inner_fold": m,
                "model": model,
                "r_per_seed": rs,
                "r_seed_ensemble": ensemble,
                "seconds": round(time.perf_counter() - start, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1),
                "info": info,
            }
            print(
                m,
                model,
                [round(r, 3) for r in rs],
                round(ensemble, 3),
                row["seconds"],
                row["cpu_seconds"],
                flush=True,
            )
            results["rows"].append(row)
            results["load_average"] = os.getloadavg()
            write_json(args.out, results)
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            kept = {k: cache[k] for k in ("linear", "inner_linear") if k in cache}
            stored.write_bytes(pickle.dumps(kept))


if __name__ == "__main__":
    main()
