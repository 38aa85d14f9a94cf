"""Tables the plugin writes without ``z, y, x`` columns, placed where they belong in napari.

* A domain table (``domains.csv`` of ``napari-mesoscale fit``: ``domain`` and its centre
  ``center_z, center_y, center_x`` in µm) opens as one point per domain at its centre, sized by
  its number of neurons and coloured by motif.
* A per-neuron table (``per_neuron.csv`` and ``predictivity.csv`` of ``evaluate``,
  ``node_features.csv`` of ``connect``, any table with a ``neuron`` or ``id`` column) opens as
  Points at the neurons of a neurons table in the same folder (``neurons.csv``,
  ``neurons.parquet`` …, with ``id, z, y, x``): matched by ``id``, else by ``neuron`` (a row of
  the neurons table), else row by row when both have as many rows.
* Any other table the plugin writes (``history.csv``, ``filters.csv``, scores with no neurons
  table beside them) has nothing to draw: the reader says so in a napari notification, with
  what to open or run instead, and adds no layer (instead of napari's "no reader" error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from napari_mesoscale.napari._contract import metadata_dict
from napari_mesoscale.napari._layers import LayerDataTuple, points_layer

DOMAIN_CENTRE = ["center_z", "center_y", "center_x"]
#: the plugin's own output tables that hold no positions (file stem → what it holds)
OUTPUT_TABLES = {
    "domains": "one row per functional domain",
    "filters": "one row per basis filter of the fit",
    "history": "the fit's losses, one row per epoch",
    "per_neuron": "forecast scores, one row per neuron",
    "predictivity": "noise-corrected predictivity, one row per neuron",
    "node_features": "connectome node features, one row per neuron",
    "transmission_summary": "transmission-response graphs, one row per time bin",
}
NEURON_TABLE_NAMES = ("neurons.csv", "neurons.tsv", "neurons.parquet", "neurons.pq")
#: what the reader hands napari for "read, nothing to show" (napari's empty-file sentinel)
NOTHING_TO_SHOW: list[LayerDataTuple] = [(None,)]  # type: ignore[list-item]


def is_placeable_kind(path: Path, columns: set[str]) -> bool:
    """Whether the table is one of the plugin's outputs or names neurons (``neuron``/``id``)."""
    stem = path.name.split(".")[0]
    return stem in OUTPUT_TABLES or "neuron" in columns or "id" in columns


def sibling_neurons(path: Path) -> Path | None:
    """The neurons table (with ``id, z, y, x``) in the same folder as ``path``, if any."""
    from napari_mesoscale.napari._connectome_reader import table_kind

    for name in NEURON_TABLE_NAMES:
        candidate = path.parent / name
        if candidate != path and table_kind(candidate) == "neurons":
            return candidate
    return None


def neuron_rows(table: pd.DataFrame, neurons: pd.DataFrame) -> np.ndarray | None:
    """Row of ``neurons`` for every row of ``table``, or None when they cannot be matched."""
    if "id" in table.columns:
        index = pd.Index(neurons["id"])
        rows = index.get_indexer(table["id"])
        return rows if (rows >= 0).all() else None
    if "neuron" in table.columns:
        rows = pd.to_numeric(table["neuron"], errors="coerce").to_numpy()
        if np.isfinite(rows).all() and rows.size and rows.min() >= 0 and rows.max() < len(neurons):
            return rows.astype(int)
        return None
    return np.arange(len(table)) if len(table) == len(neurons) else None


def domain_points(table: pd.DataFrame, name: str) -> LayerDataTuple:
    """One point per domain at its centre, size growing with its number of neurons."""
    sizes = table["size"].to_numpy(dtype=float) if "size" in table else np.ones(len(table))
    return points_layer(
        table[DOMAIN_CENTRE].to_numpy(dtype=float),
        name,
        features=table.drop(columns=DOMAIN_CENTRE),
        size=4.0 + 2.0 * np.sqrt(np.maximum(sizes, 0.0)),
        color_by="motif" if "motif" in table else None,
        opacity=0.7,
        metadata=metadata_dict(units="µm"),
    )


def placed_points(path: Path, table: pd.DataFrame) -> LayerDataTuple | None:
    """A positionless per-neuron table at its neurons' positions, or None if it has none."""
    neurons_path = sibling_neurons(path)
    if neurons_path is None:
        return None
    from napari_mesoscale.io.tables import read_table

    neurons = read_table(neurons_path, "neurons")
    rows = neuron_rows(table, neurons)
    if rows is None:
        return None
    features = table.reset_index(drop=True)
    if "id" not in features and "id" in neurons:
        features.insert(0, "id", neurons["id"].to_numpy()[rows])
    return points_layer(
        neurons[["z", "y", "x"]].to_numpy(dtype=float)[rows],
        path.name.split(".")[0],
        features=features,
        size=6.0,
        metadata=metadata_dict(units="µm", placed_with=neurons_path.name),
    )


def nothing_to_show_message(path: Path, table: pd.DataFrame) -> str:
    """What the table holds, why napari cannot draw it, and what to do instead."""
    stem = path.name.split(".")[0]
    columns = ", ".join(map(str, table.columns[:6]))
    holds = OUTPUT_TABLES.get(stem, f"{len(table)} rows of {columns}")
    if "neuron" in table.columns or "id" in table.columns or stem == "node_features":
        where = (
            "Put it in the folder of a neurons table (neurons.csv or neurons.parquet with "
            "id, z, y, x in µm) to see it on the cells"
        )
    else:
        where = "Open neurons.csv or the results bundle to see the cells"
    return (
        f"{path.name} holds {holds}, with no positions: napari has nothing to draw. {where}, or "
        f"look at it in the console: pandas.read_csv({str(path)!r})."
    )


def read_placed_table(path: str | Path) -> list[LayerDataTuple]:
    """Layer data for a positionless table (see the module doc), or nothing plus a message."""
    from napari_mesoscale.io.tables import read_table

    path = Path(path)
    table = read_table(path, "table")
    if set(DOMAIN_CENTRE) <= set(table.columns):
        return [domain_points(table, path.name.split(".")[0])]
    placed = placed_points(path, table)
    if placed is not None:
        return [placed]
    from napari.utils.notifications import show_info

    show_info(nothing_to_show_message(path, table))
    return NOTHING_TO_SHOW
