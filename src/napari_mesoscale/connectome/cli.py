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


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``napari-mesoscale connect``."""
    parser.add_argument(
        "--neurons", required=True, help="neuron table: id, z, y, x (µm) [CSV/Parquet]"
    )
    parser.add_argument("--synapses", help="synapse table: pre, post, z, y, x (µm) [CSV/Parquet]")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--value",
        choices=("count", "weight"),
        default="count",
        help="adjacency entries: signed synapse counts (default) or summed weights",
    )
    parser.add_argument("--hops", type=int, default=2, help="neighbourhood size within k hops")
    parser.add_argument("--grid-diameter", type=float, help="receptive-field diameter (µm)")
    parser.add_argument("--grid-stride", type=float, help="lattice stride (µm, default d/2)")
    parser.add_argument("--activity", type=Path, help="(T, N) activity: .npy, .csv or .parquet")
    parser.add_argument("--bin-size", type=int, default=10, help="frames per TRG bin")
    parser.add_argument("--delay", type=int, default=3, help="response delay (frames)")
    parser.add_argument("--threshold", type=float, default=2.0, help="event z-score threshold")


def read_activity(path: Path) -> np.ndarray:
    """A (T, N) activity matrix from .npy, .csv or .parquet."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"activity file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix in (".csv", ".parquet", ".pq"):
        from napari_mesoscale.io.tables import read_table

        return read_table(path, "activity").to_numpy(dtype=np.float32)
    raise ValueError(f"activity {path.name}: unknown file type; use .npy, .csv or .parquet.")


def _save_npz(path: Path, **arrays: Any) -> None:
    from napari_mesoscale.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def run(args: argparse.Namespace) -> int:
    """Execute ``napari-mesoscale connect``; returns the exit status."""
    from napari_mesoscale.connectome import (
        Connectome,
        node_features,
        receptive_field_grid,
        transmission_response_graphs,
    )
    from napari_mesoscale.io.atomic import atomic_path

    connectome = Connectome.from_tables(args.neurons, args.synapses, value=args.value)
    out = connectome.to_tables(args.out)
    with atomic_path(out / "adjacency.npz") as tmp:
        with open(tmp, "wb") as handle:
            sp.save_npz(handle, connectome.adjacency.tocsr())
    features = node_features(connectome, hops=args.hops)
    with atomic_path(out / "node_features.csv") as tmp:
        features.to_csv(tmp, index=False)
    summary: dict[str, Any] = {
        "neurons": connectome.n_neurons,
        "synapses": connectome.n_synapses,
        "edges": connectome.n_edges,
    }
    if args.grid_diameter is not None:
        grid = receptive_field_grid(
            connectome.positions, diameter=args.grid_diameter, stride=args.grid_stride
        )
        _save_npz(
            out / "grid.npz",
            centers=grid.centers,
            candidates=grid.candidates,
            diameter=grid.diameter,
            stride=grid.stride,
        )
        summary["fields"] = grid.n_fields
    if args.activity is not None:
        activity = read_activity(args.activity)
        result = transmission_response_graphs(
            connectome,
            activity,
            bin_size=args.bin_size,
            delay=args.delay,
            threshold=args.threshold,
        )
        _save_npz(
            out / "transmission.npz",
            pre=result.pre,
            post=result.post,
            offsets=result.offsets,
            edge_ids=result.edge_ids,
            counts=result.counts,
            opportunities=result.opportunities,
            bin_size=result.bin_size,
            delay=result.delay,
        )
        with atomic_path(out / "transmission_summary.csv") as tmp:
            result.summary().to_csv(tmp, index=False)
        summary["bins"] = result.n_bins
        summary["transmitting_edges_total"] = int(result.edge_ids.size)
    print(json.dumps({"output": str(out), **summary}))
    return 0
