"""Motion correction of calcium movies: rigid and piecewise non-rigid registration.

:func:`correct_motion` registers every frame of a (T, Z, Y, X) or (T, Y, X) movie to a
reference built from frames spread over the movie and refined (:mod:`.reference`). Shifts are
found by phase correlation (batched FFTs in torch, on the GPU when there is one) with subpixel
peaks; the piecewise non-rigid step (as NoRMCorre and suite2p) finds the shift of overlapping
patches on top of the rigid one and interpolates them linearly between patch centres into a
smooth field. The registered movie is resampled with cubic B-splines by default: linear
interpolation blurs each frame by an amount that depends on its subpixel shift, which shows up
as frame-to-frame changes of ROI means. Frames are read, registered and written batch by
batch, so a dask or Zarr movie is never loaded whole.

Sign convention: a frame whose content moved by ``+d`` µm along an axis (towards higher
indices) has shift ``+d``; the registered frame samples the raw one at ``x + d``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from napari_mesoscale.io.volumes import non_finite_frames_error
from napari_mesoscale.motion._device import pick_device, to_tensor
from napari_mesoscale.motion._registrar import Registrar, batch_size
from napari_mesoscale.motion.params import MotionParams
from napari_mesoscale.motion.reference import refine_reference
from napari_mesoscale.progress import Cancelled, Progress, ProgressCallback

__all__ = ["MotionCancelled", "MotionCorrection", "correct_motion", "check_movie"]

class MotionCancelled(Cancelled):
    """Motion correction was cancelled through its progress callback."""


@dataclass
class MotionCorrection:
    """Result of :func:`correct_motion`.

    Attributes
    ----------
    shifts_um : numpy.ndarray
        (T, ndim) rigid shift of each frame in µm, spatial axes in (z, y, x) order.
    block_shifts_um : numpy.ndarray or None
        (T, *patch counts, ndim) patch shifts on top of the rigid one (non-rigid only).
    block_centres_voxels : tuple of numpy arrays
        Patch centres per axis in voxels (empty when rigid).
    quality : numpy.ndarray
        (T,) correlation of each registered frame with the reference.
    outliers : numpy.ndarray
        (T,) True where the quality is far below the movie's usual quality.
    reference : numpy.ndarray
        The refined reference frame.
    registered : numpy.ndarray or dask.array.Array
        The registered movie (float32): in memory for NumPy input, else backed by the Zarr
        written to ``output``; None when loaded from a saved result.
    voxel_size : tuple of float
    parameters : dict
    """

    shifts_um: np.ndarray
    block_shifts_um: np.ndarray | None
    block_centres_voxels: tuple[np.ndarray, ...]
    quality: np.ndarray
    outliers: np.ndarray
    reference: np.ndarray
    registered: Any
    voxel_size: tuple[float, ...]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.shifts_um.shape[0])

    def displacement_at(self, frame: int, positions_um: np.ndarray) -> np.ndarray:
        """Estimated displacement (µm) of the tissue at reference positions (N, ndim) µm."""
        positions = np.atleast_2d(np.asarray(positions_um, dtype=float))
        total = np.repeat(self.shifts_um[frame][None], len(positions), axis=0)
        if self.block_shifts_um is None:
            return total
        from napari_mesoscale.motion._blocks import interpolation_weights

        voxels = positions / np.asarray(self.voxel_size)
        kind = self.parameters.get("field_interpolation", "linear")
        weights = [
            interpolation_weights(centres, voxels[:, axis], kind)
            for axis, centres in enumerate(self.block_centres_voxels)
        ]
        blocks = self.block_shifts_um[frame]  # (*counts, ndim)
        letters = "abcdefgh"[: len(weights)]
        spec = ",".join(f"n{c}" for c in letters) + f",{letters}k->nk"
        return total + np.einsum(spec, *weights, blocks)

    def to_table(self) -> pd.DataFrame:
        """One row per frame: rigid shifts (µm), largest patch shift, quality, outlier."""
        axes = "zyx"[-self.shifts_um.shape[1] :]
        table = pd.DataFrame({"frame": np.arange(self.n_frames)})
        for i, axis in enumerate(axes):
            table[f"shift_{axis}_um"] = self.shifts_um[:, i]
        if self.block_shifts_um is not None:
            flat = self.block_shifts_um.reshape(self.n_frames, -1, self.shifts_um.shape[1])
            table["max_block_shift_um"] = np.linalg.norm(flat, axis=-1).max(axis=1)
        table["quality"] = self.quality
        table["outlier"] = self.outliers
        return table

    def to_arrays(self, prefix: str = "motion_") -> dict[str, np.ndarray]:
        """The shifts, quality and reference as named arrays (for a results bundle)."""
        arrays = {
            "shifts_um": self.shifts_um,
            "quality": self.quality,
            "outliers": self.outliers,
            "reference": self.reference,
            "voxel_size": np.asarray(self.voxel_size, dtype=float),
        }
        if self.block_shifts_um is not None:
            arrays["block_shifts_um"] = self.block_shifts_um
            kind = self.parameters.get("field_interpolation", "linear")
            arrays["field_cubic"] = np.asarray(kind == "cubic")
            for i, centres in enumerate(self.block_centres_voxels):
                arrays[f"block_centres_{i}"] = np.asarray(centres, dtype=float)
        return {prefix + k: np.asarray(v) for k, v in arrays.items()}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, Any], prefix: str = "motion_"
    ) -> MotionCorrection | None:
        """Rebuild what :meth:`to_arrays` wrote (without the registered movie); None if absent."""
        if prefix + "shifts_um" not in arrays:
            return None
        get = {k[len(prefix) :]: np.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
        ndim = get["shifts_um"].shape[1]
        return cls(
            shifts_um=get["shifts_um"],
            block_shifts_um=get.get("block_shifts_um"),
            block_centres_voxels=tuple(
                get[f"block_centres_{i}"] for i in range(ndim) if f"block_centres_{i}" in get
            ),
            quality=get["quality"],
            outliers=get["outliers"].astype(bool),
            reference=get["reference"],
            registered=None,
            voxel_size=tuple(float(v) for v in get["voxel_size"]),
            parameters={"field_interpolation": "cubic" if get.get("field_cubic") else "linear"},
        )

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``motion_shifts.csv`` (per frame) and ``motion_blocks.npz`` into ``folder``."""
        from napari_mesoscale.io import atomic_path, write_table

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_table(self.to_table(), folder / "motion_shifts.csv")
        with atomic_path(folder / "motion_blocks.npz") as temporary:
            with open(temporary, "wb") as handle:
                np.savez(
                    handle,
                    shifts_um=self.shifts_um,
                    block_shifts_um=self.block_shifts_um
                    if self.block_shifts_um is not None
                    else np.zeros(0),
                    voxel_size=np.asarray(self.voxel_size),
                    field_cubic=self.parameters.get("field_interpolation") == "cubic",
                    **{f"block_centres_{i}": c for i, c in enumerate(self.block_centres_voxels)},
                )
        return folder


def check_movie(movie: Any, voxel_size: Any) -> tuple[float, ...]:
    """Validate a (T, [Z,] Y, X) movie and its voxel size; return the voxel size as floats."""
    from napari_mesoscale.io import check_voxel_size

    ndim = getattr(movie, "ndim", None)
    if ndim not in (3, 4):
        shape = getattr(movie, "shape", None)
        raise ValueError(f"movie must be (T, Z, Y, X) or (T, Y, X); got an array of shape {shape}.")
    if movie.shape[0] < 2:
        raise ValueError(f"movie has {movie.shape[0]} frame(s); registration needs at least 2.")
    try:
        return check_voxel_size(voxel_size, ndim - 1)
    except ValueError as error:
        raise ValueError(
            f"voxel_size does not match a movie of shape {tuple(movie.shape)}: {error}"
        ) from None


def _read(movie: Any, index: Any, device: torch.device) -> torch.Tensor:
    frames = to_tensor(movie[index], device)
    # a finite sum means finite frames (NaN and inf propagate); the elementwise test only
    # runs when the sum is not finite, which a huge but finite movie could also give
    if not torch.isfinite(frames.sum()) and not torch.isfinite(frames).all():
        raise non_finite_frames_error(_first_non_finite_frame(frames, index, movie.shape[0]))
    return frames


def _first_non_finite_frame(frames: torch.Tensor, index: Any, n_frames: int) -> int:
    """The movie's index of the first frame read by ``movie[index]`` that is not all finite."""
    if not isinstance(index, slice):
        return int(index)
    start, _, step = index.indices(n_frames)
    finite = torch.isfinite(frames.reshape(frames.shape[0], -1)).all(dim=1)
    return start + step * int(torch.nonzero(~finite)[0, 0])


def _flag_outliers(quality: np.ndarray, n_mad: float) -> np.ndarray:
    median = np.median(quality)
    spread = 1.4826 * np.median(np.abs(quality - median))
    return quality < median - n_mad * max(spread, 1e-3 * abs(median))


def correct_motion(
    movie: Any,
    *,
    voxel_size: Any,
    params: MotionParams | None = None,
    output: str | os.PathLike | None = None,
    reference: np.ndarray | None = None,
    callback: ProgressCallback | Progress | None = None,
    frame_rate: float | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> MotionCorrection:
    """Register a calcium movie: rigid and piecewise non-rigid, to a refined reference.

    Parameters
    ----------
    movie : array-like
        (T, Z, Y, X) or (T, Y, X): NumPy, dask or Zarr array; read batch by batch.
    voxel_size : sequence of float
        µm per voxel of the spatial axes, (z, y, x) or (y, x).
    params : MotionParams, optional
        All options; keyword ``overrides`` (e.g. ``nonrigid=False``) replace single fields.
    output : path, optional
        Write the registered movie to this Zarr folder (float32, one uncompressed chunk per
        frame), its ``voxel_size`` (µm), ``axes`` and ``frame_rate`` (if given) in the array's
        attributes, which :func:`napari_mesoscale.io.read_volume` reads back (napari opens it
        at the movie's scale). By default NumPy movies are registered in memory; other (lazy)
        movies need ``output``.
    reference : numpy.ndarray, optional
        A reference frame to use instead of building one.
    callback : callable, optional
        Progress / cancel (:mod:`napari_mesoscale.progress`); cancelling raises
        :class:`MotionCancelled`.
    frame_rate : float, optional
        Frames per second of the movie, written with ``output`` (nothing else uses it).
    overwrite : bool
        Replace an existing ``output``; only a Zarr store is ever replaced, and never the
        movie's own store. Without it an existing, non-empty ``output`` is refused.

    Returns
    -------
    MotionCorrection
    """
    vs = check_movie(movie, voxel_size)
    params = (params or MotionParams()).merged(**overrides).validate()
    progress = Progress.wrap(callback, MotionCancelled)
    lazy = not isinstance(movie, np.ndarray)
    if lazy and output is None:
        raise ValueError(
            "a lazy (dask / Zarr) movie is registered to disk: pass output='registered.zarr'."
        )
    if output is not None:
        output = check_registered_output(output, movie, overwrite)
    device = pick_device(params.device)
    with torch.inference_mode():
        ref = _reference(
            movie, vs, params, reference, device, progress.stage(0.0, 0.15, "reference")
        )
        registrar = Registrar(ref, vs, params)
        stage = progress.stage(0.15, 1.0, "registering")
        if output is None:
            registered = np.empty(movie.shape, dtype=np.float32)
            results = _register_all(movie, registrar, registered, params, stage)
        else:
            attributes = {"voxel_size": list(vs), "axes": "T" + "ZYX"[-len(vs) :]}
            if frame_rate is not None:
                attributes["frame_rate"] = float(frame_rate)
            results, registered = _register_to_zarr(
                movie, registrar, Path(output), params, stage, attributes
            )
    return _result(results, registrar, registered, vs, params, lazy)


def check_registered_output(
    output: str | os.PathLike,
    movie: Any,
    overwrite: bool,
    sources: tuple[str | os.PathLike | None, ...] = (),
    overwrite_hint: str = "pass overwrite=True",
) -> Path:
    """Refuse an ``output`` that is the movie's own store (or holds one of ``sources``, e.g.
    the file a layer was opened from), that exists without ``overwrite`` (the message says to
    ``overwrite_hint``), or that exists and is not a Zarr store (what is not ours is never
    replaced). Returns it as a Path.

    Raises
    ------
    ValueError
        Naming the path and what to do instead.
    """
    from napari_mesoscale.io.outputs import check_output

    inputs = [_store_root(movie), *sources]
    output = check_output(output, inputs, overwrite=overwrite, option="output",
                          overwrite_hint=overwrite_hint)
    if output.exists() and not _is_zarr_store(output):
        raise ValueError(
            f"output {output} exists and is not a Zarr store; it is never replaced. Choose a "
            "new path for the registered movie, e.g. registered.zarr."
        )
    return output


def _store_root(movie: Any) -> str | None:
    """The folder of a Zarr-backed movie (None for others)."""
    root = getattr(getattr(movie, "store", None), "root", None)
    return None if root is None else str(root)


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in (".zarray", ".zgroup", "zarr.json")
    )


def _reference(movie, vs, params, given, device, progress) -> torch.Tensor:
    if given is not None:
        given = np.asarray(given, dtype=np.float32)
        if given.shape != tuple(movie.shape[1:]):
            raise ValueError(
                f"reference has shape {given.shape}; the movie's frames are {movie.shape[1:]}."
            )
        return to_tensor(given, device)
    n = min(params.n_reference_frames, movie.shape[0])
    index = np.unique(np.linspace(0, movie.shape[0] - 1, n).round().astype(int))
    frames = torch.stack([_read(movie, int(i), device) for i in index])
    return refine_reference(frames, vs, params, progress)


def _register_all(movie, registrar, sink, params, progress) -> dict[str, list]:
    """Register batch by batch; a helper thread reads the next batch and writes the last one
    while this one is registered (Zarr I/O releases the GIL), at most one batch each way."""
    results: dict[str, list] = {"rigid": [], "blocks": [], "quality": []}
    n_frames = movie.shape[0]
    batch = batch_size(params, registrar.shape)
    starts = list(range(0, n_frames, batch))
    with ThreadPoolExecutor(max_workers=1) as io:
        pending_read = io.submit(_read, movie, slice(0, batch), registrar.device)
        pending_write = None
        for start in starts:
            stop = min(start + batch, n_frames)
            frames = pending_read.result()
            if stop < n_frames:
                pending_read = io.submit(
                    _read, movie, slice(stop, stop + batch), registrar.device
                )
            out = registrar.register(frames)
            registered = out["registered"].cpu().numpy()
            if pending_write is not None:
                pending_write.result()
            pending_write = io.submit(sink.__setitem__, slice(start, stop), registered)
            for key in results:
                if key in out:
                    results[key].append(out[key].cpu().numpy())
            progress.report(stop / n_frames, f"frames {stop}/{n_frames}", frames_done=stop)
        pending_write.result()
    return results


def _register_to_zarr(movie, registrar, path: Path, params, progress, attributes=None):
    import dask.array as da
    import zarr

    from napari_mesoscale.io import atomic_path

    with atomic_path(path, directory=True) as temporary:
        sink = zarr.open_array(
            str(temporary),
            mode="w",
            shape=movie.shape,
            dtype="float32",
            chunks=(1, *movie.shape[1:]),
            zarr_format=2,
            # registered float32 frames hardly compress, and Zstd tripled the writes' CPU time
            compressor=None,
        )
        # the movie's voxel size (and frame rate) with it: opened in napari, a registered
        # movie without them came back at 1 µm per voxel, off the cells detected on it
        sink.attrs.update(attributes or {})
        results = _register_all(movie, registrar, sink, params, progress)
    return results, da.from_zarr(str(path))


def _result(results, registrar, registered, vs, params, lazy) -> MotionCorrection:
    scale = np.asarray(vs)
    shifts = np.concatenate(results["rigid"]) * scale
    blocks = None
    centres: tuple[np.ndarray, ...] = ()
    if results["blocks"]:
        blocks = np.concatenate(results["blocks"]) * scale
        centres = registrar.blocks.centres
    quality = np.concatenate(results["quality"])
    return MotionCorrection(
        shifts_um=shifts,
        block_shifts_um=blocks,
        block_centres_voxels=centres,
        quality=quality,
        outliers=_flag_outliers(quality, params.outlier_mad),
        reference=registrar.reference.cpu().numpy(),
        registered=registered,
        voxel_size=vs,
        parameters={**params.to_dict(), "device": str(registrar.device), "lazy_input": lazy},
    )
