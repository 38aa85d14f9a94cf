"""npe2 reader for neuron and synapse tables (CSV, TSV or Parquet, positions in µm).

A table with ``id, z, y, x`` columns opens as a Points layer of neurons, one with
``pre, post, z, y, x`` as a Points layer of synapses; every other column becomes a feature.
The plugin's tables without positions (domains, per-neuron scores and features, training
history …) are placed by :mod:`._placed_tables` (or, with nothing to draw, explained in a
notification). Other CSV files are read as napari's own reader reads them (its Points / Shapes
CSV), so that preferring this reader for ``*.csv`` (``_reader.prefer_mesoscale_readers``) takes
nothing away; other tables are left to other readers (the reader returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from napari_mesoscale.napari._contract import metadata_dict
from napari_mesoscale.napari._layers import LayerDataTuple, points_layer
from napari_mesoscale.napari._placed_tables import (
    NOTHING_TO_SHOW,
    is_placeable_kind,
    read_placed_table,
)

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
NEURON_COLUMNS = {"id", "z", "y", "x"}
SYNAPSE_COLUMNS = {"pre", "post", "z", "y", "x"}


def _columns(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0, sep="\t" if suffix == ".tsv" else ",").columns)


def table_kind(path: str | Path, *, placed: bool = False) -> str | None:
    """ "neurons", "synapses" or None, from a table's column names (read cheaply).

    With ``placed``, the plugin's tables without positions (see :mod:`._placed_tables`) are
    "placed" instead of None.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES or not path.is_file():
        return None
    try:
        columns = set(_columns(path))
    except Exception:  # noqa: BLE001 - an unreadable file is not ours to open
        return None
    if SYNAPSE_COLUMNS <= columns:
        return "synapses"
    if NEURON_COLUMNS <= columns:
        return "neurons"
    if placed and is_placeable_kind(path, columns):
        return "placed"
    return None


def get_table_reader(path: str | list[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """Return a reader for neuron / synapse tables, or None for other files."""
    paths = path if isinstance(path, list) else [path]
    if not paths:
        return None
    if all(table_kind(p) is not None for p in paths):
        return read_tables
    if all(str(p).lower().endswith(".csv") and _napari_csv(p) is not None for p in paths):
        return read_napari_csv
    if all(table_kind(p, placed=True) is not None for p in paths):
        return read_any_tables
    return None


def _napari_csv(path: str | Path) -> Any:
    """Layer data of a CSV in napari's own format (points, shapes), or None."""
    try:
        from napari_builtins.io import csv_to_layer_data
    except ImportError:  # pragma: no cover - napari without its builtins
        return None
    try:
        return csv_to_layer_data(str(path), require_type=None)
    except Exception:  # noqa: BLE001 - not napari's format either
        return None


def read_any_tables(path: str | list[str]) -> list[LayerDataTuple]:
    """Neuron / synapse tables and the plugin's positionless tables (placed or explained)."""
    paths = path if isinstance(path, list) else [path]
    layers: list[LayerDataTuple] = []
    for item in paths:
        if table_kind(item) is not None:
            layers.extend(read_tables(item))
        else:
            layers.extend(layer for layer in read_placed_table(item) if layer[0] is not None)
    return layers or NOTHING_TO_SHOW


def read_napari_csv(path: str | list[str]) -> list[LayerDataTuple]:
    """CSV files in napari's own format, read as napari's builtin reader reads them."""
    paths = path if isinstance(path, list) else [path]
    return [_napari_csv(item) for item in paths]


def read_tables(path: str | list[str]) -> list[LayerDataTuple]:
    """Neuron tables as Points (size 6 µm), synapse tables as small Points; µm, scale 1."""
    from napari_mesoscale.io.tables import read_table

    paths = path if isinstance(path, list) else [path]
    layers = []
    for item in paths:
        kind = table_kind(item)
        table = read_table(Path(item), kind or "table")
        positions = table[["z", "y", "x"]].to_numpy(dtype=float)
        features = table.drop(columns=["z", "y", "x"])
        name = Path(item).name.split(".")[0]
        if kind == "neurons":
            color_by = next((c for c in ("motif", "type") if c in features.columns), None)
            layers.append(
                points_layer(
                    positions,
                    name,
                    features=features,
                    size=6.0,
                    color_by=color_by,
                    metadata=metadata_dict(units="µm"),
                )
            )
        else:
            layers.append(
                points_layer(
                    positions,
                    name,
                    features=features,
                    size=1.5,
                    face_color="white",
                    opacity=0.6,
                    metadata=metadata_dict(units="µm"),
                )
            )
    return layers
