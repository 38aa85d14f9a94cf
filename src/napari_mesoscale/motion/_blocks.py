"""Geometry of the overlapping patches of piecewise non-rigid registration."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BlockGrid:
    """Overlapping patches (half-overlapping by default) tiling a frame.

    Attributes
    ----------
    shape : tuple of int
        Frame shape in voxels.
    size : tuple of int
        Patch edge per axis (voxels).
    starts : tuple of numpy arrays
        First voxel of each patch, per axis.
    """

    shape: tuple[int, ...]
    size: tuple[int, ...]
    starts: tuple[np.ndarray, ...]

    @classmethod
    def tile(cls, shape: tuple[int, ...], size: tuple[int, ...]) -> BlockGrid:
        size = tuple(int(min(max(s, 4), n)) for s, n in zip(size, shape, strict=True))
        starts = []
        for n, s in zip(shape, size, strict=True):
            count = 1 if n <= s else int(np.ceil((n - s) / (s / 2))) + 1
            starts.append(np.round(np.linspace(0, n - s, count)).astype(int))
        return cls(tuple(shape), size, tuple(starts))

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.starts)

    @property
    def centres(self) -> tuple[np.ndarray, ...]:
        """Patch centres in voxels, per axis."""
        return tuple(s + (b - 1) / 2 for s, b in zip(self.starts, self.size, strict=True))

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, *shape) → (B, n_blocks, *size), patches in C order of the block grid."""
        steps = [np.unique(np.diff(s)) for s in self.starts]
        if all(len(d) <= 1 for d in steps):  # evenly spaced: strided views, one copy
            view = frames
            for axis, (size, d) in enumerate(zip(self.size, steps, strict=True)):
                view = view.unfold(axis + 1, size, int(d[0]) if len(d) else 1)
            return view.reshape(frames.shape[0], -1, *self.size)
        pieces = []
        for corner in itertools.product(*self.starts):
            index = (slice(None),) + tuple(
                slice(int(c), int(c) + b) for c, b in zip(corner, self.size, strict=True)
            )
            pieces.append(frames[index])
        return torch.stack(pieces, dim=1)

    def weights(self, coordinate: np.ndarray, axis: int, kind: str = "cubic") -> np.ndarray:
        """(len(coordinate), n patches) weights interpolating patch values along ``axis``
        (:func:`interpolation_weights`)."""
        return interpolation_weights(self.centres[axis], coordinate, kind)

    def interpolation(self, device: torch.device, kind: str = "cubic") -> list[torch.Tensor]:
        """Per axis, the (n voxels, n patches) matrix of interpolation weights."""
        return [
            torch.tensor(
                self.weights(np.arange(n, dtype=float), axis, kind),
                dtype=torch.float32,
                device=device,
            )
            for axis, n in enumerate(self.shape)
        ]

    @staticmethod
    def field(block_shifts: torch.Tensor, matrices: list[torch.Tensor]) -> torch.Tensor:
        """Patch shifts (B, *counts, ndim) → smooth field (B, ndim, *shape) through the
        separable interpolation ``matrices`` (:meth:`interpolation`)."""
        values = block_shifts.movedim(-1, 1)
        for matrix in matrices:
            values = torch.tensordot(values, matrix, dims=([2], [1]))
        return values


def smooth_over_blocks(windows: torch.Tensor, counts: tuple[int, ...]) -> torch.Tensor:
    """Average each patch's correlation window with its neighbours' ([1, 2, 1] per axis).

    Patches with little texture borrow the peak of their neighbours (as suite2p does).
    """
    batch = windows.shape[0]
    inner = windows.shape[2:]
    grid = windows.reshape(batch, *counts, *inner)
    for axis in range(1, 1 + len(counts)):
        n = grid.shape[axis]
        if n < 2:
            continue
        out = grid * 0.5  # then a quarter of each neighbour, the edge patch its own
        out.narrow(axis, 1, n - 1).add_(grid.narrow(axis, 0, n - 1), alpha=0.25)
        out.narrow(axis, 0, n - 1).add_(grid.narrow(axis, 1, n - 1), alpha=0.25)
        out.narrow(axis, 0, 1).add_(grid.narrow(axis, 0, 1), alpha=0.25)
        out.narrow(axis, n - 1, 1).add_(grid.narrow(axis, n - 1, 1), alpha=0.25)
        grid = out
    return grid.reshape(windows.shape)


def interpolation_weights(
    centres: np.ndarray, coordinate: np.ndarray, kind: str = "cubic"
) -> np.ndarray:
    """(len(coordinate), len(centres)) weights interpolating patch values at voxel
    ``coordinate``: ``"linear"`` between patch centres, or ``"cubic"`` (a natural cubic spline
    through the centres, whose error on a smooth warp falls as spacing⁴ rather than
    spacing²); constant beyond the outer centres either way."""
    centres = np.asarray(centres, dtype=float)
    coordinate = np.atleast_1d(np.asarray(coordinate, dtype=float))
    count = len(centres)
    if count == 1:
        return np.ones((len(coordinate), 1))
    clamped = np.clip(coordinate, centres[0], centres[-1])
    if kind == "cubic" and count > 2:
        from scipy.interpolate import CubicSpline

        return CubicSpline(centres, np.eye(count), bc_type="natural")(clamped)
    frac = np.interp(clamped, centres, np.arange(count, dtype=float))
    low = np.clip(np.floor(frac).astype(int), 0, count - 1)
    high = np.minimum(low + 1, count - 1)
    weight = frac - low
    matrix = np.zeros((len(coordinate), count))
    rows = np.arange(len(coordinate))
    np.add.at(matrix, (rows, low), 1 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix
