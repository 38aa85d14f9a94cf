"""Receptive-field grid: lattice centres over the tissue and the candidate fields of each neuron."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


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

    l_max = max(len(fields) for fields in lists)
    candidates = np.full((positions.shape[0], l_max), -1, dtype=np.int64)
    for i, fields in enumerate(lists):
        candidates[i, : len(fields)] = sorted(fields)
    mask = candidates >= 0
    return Grid(centers, float(diameter), stride, candidates, mask)
