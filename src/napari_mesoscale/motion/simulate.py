"""Simulated tissue motion for benchmarks: rigid drift, sudden jumps and smooth warps.

:func:`apply_motion` moves every frame of any (T, [Z,] Y, X) movie (the toy brain's included)
by a known displacement field and returns it with the truth (:class:`MotionTruth`). The field
of frame ``t`` is ``d_t(p) = rigid_t + Σ_k a_tk · v_k · sin(w_k · p + φ_k)`` µm, and the moved
frame is ``moved_t(p) = movie_t(p - d_t(p))``: content at ``p`` appears at about ``p + d``.

:func:`move_toy_brain` moves a toy brain's scene rather than its recorded frames: the
noise-free photon counts λ are moved (cubic B-spline) and the shot noise is drawn afterwards,
as in a microscope, where the tissue moves and the detector adds the noise. Moving recorded
(noisy) frames instead interpolates the noise, which lowers its variance by an amount that
depends on each frame's subpixel shift, and blurs the cells with linear interpolation: neither
happens to real tissue, and both cost trace correlation that no registration could recover.

Presets: ``"drift"``, ``"jumps"`` and ``"nonrigid"`` are for development; ``"heldout"`` mixes
all three with its own parameters, fixed once before any measurement and never tuned on, so
that benchmarks on it estimate performance on motion nobody adjusted the method to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_mesoscale.motion import _phase
from napari_mesoscale.progress import Progress, ProgressCallback

__all__ = ["MOTION_PRESETS", "MotionTruth", "apply_motion", "move_toy_brain"]

#: amplitudes in µm (lateral = y, x; axial = z), periods and lengths in frames and µm
MOTION_PRESETS: dict[str, dict[str, Any]] = {
    "drift": {"drift_um": 6.0, "drift_axial_um": 2.0},
    "jumps": {"drift_um": 1.0, "jumps": 4, "jump_um": 8.0, "jump_axial_um": 2.0},
    "nonrigid": {
        "drift_um": 2.0,
        "drift_axial_um": 1.0,
        "warp_modes": 3,
        "warp_um": 2.5,
        "wavelength_um": (60.0, 120.0),
        "period_frames": (20.0, 60.0),
    },
    # held out: fixed before any measurement; never tune the registration on it
    "heldout": {
        "drift_um": 4.0,
        "drift_axial_um": 1.5,
        "jumps": 3,
        "jump_um": 7.0,
        "jump_axial_um": 2.0,
        "warp_modes": 4,
        "warp_um": 2.0,
        "wavelength_um": (50.0, 100.0),
        "period_frames": (15.0, 40.0),
        "seed_offset": 7919,
    },
}
_DEFAULTS: dict[str, Any] = {
    "drift_um": 0.0,
    "drift_axial_um": 0.0,
    "jumps": 0,
    "jump_um": 0.0,
    "jump_axial_um": 0.0,
    "warp_modes": 0,
    "warp_um": 0.0,
    "wavelength_um": (60.0, 120.0),
    "period_frames": (20.0, 60.0),
    "max_total_um": 10.0,
    "seed_offset": 0,
}


@dataclass
class MotionTruth:
    """The true displacement of simulated motion (µm, spatial axes in (z, y, x) order).

    Attributes
    ----------
    rigid_um : numpy.ndarray
        (T, ndim) rigid displacement per frame.
    wavevectors : numpy.ndarray
        (K, ndim) spatial angular frequencies of the warp modes, rad/µm.
    phases : numpy.ndarray
        (K,) spatial phases.
    directions : numpy.ndarray
        (K, ndim) unit directions of the warp modes.
    amplitudes_um : numpy.ndarray
        (T, K) amplitude of each mode in each frame.
    voxel_size : tuple of float
    preset : str
    """

    rigid_um: np.ndarray
    wavevectors: np.ndarray
    phases: np.ndarray
    directions: np.ndarray
    amplitudes_um: np.ndarray
    voxel_size: tuple[float, ...]
    preset: str = ""

    def displacement_at(self, frame: int, positions_um: np.ndarray) -> np.ndarray:
        """(N, ndim) displacement (µm) at (N, ndim) positions (µm) of the motion-free frame."""
        positions = np.atleast_2d(np.asarray(positions_um, dtype=float))
        modes = np.sin(positions @ self.wavevectors.T + self.phases)  # (N, K)
        warp = (modes * self.amplitudes_um[frame]) @ self.directions
        return self.rigid_um[frame] + warp

    def field_um(self, frame: int, shape: tuple[int, ...]) -> np.ndarray:
        """(ndim, *shape) displacement at every voxel centre."""
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
        positions = grid.reshape(-1, len(shape)) * np.asarray(self.voxel_size)
        values = self.displacement_at(frame, positions)
        return np.moveaxis(values.reshape(*shape, len(shape)), -1, 0)

    @property
    def max_rigid_um(self) -> float:
        return float(np.linalg.norm(self.rigid_um, axis=1).max())


def _scales(ndim: int, lateral: float, axial: float) -> np.ndarray:
    return np.array([axial, lateral, lateral][-ndim:] if ndim == 3 else [lateral, lateral])


def _rigid(rng, n_frames: int, ndim: int, p: dict[str, Any]) -> np.ndarray:
    walk = np.cumsum(rng.normal(size=(n_frames, ndim)), axis=0)
    kernel = np.hanning(max(3, n_frames // 10))
    walk = np.stack([np.convolve(w, kernel / kernel.sum(), mode="same") for w in walk.T], 1)
    walk -= walk.mean(axis=0)
    walk /= np.abs(walk).max(axis=0) + 1e-12
    rigid = walk * _scales(ndim, p["drift_um"], p["drift_axial_um"])
    if p["jumps"]:
        times = np.sort(rng.integers(n_frames // 10, n_frames - n_frames // 10, p["jumps"]))
        level = np.zeros(ndim)
        scale = _scales(ndim, p["jump_um"], p["jump_axial_um"])
        offsets = np.zeros((n_frames, ndim))
        for start, stop in zip(times, [*times[1:], n_frames], strict=True):
            level = rng.uniform(-1, 1, ndim) * scale
            offsets[start:stop] = level
        rigid = rigid + offsets
    norm = np.linalg.norm(rigid, axis=1, keepdims=True)
    return rigid * np.minimum(1.0, p["max_total_um"] / np.maximum(norm, 1e-12))


def _warp_modes(rng, n_frames: int, ndim: int, p: dict[str, Any]):
    k = int(p["warp_modes"])
    axes = np.ones(ndim)
    if ndim == 3:
        axes[0] = 0.3  # axial warps are weaker than lateral ones
    directions = rng.normal(size=(k, ndim)) * axes
    directions /= np.linalg.norm(directions, axis=1, keepdims=True) + 1e-12
    orientation = rng.normal(size=(k, ndim))
    orientation /= np.linalg.norm(orientation, axis=1, keepdims=True) + 1e-12
    wavelengths = rng.uniform(*p["wavelength_um"], size=k)
    wavevectors = orientation * (2 * np.pi / wavelengths)[:, None]
    phases = rng.uniform(0, 2 * np.pi, k)
    periods = rng.uniform(*p["period_frames"], size=k)
    t = np.arange(n_frames)[:, None]
    amplitudes = p["warp_um"] * np.sin(2 * np.pi * t / periods + rng.uniform(0, 2 * np.pi, k))
    return wavevectors, phases, directions, amplitudes


def motion_truth(
    n_frames: int, voxel_size: tuple[float, ...], preset: str = "drift", seed: int = 0, **options
) -> MotionTruth:
    """The displacement of ``preset`` (``options`` override single preset values)."""
    if preset not in MOTION_PRESETS:
        raise ValueError(f"unknown motion preset {preset!r}; valid: {sorted(MOTION_PRESETS)}")
    p = {**_DEFAULTS, **MOTION_PRESETS[preset], **options}
    ndim = len(voxel_size)
    rng = np.random.default_rng(seed + int(p["seed_offset"]))
    rigid = _rigid(rng, n_frames, ndim, p)
    wavevectors, phases, directions, amplitudes = _warp_modes(rng, n_frames, ndim, p)
    return MotionTruth(
        rigid, wavevectors, phases, directions, amplitudes, tuple(voxel_size), preset
    )


def apply_motion(
    movie: Any,
    voxel_size: Any,
    preset: str = "drift",
    seed: int = 0,
    *,
    interpolation: str = "linear",
    callback: ProgressCallback | Progress | None = None,
    **options: Any,
) -> tuple[np.ndarray, MotionTruth]:
    """Move a (T, [Z,] Y, X) movie by a simulated, known displacement.

    Parameters
    ----------
    movie : array-like
        The motion-free movie (NumPy or dask; read a frame at a time).
    voxel_size : sequence of float
        µm per voxel of the spatial axes.
    preset : {"drift", "jumps", "nonrigid", "heldout"}
        The kind of motion (:data:`MOTION_PRESETS`); keyword ``options`` override its values.
    seed : int
    interpolation : {"linear", "cubic"}
        How moved frames are resampled. Linear interpolation blurs each frame by an amount
        that depends on its subpixel shift (a blur real motion does not have); cubic B-spline
        interpolation (``scipy.ndimage.map_coordinates``, order 3) is much sharper.

    Returns
    -------
    moved : numpy.ndarray
        float32 movie, same shape; edges are filled with the nearest voxel.
    truth : MotionTruth
    """
    from napari_mesoscale.motion.register import check_movie

    vs = check_movie(movie, voxel_size)
    if interpolation not in ("linear", "cubic"):
        raise ValueError(f"interpolation must be 'linear' or 'cubic'; got {interpolation!r}.")
    truth = motion_truth(movie.shape[0], vs, preset, seed, **options)
    progress = Progress.wrap(callback)
    moved = np.empty(movie.shape, dtype=np.float32)
    shape = tuple(movie.shape[1:])
    scale = np.asarray(vs).reshape(-1, *([1] * len(shape)))
    for t in range(movie.shape[0]):
        # the field is evaluated at output voxels: moved(p) = movie(p - d(p)), a good
        # approximation of the exact inverse for smooth fields of a few µm
        field = -truth.field_um(t, shape) / scale
        moved[t] = _resample(np.asarray(movie[t], dtype=np.float32), field, interpolation)
        progress.report((t + 1) / movie.shape[0], f"frame {t + 1}/{movie.shape[0]}")
    return moved, truth


def _resample(frame: np.ndarray, field_voxels: np.ndarray, interpolation: str) -> np.ndarray:
    """``frame`` sampled at ``x + field`` (voxels), edges repeated."""
    if interpolation == "linear":
        field = torch.from_numpy(field_voxels.astype(np.float32))
        return _phase.warp(torch.from_numpy(frame)[None], field[None])[0].numpy()
    from scipy import ndimage

    grid = np.indices(frame.shape, dtype=np.float64)
    return ndimage.map_coordinates(frame, grid + field_voxels, order=3, mode="nearest").astype(
        np.float32
    )


def move_toy_brain(
    brain: Any,
    preset: str = "drift",
    seed: int = 0,
    *,
    callback: ProgressCallback | Progress | None = None,
    **options: Any,
) -> tuple[np.ndarray, MotionTruth]:
    """A toy brain's movie as recorded from moving tissue: the scene moves, then shot noise.

    The noise-free photon counts λ of each frame (``MovieRenderer.frame_expected``) are
    sampled at ``p - d(p)`` with cubic B-splines (the scene is smooth: somata blurred by the
    PSF on a smooth background), then each voxel gets the renderer's own noise, N(λ, λ) with
    the frame's seed, the camera offset, rounding and clipping. The motion-free movie
    ``brain.movie`` is the same recording without motion (same noise draws).

    Parameters
    ----------
    brain : ToyBrain
    preset, seed, options
        As :func:`apply_motion`.

    Returns
    -------
    moved : numpy.ndarray
        float32 (T, Z, Y, X) movie of whole photon counts.
    truth : MotionTruth
    """
    from scipy import ndimage

    from napari_mesoscale.synth.render import CAMERA_OFFSET

    renderer = brain._get_renderer()
    shape = tuple(renderer.shape)
    vs = tuple(float(v) for v in brain.voxel_size)
    n_frames = int(brain.n_frames)
    truth = motion_truth(n_frames, vs, preset, seed, **options)
    progress = Progress.wrap(callback)
    scale = np.asarray(vs).reshape(-1, *([1] * len(shape)))
    grid = np.indices(shape, dtype=np.float64)
    moved = np.empty((n_frames, *shape), dtype=np.float32)
    for t in range(n_frames):
        lam = renderer.frame_expected(np.array([t]))[0].reshape(shape)
        where = grid - truth.field_um(t, shape) / scale
        lam = ndimage.map_coordinates(lam, where, order=3, mode="nearest").astype(np.float32)
        np.maximum(lam, 0.0, out=lam)
        noise = np.random.default_rng([renderer.seed, 0xCA, t]).standard_normal(
            lam.size, dtype=np.float32
        )
        frame = lam + np.sqrt(lam) * noise.reshape(shape) + np.float32(CAMERA_OFFSET)
        moved[t] = np.clip(np.rint(frame), 0, 65535)
        progress.report((t + 1) / n_frames, f"frame {t + 1}/{n_frames}")
    return moved, truth
