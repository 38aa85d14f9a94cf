"""Neuron and synapse tables as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from napari_mesoscale.io.atomic import atomic_path

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | os.PathLike, *, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet table and check that it has the ``required`` columns.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        For an unknown format or missing columns (the message lists them).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such table: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        raise ValueError(
            f"Unknown table format: {path.name}. Use CSV (.csv) or Parquet (.parquet)."
        )
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path.name} lacks the column(s) {missing}; it has {list(table.columns)}."
        )
    return table


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as CSV or Parquet (chosen by the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"Unknown table format: {path.name}. Use .csv or .parquet.")
    with atomic_path(path) as temporary:
        if suffix == ".csv":
            table.to_csv(temporary, index=False, lineterminator="\n")
        else:
            table.to_parquet(temporary, index=False)
    return path
