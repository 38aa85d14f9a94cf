"""``napari-mesoscale connect``: build a connectome from tables, with features, grid and TRGs.

Example::

    napari-mesoscale connect --neurons neurons.csv --synapses synapses.csv --out connectome/ \\
        --grid-diameter 50 --activity activity.npy --bin-size 10 --delay 3

writes ``neurons.parquet``, ``synapses.parquet``, ``connectome.json``, ``adjacency.npz``,
``node_features.csv`` and, when asked, ``grid.npz`` and ``transmission.npz`` +
``transmission_summary.csv`` into the output folder (each file written atomically).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.io import atomic_path, read_npy, read_table, write_table
from napari_mesoscale.io.outputs import check_output, output_folder


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``napari-mesoscale connect``.

    The options of the build itself (``--value``, ``--hops``, ``--grid-diameter``, …) come
    from :class:`~napari_mesoscale.connectome.params.ConnectomeParams`.
    """
    parser.add_argument(
        "--neurons", required=True, help="neuron table: id, z, y, x (µm) [CSV/Parquet]"
    )
    parser.add_argument("--synapses", help="synapse table: pre, post, z, y, x (µm) [CSV/Parquet]")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--activity", type=Path, help="(T, N) activity: .npy, .csv or .parquet")
    ConnectomeParams.add_arguments(parser)


def read_activity(path: Path) -> np.ndarray:
    """A (T, N) activity matrix from .npy, .csv or .parquet."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"activity file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path, "activity", mmap=True)
    if suffix in (".csv", ".parquet", ".pq"):
        return read_table(path, "activity").to_numpy(dtype=np.float32)
    raise ValueError(f"activity {path.name}: unknown file type; use .npy, .csv or .parquet.")


def _save_npz(path: Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def run(args: argparse.Namespace) -> int:
    """Execute ``napari-mesoscale connect``; returns the exit status."""
    from napari_mesoscale.connectome import build_connectome

    options = ConnectomeParams.from_namespace(args).validate()
    inputs = (args.neurons, args.synapses, args.activity)
    overwrite = bool(getattr(args, "overwrite", False))
    check_output(args.out, inputs, overwrite=overwrite, option="--out")
    activity = read_activity(args.activity) if args.activity is not None else None
    build = build_connectome(args.neurons, args.synapses, activity=activity, params=options)
    with output_folder(args.out, inputs, overwrite=overwrite, option="--out") as staging:
        summary = _write_outputs(build, staging)
    print(json.dumps({"output": str(args.out), **summary}))
    return 0


def _write_outputs(build: Any, folder: Path) -> dict[str, Any]:
    """Every output file into ``folder`` (a staging folder swapped in afterwards)."""
    connectome = build.connectome
    out = connectome.to_tables(folder)
    with atomic_path(out / "adjacency.npz") as tmp:
        with open(tmp, "wb") as handle:
            sp.save_npz(handle, connectome.adjacency.tocsr())
    write_table(build.features, out / "node_features.csv")
    summary: dict[str, Any] = {
        "neurons": connectome.n_neurons,
        "synapses": connectome.n_synapses,
        "edges": connectome.n_edges,
    }
    if build.grid is not None:
        grid = build.grid
        _save_npz(
            out / "grid.npz",
            centers=grid.centers,
            candidates=grid.candidates,
            diameter=grid.diameter,
            stride=grid.stride,
        )
        summary["fields"] = grid.n_fields
    if build.transmission is not None:
        result = build.transmission
        _save_npz(
            out / "transmission.npz",
            pre=result.pre,
            post=result.post,
            offsets=result.offsets,
            edge_ids=result.edge_ids,
            counts=result.counts,
            opportunities=result.opportunities,
            event_counts=result.event_counts,
            bin_size=result.bin_size,
            delay=result.delay,
            n_frames=result.n_frames,
            threshold=result.threshold,
            zscore=result.zscore,
            n_neurons=result.n_neurons,
        )
        write_table(result.summary(), out / "transmission_summary.csv")
        summary["bins"] = result.n_bins
        summary["transmitting_edges_total"] = int(result.edge_ids.size)
    return summary
