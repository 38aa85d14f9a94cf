"""Neuron and synapse tables as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from napari_mesoscale.io.atomic import atomic_path

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(
    table: pd.DataFrame | dict | str | os.PathLike,
    what: str = "table",
    *,
    required: Iterable[str] = (),
) -> pd.DataFrame:
    """A table as a DataFrame: a DataFrame or dict as is, a path read as CSV, TSV or Parquet.

    Parameters
    ----------
    table : DataFrame, dict or path
        ``.csv``, ``.csv.gz``, ``.tsv``, ``.tsv.gz``, ``.txt`` (tab-separated) or ``.parquet``.
    what : str
        What the table is, for messages (``"neurons"``, ``"synapses"``…).
    required : iterable of str
        Columns that must be present.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        For an unknown format, an object that is not a table, or missing columns (the message
        lists them).
    """
    if isinstance(table, pd.DataFrame):
        frame, name = table, what
    elif isinstance(table, dict):
        frame, name = pd.DataFrame(table), what
    elif isinstance(table, str | os.PathLike):
        frame, name = _read_table_file(Path(table), what), Path(table).name
    else:
        raise ValueError(
            f"{what} must be a pandas DataFrame or a path to a CSV/Parquet file; "
            f"got {type(table).__name__}."
        )
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(frame.columns)}.")
    return frame


def _read_table_file(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{what} table not found: {path}")
    suffix = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
    suffix = suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        return pd.read_csv(path)
    if suffix in (".tsv", ".tsv.gz", ".txt"):
        return pd.read_csv(path, sep="\t")
    raise ValueError(
        f"{what} table {path.name!r}: unknown table format {suffix!r}; "
        "use a .csv, .tsv or .parquet file."
    )


def read_npy(path: str | os.PathLike, what: str = "array", *, mmap: bool = False) -> np.ndarray:
    """One array from a ``.npy`` file, with a clear error for a file that is not one.

    Parameters
    ----------
    path : path-like
        A file written by ``numpy.save``.
    what : str
        What the array is, for messages (``"activity"``, ``"predictions"``…).
    mmap : bool
        Memory-map the file (read-only) instead of loading it.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the file is empty, truncated, holds pickled Python objects, is a ``.npz``
        archive or is no NumPy file at all; the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    fix = "choose a file written by numpy.save(path, array) with numbers in it."
    if path.stat().st_size == 0:
        raise ValueError(f"{what} file {path} is empty (0 bytes); {fix}")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{what} file {path} {_npy_problem(error)}; {fix}") from None
    if not isinstance(array, np.ndarray):  # np.load opens a .npz archive whatever its name
        array.close()
        raise ValueError(f"{what} file {path} is a .npz archive, not a single .npy array; {fix}")
    return array


def _npy_problem(error: BaseException) -> str:
    """What is wrong with a file ``np.load`` refused, in the user's words."""
    text = str(error)
    if isinstance(error, EOFError) or any(
        mark in text for mark in ("EOF", "Failed to read all data", "mmap length")
    ):
        return "is truncated (it ends before its data does)"
    if "pickled" in text:
        return "is not a NumPy array file (or holds pickled Python data, which is never loaded)"
    if "Object arrays" in text or "Python objects" in text:
        return "holds Python objects, not numbers"
    return f"is not a readable .npy array ({text})"


def read_matrix(path: str | os.PathLike, what: str = "activity") -> np.ndarray:
    """A (T, N) matrix from .npy, .csv or .parquet (columns = neurons; a ``time``, ``frame``
    or ``t`` column is dropped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.asarray(read_npy(path, what), dtype=float)
    if suffix in (".csv", ".parquet", ".pq"):
        table = _read_table_file(path, what)
        table = table.drop(columns=[c for c in ("time", "frame", "t") if c in table.columns])
        return table.to_numpy(dtype=float)
    raise ValueError(f"{what} {path.name}: unknown file type; use .npy, .csv or .parquet.")


def read_positions(path: str | os.PathLike) -> np.ndarray:
    """(N, 3) positions in µm (z, y, x) from .npy or a table with columns z, y, x.

    Tables written by older versions of ``napari-mesoscale segment`` name the columns
    ``z_um, y_um, x_um``; they are read too.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.asarray(read_npy(path, "positions"), dtype=float)
    table = read_table(path, "positions")
    if not {"z", "y", "x"} <= set(table.columns) and {"z_um", "y_um", "x_um"} <= set(table.columns):
        table = table.rename(columns={"z_um": "z", "y_um": "y", "x_um": "x"})
    table = read_table(table, "positions", required=("z", "y", "x"))
    return table[["z", "y", "x"]].to_numpy(dtype=float)


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
