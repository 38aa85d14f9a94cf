"""Registration of batches of frames to one reference: rigid, then patch-wise shifts."""

from __future__ import annotations

import math

import torch

from napari_mesoscale.motion import _phase
from napari_mesoscale.motion._blocks import BlockGrid, smooth_over_blocks
from napari_mesoscale.motion.params import MotionParams

#: voxels registered at once by default (bounds working memory to a few hundred MB)
VOXELS_PER_BATCH = 2**23


def batch_size(params: MotionParams, frame_shape: tuple[int, ...]) -> int:
    """Frames registered at once: ``params.batch_frames``, fewer for large frames."""
    per_frame = int(math.prod(frame_shape))
    return int(max(1, min(params.batch_frames, VOXELS_PER_BATCH // per_frame)))


class Registrar:
    """Precomputed spectra of a reference and its patches; registers batches of frames.

    Parameters
    ----------
    reference : torch.Tensor
        (*shape) reference frame.
    voxel_size : tuple of float
        µm per voxel, one per spatial axis.
    params : MotionParams
    """

    def __init__(
        self, reference: torch.Tensor, voxel_size: tuple[float, ...], params: MotionParams
    ) -> None:
        self.device = reference.device
        self.shape = tuple(reference.shape)
        self.voxel_size = voxel_size
        self.params = params
        size = self.shape
        self.max_shift = tuple(
            int(min(math.ceil(params.max_shift_um / v), n // 2 - 2))
            for v, n in zip(voxel_size, size, strict=True)
        )
        self.max_shift = tuple(max(m, 1) for m in self.max_shift)
        taper_width = tuple(
            max(2, min(m, n // 8)) for m, n in zip(self.max_shift, size, strict=True)
        )
        self.taper = _phase.edge_taper(size, taper_width, self.device)
        self.filter = _phase.gaussian_spectrum(size, params.smooth_sigma_voxels, self.device)
        self.reference = reference
        self.warp = _phase.Warper(size, self.device)  # for estimation passes
        self.output_warp = _phase.Warper(size, self.device, params.interpolation)
        self.reference_conj = _phase.prepare(reference[None], self.taper).conj()
        self.blocks: BlockGrid | None = None
        if params.nonrigid:
            self._prepare_blocks(reference)

    def _prepare_blocks(self, reference: torch.Tensor) -> None:
        p = self.params
        block = tuple(int(round(p.block_size_um / v)) for v in self.voxel_size)
        grid = BlockGrid.tile(self.shape, block)
        self.blocks = grid
        self.block_shift = tuple(
            int(min(max(1, math.ceil(p.max_block_shift_um / v)), b // 2 - 2))
            for v, b in zip(self.voxel_size, grid.size, strict=True)
        )
        self.block_shift = tuple(max(m, 1) for m in self.block_shift)
        width = tuple(max(2, b // 8) for b in grid.size)
        self.block_taper = _phase.edge_taper(grid.size, width, self.device)
        self.block_filter = _phase.gaussian_spectrum(grid.size, p.smooth_sigma_voxels, self.device)
        ref_blocks = grid.extract(reference[None])[0]
        self.block_reference_conj = _phase.prepare(ref_blocks, self.block_taper).conj()
        self.upsample = grid.interpolation(self.device, p.field_interpolation)

    def rigid(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, *shape) frames → (B, ndim) shifts in voxels."""
        spectra = _phase.prepare(frames, self.taper)
        cross = _phase.cross_spectrum(spectra, self.reference_conj, self.filter)
        return _phase.subpixel_shifts(cross, self.shape, self.max_shift)

    def block_shifts(self, corrected: torch.Tensor) -> torch.Tensor:
        """Rigidly corrected frames → residual patch shifts (B, *counts, ndim) in voxels."""
        grid = self.blocks
        assert grid is not None
        pieces = grid.extract(corrected)
        batch, n_blocks = pieces.shape[:2]
        flat = pieces.reshape(batch * n_blocks, *grid.size)
        spectra = _phase.prepare(flat, self.block_taper)
        spectra = spectra.reshape(batch, n_blocks, *spectra.shape[1:])
        cross = _phase.cross_spectrum(spectra, self.block_reference_conj, self.block_filter)
        cross = cross.reshape(batch * n_blocks, *cross.shape[2:])
        window = _phase.correlation_near(cross, grid.size, self.block_shift)
        window = smooth_over_blocks(window.reshape(batch, n_blocks, *window.shape[1:]), grid.counts)
        coarse = _phase.peak_shifts(
            window.reshape(cross.shape[0], *window.shape[2:]), self.block_shift
        )
        ones = (1,) * len(self.shape)
        fine = _phase.correlation_near(cross, grid.size, ones, coarse)
        fine = smooth_over_blocks(fine.reshape(batch, n_blocks, *fine.shape[1:]), grid.counts)
        shifts = coarse + _phase.peak_shifts(fine.reshape(cross.shape[0], *fine.shape[2:]), ones)
        return shifts.reshape(batch, *grid.counts, len(self.shape))

    def register(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Register a batch: rigid shifts, patch shifts, the registered frames and quality."""
        rigid = self.rigid(frames)
        out = {"rigid": rigid}
        if self.blocks is None:
            registered = self.output_warp(frames, rigid)
        else:
            expand = rigid.view(*rigid.shape, *([1] * len(self.shape)))
            residual = self.block_shifts(self.warp(frames, rigid))
            for _ in range(self.params.nonrigid_iterations - 1):
                field = self.blocks.field(residual, self.upsample)
                residual = residual + self.block_shifts(self.warp(frames, expand + field))
            residual = _running_mean(residual, self.params.temporal_window_frames)
            field = self.blocks.field(residual, self.upsample)
            registered = self.output_warp(frames, expand + field)
            out["blocks"] = residual
        out["registered"] = registered
        out["quality"] = self.quality(registered)
        return out

    def quality(self, registered: torch.Tensor) -> torch.Tensor:
        """Pearson correlation of each registered frame with the reference (border cropped)."""
        crop = (slice(None),) + tuple(
            slice(min(m, n // 4), n - min(m, n // 4))
            for m, n in zip(self.max_shift, self.shape, strict=True)
        )
        a = registered[crop].reshape(registered.shape[0], -1)
        b = self.reference[crop[1:]].reshape(1, -1)
        a = a - a.mean(dim=1, keepdim=True)
        b = b - b.mean(dim=1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)


def _running_mean(values: torch.Tensor, window: int) -> torch.Tensor:
    """Centred running mean over the first (frame) axis, shorter at the batch's ends."""
    if window <= 1 or values.shape[0] < 2:
        return values
    half = window // 2
    padded = torch.cat([torch.zeros_like(values[:1]), values.cumsum(0)])
    index = torch.arange(values.shape[0], device=values.device)
    low, high = (index - half).clamp(min=0), (index + half + 1).clamp(max=values.shape[0])
    view = (-1, *([1] * (values.ndim - 1)))
    return (padded[high] - padded[low]) / (high - low).to(values.dtype).view(view)
