"""Receptive-field grid: lattice centres over the tissue and the candidate fields of each neuron."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.progress import Progress


@dataclass(frozen=True)
class Grid:
    """A 3D lattice of spherical receptive fields and the fields that contain each neuron.

    Attributes
    ----------
    centers : ndarray, shape (L, 3)
        Field centres in µm, (z, y, x).
    diameter : float
        Field diameter in µm.
    stride : float
        Lattice spacing in µm.
    candidates : ndarray of int64, shape (N, L_max)
        Indices into ``centers`` of the fields containing each neuron, padded with -1.
    mask : ndarray of bool, shape (N, L_max)
        True where ``candidates`` holds a real field.
    """

    centers: np.ndarray
    diameter: float
    stride: float
    candidates: np.ndarray
    mask: np.ndarray

    @property
    def n_fields(self) -> int:
        return int(self.centers.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.candidates.shape[0])

    def members(self, field: int) -> np.ndarray:
        """Indices of the neurons whose candidate list contains ``field``."""
        rows, _ = np.nonzero((self.candidates == field) & self.mask)
        return np.unique(rows)

    def field_sizes(self) -> np.ndarray:
        """Number of candidate neurons of every field, shape (L,)."""
        return np.bincount(self.candidates[self.mask], minlength=self.n_fields)


def _validate_positions(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(
            f"positions must have shape (N, 3) in µm (z, y, x); got {positions.shape}. "
            "Convert voxel indices with `positions * voxel_size` first."
        )
    if positions.shape[0] == 0:
        raise ValueError("positions is empty: there are no neurons to place in a grid.")
    if not np.all(np.isfinite(positions)):
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise ValueError(f"positions contain NaN or inf at rows {bad[:10].tolist()}.")
    return positions


def receptive_field_grid(
    positions: np.ndarray,
    *,
    diameter: float,
    stride: float | None = None,
) -> Grid:
    """Build a lattice of receptive fields over the bounding box of ``positions``.

    Parameters
    ----------
    positions : array_like, shape (N, 3)
        Neuron positions in µm, (z, y, x).
    diameter : float
        Receptive-field diameter in µm.
    stride : float, optional
        Lattice spacing in µm; defaults to ``diameter / 2`` so that fields overlap.
        With ``stride <= diameter / sqrt(3)`` every neuron lies in at least one field.

    Returns
    -------
    Grid
        Field centres and each neuron's candidate fields (padded index array and mask).

    Notes
    -----
    A neuron left without a field (possible when ``stride > diameter / sqrt(3)``) is
    assigned its nearest field, with a warning.
    """
    positions = _validate_positions(positions)
    if not diameter > 0:
        raise ValueError(f"diameter must be positive (µm); got {diameter}.")
    stride = float(diameter) / 2 if stride is None else float(stride)
    if not stride > 0:
        raise ValueError(f"stride must be positive (µm); got {stride}.")

    low, high = positions.min(axis=0), positions.max(axis=0)
    _check_field_count(high - low, stride, float(diameter), positions.shape[0])
    counts = np.floor((high - low) / stride).astype(int) + 1
    offset = low + ((high - low) - (counts - 1) * stride) / 2
    axes = [offset[k] + stride * np.arange(counts[k]) for k in range(3)]
    centers = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)

    tree = cKDTree(centers)
    radius = diameter / 2
    lists = tree.query_ball_point(positions, r=radius * (1 + 1e-9))
    orphans = [i for i, fields in enumerate(lists) if len(fields) == 0]
    if orphans:
        warnings.warn(
            f"{len(orphans)} neuron(s) lie in no receptive field (stride {stride:g} µm > "
            f"diameter/√3 = {diameter / np.sqrt(3):g} µm); each was given its nearest field.",
            stacklevel=2,
        )
        _, nearest = tree.query(positions[orphans])
        for i, j in zip(orphans, np.atleast_1d(nearest), strict=True):
            lists[i] = [int(j)]

    lengths = np.fromiter((len(fields) for fields in lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=lengths.sum())
    rows = np.repeat(np.arange(len(lists)), lengths)
    order = np.lexsort((flat, rows))  # fields sorted within each neuron
    starts = np.cumsum(lengths) - lengths
    columns = np.arange(flat.size) - np.repeat(starts, lengths)
    l_max = int(lengths.max())
    candidates = np.full((positions.shape[0], l_max), -1, dtype=np.int64)
    candidates[rows, columns] = flat[order]
    mask = candidates >= 0
    return Grid(centers, float(diameter), stride, candidates, mask)


MAX_FIELDS_PER_NEURON = 64


def _check_field_count(extent: np.ndarray, stride: float, diameter: float, n: int) -> None:
    """Refuse a lattice with more fields than ``MAX_FIELDS_PER_NEURON`` per neuron, before
    allocating it (a tiny ``rf_diameter`` would otherwise build billions of centres)."""
    n_fields = float(np.prod(np.floor(extent / stride) + 1))
    limit = MAX_FIELDS_PER_NEURON * max(n, 1)
    if n_fields > limit:
        volume = float(np.prod(np.maximum(extent, stride)))
        smallest = 2.0 * (volume / limit) ** (1 / 3)  # stride = diameter / 2 by default
        raise ValueError(
            f"rf_diameter={diameter:g} µm (stride {stride:g} µm) makes {n_fields:.3g} receptive "
            f"fields for {n} neurons (limit {MAX_FIELDS_PER_NEURON} per neuron = {limit}); use "
            f"rf_diameter of at least ~{smallest:.3g} µm for data spanning "
            f"{[round(float(e), 3) for e in extent]} µm."
        )


# -- points per field and the subgraph enclosed by each field ---------------------------------


def _regular_lattice(grid: Grid) -> tuple[np.ndarray, np.ndarray] | None:
    """(offset, counts) when ``grid.centers`` is the ij-ordered lattice this module builds."""
    centers = np.asarray(grid.centers, dtype=float)
    axes = [np.unique(centers[:, k]) for k in range(3)]
    counts = np.array([a.size for a in axes])
    if counts.prod() != centers.shape[0]:
        return None
    offset = np.array([a[0] for a in axes])
    expected = np.stack(
        np.meshgrid(
            *[offset[k] + grid.stride * np.arange(counts[k]) for k in range(3)], indexing="ij"
        ),
        axis=-1,
    ).reshape(-1, 3)
    if not np.allclose(expected, centers, atol=1e-6 * max(grid.stride, 1.0)):
        return None
    return offset, counts


_SLACK = 1e-6  # lattice-index rounding slack (in strides)


def _tree_members(grid: Grid, points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(field, point) pairs by a k-d tree, for grids whose centres are not a regular lattice."""
    tree = cKDTree(points)
    lists = tree.query_ball_point(np.asarray(grid.centers), r=radius * (1 + 1e-9))
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64)
    return np.repeat(np.arange(grid.n_fields), lengths), flat


def _lattice_members(
    block: np.ndarray,
    offset: np.ndarray,
    counts: np.ndarray,
    stride: float,
    radius: float,
    span: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(field ids, block rows) of the points of ``block`` inside lattice fields, in parts."""
    limit = (radius * (1 + 1e-9)) ** 2
    steps = np.arange(span)
    low = np.ceil((block - radius - offset) / stride - _SLACK).astype(np.int64)
    # per axis: candidate lattice index and squared distance (inf outside the lattice),
    # stored (span, C) so that every candidate column is contiguous; combinations
    # are pruned axis by axis (measured faster than testing all span**3 at once)
    ks, d2s = [], []
    for axis in range(3):
        k = low[:, axis] + steps[:, None]
        d2 = (block[:, axis] - (offset[axis] + k * stride)) ** 2
        d2[(k < 0) | (k >= counts[axis])] = np.inf
        ks.append(k)
        d2s.append(d2)
    for i in range(span):
        for j in range(span):
            zy = d2s[0][i] + d2s[1][j]
            rows_zy = np.flatnonzero(zy <= limit)
            if rows_zy.size == 0:
                continue
            zy = zy[rows_zy]
            base = (ks[0][i][rows_zy] * counts[1] + ks[1][j][rows_zy]) * counts[2]
            for l in range(span):
                inside = zy + d2s[2][l][rows_zy] <= limit
                if inside.any():
                    rows = rows_zy[inside]
                    yield base[inside] + ks[2][l][rows], rows


def field_members(
    grid: Grid,
    points: np.ndarray,
    *,
    chunk: int = 65_536,
    callback: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which points lie inside each receptive field (the sphere of ``grid.diameter``).

    Vectorised lattice arithmetic: each point is compared only with the few lattice centres
    within one radius along every axis, in chunks of ``chunk`` points, so ten million synapse
    points take seconds and bounded memory. Grids whose centres are not a regular lattice fall
    back to a k-d tree.

    Parameters
    ----------
    grid : Grid
    points : ndarray, shape (M, 3)
        Points in µm, (z, y, x).
    chunk : int
        Points processed at a time.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    offsets : ndarray of int64, shape (L + 1,)
    indices : ndarray of int32 or int64
        ``indices[offsets[j]:offsets[j + 1]]`` are the (sorted) rows of the points in field j.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (M, 3) in µm (z, y, x); got {points.shape}.")
    if not np.all(np.isfinite(points)):
        bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
        raise ValueError(f"points contain NaN or inf at rows {bad[:10].tolist()}.")
    n_fields = grid.n_fields
    m = points.shape[0]
    radius = grid.diameter / 2
    index_dtype = np.int32 if m < 2**31 - 1 else np.int64
    lattice = _regular_lattice(grid)
    field_parts: list[np.ndarray] = []
    point_parts: list[np.ndarray] = []
    if lattice is None:
        fields, members = _tree_members(grid, points, radius)
        field_parts.append(fields)
        point_parts.append(members)
    else:
        offset, counts = lattice
        # lattice indices k with |p - centre_k| <= r along an axis: ceil(a) .. floor(a + 2r/s)
        # with a = (p - r - offset) / s; at most floor(2r/s) + 1 of them (slack for rounding)
        span = int(np.floor(2 * radius / grid.stride + 2 * _SLACK)) + 1
        field_dtype = np.int32 if n_fields < 2**31 - 1 else np.int64
        for start in range(0, m, chunk):
            stop = min(start + chunk, m)
            for fields, rows in _lattice_members(
                points[start:stop], offset, counts, grid.stride, radius, span
            ):
                field_parts.append(fields.astype(field_dtype, copy=False))
                point_parts.append((rows + start).astype(index_dtype))
            progress.report(stop / m, f"field membership: {stop}/{m} points")
    fields = np.concatenate(field_parts) if field_parts else np.zeros(0, np.int64)
    members = np.concatenate(point_parts) if point_parts else np.zeros(0, index_dtype)
    # counting sort by field; points stay in increasing order inside each field
    matrix = sp.csr_matrix(
        (np.ones(fields.size, dtype=np.int8), (fields, members)), shape=(n_fields, max(m, 1))
    )
    matrix.sort_indices()
    return matrix.indptr.astype(np.int64), matrix.indices.astype(index_dtype, copy=False)


@dataclass(frozen=True)
class FieldSubgraphs:
    """The subgraph enclosed by every receptive field, stored as CSR-like offsets.

    Attributes
    ----------
    grid : Grid
    neuron_offsets, neuron_indices : ndarray
        Neurons (connectome rows) whose soma lies in field j:
        ``neuron_indices[neuron_offsets[j]:neuron_offsets[j + 1]]`` (the grid's candidates).
    synapse_offsets, synapse_indices : ndarray
        Synapses (synapse-table rows) whose position lies in field j.
    pre_index, post_index : ndarray
        The connectome's synapse partners (rows), to read edges of the enclosed synapses.
    """

    grid: Grid
    neuron_offsets: np.ndarray
    neuron_indices: np.ndarray
    synapse_offsets: np.ndarray
    synapse_indices: np.ndarray
    pre_index: np.ndarray
    post_index: np.ndarray

    def neurons(self, field: int) -> np.ndarray:
        """Rows of the neurons whose soma lies inside ``field``."""
        self._check(field)
        return self.neuron_indices[self.neuron_offsets[field] : self.neuron_offsets[field + 1]]

    def synapses(self, field: int) -> np.ndarray:
        """Rows of the synapses whose position lies inside ``field``."""
        self._check(field)
        return self.synapse_indices[self.synapse_offsets[field] : self.synapse_offsets[field + 1]]

    def edges(self, field: int) -> np.ndarray:
        """(K, 2) pre/post neuron rows of the synapses inside ``field`` (one row per synapse)."""
        rows = self.synapses(field)
        return np.stack([self.pre_index[rows], self.post_index[rows]], axis=1)

    def partners(self, field: int) -> np.ndarray:
        """Neurons of the enclosed subgraph: somata inside the field plus partners of its
        synapses (the paper's "synapses and their pre- and post-synaptic neurons")."""
        edges = self.edges(field)
        return np.union1d(self.neurons(field), edges.ravel())

    def neuron_counts(self) -> np.ndarray:
        return np.diff(self.neuron_offsets)

    def synapse_counts(self) -> np.ndarray:
        return np.diff(self.synapse_offsets)

    def _check(self, field: int) -> None:
        if not 0 <= int(field) < self.grid.n_fields:
            raise ValueError(f"field {field} out of range: the grid has {self.grid.n_fields}.")


def enclosed_subgraphs(
    connectome: Any,
    grid: Grid,
    *,
    callback: Any = None,
) -> FieldSubgraphs:
    """The subgraph enclosed by each receptive field of ``grid`` (neurons and synapses inside).

    Parameters
    ----------
    connectome : Connectome
        Its neurons must be the positions the grid was built on.
    grid : Grid
        From :func:`receptive_field_grid` on ``connectome.positions``.
    callback : callable, optional
        Progress callback; returning False cancels.

    Returns
    -------
    FieldSubgraphs
    """
    if grid.n_neurons != connectome.n_neurons:
        raise ValueError(
            f"grid was built for {grid.n_neurons} neurons but the connectome has "
            f"{connectome.n_neurons}; build it with receptive_field_grid(connectome.positions, …)."
        )
    rows, cols = np.nonzero(grid.mask)
    fields = grid.candidates[rows, cols]
    neuron_matrix = sp.csr_matrix(
        (np.ones(fields.size, dtype=np.int8), (fields, rows)),
        shape=(grid.n_fields, grid.n_neurons),
    )
    neuron_matrix.sort_indices()
    if connectome.n_synapses:
        synapse_offsets, synapse_indices = field_members(
            grid,
            connectome.synapse_positions,
            callback=Progress.wrap(callback, ConnectomeCancelled),
        )
    else:
        synapse_offsets = np.zeros(grid.n_fields + 1, dtype=np.int64)
        synapse_indices = np.zeros(0, dtype=np.int32)
    return FieldSubgraphs(
        grid=grid,
        neuron_offsets=neuron_matrix.indptr.astype(np.int64),
        neuron_indices=neuron_matrix.indices.astype(np.int64),
        synapse_offsets=synapse_offsets,
        synapse_indices=synapse_indices,
        pre_index=connectome.pre_index,
        post_index=connectome.post_index,
    )
