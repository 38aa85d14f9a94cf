"""The connectome: neuron and synapse tables and the sparse pre→post adjacency built from them."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from napari_mesoscale.connectome._util import rows_text
from napari_mesoscale.io.tables import read_table

if TYPE_CHECKING:
    from napari_mesoscale.connectome.grid import Grid

POSITION_COLUMNS = ("z", "y", "x")
NEURON_COLUMNS = ("id", *POSITION_COLUMNS)
SYNAPSE_COLUMNS = ("pre", "post", *POSITION_COLUMNS)

_SIGN_WORDS = {
    "+": 1,
    "+1": 1,
    "1": 1,
    "e": 1,
    "exc": 1,
    "excitatory": 1,
    "-": -1,
    "-1": -1,
    "i": -1,
    "inh": -1,
    "inhibitory": -1,
    "0": 0,
    "": 0,
    "unknown": 0,
}


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{what} table lacks column(s) {missing}; it has {list(table.columns)}. "
            f"Expected columns: {list(columns)} (positions in µm, z, y, x order)."
        )


def _positions(table: pd.DataFrame, what: str) -> np.ndarray:
    try:
        positions = table.loc[:, list(POSITION_COLUMNS)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what} positions (columns z, y, x) must be numbers in µm: {error}"
        ) from None
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{what} table has NaN or infinite positions in {rows_text(bad)}; "
            "drop those rows or fill in their z, y, x (µm)."
        )
    return positions


def _sign_array(values: pd.Series, what: str) -> np.ndarray:
    """+1 / -1 / 0 (unknown) per row from numbers or words such as 'excitatory'."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.sign(np.nan_to_num(numbers, nan=0.0)).astype(np.int8)
    words = values.astype("string").str.strip().str.lower().fillna("")
    mapped = words.map(_SIGN_WORDS)
    bad = np.flatnonzero(mapped.isna().to_numpy())
    if bad.size:
        examples = sorted(set(words.iloc[bad[:10]].tolist()))
        raise ValueError(
            f"{what} 'sign' column has values {examples} in {rows_text(bad)} that are not a "
            "sign; use +1 / -1 (or 'excitatory' / 'inhibitory', 0 or empty for unknown)."
        )
    return mapped.to_numpy(dtype=np.int8)


def _id_lookup(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row index of every value in ``ids`` (-1 where absent); vectorised.

    Integer ids spanning a compact range use a direct lookup table (one gather, fast for ten
    million synapses); other ids use a hash index.
    """
    if (
        ids.size
        and np.issubdtype(ids.dtype, np.integer)
        and np.issubdtype(values.dtype, np.integer)
    ):
        low, high = int(ids.min()), int(ids.max())
        span = high - low + 1
        if span <= max(8 * ids.size, 1 << 20):
            table = np.full(span, -1, dtype=np.int64)
            table[ids - low] = np.arange(ids.size)
            shifted = values.astype(np.int64, copy=False) - low
            inside = (shifted >= 0) & (shifted < span)
            if inside.all():
                return table[shifted]
            rows = np.full(values.shape, -1, dtype=np.int64)
            rows[inside] = table[shifted[inside]]
            return rows
    return pd.Index(ids).get_indexer(values).astype(np.int64)


def _signed_weight(weight: pd.Series, sign: np.ndarray) -> np.ndarray:
    """Synapse weights with their sign: a column holding any negative value is taken as signed
    already; a non-negative column is multiplied by the synapse signs."""
    values = weight.to_numpy(dtype=np.float64)
    if values.size and values.min() < 0:
        return values
    return values * sign


class Connectome:
    """Neurons, synapses and the sparse adjacency pre→post.

    Build one with :meth:`from_tables` (CSV, Parquet or DataFrames) or :meth:`from_labels`
    (a label volume, with or without synapse points). Calling the constructor directly with two
    DataFrames does the same validation as :meth:`from_tables`.

    Parameters
    ----------
    neurons : DataFrame
        One row per neuron: ``id`` (unique), ``z, y, x`` (µm); optional ``type``, ``sign``
        (+1 excitatory, -1 inhibitory, 0/NaN unknown) and any other columns (kept).
    synapses : DataFrame
        One row per synapse: ``pre``, ``post`` (neuron ids) and ``z, y, x`` (µm); optional
        ``weight`` and ``sign``. Without ``z, y, x`` columns the synapse is placed halfway between
        its two somata. A ``weight`` column with negative values is taken as signed already;
        non-negative weights are given the synapse's sign.
    value : {"count", "weight"}
        What the adjacency holds: the number of synapses i→j (the multigraph collapsed to counts,
        the default), or the sum of their ``weight`` column.
    directed : bool
        False for graphs whose direction is unknown (contact-based graphs from label volumes);
        their adjacency is symmetric.

    Attributes
    ----------
    neurons, synapses : DataFrame
        The validated tables (index reset to 0..n-1).
    adjacency : scipy.sparse.csr_matrix, shape (N, N), float32
        ``adjacency[i, j]`` = number of synapses from neuron row i to neuron row j, times the
        sign of the synapse (its ``sign`` column, else the sign of the pre-synaptic neuron,
        else +1).
    pre_index, post_index : ndarray of int64, shape (M,)
        Neuron rows of every synapse's partners.
    """

    def __init__(
        self,
        neurons: pd.DataFrame,
        synapses: pd.DataFrame | None = None,
        *,
        value: str = "count",
        directed: bool = True,
    ) -> None:
        if value not in ("count", "weight"):
            raise ValueError(f"value must be 'count' or 'weight'; got {value!r}.")
        neurons, positions = _checked_neurons(neurons)
        synapses, pre_index, post_index = _synapse_indices(synapses, neurons["id"])
        synapses = _placed_synapses(synapses, positions, pre_index, post_index)
        _check_weights(synapses, value)
        syn_sign = _synapse_signs(neurons, synapses, pre_index)

        n = len(neurons)
        if value == "count":
            data = syn_sign.astype(np.float32)
        else:
            data = _signed_weight(synapses["weight"], syn_sign).astype(np.float32)
        adjacency = sp.csr_matrix((data, (pre_index, post_index)), shape=(n, n))
        adjacency.sum_duplicates()
        adjacency.sort_indices()

        self.neurons: pd.DataFrame = neurons
        self.synapses: pd.DataFrame = synapses
        self.adjacency: sp.csr_matrix = adjacency
        self.pre_index: np.ndarray = pre_index
        self.post_index: np.ndarray = post_index
        self.synapse_sign: np.ndarray = syn_sign
        self.directed: bool = bool(directed)
        self.value: str = value
        self._positions = positions

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_tables(
        cls,
        neurons: pd.DataFrame | str | os.PathLike,
        synapses: pd.DataFrame | str | os.PathLike | None = None,
        *,
        value: str = "count",
    ) -> Connectome:
        """Build a connectome from a neuron table and a synapse table.

        Parameters
        ----------
        neurons : DataFrame or path
            ``id, z, y, x`` (µm), optional ``type``, ``sign``; CSV/TSV or Parquet paths are read.
        synapses : DataFrame or path, optional
            ``pre, post, z, y, x`` (µm), optional ``weight``, ``sign``. None: no edges.
        value : {"count", "weight"}
            Adjacency entries: signed synapse counts (default) or signed summed weights.

        Returns
        -------
        Connectome

        Raises
        ------
        ValueError
            Missing columns, empty neuron table, duplicate or missing ids, synapses naming
            unknown neurons, NaN positions or weights; the message names the offending rows.
        FileNotFoundError
            A path that does not exist.
        """
        return cls(read_table(neurons, "neurons"), synapses, value=value)

    @classmethod
    def from_labels(
        cls,
        labels: np.ndarray,
        synapses: pd.DataFrame | str | os.PathLike | None = None,
        *,
        voxel_size: tuple[float, float, float] | float,
        tolerance: float | None = None,
        min_overlap: int = 1,
        search_radius: float | None = None,
        drop_unassigned: bool = False,
        callback: Any = None,
    ) -> Connectome:
        """Build a connectome from a label volume (one label per neuron segment).

        Neurons are the non-zero labels (``id`` = label value) placed at their centroids (µm).
        With ``synapses`` (points in µm), each synapse is assigned to the segments under its
        pre- and post-synaptic points: columns ``pre_z, pre_y, pre_x, post_z, post_y, post_x``
        (a point on each side, looked up in the volume; a point in background takes the
        nearest segment within ``search_radius`` µm) or ``pre, post, z, y, x`` (ids given,
        checked against the labels). Without ``synapses``, edges join segments whose tolerance
        regions (each segment dilated by ``tolerance`` µm) overlap by at least ``min_overlap``
        voxels; the edge weight is that overlap (undirected: both directions are stored).

        Parameters
        ----------
        labels : ndarray of int, shape (Z, Y, X)
            Segment labels, 0 = background.
        synapses : DataFrame or path, optional
            Synapse points, see above.
        voxel_size : float or 3 floats
            Voxel size in µm, (z, y, x).
        tolerance : float, optional
            Dilation radius in µm for contact edges; default one voxel along the largest axis.
        min_overlap : int
            Minimal overlap in voxels (θ) for a contact edge.
        search_radius : float, optional
            µm around a synapse point searched for a segment when the point lies in background;
            default ``tolerance`` (or one voxel).
        drop_unassigned : bool
            Drop synapse points that lie on no segment instead of refusing them.
        callback : callable, optional
            Progress callback (a dict with ``fraction``, ``message``); returning False cancels.

        Returns
        -------
        Connectome
        """
        from napari_mesoscale.connectome.labels import connectome_from_labels

        return connectome_from_labels(
            cls,
            labels,
            synapses,
            voxel_size=voxel_size,
            tolerance=tolerance,
            min_overlap=min_overlap,
            search_radius=search_radius,
            drop_unassigned=drop_unassigned,
            callback=callback,
        )

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Connectome:
        """Read a connectome written by :meth:`to_tables`."""
        folder = Path(folder)
        neurons = folder / "neurons.parquet"
        if not neurons.exists():
            raise FileNotFoundError(f"no neurons.parquet in {folder}; write one with to_tables().")
        synapses = folder / "synapses.parquet"
        meta_path = folder / "connectome.json"
        value, directed = "count", True
        if meta_path.exists():
            import json

            meta = json.loads(meta_path.read_text())
            value, directed = meta.get("value", "count"), meta.get("directed", True)
        return cls(
            read_table(neurons, "neurons"),
            read_table(synapses, "synapses") if synapses.exists() else None,
            value=value,
            directed=directed,
        )

    def to_tables(self, folder: str | os.PathLike) -> Path:
        """Write ``neurons.parquet``, ``synapses.parquet`` and ``connectome.json`` to ``folder``.

        Each file is written atomically. Returns the folder.
        """
        import json

        from napari_mesoscale.io import atomic_path, write_table

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in (("neurons", self.neurons), ("synapses", self.synapses)):
            write_table(table, folder / f"{name}.parquet")
        meta = {
            "value": self.value,
            "directed": self.directed,
            "n_neurons": self.n_neurons,
            "n_synapses": self.n_synapses,
            "n_edges": self.n_edges,
        }
        with atomic_path(folder / "connectome.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        return folder

    # -- views -----------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """Neuron ids in row order, shape (N,)."""
        return self.neurons["id"].to_numpy()

    @property
    def positions(self) -> np.ndarray:
        """Neuron positions in µm, shape (N, 3), (z, y, x)."""
        return self._positions

    @cached_property
    def synapse_positions(self) -> np.ndarray:
        """Synapse positions in µm, shape (M, 3), (z, y, x)."""
        if len(self.synapses) == 0:
            return np.zeros((0, 3))
        return self.synapses.loc[:, list(POSITION_COLUMNS)].to_numpy(dtype=np.float64)

    @property
    def n_neurons(self) -> int:
        return int(self.neurons.shape[0])

    @property
    def n_synapses(self) -> int:
        return int(self.synapses.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of distinct pre→post pairs (stored adjacency entries)."""
        return int(self.adjacency.nnz)

    @cached_property
    def tree(self) -> cKDTree:
        """A k-d tree over the neuron positions (µm), built on first use."""
        return cKDTree(self.positions)

    @cached_property
    def weights(self) -> sp.csr_matrix:
        """Signed summed synapse ``weight`` per pre→post pair (the adjacency if no weights).

        A weight column with negative values is used as it is (already signed); otherwise each
        weight is multiplied by its synapse's sign."""
        if "weight" not in self.synapses.columns or self.value == "weight":
            return self.adjacency
        n = self.n_neurons
        data = _signed_weight(self.synapses["weight"], self.synapse_sign)
        matrix = sp.csr_matrix(
            (data.astype(np.float32), (self.pre_index, self.post_index)), shape=(n, n)
        )
        matrix.sum_duplicates()
        matrix.sort_indices()
        return matrix

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct edges as ``(pre_rows, post_rows, values)`` in CSR order."""
        adjacency = self.adjacency
        pre = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))
        return pre, adjacency.indices.astype(np.int64), adjacency.data

    def index_of(self, ids: Any) -> np.ndarray:
        """Neuron rows of the given ids; raises ``ValueError`` naming unknown ids."""
        values = np.atleast_1d(np.asarray(ids))
        rows = _id_lookup(self.ids, values)
        if np.any(rows < 0):
            raise ValueError(f"unknown neuron ids: {values[rows < 0][:10].tolist()}")
        return rows

    def neurons_within(self, center: Any, radius: float) -> np.ndarray:
        """Rows of the neurons within ``radius`` µm of ``center`` (z, y, x), sorted."""
        center = np.asarray(center, dtype=float)
        if center.shape != (3,):
            raise ValueError(f"center must be 3 numbers (z, y, x) in µm; got shape {center.shape}")
        return np.sort(np.asarray(self.tree.query_ball_point(center, r=radius), dtype=np.int64))

    def node_features(self, *, hops: int = 2, callback: Any = None) -> pd.DataFrame:
        """Per-neuron graph features; see :func:`napari_mesoscale.connectome.node_features`."""
        from napari_mesoscale.connectome.features import node_features

        return node_features(self, hops=hops, callback=callback)

    def grid(self, *, diameter: float, stride: float | None = None) -> Grid:
        """The receptive-field grid over this connectome's neurons."""
        from napari_mesoscale.connectome.grid import receptive_field_grid

        return receptive_field_grid(self.positions, diameter=diameter, stride=stride)

    def __repr__(self) -> str:
        return (
            f"Connectome({self.n_neurons} neurons, {self.n_synapses} synapses, "
            f"{self.n_edges} edges{'' if self.directed else ', undirected'})"
        )


def _checked_neurons(neurons: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """The neuron table (validated, index reset) and its (N, 3) positions in µm."""
    neurons = read_table(neurons, "neurons")
    _require_columns(neurons, NEURON_COLUMNS, "neurons")
    if len(neurons) == 0:
        raise ValueError("neurons table is empty: a connectome needs at least one neuron.")
    neurons = neurons.reset_index(drop=True)
    ids_series = neurons["id"]
    if ids_series.isna().any():
        bad = np.flatnonzero(ids_series.isna().to_numpy())
        raise ValueError(f"neurons table has missing ids in {rows_text(bad)}.")
    duplicated = np.flatnonzero(ids_series.duplicated(keep=False).to_numpy())
    if duplicated.size:
        dup_ids = ids_series.iloc[duplicated[:10]].tolist()
        raise ValueError(
            f"neurons table has duplicate ids {sorted(set(dup_ids))} in "
            f"{rows_text(duplicated)}; every neuron needs its own id."
        )
    positions = _positions(neurons, "neurons")
    return neurons, positions


def _synapse_indices(
    synapses: Any, ids_series: pd.Series
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The synapse table (validated) and the neuron rows of its pre and post ids."""
    if synapses is None:
        synapses = pd.DataFrame({"pre": ids_series.iloc[:0], "post": ids_series.iloc[:0]})
    synapses = read_table(synapses, "synapses")
    _require_columns(synapses, ("pre", "post"), "synapses")
    synapses = synapses.reset_index(drop=True)
    for column in ("pre", "post"):
        missing = np.flatnonzero(synapses[column].isna().to_numpy())
        if missing.size:
            raise ValueError(f"synapses table has missing '{column}' ids in {rows_text(missing)}.")
    ids = ids_series.to_numpy()
    pre_values = synapses["pre"].to_numpy()
    post_values = synapses["post"].to_numpy()
    if np.issubdtype(ids.dtype, np.integer):
        # ids read from CSV with gaps may come back as floats; compare as integers
        for name, values in (("pre", pre_values), ("post", post_values)):
            if np.issubdtype(values.dtype, np.floating) and np.any(values != np.round(values)):
                bad = np.flatnonzero(values != np.round(values))
                raise ValueError(
                    f"synapses '{name}' ids are not whole numbers in {rows_text(bad)}."
                )
        try:
            pre_values = pre_values.astype(np.int64, copy=False)
            post_values = post_values.astype(np.int64, copy=False)
        except (TypeError, ValueError):
            raise ValueError(
                "neuron ids are integers but the synapses' pre/post columns are not "
                f"(dtypes {synapses['pre'].dtype}, {synapses['post'].dtype}); use the same "
                "id type in both tables."
            ) from None
    pre_index = _id_lookup(ids, pre_values)
    post_index = _id_lookup(ids, post_values)
    unknown = np.flatnonzero((pre_index < 0) | (post_index < 0))
    if unknown.size:
        unknown_ids = np.unique(
            np.concatenate(
                [
                    pre_values[unknown][pre_index[unknown] < 0],
                    post_values[unknown][post_index[unknown] < 0],
                ]
            )
        )
        raise ValueError(
            f"synapses table refers to neuron ids that are not in the neurons table "
            f"({unknown_ids[:10].tolist()}{' …' if unknown_ids.size > 10 else ''}) in "
            f"{rows_text(unknown)}; add those neurons or drop those synapses."
        )
    return synapses, pre_index, post_index


def _placed_synapses(
    synapses: pd.DataFrame, positions: np.ndarray, pre_index: np.ndarray, post_index: np.ndarray
) -> pd.DataFrame:
    """Synapses with z, y, x: given, or half way between the two somata."""
    present = [c for c in POSITION_COLUMNS if c in synapses.columns]
    if present and len(present) < 3:
        raise ValueError(
            f"synapses table has only {present} of the position columns z, y, x; "
            "give all three (µm) or none (synapses are then placed between the somata)."
        )
    if not present:
        midpoint = (positions[pre_index] + positions[post_index]) / 2
        synapses = synapses.assign(z=midpoint[:, 0], y=midpoint[:, 1], x=midpoint[:, 2])
    if len(synapses):
        _positions(synapses, "synapses")
    return synapses


def _check_weights(synapses: pd.DataFrame, value: str) -> None:
    if "weight" in synapses.columns:
        weight = synapses["weight"].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(weight))
        if bad.size:
            raise ValueError(f"synapses table has NaN or infinite weights in {rows_text(bad)}.")
    elif value == "weight":
        raise ValueError("value='weight' needs a 'weight' column in the synapses table.")


def _synapse_signs(
    neurons: pd.DataFrame, synapses: pd.DataFrame, pre_index: np.ndarray
) -> np.ndarray:
    """+1 / -1 per synapse: its own sign, else its pre-synaptic neuron's, else +1."""
    if "sign" in synapses.columns:
        syn_sign = _sign_array(synapses["sign"], "synapses")
        syn_sign = np.where(syn_sign == 0, 1, syn_sign).astype(np.int8)
    elif "sign" in neurons.columns:
        neuron_sign = _sign_array(neurons["sign"], "neurons")
        syn_sign = np.where(neuron_sign == 0, 1, neuron_sign).astype(np.int8)[pre_index]
    else:
        syn_sign = np.ones(len(synapses), dtype=np.int8)
    if "sign" in neurons.columns:
        _sign_array(neurons["sign"], "neurons")  # validate even when synapses carry signs
    return syn_sign
