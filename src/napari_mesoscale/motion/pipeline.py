"""Motion correction as the first step of the pipeline: a quick estimate, then register if needed.

The pipeline (``detect_point_sources``, ``run_pipeline``, the demo) calls
:func:`register_if_moving` on the raw movie and detects on the movie it returns; the shifts
travel with the results through :meth:`MotionCorrection.save`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_mesoscale.motion._device import pick_device
from napari_mesoscale.motion.params import MotionParams
from napari_mesoscale.motion.register import (
    MotionCorrection,
    _read,
    check_movie,
    correct_motion,
)
from napari_mesoscale.progress import Progress, ProgressCallback

__all__ = ["MotionEstimate", "estimate_motion", "register_if_moving"]

_ESTIMATE_BATCH = 4  # frames registered per step of the quick estimate (a cancel point each)
_ESTIMATE_SHARE = 0.1  # share of register_if_moving's progress taken by the quick estimate


@dataclass
class MotionEstimate:
    """Rigid motion of a few frames spread over a movie, relative to their common reference.

    Attributes
    ----------
    frames : numpy.ndarray
        Indices of the frames looked at.
    shifts_um : numpy.ndarray
        (n, ndim) rigid shift of each, centred on their median.
    amplitude_um : float
        Largest distance of a frame from the median position.
    amplitude_voxels : float
        The same in voxels (per-axis shifts divided by the voxel size, then the norm).
    """

    frames: np.ndarray
    shifts_um: np.ndarray
    amplitude_um: float
    amplitude_voxels: float


def estimate_motion(
    movie: Any,
    *,
    voxel_size: Any,
    n_frames: int = 24,
    params: MotionParams | None = None,
    callback: ProgressCallback | Progress | None = None,
) -> MotionEstimate:
    """Quick rigid motion amplitude from ``n_frames`` frames spread over the movie.

    Reads only those frames (cheap on dask / Zarr). Non-rigid warps without a rigid part
    are seen only through their average shift. ``callback`` receives progress and may cancel
    between frames (see :mod:`napari_mesoscale.progress`).
    """
    from napari_mesoscale.motion._registrar import Registrar
    from napari_mesoscale.motion.reference import initial_reference

    progress = Progress.wrap(callback)
    vs = check_movie(movie, voxel_size)
    params = (params or MotionParams()).replace(nonrigid=False).validate()
    device = pick_device(params.device)
    index = np.unique(np.linspace(0, movie.shape[0] - 1, min(n_frames, movie.shape[0])).round())
    shifts = []
    with torch.inference_mode():
        read = []
        for k, i in enumerate(index.astype(int)):
            progress.report(0.5 * k / len(index), f"reading frame {i}")
            read.append(_read(movie, int(i), device))
        frames = torch.stack(read)
        registrar = Registrar(initial_reference(frames), vs, params)
        for start in range(0, len(frames), _ESTIMATE_BATCH):
            progress.report(0.5 + 0.5 * start / len(frames), "rigid shifts")
            shifts.append(registrar.rigid(frames[start : start + _ESTIMATE_BATCH]).cpu().numpy())
    shifts = np.concatenate(shifts)
    shifts = shifts - np.median(shifts, axis=0)
    shifts_um = shifts * np.asarray(vs)
    progress.report(1.0, "motion estimated")
    return MotionEstimate(
        frames=index.astype(int),
        shifts_um=shifts_um,
        amplitude_um=float(np.linalg.norm(shifts_um, axis=1).max()),
        amplitude_voxels=float(np.linalg.norm(shifts, axis=1).max()),
    )


def register_if_moving(
    movie: Any,
    *,
    voxel_size: Any,
    register: bool | str = "auto",
    threshold_voxels: float = 0.5,
    output: str | os.PathLike | None = None,
    params: MotionParams | None = None,
    callback: ProgressCallback | Progress | None = None,
    overwrite: bool = False,
) -> tuple[Any, MotionCorrection | None, MotionEstimate | None]:
    """The movie to detect on: registered when asked, or (``"auto"``) when it moves.

    Parameters
    ----------
    movie : array-like
        (T, [Z,] Y, X) raw movie.
    voxel_size : sequence of float
    register : True, False or "auto"
        ``"auto"`` registers when :func:`estimate_motion` finds more than
        ``threshold_voxels`` of motion.
    output : path, optional
        Zarr folder for the registered movie (required for lazy movies).
    overwrite : bool
        Replace an existing ``output`` Zarr store (see :func:`correct_motion`).

    Returns
    -------
    movie : array-like
        The registered movie, or the input unchanged.
    correction : MotionCorrection or None
        Shifts and quality (save them with ``correction.save(folder)``).
    estimate : MotionEstimate or None
        The quick estimate (``"auto"`` only).
    """
    if register not in (True, False, "auto"):
        raise ValueError(f"register must be True, False or 'auto'; got {register!r}.")
    if register is False:
        return movie, None, None
    progress = Progress.wrap(callback)
    estimate = None
    start = 0.0
    if register == "auto":
        start = _ESTIMATE_SHARE
        estimate = estimate_motion(
            movie,
            voxel_size=voxel_size,
            params=params,
            callback=progress.stage(0.0, start, "estimating motion"),
        )
        if estimate.amplitude_voxels <= threshold_voxels:
            progress.report(1.0, "no motion to correct")
            return movie, None, estimate
    correction = correct_motion(
        movie,
        voxel_size=voxel_size,
        params=params,
        output=output,
        callback=progress.stage(start, 1.0, "correcting motion"),
        overwrite=overwrite,
    )
    return correction.registered, correction, estimate
