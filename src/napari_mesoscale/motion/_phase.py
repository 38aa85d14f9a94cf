"""Batched subpixel phase correlation and warping in torch (CPU or GPU).

Conventions: a frame ``f`` whose content moved by ``d`` voxels relative to the reference
``r`` (``f(x) = r(x - d)``) gets the shift ``d``; registering it samples ``f(x + d)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - torch convention


def edge_taper(shape: Sequence[int], width: Sequence[int], device: torch.device) -> torch.Tensor:
    """A separable window, 1 inside and falling smoothly to 0 over ``width`` voxels at edges."""
    window = torch.ones(tuple(shape), device=device)
    for axis, (size, w) in enumerate(zip(shape, width, strict=True)):
        w = int(min(max(w, 0), size // 4))
        if w == 0:
            continue
        x = torch.arange(size, dtype=torch.float32, device=device)
        distance = torch.minimum(x, size - 1 - x)
        ramp = torch.sigmoid((distance - w / 2) / max(w / 6, 0.5))
        view = [1] * len(shape)
        view[axis] = size
        window = window * ramp.view(view)
    return window


def gaussian_spectrum(shape: Sequence[int], sigma: float, device: torch.device) -> torch.Tensor:
    """The rfft-domain transfer function of a Gaussian blur of ``sigma`` voxels."""
    grids = []
    for axis, size in enumerate(shape):
        if axis == len(shape) - 1:
            f = torch.fft.rfftfreq(size, device=device)
        else:
            f = torch.fft.fftfreq(size, device=device)
        grids.append(f)
    mesh = torch.meshgrid(*grids, indexing="ij")
    squared = sum(g**2 for g in mesh)
    return torch.exp(-2.0 * math.pi**2 * sigma**2 * squared)


def prepare(frames: torch.Tensor, taper: torch.Tensor) -> torch.Tensor:
    """Spectra of mean-subtracted, tapered frames (batch first, spatial axes after)."""
    dims = tuple(range(1, frames.ndim))
    centred = frames - frames.mean(dim=dims, keepdim=True)
    return torch.fft.rfftn(centred * taper, dim=dims)


def cross_spectrum(
    frames_ft: torch.Tensor, reference_conj: torch.Tensor, filter_ft: torch.Tensor
) -> torch.Tensor:
    """Whitened (phase-only), Gaussian-filtered cross-power spectrum."""
    cross = frames_ft * reference_conj
    power = torch.view_as_real(cross).square().sum(-1)
    return cross * (torch.rsqrt(power + 1e-12) * filter_ft)


def frequency_ramp(shape: Sequence[int], shifts: torch.Tensor) -> torch.Tensor:
    """rfft-domain factors moving a correlation map by ``-shifts`` (B, ndim) voxels."""
    phase = 0.0
    for axis, size in enumerate(shape):
        last = axis == len(shape) - 1
        f = (torch.fft.rfftfreq if last else torch.fft.fftfreq)(size, device=shifts.device)
        view = [-1] + [1] * len(shape)
        view[axis + 1] = f.numel()
        phase = phase + shifts[:, axis].view(-1, *([1] * len(shape))) * f.view(view[1:]).unsqueeze(
            0
        )
    return torch.polar(torch.ones_like(phase), 2 * math.pi * phase)


def correlation_window(
    cross: torch.Tensor, shape: Sequence[int], half_width: Sequence[int]
) -> torch.Tensor:
    """Correlation map for shifts in ``[-h - 1, h + 1]`` per axis, shape (B, 2h+3, ...)."""
    dims = tuple(range(1, cross.ndim))
    corr = torch.fft.irfftn(cross, s=tuple(shape), dim=dims)
    for axis, (size, h) in enumerate(zip(shape, half_width, strict=True)):
        offsets = torch.arange(-h - 1, h + 2, device=corr.device) % size
        corr = corr.index_select(axis + 1, offsets)
    return corr


def subpixel_shifts(
    cross: torch.Tensor, shape: Sequence[int], half_width: Sequence[int]
) -> torch.Tensor:
    """Shifts (B, ndim) from a cross spectrum: coarse peak, then the peak of the map moved
    onto it (band-limited interpolation), which removes most of the parabolic-fit bias."""
    coarse = peak_shifts(correlation_window(cross, shape, half_width), half_width)
    ones = (1,) * len(shape)
    moved = cross * frequency_ramp(shape, coarse)
    return coarse + peak_shifts(correlation_window(moved, shape, ones), ones)


def peak_shifts(window: torch.Tensor, half_width: Sequence[int]) -> torch.Tensor:
    """Subpixel peak (parabolic per axis) of correlation windows, as (B, ndim) shifts."""
    batch = window.shape[0]
    ndim = window.ndim - 1
    inner = torch.full_like(window, -torch.inf)
    core = (slice(None),) + tuple(slice(1, -1) for _ in range(ndim))
    inner[core] = window[core]
    flat = inner.reshape(batch, -1).argmax(dim=1)
    index = torch.stack(torch.unravel_index(flat, window.shape[1:]), dim=1)  # (B, ndim)
    rows = torch.arange(batch, device=window.device)
    shifts = torch.empty(batch, ndim, device=window.device)
    for axis in range(ndim):
        values = []
        for step in (-1, 0, 1):
            where = [index[:, a] + (step if a == axis else 0) for a in range(ndim)]
            values.append(window[(rows, *where)])
        left, centre, right = values
        curvature = left - 2 * centre + right
        delta = torch.where(
            curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), 0.0
        ).clamp(-0.5, 0.5)
        shifts[:, axis] = index[:, axis] - (half_width[axis] + 1) + delta
    return shifts


class Warper:
    """Samples frames of one shape at ``x + displacement`` (linear, edges repeated)."""

    def __init__(self, shape: Sequence[int], device: torch.device) -> None:
        self.shape = tuple(int(n) for n in shape)
        ndim = len(self.shape)
        self.scale = torch.tensor(
            [2.0 / (n - 1) if n > 1 else 0.0 for n in self.shape], device=device
        )
        axes = [torch.arange(n, dtype=torch.float32, device=device) for n in self.shape]
        base = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*shape, ndim)
        base = base * self.scale - (self.scale > 0).float()
        self.base = base.flip(-1).unsqueeze(0)  # grid_sample wants (x, y, z) order
        self.ndim = ndim

    def __call__(self, frames: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """``displacement``: (B, ndim) rigid shifts or (B, ndim, *shape) fields, in voxels."""
        scaled = displacement * self.scale.view(1, -1, *([1] * (displacement.ndim - 2)))
        if displacement.ndim == 2:
            offset = scaled.flip(-1).view(-1, *([1] * self.ndim), self.ndim)
        else:
            offset = scaled.movedim(1, -1).flip(-1)
        out = F.grid_sample(
            frames.unsqueeze(1),
            self.base + offset,
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )
        return out.squeeze(1)


def warp(frames: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Frames sampled at ``x + displacement`` (see :class:`Warper`; builds one each call)."""
    return Warper(frames.shape[1:], frames.device)(frames, displacement)
