"""The registration reference: the mean of mutually similar frames, refined by registering.

As in suite2p: the seed is the frame most correlated with the others among frames spread over
the movie, averaged with its closest neighbours; each refinement registers those frames to the
reference (rigid, and non-rigid in the last refinement), averages the best-matching half and
re-centres the result on their median position, so the reference sits where the tissue usually
is.
"""

from __future__ import annotations

import torch

from napari_mesoscale.motion import _phase
from napari_mesoscale.motion._registrar import Registrar, batch_size
from napari_mesoscale.motion.params import MotionParams
from napari_mesoscale.progress import Progress

__all__ = ["initial_reference", "refine_reference"]


def initial_reference(frames: torch.Tensor) -> torch.Tensor:
    """Mean of the frame most correlated with the others and its closest third."""
    flat = frames.reshape(frames.shape[0], -1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = flat / (flat.norm(dim=1, keepdim=True) + 1e-12)
    similarity = flat @ flat.T
    keep = max(1, frames.shape[0] // 3)
    best = similarity.topk(keep, dim=1).values.sum(dim=1).argmax()
    members = similarity[best].topk(keep).indices
    return frames[members].mean(dim=0)


def refine_reference(
    frames: torch.Tensor,
    voxel_size: tuple[float, ...],
    params: MotionParams,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Build and refine the reference from ``frames`` (N, *shape) spread over the movie."""
    progress = progress or Progress()
    reference = initial_reference(frames)
    iterations = params.reference_iterations
    for iteration in range(iterations):
        progress.report(iteration / max(iterations, 1), f"refinement {iteration + 1}")
        # rigid first; the last refinement also undoes warps so the reference stays sharp
        last = iteration == iterations - 1 and params.nonrigid
        registrar = Registrar(reference, voxel_size, params.replace(nonrigid=last))
        shifts, registered, quality = _register_in_batches(registrar, frames, params)
        keep = max(1, frames.shape[0] // 2)
        best = quality.topk(keep).indices
        reference = registered[best].mean(dim=0)
        centre = shifts[best].median(dim=0).values
        reference = _phase.warp(reference[None], -centre[None])[0]
    progress.report(1.0, "reference ready")
    return reference


def _register_in_batches(
    registrar: Registrar, frames: torch.Tensor, params: MotionParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rigid shifts, registered frames and quality of ``frames``, a batch at a time (the
    working memory of a batch is many times its frames')."""
    step = batch_size(params, registrar.shape)
    registered = torch.empty_like(frames)
    shifts, quality = [], []
    for start in range(0, frames.shape[0], step):
        out = registrar.register(frames[start : start + step])
        registered[start : start + step] = out["registered"]
        shifts.append(out["rigid"])
        quality.append(out["quality"])
    return torch.cat(shifts), registered, torch.cat(quality)
