"""Batched subpixel phase correlation and warping in torch (CPU or GPU).

Conventions: a frame ``f`` whose content moved by ``d`` voxels relative to the reference
``r`` (``f(x) = r(x - d)``) gets the shift ``d``; registering it samples ``f(x + d)``.
"""

from __future__ import annotations

import functools
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
    return torch.fft.rfftn(centred.mul_(taper), dim=dims)


def cross_spectrum(
    frames_ft: torch.Tensor, reference_conj: torch.Tensor, filter_ft: torch.Tensor
) -> torch.Tensor:
    """Whitened (phase-only), Gaussian-filtered cross-power spectrum."""
    cross = frames_ft * reference_conj
    parts = torch.view_as_real(cross)  # |cross|² in place: twice as fast as abs() or sum(-1)
    power = parts[..., 0] * parts[..., 0]
    power.addcmul_(parts[..., 1], parts[..., 1])
    return cross * power.add_(1e-12).rsqrt_().mul_(filter_ft)


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


def correlation_near(
    cross: torch.Tensor,
    shape: Sequence[int],
    half_width: Sequence[int],
    centre: torch.Tensor | None = None,
) -> torch.Tensor:
    """Like :func:`correlation_window`, at lags ``centre + [-h - 1, h + 1]`` (``centre``
    (B, ndim) voxels, subpixel allowed), by a separable DFT evaluated only at those lags:
    a few complex matrix products instead of a full inverse FFT per patch."""
    batch, ndim = cross.shape[0], len(shape)
    values = cross
    total = 1
    for axis in reversed(range(ndim)):
        size, h = int(shape[axis]), int(half_width[axis])
        kernel, freq = _lag_kernel(size, h, axis == ndim - 1, cross.device, cross.dtype)
        moved = values.movedim(axis + 1, -1)  # frequency axis of ``axis`` last
        if centre is not None:  # exp(2πi f (lag + c)) = exp(2πi f lag) · exp(2πi f c)
            phase = 2 * math.pi * freq.view(1, -1) * centre[:, axis : axis + 1].to(freq.dtype)
            ramp = torch.polar(torch.ones_like(phase), phase).to(moved.dtype)
            moved = moved * ramp.view(batch, *([1] * (moved.ndim - 2)), -1)
        flat = moved.reshape(-1, moved.shape[-1])  # one GEMM over every patch and row
        values = torch.matmul(flat, kernel).reshape(*moved.shape[:-1], kernel.shape[-1])
        total *= size
    # the lag axes came out in reverse order
    order = (0, *range(ndim, 0, -1))
    return values.permute(order).real / total


@functools.lru_cache(maxsize=64)
def _lag_kernel(
    size: int, h: int, last: bool, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n freq, 2h+3) inverse-DFT factors exp(2πi f lag) of one axis for lags
    ``[-h - 1, h + 1]``, and the frequencies; built once per axis, not per patch."""
    freq = (torch.fft.rfftfreq if last else torch.fft.fftfreq)(size, device=device)
    lags = torch.arange(-h - 1, h + 2, device=device, dtype=freq.dtype)
    phase = 2 * math.pi * freq.view(-1, 1) * lags.view(1, -1)
    kernel = torch.polar(torch.ones_like(phase), phase)
    if last:  # the rfft half stands for its mirror image too
        weight = torch.full((freq.numel(),), 2.0, device=device)
        weight[0] = 1.0
        if size % 2 == 0:
            weight[-1] = 1.0
        kernel = kernel * weight.view(-1, 1)
    return kernel.to(dtype), freq


def subpixel_shifts(
    cross: torch.Tensor, shape: Sequence[int], half_width: Sequence[int]
) -> torch.Tensor:
    """Shifts (B, ndim) from a cross spectrum: coarse peak, then the peak of the map moved
    onto it (band-limited interpolation), which removes most of the parabolic-fit bias."""
    coarse = peak_shifts(correlation_near(cross, shape, half_width), half_width)
    ones = (1,) * len(shape)
    return coarse + peak_shifts(correlation_near(cross, shape, ones, coarse), ones)


def peak_shifts(window: torch.Tensor, half_width: Sequence[int]) -> torch.Tensor:
    """Subpixel peak (parabolic per axis) of correlation windows, as (B, ndim) shifts.

    The peak is sought inside the window's one-voxel border; its neighbours along every axis
    are fetched for all windows at once by one gather on the flattened windows."""
    batch, shape = window.shape[0], window.shape[1:]
    ndim = len(shape)
    core = window[(slice(None),) + (slice(1, -1),) * ndim]
    flat = core.reshape(batch, -1).argmax(dim=1)
    index = torch.stack(torch.unravel_index(flat, core.shape[1:]), dim=1) + 1  # (B, ndim)
    strides = torch.tensor(
        [math.prod(shape[a + 1 :]) for a in range(ndim)], device=window.device
    )
    peak = (index * strides).sum(dim=1)  # flat index of each window's peak
    steps = torch.tensor([-1, 0, 1], device=window.device)
    neighbours = peak.view(batch, 1, 1) + (strides.view(ndim, 1) * steps).unsqueeze(0)
    values = window.reshape(batch, -1).gather(1, neighbours.view(batch, -1))
    left, centre, right = values.view(batch, ndim, 3).unbind(-1)
    curvature = left - 2 * centre + right
    delta = torch.where(
        curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), 0.0
    ).clamp(-0.5, 0.5)
    offset = torch.tensor([h + 1 for h in half_width], device=window.device)
    return (index - offset).to(delta.dtype) + delta


#: pole of the cubic B-spline prefilter; its impulse response falls as |pole|^k
_SPLINE_POLE = math.sqrt(3.0) - 2.0
_SPLINE_TAPS = 8  # |pole|^9 < 1e-5


#: axes up to this long are filtered by dense (n, n) matrices (one GEMM per axis, n
#: multiply-adds per voxel); longer ones by a 17-tap convolution, which costs less there
MATRIX_MAX_SIZE = 512


def spline_prefilter(frames: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline coefficients of (B, *shape) frames (FIR approximation of the exact
    recursive filter, edges repeated), so that B-spline sampling interpolates the samples.

    Axes up to :data:`MATRIX_MAX_SIZE` long are filtered by one matrix product with
    :func:`prefilter_matrix` (the same filter; torch's single-channel ``conv1d`` is many
    times slower on the CPU than a GEMM)."""
    out = frames
    for axis in range(frames.ndim - 1):
        size = out.shape[axis + 1]
        if size <= MATRIX_MAX_SIZE:
            matrix = prefilter_matrix(size, out.device, out.dtype)
            out = along_axis(out, matrix, axis)
        else:
            out = _convolve_prefilter(out, axis + 1)
    return out


def _prefilter_kernel(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(-_SPLINE_TAPS, _SPLINE_TAPS + 1, dtype=dtype, device=device)
    pole = _SPLINE_POLE
    return (-6.0 * pole / (1.0 - pole**2)) * pole ** k.abs()


def _convolve_prefilter(frames: torch.Tensor, axis: int) -> torch.Tensor:
    """The prefilter along one axis (of the batch tensor) by convolution, edges repeated."""
    kernel = _prefilter_kernel(frames.dtype, frames.device)
    size = frames.shape[axis]
    moved = frames.movedim(axis, -1)
    rows = moved.reshape(-1, 1, size)
    padded = F.pad(rows, (_SPLINE_TAPS, _SPLINE_TAPS), mode="replicate")
    filtered = F.conv1d(padded, kernel.view(1, 1, -1)).reshape(moved.shape)
    return filtered.movedim(-1, axis)


@functools.lru_cache(maxsize=16)
def prefilter_matrix(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(size, size) matrix of the spline prefilter along one axis, the repeated edges folded
    into the first and last columns: ``coefficients = matrix @ samples``."""
    kernel = _prefilter_kernel(torch.float64, torch.device("cpu"))
    rows = torch.arange(size).repeat_interleave(kernel.numel())
    offsets = torch.arange(-_SPLINE_TAPS, _SPLINE_TAPS + 1).repeat(size)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, (rows + offsets).clamp(0, size - 1)), kernel.repeat(size), True)
    return matrix.to(device=device, dtype=dtype)


def along_axis(frames: torch.Tensor, matrix: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply (n, n) ``matrix`` (or one (B, n, n) matrix per frame) along spatial ``axis`` of
    (B, *shape) frames: ``out[..., i, ...] = Σ_j matrix[i, j] frames[..., j, ...]``."""
    batch, shape = frames.shape[0], frames.shape[1:]
    n = shape[axis]
    if axis == len(shape) - 1:
        if matrix.ndim == 2:  # one GEMM over every row of every frame
            return (frames.reshape(-1, n) @ matrix.T).reshape(frames.shape)
        return torch.bmm(frames.reshape(batch, -1, n), matrix.transpose(1, 2)).reshape(
            frames.shape
        )
    before, after = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    blocks = frames.reshape(batch, before, n, after)
    mat = matrix.view(-1, 1, n, n)  # broadcast over the axes before ``axis``
    return torch.matmul(mat, blocks).reshape(frames.shape)


def cubic_shift_matrices(shifts: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size, size) matrices sampling prefiltered-then-B-spline-interpolated samples at
    ``x + shift`` along one axis (edges repeated): the whole cubic shift of one axis."""
    batch = shifts.shape[0]
    base = torch.floor(shifts)
    t = (shifts - base).view(batch, 1)
    taps = [(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3]
    weights = torch.cat(taps, dim=1) / 6  # (B, 4) for offsets -1, 0, 1, 2
    grid = torch.arange(size, device=shifts.device).view(1, size, 1)
    offsets = torch.arange(-1, 3, device=shifts.device).view(1, 1, 4)
    columns = (grid + base.long().view(batch, 1, 1) + offsets).clamp(0, size - 1)
    sampling = torch.zeros(batch, size, size, dtype=shifts.dtype, device=shifts.device)
    sampling.scatter_add_(2, columns, weights.view(batch, 1, 4).expand(batch, size, 4))
    return sampling @ prefilter_matrix(size, shifts.device, shifts.dtype)


def _bspline_taps(position: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cubic B-spline sampling as two linear fetches (Sigg & Hadwiger 2005): returns the
    weights and the positions of the two fetches along one axis (in-place arithmetic: this
    runs on every voxel of every frame)."""
    base = torch.floor(position)
    t = position - base
    t2 = t * t
    w3 = t2 * t  # six times the weight of the tap at +2
    w1 = w3 * 3 - t2 * 6 + 4  # six times the weight of the tap at 0
    w0 = (1 - t).pow_(3)  # six times the weight of the tap at -1
    g0 = w0.add_(w1).div_(6)
    g1 = 1 - g0
    h0 = w1.div_(6).div_(g0).add_(base).sub_(1)
    h1 = w3.div_(6).div_(g1.clamp(min=1e-12)).add_(base).add_(1)
    return g0, h0, g1, h1


class Warper:
    """Samples frames of one shape at ``x + displacement``, edges repeated.

    ``interpolation="cubic"`` (cubic B-spline, prefiltered) keeps cells as sharp in every
    frame; linear interpolation blurs each frame by an amount that depends on its subpixel
    shift, which modulates ROI means from frame to frame.

    Volumes are sampled with torch's 2-D ``grid_sample`` (vectorised on CPU, several times
    faster there than its 3-D kernel): the planes of a volume are stacked into one tall image
    (each plane with its last row repeated once, so that no sample blends two planes) and a
    trilinear sample is the mix of two bilinear ones, in the planes below and above.
    """

    def __init__(
        self, shape: Sequence[int], device: torch.device, interpolation: str = "linear"
    ) -> None:
        if interpolation not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic'; got {interpolation!r}")
        self.interpolation = interpolation
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.axes = [
            torch.arange(n, dtype=torch.float32, device=device).view(
                *[n if a == axis else 1 for a in range(self.ndim)]
            )
            for axis, n in enumerate(self.shape)
        ]

    def __call__(self, frames: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """``displacement``: (B, ndim) rigid shifts or (B, ndim, *shape) fields, in voxels."""
        if self.interpolation == "cubic" and displacement.ndim == 2:
            if max(self.shape) <= MATRIX_MAX_SIZE:
                return self._cubic_rigid_matrices(frames, displacement)
            return self._cubic_rigid(spline_prefilter(frames), displacement)
        if displacement.ndim == 2:
            offset = displacement.view(*displacement.shape, *([1] * self.ndim))
        else:
            offset = displacement
        positions = [self.axes[a].unsqueeze(0) + offset[:, a] for a in range(self.ndim)]
        if self.interpolation == "linear":
            return self.sample(frames, positions)
        return self._cubic(spline_prefilter(frames), positions)

    def sample(self, frames: torch.Tensor, positions: list[torch.Tensor]) -> torch.Tensor:
        """Linear sampling of (B, *shape) frames at absolute voxel ``positions`` (one tensor
        per axis, broadcastable to (B, *shape)), edges repeated."""
        return self._sample_prepared(self._prepare(frames), positions)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """Volumes: (B, Z, Y, X) → (B, Z·(Y + 1), X), the planes stacked, each with its last
        row repeated; images as they are."""
        if self.ndim == 2:
            return frames
        padded = torch.cat([frames, frames[:, :, -1:]], dim=2)
        return padded.reshape(frames.shape[0], -1, self.shape[2])

    def _sample_prepared(self, images: torch.Tensor, positions: list[torch.Tensor]) -> torch.Tensor:
        positions = list(torch.broadcast_tensors(*positions))
        if self.ndim == 2:
            return _bilinear(images, positions[0], positions[1])
        depth, height = self.shape[0], self.shape[1]
        out_shape = (images.shape[0], *self.shape)
        y = positions[1].clamp(0, height - 1)
        if depth == 1:
            return _bilinear(images, y, positions[2], flat=True).reshape(out_shape)
        z = positions[0].clamp(0, depth - 1)
        below = torch.floor(z).clamp_(max=depth - 2)
        above_weight = z.sub_(below)
        rows = below.mul_(height + 1).add_(y)
        low = _bilinear(images, rows, positions[2], flat=True)
        high = _bilinear(images, rows.add_(height + 1), positions[2], flat=True)
        return low.lerp_(high, above_weight.reshape(low.shape)).reshape(out_shape)

    def _cubic_rigid_matrices(self, frames: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Cubic B-spline shift by (B, ndim) voxels as one matrix per frame and axis (the
        prefilter and the four taps folded together: one batched GEMM per axis)."""
        out = frames
        for axis, n in enumerate(self.shape):
            out = along_axis(out, cubic_shift_matrices(shifts[:, axis], n), axis)
        return out

    def _cubic_rigid(self, coefficients: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Cubic B-spline shift by (B, ndim) voxels: separable, four taps per axis."""
        out = coefficients
        batch = shifts.shape[0]
        for axis, n in enumerate(self.shape):
            base = torch.floor(shifts[:, axis])
            t = (shifts[:, axis] - base).view(batch, 1)
            taps = [(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3]
            weights = torch.cat(taps, dim=1) / 6  # (B, 4) for offsets -1, 0, 1, 2
            grid = torch.arange(n, device=shifts.device).view(1, n)
            moved = out.movedim(axis + 1, -1)
            total = 0.0
            for tap in range(4):
                index = (grid + base.long().view(batch, 1) + tap - 1).clamp(0, n - 1)
                index = index.view(batch, *([1] * (moved.ndim - 2)), n).expand(moved.shape)
                weight = weights[:, tap].view(batch, *([1] * (moved.ndim - 1)))
                total = total + weight * moved.gather(-1, index)
            out = total.movedim(-1, axis + 1)
        return out

    def _cubic(self, coefficients: torch.Tensor, positions: list[torch.Tensor]) -> torch.Tensor:
        """Cubic B-spline sampling as 2**ndim linear fetches of the spline coefficients."""
        taps = [_bspline_taps(p) for p in positions]
        return self._mix_fetches(self._prepare(coefficients), taps, [])

    def _mix_fetches(
        self, images: torch.Tensor, taps: list[tuple[torch.Tensor, ...]], where: list
    ) -> torch.Tensor:
        """Σ over the two fetches of each remaining axis, weighted axis by axis (fewer
        products than weighting each of the 2**ndim fetches by its full weight)."""
        axis = len(where)
        if axis == self.ndim:
            return self._sample_prepared(images, where)
        g0, h0, g1, h1 = taps[axis]
        low = self._mix_fetches(images, taps, [*where, h0])
        high = self._mix_fetches(images, taps, [*where, h1])
        return low.mul_(g0).addcmul_(high, g1)


def _bilinear(
    images: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, flat: bool = False
) -> torch.Tensor:
    """Bilinear samples of (B, H, W) ``images`` at absolute (row, column) positions of shape
    (B, ...) (all the same shape), edges repeated; ``flat`` returns (B, N) rather than the
    positions' shape."""
    batch, height, width = images.shape
    shape = rows.shape
    last = shape[-1]  # torch's CPU kernel vectorises along the grid's last axis: keep it long
    # (B, N / last, last, 2) in grid_sample's (x, y) order, written in place (no stack)
    grid = torch.empty(batch, rows.numel() // (batch * last), last, 2, device=images.device)
    x_scale, y_scale = 2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)
    torch.mul(columns.reshape(batch, -1, last), x_scale, out=grid[..., 0]).sub_(float(width > 1))
    torch.mul(rows.reshape(batch, -1, last), y_scale, out=grid[..., 1]).sub_(float(height > 1))
    out = F.grid_sample(
        images.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=True
    ).reshape(batch, -1)
    return out if flat else out.reshape(shape)


def warp(
    frames: torch.Tensor, displacement: torch.Tensor, interpolation: str = "linear"
) -> torch.Tensor:
    """Frames sampled at ``x + displacement`` (see :class:`Warper`; builds one each call)."""
    return Warper(frames.shape[1:], frames.device, interpolation)(frames, displacement)
