"""``napari-mesoscale evaluate``: score a fit (or saved predictions) against a recording.

Besides the forecast errors per horizon it scores the one-step (or given) predictions per
neuron with :func:`~napari_mesoscale.evaluate.score_predictions`, whose options
(``--n-repeats``, ``--n-splits``, ``--estimator``, …) come from :class:`ScoringParams`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from napari_mesoscale.evaluate.params import ScoringParams
from napari_mesoscale.io import read_matrix, read_table, write_table
from napari_mesoscale.io.outputs import check_output, output_folder

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
    parser.add_argument(
        "-o", "--output", type=Path, help="write scores.json, per_neuron.csv, predictivity.csv"
    )
    ScoringParams.add_arguments(parser, exclude=("n_eigenvectors", "max_neighbors"))


def _predictions(args: argparse.Namespace, recorded: np.ndarray) -> tuple[Any, Any]:
    """The predictions ({horizon: (T, N)} from a fit, or one (T, N) file) and the fit."""
    if args.fit is None:
        return read_matrix(args.predicted, "predicted"), None
    from napari_mesoscale.model import MesoscaleFit

    fit = MesoscaleFit.load(args.fit)
    stim = None if args.stimulus is None else read_matrix(args.stimulus, "stimulus")
    predicted = {
        h: fit.predict(recorded, steps=h, stimulus=stim) for h in range(1, args.horizons + 1)
    }
    return predicted, fit


def _recovery(args: argparse.Namespace, fit: Any) -> dict[str, Any]:
    from napari_mesoscale.evaluate import recovery_scores

    if fit is None:
        raise ValueError("--truth needs --fit (the labels come from the fit)")
    truth = read_table(args.truth, "truth")
    for col in ("motif", "instance"):
        if col not in truth.columns:
            raise ValueError(f"truth table lacks column {col!r}")
    rec = recovery_scores(fit, truth["motif"].to_numpy(), truth["instance"].to_numpy())
    print(f"motif ARI {rec['motif_ari']:.3f}  domain ARI {rec['domain_ari']:.3f}")
    return rec


def run(args: argparse.Namespace) -> int:
    """Execute ``napari-mesoscale evaluate``."""
    from napari_mesoscale.evaluate import evaluate_forecast, score_predictions

    options = ScoringParams.from_namespace(args).validate()
    inputs = (args.recorded, args.fit, args.predicted, args.stimulus, args.truth)
    overwrite = bool(getattr(args, "overwrite", False))
    if args.output is not None:
        check_output(args.output, inputs, overwrite=overwrite)
    recorded = read_matrix(args.recorded, "recorded")
    predicted, fit = _predictions(args, recorded)
    frames = slice(args.start, args.stop)
    scores = evaluate_forecast(predicted, recorded, frames=frames)
    print(scores.summary.to_string(index=False))
    result: dict[str, Any] = {"forecast": scores.summary.to_dict(orient="records")}
    one_step = predicted[1] if isinstance(predicted, dict) else predicted
    per_neuron = score_predictions(one_step[frames], recorded[frames], params=options)
    reliable = per_neuron["reliable"].to_numpy(dtype=bool)
    median = float(np.nanmedian(per_neuron["predictivity"][reliable])) if reliable.any() else None
    print(f"median predictivity {median} over {int(reliable.sum())} neurons")
    result["predictivity"] = {"median": median, "n_reliable": int(reliable.sum())}
    result["scoring"] = options.to_dict()
    if args.truth is not None:
        result["recovery"] = _recovery(args, fit)
    if args.output is not None:
        with output_folder(args.output, inputs, overwrite=overwrite) as out:
            (out / "scores.json").write_text(json.dumps(result, indent=2, default=float))
            write_table(scores.per_neuron, out / "per_neuron.csv")
            write_table(per_neuron, out / "predictivity.csv")
    return 0 if np.isfinite(scores.summary["mse"]).all() else 1
