"""npe2 reader for neuron and synapse tables (CSV, TSV or Parquet, positions in µm).

A table with ``id, z, y, x`` columns opens as a Points layer of neurons, one with
``pre, post, z, y, x`` as a Points layer of synapses; every other column becomes a feature.
The plugin's tables without positions (domains, per-neuron scores and features, training
history …) are placed by :mod:`._placed_tables` (or, with nothing to draw, explained in a
notification). Other CSV files are read as napari's own reader reads them (its Points / Shapes
CSV), so that preferring this reader for ``*.csv`` (``_reader.prefer_mesoscale_readers``) takes
nothing away; other tables are left to other readers (the reader returns None). A table file
that cannot be read (empty, binary, damaged, no header row) or names some of the neuron and
synapse columns but not all is refused with what is wrong with it (:func:`table_problem`),
instead of napari's bare "refused the file" or a pandas / pyarrow traceback.
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
from napari_mesoscale.napari._units import in_micrometres

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
NEURON_COLUMNS = {"id", "z", "y", "x"}
SYNAPSE_COLUMNS = {"pre", "post", "z", "y", "x"}
_NEEDED = "A neurons table has the columns id, z, y, x (µm), a synapses table pre, post, z, y, x."


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


def table_problem(path: str | Path) -> str | None:
    """What keeps a table file from opening as neurons or synapses, or None when it opens.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file.

    Returns
    -------
    str or None
        The reason, worded to follow "it" (e.g. "is empty (0 bytes)", "has no header row: …",
        "is not a readable Parquet file (…)"); None for a neurons or synapses table. A table
        whose header is right is read whole to find damaged rows or positions that are no
        numbers.
    """
    path = Path(path)
    problem = _file_problem(path) or _column_problem(_columns(path))
    if problem is None:
        try:
            _read_positions(path, table_kind(path) or "table")
        except _TableProblem as error:
            problem = str(error)
    return problem


class _TableProblem(ValueError):
    """What is wrong with a table file, worded to follow "it"."""


def _read_positions(path: Path, kind: str) -> tuple[pd.DataFrame, Any]:
    """The table and its (N, 3) z, y, x positions; :class:`_TableProblem` if they cannot be read."""
    from napari_mesoscale.io.tables import read_table

    try:
        table = read_table(path, kind)
    except UnicodeDecodeError as error:
        raise _TableProblem(f"is not UTF-8 text ({_first_line(error)})") from error
    except (ValueError, OSError) as error:  # pandas' and pyarrow's errors for damaged files
        raise _TableProblem(f"is damaged ({_first_line(error)})") from error
    try:
        positions = table[["z", "y", "x"]].to_numpy(dtype=float)
    except (ValueError, TypeError) as error:
        raise _TableProblem(
            f"has positions that are not numbers (z, y, x in µm: {_first_line(error)})"
        ) from error
    return table, positions


def _file_problem(path: Path) -> str | None:
    """Why the file's column names cannot be read, or None."""
    if not path.is_file():
        return "does not exist"
    if path.stat().st_size == 0:
        return "is empty (0 bytes)"
    try:
        if path.suffix.lower() not in (".parquet", ".pq"):
            problem = _text_problem(path)
            if problem is not None:
                return problem
        _columns(path)
    except pd.errors.EmptyDataError:
        return "holds no columns (only blank lines)"
    except Exception as error:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        if path.suffix.lower() in (".parquet", ".pq"):
            return f"is not a readable Parquet file (damaged, or not Parquet: {_first_line(error)})"
        return f"cannot be parsed as a table ({_first_line(error)})"
    return None


def _text_problem(path: Path) -> str | None:
    """Why a CSV / TSV file is not text, or None."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if b"\x00" in head:
        return "holds binary data, not comma- or tab-separated text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        cut = len(head) == 1 << 16 and error.start >= len(head) - 3  # a character cut short
        if not cut:
            return f"is not UTF-8 text (binary data, or another encoding: byte {error.start})"
    return None


def _column_problem(columns: list[str]) -> str | None:
    """What the column names lack for a neurons or synapses table, or None."""
    names = set(columns)
    if NEURON_COLUMNS <= names or SYNAPSE_COLUMNS <= names:
        return None
    listed = ", ".join(str(column) for column in columns[:8]) + (", …" if len(columns) > 8 else "")
    if columns and all(_is_number(column) for column in columns):
        return f"has no header row: its first line ({listed}) holds values, not column names"
    lower = {str(column).strip().lower() for column in columns}
    if NEURON_COLUMNS <= lower or SYNAPSE_COLUMNS <= lower:
        return f"names its columns {listed}: the reader needs them in lower case, unpadded"
    kind, wanted = (
        ("synapses", SYNAPSE_COLUMNS) if {"pre", "post"} & names else ("neurons", NEURON_COLUMNS)
    )
    order = ["id", "pre", "post", "z", "y", "x"]
    missing = ", ".join(sorted(wanted - names, key=order.index))
    return f"has the columns {listed}: a {kind} table also needs {missing}"


def _claims(path: str | Path) -> bool:
    """Whether the reader refuses ``path`` with its problem rather than leave it to others:
    the file cannot be read, or names some of the neuron / synapse columns."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES or not path.is_file():
        return False
    if _file_problem(path) is not None:
        return True
    columns = _columns(path)
    named = {str(column).strip().lower() for column in columns}
    numbers = bool(columns) and all(_is_number(column) for column in columns)
    return numbers or bool(named & (NEURON_COLUMNS | SYNAPSE_COLUMNS))


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


def refuse_tables(path: str | list[str]) -> list[LayerDataTuple]:
    """Raise a ``ValueError`` saying what is wrong with each table file that cannot open."""
    paths = path if isinstance(path, list) else [path]
    problems = [
        f"{Path(item).name} cannot be opened as neurons or synapses: it {problem}."
        for item in paths
        if (problem := table_problem(item)) is not None
    ]
    raise ValueError(" ".join([*problems, _NEEDED]))


def get_table_reader(path: str | list[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """Return a reader for neuron / synapse tables, or None for other files.

    A table file that cannot be read, or that names some of the neuron and synapse columns
    but not all, gets :func:`refuse_tables`, which says what is wrong with it.
    """
    paths = path if isinstance(path, list) else [path]
    if not paths:
        return None
    if all(table_kind(p) is not None for p in paths):
        return read_tables
    if all(str(p).lower().endswith(".csv") and _napari_csv(p) is not None for p in paths):
        return read_napari_csv
    if all(table_kind(p, placed=True) is not None for p in paths):
        return read_any_tables
    if any(_claims(p) for p in paths):
        return refuse_tables
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


@in_micrometres
def read_tables(path: str | list[str]) -> list[LayerDataTuple]:
    """Neuron tables as Points (size 6 µm), synapse tables as small Points; µm, scale 1."""
    paths = path if isinstance(path, list) else [path]
    layers = []
    for item in paths:
        kind = table_kind(item)
        try:
            table, positions = _read_positions(Path(item), kind or "table")
        except _TableProblem as problem:
            raise ValueError(
                f"{Path(item).name} cannot be opened as {kind or 'a table'}: it {problem}."
            ) from problem
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
