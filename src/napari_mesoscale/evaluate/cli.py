"""``napari-mesoscale evaluate``: score a fit (or saved predictions) against a recording."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``napari-mesoscale evaluate``."""
    parser.add_argument("recorded", type=Path, help="recorded activity (T, N): .npy/.csv/.parquet")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--fit", type=Path, help="a saved fit (fit.pt) to predict with")
    src.add_argument("--predicted", type=Path, help="predictions (T, N) aligned with recorded")
    parser.add_argument("--stimulus", type=Path, help="stimulus (T, S) if the fit used one")
    parser.add_argument("--horizons", type=int, default=1, help="score horizons 1..H (with --fit)")
    parser.add_argument("--start", type=int, default=None, help="first frame to score")
    parser.add_argument("--stop", type=int, default=None, help="frame after the last scored")
    parser.add_argument(
        "--truth", type=Path, help="table with per-neuron 'motif' and 'instance' for ARI scores"
    )
    parser.add_argument("-o", "--output", type=Path, help="write scores.json and per_neuron.csv")


def run(args: argparse.Namespace) -> int:
    """Execute ``napari-mesoscale evaluate``."""
    from napari_mesoscale.evaluate import evaluate_forecast, recovery_scores
    from napari_mesoscale.io.tables import read_matrix

    recorded = read_matrix(args.recorded, "recorded")
    fit = None
    if args.fit is not None:
        from napari_mesoscale.model import MesoscaleFit

        fit = MesoscaleFit.load(args.fit)
        stim = None if args.stimulus is None else read_matrix(args.stimulus, "stimulus")
        predicted = {
            h: fit.predict(recorded, steps=h, stimulus=stim) for h in range(1, args.horizons + 1)
        }
    else:
        predicted = read_matrix(args.predicted, "predicted")
    frames = slice(args.start, args.stop)
    scores = evaluate_forecast(predicted, recorded, frames=frames)
    print(scores.summary.to_string(index=False))
    result = {"forecast": scores.summary.to_dict(orient="records")}
    if args.truth is not None:
        if fit is None:
            raise ValueError("--truth needs --fit (the labels come from the fit)")
        from napari_mesoscale.io.tables import read_table

        truth = read_table(args.truth, "truth")
        for col in ("motif", "instance"):
            if col not in truth.columns:
                raise ValueError(f"truth table lacks column {col!r}")
        rec = recovery_scores(fit, truth["motif"].to_numpy(), truth["instance"].to_numpy())
        print(f"motif ARI {rec['motif_ari']:.3f}  domain ARI {rec['domain_ari']:.3f}")
        result["recovery"] = rec
    if args.output is not None:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".scores.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(result, indent=2, default=float))
        os.replace(tmp, out / "scores.json")
        tmp = out / f".per_neuron.{os.getpid()}.tmp"
        scores.per_neuron.to_csv(tmp, index=False)
        os.replace(tmp, out / "per_neuron.csv")
    return 0 if np.isfinite(scores.summary["mse"]).all() else 1
