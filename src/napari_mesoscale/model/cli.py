"""``napari-mesoscale fit``: fit the mesoscale model from files and write the results.

Writes into ``--output``: ``fit.pt`` (+ ``fit.pt.json``: parameters, seed, package versions),
``neurons.csv`` (neuron, domain, motif, field, confidence, id, z, y, x: it opens in napari as
Points), ``domains.csv``, ``filters.csv``,
``history.csv`` and ``predicted.npy`` (one-step predictions, (T, N), first row NaN).
The results are written into a temporary sibling folder and swapped with ``--output`` as a
set (a crash leaves the old results or the new ones, never a mix); an existing non-empty
output needs ``--overwrite`` (or ``--resume``), and an output holding an input is refused.
Training checkpoints go to ``--output/checkpoints`` while the fit runs (one file, replaced
atomically every epoch) and are kept in the new folder.
Every :class:`~napari_mesoscale.model.ModelConfig` field is an option (``--n-filters``,
``--epochs``, ``--edge-init``, ``--freeze-edges`` / ``--no-freeze-edges``, …); unset options
take its defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.io.outputs import check_output, output_folder
from napari_mesoscale.io.tables import read_matrix, read_positions
from napari_mesoscale.model.config import ModelConfig

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``napari-mesoscale fit``."""
    parser.add_argument("activity", type=Path, help="activity (T, N): .npy, .csv or .parquet")
    parser.add_argument(
        "--positions",
        type=Path,
        help="positions (N, 3) µm: .npy or table with z, y, x (default: the --neurons table)",
    )
    parser.add_argument("--neurons", type=Path, help="neuron table (id, z, y, x) for a connectome")
    parser.add_argument("--synapses", type=Path, help="synapse table (pre, post, z, y, x)")
    parser.add_argument("--stimulus", type=Path, help="stimulus (T, S): .npy, .csv or .parquet")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    ModelConfig.add_arguments(parser)  # --n-filters, --epochs, --edge-init, --freeze-edges, ...
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="resume from output/checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


class _Progress:
    """Plain-text progress bar on stderr, one line rewritten per report of the whole fit."""

    def __init__(self, stream: Any = None) -> None:
        # sys.stderr is looked up at run time: a stream bound at import may be closed since
        self.stream, self.t0 = stream or sys.stderr, time.perf_counter()

    def __call__(self, info: dict) -> bool:
        frac = float(info.get("fraction", 0.0))
        bar = "#" * int(30 * frac)
        text = info.get("message", "")
        if "losses" in info:
            val = info.get("val_loss")
            val_txt = "" if val is None else f" val {val:.4g}"
            loss = info["losses"].get("prediction", float("nan"))
            text = f"{text} loss {loss:.4g}{val_txt} tau {info['tau']:.3f}"
        elapsed = time.perf_counter() - self.t0
        end = "\n" if frac >= 1.0 else ""
        self.stream.write(f"\rfit [{bar:<30}] {text} {elapsed:.0f}s\033[K{end}")
        self.stream.flush()
        return True


def run(args: argparse.Namespace) -> int:
    """Execute ``napari-mesoscale fit``."""
    from napari_mesoscale.model import fit_mesoscale

    activity = read_matrix(args.activity, "activity")
    connectome = None
    if args.synapses is not None and args.neurons is None:
        raise ValueError("--synapses needs --neurons (the neuron table with ids and positions)")
    if args.neurons is not None:
        from napari_mesoscale.connectome import Connectome

        connectome = Connectome.from_tables(args.neurons, args.synapses)
    if args.positions is not None:
        positions = read_positions(args.positions)
    elif args.neurons is not None:
        positions = read_positions(args.neurons)
    else:
        raise ValueError("give --positions (or a --neurons table with z, y, x)")
    stimulus = None if args.stimulus is None else read_matrix(args.stimulus, "stimulus")
    inputs = (args.activity, args.positions, args.neurons, args.synapses, args.stimulus)
    overwrite = bool(getattr(args, "overwrite", False) or args.resume)
    out = check_output(args.output, inputs, overwrite=overwrite)
    fit = fit_mesoscale(
        activity,
        positions,
        connectome=connectome,
        stimulus=stimulus,
        config=ModelConfig.from_namespace(args),
        device=args.device,
        seed=args.seed,
        callback=None if args.quiet else _Progress(),
        checkpoint_dir=out / "checkpoints",
        resume=args.resume,
    )
    pred = fit.predict(activity, stimulus=stimulus)
    ids = _neuron_ids(args.neurons if args.positions is None else args.positions, len(positions))
    with output_folder(out, inputs, overwrite=True, carry=("checkpoints",)) as staging:
        _write_results(fit, pred, staging, positions=positions, ids=ids)
    if not args.quiet:
        print(
            f"{fit!r}\n{fit.domains.shape[0]} domains, test one-step MSE "
            f"{fit.scores['test_mse']:.4g} (normalised units); results in {out}"
        )
    return 0


def _neuron_ids(table: Path | None, n: int) -> np.ndarray:
    """The neurons' ids: the ``id`` column of the positions / neurons table, else 0 … N-1."""
    if table is not None and table.suffix.lower() != ".npy":
        from napari_mesoscale.io.tables import read_table

        ids = read_table(table, "positions")
        if "id" in ids.columns and len(ids) == n:
            return ids["id"].to_numpy()
    return np.arange(n)


def _write_results(
    fit: Any,
    pred: np.ndarray,
    folder: Path,
    *,
    positions: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> None:
    """Every result file of a fit, into ``folder`` (a staging folder swapped in afterwards).

    ``neurons.csv`` holds each neuron's ``id`` and ``z, y, x`` (µm) beside its labels, so that
    napari opens it as Points coloured by domain or motif.
    """
    fit.save(folder / "fit.pt")
    table = pd.DataFrame(
        {
            "neuron": np.arange(fit.n_neurons),
            "domain": fit.domain_labels,
            "motif": fit.motif_labels,
            "field": fit.field_labels,
            "confidence": fit.confidence,
        }
    )
    if positions is not None and len(positions) == fit.n_neurons:
        table["id"] = np.arange(fit.n_neurons) if ids is None else ids
        table[["z", "y", "x"]] = np.asarray(positions, dtype=float)
    _write_csv(table, folder / "neurons.csv")
    _write_csv(fit.domains, folder / "domains.csv")
    _write_csv(fit.filters, folder / "filters.csv")
    _write_csv(fit.history, folder / "history.csv")
    np.save(folder / "predicted.npy", pred, allow_pickle=False)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    table.to_csv(path, index=False)
