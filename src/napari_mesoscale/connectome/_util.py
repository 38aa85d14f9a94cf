"""Small shared helpers of the connectome package: progress callbacks, table reading, row lists."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ProgressCallback = Callable[[dict[str, Any]], Any] | None


class ConnectomeCancelled(RuntimeError):
    """Raised by a core loop when its ``callback`` returned ``False``."""


def report(callback: ProgressCallback, fraction: float, message: str, **extra: Any) -> None:
    """Call ``callback`` with a progress dictionary; stop the work if it returns ``False``."""
    if callback is None:
        return
    info = {"fraction": float(min(max(fraction, 0.0), 1.0)), "message": message, **extra}
    if callback(info) is False:
        raise ConnectomeCancelled(f"cancelled by the callback during: {message}")


def rows_text(rows: np.ndarray, limit: int = 10) -> str:
    """``"3 rows: [1, 5, 9]"`` style text naming (at most ``limit``) offending rows."""
    rows = np.asarray(rows).ravel()
    shown = rows[:limit].tolist()
    more = f" (and {rows.size - limit} more)" if rows.size > limit else ""
    return f"{rows.size} row(s): {shown}{more}"


def read_table(table: Any, what: str) -> pd.DataFrame:
    """Return ``table`` as a DataFrame; paths to CSV/TSV or Parquet files are read.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If the file type is unknown or the object is not a table.
    """
    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, str | os.PathLike):
        path = Path(table)
        if not path.exists():
            raise FileNotFoundError(f"{what} table not found: {path}")
        suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix
        suffix = suffix.lower()
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path)
        if suffix in (".tsv", ".tsv.gz", ".txt"):
            return pd.read_csv(path, sep="\t")
        raise ValueError(
            f"{what} table {path.name!r}: unknown file type {suffix!r}; "
            "use a .csv, .tsv or .parquet file."
        )
    if isinstance(table, dict):
        return pd.DataFrame(table)
    raise ValueError(
        f"{what} must be a pandas DataFrame or a path to a CSV/Parquet file; "
        f"got {type(table).__name__}."
    )
