"""Point sources from calcium movies: summary images, 3D detection, ROIs, traces, dF/F.

The movie is read in slabs of frames, so a dask array larger than memory is never loaded
whole: one pass computes the summary images, a second pass extracts the traces.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_mesoscale.io import check_voxel_size, is_lazy
from napari_mesoscale.io.volumes import non_finite_frames_error
from napari_mesoscale.progress import Progress
from napari_mesoscale.segment.deconvolve import deconvolve_traces
from napari_mesoscale.segment.params import DetectionParams, renamed_keyword
from napari_mesoscale.segment.sources import DetectionCancelled, PointSources, empty_features

#: bytes of float32 data per slab of frames read at a time
SLAB_BYTES = 256 * 2**20

#: lowest detection threshold (noise units) considered by threshold="auto"
AUTO_FLOOR = 7.0

#: ratio of the two Gaussians of the difference-of-Gaussians detector
DOG_RATIO = 1.6


# -- input checks -----------------------------------------------------------------------
def _check_movie(movie: Any, voxel_size: Any) -> tuple[Any, tuple[float, float, float], bool]:
    """Validate ``movie`` and ``voxel_size``; return a (T, Z, Y, X) view, 3 voxel sizes, 2D?"""
    shape = getattr(movie, "shape", None)
    if shape is None:
        movie = np.asarray(movie)
        shape = movie.shape
    ndim = len(shape)
    if ndim not in (3, 4):
        raise ValueError(
            f"movie must be (T, Z, Y, X) for volumes or (T, Y, X) for a single plane; got "
            f"{ndim} dimensions with shape {tuple(shape)}. Put time first and drop channel axes "
            "(e.g. movie[:, 0])."
        )
    dtype = np.dtype(getattr(movie, "dtype", np.float32))
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise ValueError(f"movie must hold numbers; got dtype {dtype}.")
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError("movie must be real-valued; got a complex array.")
    is_plane = ndim == 3
    if is_plane:
        n_given = (
            len(np.atleast_1d(np.asarray(voxel_size, dtype=float))) if voxel_size is not None else 0
        )
        vs = check_voxel_size(voxel_size, ndim=3 if n_given == 3 else 2)
        vs3 = (vs[0], vs[1], vs[2]) if len(vs) == 3 else (1.0, vs[0], vs[1])
        movie = movie[:, None]
    else:
        vs3 = check_voxel_size(voxel_size, ndim=3)
    return movie, vs3, is_plane


def _check_diameter(cell_diameter: float, vs3: tuple[float, ...], is_plane: bool) -> float:
    try:
        d = float(cell_diameter)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cell_diameter must be a number in µm; got {cell_diameter!r}.") from error
    finest = min(vs3[1:]) if is_plane else min(vs3)
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"cell_diameter must be a positive number of µm; got {cell_diameter}.")
    if d < finest:
        raise ValueError(
            f"cell_diameter {d} µm is smaller than one voxel ({finest} µm): cells cannot be "
            "resolved. Check that cell_diameter and voxel_size are both in µm."
        )
    if d < 3 * finest:
        warnings.warn(
            f"cell_diameter {d} µm spans fewer than 3 voxels ({finest} µm); detection will be "
            "unreliable.",
            stacklevel=3,
        )
    return d


def _check_diameter_fits(d: float, spatial_shape: tuple[int, ...], vs3: Any) -> None:
    """A cell must fit in the movie: refuse before any ellipsoid or filter is allocated."""
    extents = [n * v for n, v in zip(spatial_shape, vs3, strict=True) if n > 1]
    largest = max(extents, default=0.0)
    if d > largest:
        raise ValueError(
            f"cell_diameter={d:g} µm is larger than the movie itself (largest extent "
            f"{largest:g} µm, shape {tuple(spatial_shape)} at voxel size {list(vs3)} µm); use a "
            f"cell_diameter between {min(vs3):g} and {largest:g} µm (typically 5–15 µm)."
        )


# -- reading the movie in slabs -------------------------------------------------------------
def time_slabs(movie: Any, slab_frames: int | None = None) -> list[tuple[int, int]]:
    """Frame ranges ``[(t0, t1), ...]`` covering the movie, aligned to dask chunks if any."""
    n_frames = int(movie.shape[0])
    voxels = int(np.prod(movie.shape[1:])) if len(movie.shape) > 1 else 1
    if slab_frames is None:
        slab_frames = max(1, SLAB_BYTES // max(4 * voxels, 1))
    slab_frames = max(1, int(slab_frames))
    if is_lazy(movie):
        bounds = np.cumsum((0, *movie.chunks[0]))
        slabs, t0 = [], 0
        for t1 in bounds[1:]:
            if t1 - t0 >= slab_frames or t1 == n_frames:
                slabs.append((int(t0), int(t1)))
                t0 = int(t1)
        return slabs
    return [(t0, min(t0 + slab_frames, n_frames)) for t0 in range(0, n_frames, slab_frames)]


def _read_slab(movie: Any, t0: int, t1: int) -> np.ndarray:
    block = movie[t0:t1]
    if is_lazy(block):
        block = block.compute()
    return np.asarray(block)


def _check_finite(block: np.ndarray, t0: int) -> None:
    if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
        bad = int(np.argwhere(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0, 0])
        raise non_finite_frames_error(t0 + bad)


# -- summary images ----------------------------------------------------------------------
def summary_images(
    movie: Any,
    *,
    bin_frames: int | None = None,
    slab_frames: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
    null_image: bool = False,
) -> dict[str, np.ndarray]:
    """Mean, maximum, standard deviation and local correlation images, in one pass over time.

    Parameters
    ----------
    movie : array_like or dask.array.Array
        (T, Z, Y, X) movie (a (T, Y, X) plane is treated as Z = 1). Read in slabs of frames.
    bin_frames : int, optional
        The correlation image is computed on sums of ``bin_frames`` consecutive frames, which
        keeps calcium transients (slower than a few frames) and cuts the cost; by default
        ``min(4, T // 100)`` (at least 1).
    slab_frames : int, optional
        Frames per slab; by default about 256 MiB of float32 per slab (dask: whole chunks).
    callback : callable or Progress, optional
        Progress callback (:mod:`napari_mesoscale.progress`), told after every slab.
    progress_span : (float, float)
        Deprecated: the part of the callback's 0..1 this call covers (pass
        ``Progress.stage(start, end)`` as the callback instead).
    null_image : bool
        Also return ``null``: the mean of the first and last quarters of the movie minus the
        mean of the two middle quarters, scaled to the noise of the mean image. It holds the
        movie's own noise, spatially and temporally correlated as it is, without the steady
        image (cells, background) and without a linear drift: detection calibrates its
        noise level on it.

    Returns
    -------
    dict
        ``mean``, ``max``, ``std`` (over single frames) and ``correlation`` (float32, spatial
        shape). The local correlation image is, for each voxel, the mean temporal Pearson
        correlation with its face neighbours (2 per axis); it is high in active cells and near
        0 in pure noise.
    """
    if movie.ndim == 3:
        movie = movie[:, None]
    n_frames = int(movie.shape[0])
    spatial = tuple(int(s) for s in movie.shape[1:])
    n_voxels = int(np.prod(spatial))
    if bin_frames is None:
        bin_frames = max(1, min(4, n_frames // 100))
    bin_frames = max(1, int(bin_frames))
    axes = [a for a in range(3) if spatial[a] > 1]
    s1 = np.zeros(n_voxels, dtype=np.float64)
    s2 = np.zeros(n_voxels, dtype=np.float64)
    split = np.zeros(n_voxels, dtype=np.float64) if null_image else None
    frame_signs = _split_signs(n_frames)
    b1 = np.zeros(spatial, dtype=np.float64)
    b2 = np.zeros(spatial, dtype=np.float64)
    n_bins = 0
    vmax = None
    cross = {a: np.zeros(_shortened(spatial, a), dtype=np.float64) for a in axes}
    reference = None
    carry = np.zeros((0, n_voxels), dtype=np.float32)
    slabs = time_slabs(movie, slab_frames)
    progress = Progress.wrap(callback, DetectionCancelled).stage(*progress_span)
    for k, (t0, t1) in enumerate(slabs):
        block = _read_slab(movie, t0, t1)
        _check_finite(block, t0)
        flat = block.reshape(t1 - t0, n_voxels)
        slab_max = flat.max(axis=0)
        vmax = slab_max if vmax is None else np.maximum(vmax, slab_max)
        x = flat.astype(np.float32)
        del block, flat
        if reference is None:
            reference = x.mean(axis=0)
        # raw moments in float32 per slab (few frames), accumulated in float64
        s1 += x.sum(axis=0)
        s2 += np.einsum("ij,ij->j", x, x)
        if split is not None:
            split += frame_signs[t0:t1] @ x
        # correlation statistics on binned frames (a remainder carries to the next slab)
        if bin_frames > 1 or len(carry):
            x = np.concatenate([carry, x]) if len(carry) else x
            n_full = (len(x) // bin_frames) * bin_frames
            last = k == len(slabs) - 1
            carry = x[n_full:].copy() if not last else np.zeros((0, n_voxels), np.float32)
            xb = x[:n_full].reshape(-1, bin_frames, n_voxels).mean(axis=1)
            if last and n_full < len(x):  # a short final bin
                xb = np.concatenate([xb, x[n_full:].mean(axis=0, keepdims=True)])
        else:
            xb = x  # moments of x are taken: it may be centred in place
        del x
        if len(xb):
            xb -= reference  # centred, so that products stay small (float32 accuracy)
            xb = xb.reshape(-1, *spatial)
            n_bins += len(xb)
            b1 += xb.sum(axis=0)
            b2 += np.einsum("i...,i...->...", xb, xb)
            for a in axes:
                lo_slice = _axis_slice(a + 1, slice(0, -1))
                hi_slice = _axis_slice(a + 1, slice(1, None))
                cross[a] += np.einsum("i...,i...->...", xb[lo_slice], xb[hi_slice])
        del xb
        progress.report((k + 1) / len(slabs), f"frames {t1}/{n_frames}")
    mean = s1 / n_frames
    std = np.sqrt(np.maximum(s2 / n_frames - mean**2, 0.0))
    bmean = b1 / max(n_bins, 1)
    bstd = np.sqrt(np.maximum(b2 / max(n_bins, 1) - bmean**2, 0.0))
    corr_sum = np.zeros(spatial, dtype=np.float64)
    corr_count = np.zeros(spatial, dtype=np.float64)
    for a in axes:
        lo_slice = _axis_slice(a, slice(0, -1))
        hi_slice = _axis_slice(a, slice(1, None))
        cov = cross[a] / max(n_bins, 1) - bmean[lo_slice] * bmean[hi_slice]
        denom = bstd[lo_slice] * bstd[hi_slice]
        ok = denom > 1e-12 * max(float(bstd.max()), 1e-300) ** 2
        r = np.zeros_like(cov)
        np.divide(cov, denom, out=r, where=ok)
        r = np.clip(r, -1.0, 1.0)
        corr_sum[lo_slice] += r
        corr_sum[hi_slice] += r
        corr_count[lo_slice] += 1
        corr_count[hi_slice] += 1
    correlation = corr_sum / np.maximum(corr_count, 1)
    if vmax is None:
        vmax = np.zeros(n_voxels, np.float32)
    images = {
        "mean": mean.astype(np.float32).reshape(spatial),
        "max": vmax.astype(np.float32).reshape(spatial),
        "std": std.astype(np.float32).reshape(spatial),
        "correlation": correlation.astype(np.float32),
    }
    if split is not None:
        images["null"] = split.astype(np.float32).reshape(spatial)
    return images


def _split_signs(n_frames: int) -> np.ndarray:
    """Per frame, +w in the first and last quarters, -w in the middle two (ABBA, so a linear
    drift cancels), w chosen so that the signed sum of white noise has the variance of the
    mean of all frames."""
    quarter = (4 * np.arange(n_frames)) // max(n_frames, 1)
    outer = (quarter == 0) | (quarter == 3)
    n_a, n_b = int(outer.sum()), int(n_frames - outer.sum())
    if n_a == 0 or n_b == 0:
        return np.zeros(n_frames, dtype=np.float32)
    # var(mean_a - mean_b) = s² (1/n_a + 1/n_b); var(mean) = s² / T
    scale = 1.0 / math.sqrt(n_frames * (1.0 / n_a + 1.0 / n_b))
    return np.where(outer, scale / n_a, -scale / n_b).astype(np.float32)


def _shortened(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    out = list(shape)
    out[axis] -= 1
    return tuple(out)


def _axis_slice(axis: int, sl: slice) -> tuple[slice, ...]:
    return (slice(None),) * axis + (sl,)


# -- detection ---------------------------------------------------------------------------
def _dog_noise_gain(sigma: np.ndarray, ratio: float) -> float:
    """L2 norm of the discrete difference-of-Gaussians kernel (white-noise gain)."""
    aa = ab = bb = 1.0
    for s in sigma:
        if s <= 0:
            continue
        half = int(math.ceil(4 * ratio * s)) + 1
        delta = np.zeros(2 * half + 1)
        delta[half] = 1.0
        ka = ndimage.gaussian_filter1d(delta, s, mode="constant")
        kb = ndimage.gaussian_filter1d(delta, ratio * s, mode="constant")
        aa *= float(ka @ ka)
        ab *= float(ka @ kb)
        bb *= float(kb @ kb)
    return math.sqrt(max(aa - 2 * ab + bb, 1e-12))


def _axis_kernel_products(n: int, s: float, ratio: float) -> tuple[np.ndarray, ...]:
    """Per position along one axis of ``n`` voxels: the squared norm of the narrow and of the
    wide Gaussian filter row and their inner product, with scipy's ``reflect`` border (the
    kernel folds back at the border, so a border voxel sees its neighbours twice)."""
    if s <= 0 or n == 1:
        ones = np.ones(n)
        return ones, ones, ones
    reach = int(4.0 * ratio * s + 0.5) + 1  # beyond this, no folding
    m = min(n, 2 * reach + 1)
    eye = np.eye(m)
    ka = ndimage.gaussian_filter1d(eye, s, axis=0, mode="reflect")
    kb = ndimage.gaussian_filter1d(eye, ratio * s, axis=0, mode="reflect")
    products = [(ka * ka).sum(axis=1), (ka * kb).sum(axis=1), (kb * kb).sum(axis=1)]
    if m == n:
        return tuple(products)
    out = []
    for short in products:
        full = np.full(n, short[reach])
        full[:reach] = short[:reach]
        full[n - reach :] = short[m - reach :]
        out.append(full)
    return tuple(out)


def dog_noise_map(shape: tuple[int, ...], sigma: np.ndarray, ratio: float) -> np.ndarray:
    """Standard deviation, per voxel, of the difference of Gaussians of unit white noise.

    Inside the volume it is :func:`_dog_noise_gain`; within a kernel's reach of a face it is
    larger (up to about twice at a corner), because the ``reflect`` border counts the noise of
    the voxels near the face twice. Dividing by this map, not by the interior value, keeps
    noise at the faces from passing for cells.
    """
    norms = [1.0, 1.0, 1.0]  # squared narrow, cross, squared wide
    for axis, (n, s) in enumerate(zip(shape, sigma, strict=True)):
        view = [1] * len(shape)
        view[axis] = n
        for k, values in enumerate(_axis_kernel_products(int(n), float(s), ratio)):
            norms[k] = norms[k] * values.reshape(view)
    variance = norms[0] - 2 * norms[1] + norms[2]
    return np.sqrt(np.maximum(variance, 1e-12)).astype(np.float32)


def blob_response(
    image: np.ndarray,
    *,
    voxel_size: tuple[float, float, float],
    cell_diameter: float,
    scales: tuple[float, ...] = (0.8,),
    noise: float | Sequence[float] = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale-space difference-of-Gaussians response to bright cell-sized blobs.

    Gaussian widths are set in µm (``scale * radius / sqrt(ndim)``, the width at which the
    Laplacian of Gaussian responds most to a ball of that radius) and converted to voxels
    per axis, so anisotropic voxels are honoured. Each scale's response is divided by the
    response of the filter to white noise of standard deviation ``noise`` (one value, or one
    per scale), voxel by voxel (:func:`dog_noise_map`: the faces see more noise), so the
    result is a z-score; the maximum over scales is returned with the index of the winning
    scale.
    """
    vs = np.asarray(voxel_size, dtype=float)
    n_dims = int(np.sum(np.asarray(image.shape) > 1))
    radius = cell_diameter / 2.0
    noises = np.broadcast_to(np.asarray(noise, dtype=float), (len(scales),))
    best = None
    best_scale = None
    image = image.astype(np.float32, copy=False)
    for k, scale in enumerate(scales):
        sigma_um = scale * radius / math.sqrt(max(n_dims, 1))
        sigma = np.where(np.asarray(image.shape) > 1, sigma_um / vs, 0.0)
        narrow = ndimage.gaussian_filter(image, sigma, mode="reflect")
        wide = ndimage.gaussian_filter(image, DOG_RATIO * sigma, mode="reflect")
        narrow -= wide
        del wide
        narrow /= dog_noise_map(image.shape, sigma, DOG_RATIO)
        narrow /= np.float32(noises[k])
        if best is None:
            best = narrow
            best_scale = np.zeros(image.shape, dtype=np.int8)
        else:
            better = narrow > best
            best[better] = narrow[better]
            best_scale[better] = k
    return best, best_scale


def robust_sd(values: np.ndarray) -> float:
    """Standard deviation from the median absolute deviation (Gaussian-consistent)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


_MAX_OFFSETS = 20_000_000  # voxels in one ellipsoid's box: ~0.5 GB of int64 offsets


def _ellipsoid_offsets(radius_um: float, voxel_size: np.ndarray, shape: tuple[int, ...]):
    half = np.floor(radius_um / np.asarray(voxel_size, float) + 1e-9)
    half = np.where(np.asarray(shape) > 1, half, 0)
    if float(np.prod(2 * half + 1)) > _MAX_OFFSETS:
        raise ValueError(
            f"a radius of {radius_um:g} µm spans {int(np.prod(2 * half + 1)):,} voxels at voxel "
            f"size {list(np.asarray(voxel_size, float))} µm (limit {_MAX_OFFSETS:,}); "
            "cell_diameter (or roi_radius / neuropil_radii) is far too large for this data."
        )
    half = half.astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) for h in half), indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    dist = np.sqrt(((offsets * voxel_size) ** 2).sum(axis=1))
    keep = dist <= radius_um + 1e-9
    return offsets[keep], dist[keep]


def find_peaks(
    response: np.ndarray,
    *,
    voxel_size: tuple[float, float, float],
    min_distance: float,
    threshold: float,
) -> np.ndarray:
    """Local maxima of ``response`` above ``threshold``, at least ``min_distance`` µm apart.

    Candidates are maxima within a box of half-width ``min_distance / 2``; then greedy
    non-maximum suppression in µm keeps the strongest of any closer pair. Returns (K, 3)
    integer voxel indices sorted by decreasing response.
    """
    vs = np.asarray(voxel_size, dtype=float)
    half = np.floor(0.5 * min_distance / vs).astype(int)
    size = tuple(int(2 * h + 1) if s > 1 else 1 for h, s in zip(half, response.shape, strict=True))
    local_max = ndimage.maximum_filter(response, size=size, mode="nearest")
    peaks = np.argwhere((response >= local_max) & (response > threshold))
    if len(peaks) == 0:
        return peaks.reshape(0, 3)
    values = response[tuple(peaks.T)]
    order = np.argsort(-values, kind="stable")
    peaks = peaks[order]
    tree = cKDTree(peaks * vs)
    alive = np.ones(len(peaks), dtype=bool)
    for i in range(len(peaks)):
        if not alive[i]:
            continue
        for j in tree.query_ball_point(peaks[i] * vs, r=min_distance - 1e-9):
            if j > i:
                alive[j] = False
    return peaks[alive]


def _refine(response: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-voxel peak positions by a parabola through each peak and its axis neighbours."""
    refined = peaks.astype(float)
    shape = np.asarray(response.shape)
    for axis in range(3):
        if shape[axis] < 3:
            continue
        lo = peaks.copy()
        hi = peaks.copy()
        lo[:, axis] = np.maximum(peaks[:, axis] - 1, 0)
        hi[:, axis] = np.minimum(peaks[:, axis] + 1, shape[axis] - 1)
        f0 = response[tuple(peaks.T)]
        fm = response[tuple(lo.T)]
        fp = response[tuple(hi.T)]
        curvature = fm - 2 * f0 + fp
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.where(curvature < 0, 0.5 * (fm - fp) / curvature, 0.0)
        refined[:, axis] += np.clip(np.nan_to_num(delta), -0.5, 0.5)
    return refined


def auto_threshold(
    values: np.ndarray, *, floor: float, separation: float = 3.5, min_gap: float = 0.3
) -> float:
    """Threshold between background peaks and cells, from the peak responses themselves.

    Otsu's method splits ``log10`` of the responses above ``floor`` in two. The split is used
    only when the two classes are truly two populations: an empty gap of at least ``min_gap``
    decades between them, or Ashman's D of at least ``separation`` (Otsu's split of a single
    Gaussian gives D ~ 2.7, so a lower bar would cut one population of cells in two).
    Otherwise the threshold is ``floor``.
    """
    from skimage.filters import threshold_otsu

    values = np.asarray(values, dtype=float)
    values = values[values > floor]
    if len(values) < 4:
        return float(floor)
    logs = np.log10(values)
    if np.ptp(logs) <= 0:
        return float(floor)
    split = threshold_otsu(logs)
    low, high = logs[logs <= split], logs[logs > split]
    if len(low) < 2 or len(high) < 2:
        return float(floor)
    gap_lo, gap_hi = low.max(), high.min()
    spread = math.sqrt(low.var() + high.var())
    ashman = math.sqrt(2.0) * (high.mean() - low.mean()) / max(spread, 1e-12)
    if gap_hi - gap_lo < min_gap and ashman < separation:
        return float(floor)
    # the middle of the empty gap around Otsu's split
    return float(max(floor, 10 ** (0.5 * (gap_lo + gap_hi))))


# -- ROIs and neuropil -------------------------------------------------------------------
def _patches(centres: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...], batch: int = 512):
    """Yield (ids, flat indices, valid) of ``offsets`` around rounded ``centres``."""
    shape_arr = np.asarray(shape)
    for b0 in range(0, len(centres), batch):
        ids = np.arange(b0, min(b0 + batch, len(centres)))
        vox = centres[ids][:, None, :] + offsets[None, :, :]
        valid = np.all((vox >= 0) & (vox < shape_arr), axis=-1)
        vox = np.clip(vox, 0, shape_arr - 1)
        flat = np.ravel_multi_index((vox[..., 0], vox[..., 1], vox[..., 2]), shape)
        yield ids, flat, valid


def roi_masks(
    centres: np.ndarray,
    detection_image: np.ndarray,
    *,
    voxel_size: tuple[float, float, float],
    roi_radius: float,
    neuropil_radii: tuple[float, float],
    max_neuropil_voxels: int = 400,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """ROI labels by seeded watershed within ``roi_radius``, and neuropil annuli.

    The watershed runs on the negated ``detection_image`` from one seed per centre, restricted
    to voxels within ``roi_radius`` µm of a centre where the image is positive. Voxels within
    ``roi_radius`` of two or more centres are claimed by two cells and left out. The neuropil
    of a cell is the annulus ``neuropil_radii`` (inner, outer) µm around its centre, minus all
    voxels within the inner radius of any cell (at most ``max_neuropil_voxels``, drawn at
    random with a fixed seed).

    Returns
    -------
    labels : numpy.ndarray
        (Z, Y, X) int32, label ``i + 1`` for centre ``i``.
    neuropil : list of numpy.ndarray
        Flat voxel indices of each cell's annulus.
    """
    from skimage.segmentation import watershed

    shape = detection_image.shape
    vs = np.asarray(voxel_size, dtype=float)
    n_voxels = int(np.prod(shape))
    seeds = np.clip(np.rint(centres).astype(np.int64), 0, np.asarray(shape) - 1)
    claims = np.zeros(n_voxels, dtype=np.int16)
    offsets, _ = _ellipsoid_offsets(roi_radius, vs, shape)
    for _ids, flat, valid in _patches(seeds, offsets, shape):
        np.add.at(claims, flat[valid], 1)
    inner_offsets, _ = _ellipsoid_offsets(neuropil_radii[0], vs, shape)
    occupied = np.zeros(n_voxels, dtype=bool)
    for _ids, flat, valid in _patches(seeds, inner_offsets, shape):
        occupied[flat[valid]] = True
    markers = np.zeros(shape, dtype=np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1, dtype=np.int32)
    mask = (claims.reshape(shape) >= 1) & (detection_image > 0)
    mask[tuple(seeds.T)] = True
    labels = watershed(-detection_image, markers=markers, mask=mask).astype(np.int32)
    labels.reshape(-1)[claims >= 2] = 0
    outer_offsets, outer_dist = _ellipsoid_offsets(neuropil_radii[1], vs, shape)
    ring = outer_dist > neuropil_radii[0]
    outer_offsets = outer_offsets[ring]
    neuropil: list[np.ndarray] = []
    rng = np.random.default_rng(0)
    for _ids, flat, valid in _patches(seeds, outer_offsets, shape):
        for row, ok in zip(flat, valid, strict=True):
            voxels = row[ok]
            voxels = voxels[~occupied[voxels]]
            if len(voxels) > max_neuropil_voxels:  # a random subset estimates the mean well
                voxels = np.sort(rng.choice(voxels, max_neuropil_voxels, replace=False))
            neuropil.append(voxels)
    return labels, neuropil


def extract_traces(
    movie: Any,
    labels: np.ndarray,
    neuropil: list[np.ndarray] | None = None,
    *,
    slab_frames: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean fluorescence per frame of each ROI (label i + 1) and of each neuropil annulus.

    Only the voxels of ROIs and annuli are gathered from each slab of frames, so the
    cost is one read of the movie plus a sparse product.

    Returns
    -------
    traces : numpy.ndarray
        (N, T) float32 ROI means (NaN for an empty ROI).
    neuropil_traces : numpy.ndarray or None
        (N, T) float32 annulus means (NaN for an empty annulus), or None without annuli.
    """
    if movie.ndim == labels.ndim + 1 and movie.ndim == 3:
        movie = movie[:, None]
        labels = labels[None]
    n_frames = int(movie.shape[0])
    flat_labels = labels.reshape(-1)
    n_cells = int(flat_labels.max()) if flat_labels.size else 0
    roi_voxels = np.flatnonzero(flat_labels)
    roi_ids = flat_labels[roi_voxels].astype(np.int64) - 1
    pieces = [roi_voxels]
    if neuropil is not None:
        pieces.extend(neuropil)
    gather = np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, np.int64)
    column = np.searchsorted(gather, roi_voxels)
    roi_matrix = _mean_matrix(roi_ids, column, n_cells, len(gather))
    np_matrix = None
    if neuropil is not None:
        ids = np.concatenate([np.full(len(v), i, np.int64) for i, v in enumerate(neuropil)])
        cols = np.searchsorted(gather, np.concatenate(neuropil)) if len(ids) else ids
        np_matrix = _mean_matrix(ids, cols, len(neuropil), len(gather))
    traces = np.zeros((n_cells, n_frames), dtype=np.float32)
    np_traces = None if np_matrix is None else np.zeros((np_matrix.shape[0], n_frames), np.float32)
    slabs = time_slabs(movie, slab_frames)
    progress = Progress.wrap(callback, DetectionCancelled).stage(*progress_span)
    for k, (t0, t1) in enumerate(slabs):
        block = _read_slab(movie, t0, t1).reshape(t1 - t0, -1)
        sub = block[:, gather].astype(np.float32)
        del block
        _check_finite(sub, t0)
        traces[:, t0:t1] = roi_matrix @ sub.T
        if np_matrix is not None:
            np_traces[:, t0:t1] = np_matrix @ sub.T
        progress.report((k + 1) / len(slabs), f"frames {t1}/{n_frames}")
    traces[_empty_rows(roi_matrix)] = np.nan
    if np_traces is not None:
        np_traces[_empty_rows(np_matrix)] = np.nan
    return traces, np_traces


def _mean_matrix(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    counts = np.bincount(rows, minlength=n_rows).astype(np.float64)
    weights = 1.0 / np.maximum(counts[rows], 1.0)
    return sp.csr_matrix(
        (weights.astype(np.float32), (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32
    )


def _empty_rows(matrix: sp.csr_matrix) -> np.ndarray:
    return np.diff(matrix.indptr) == 0


# -- dF/F ----------------------------------------------------------------------------------
def running_percentile(traces: np.ndarray, window: int, percentile: float = 8.0) -> np.ndarray:
    """Running ``percentile`` of each row over ``window`` frames (a slow baseline).

    Evaluated every ``window // 4`` frames on a centred window and interpolated linearly in
    between, which is accurate for a baseline that changes slowly compared with ``window``.
    """
    traces = np.asarray(traces, dtype=np.float64)
    n, t = traces.shape
    if t == 0 or n == 0:
        return traces.copy()
    window = int(min(max(window, 3), t))
    step = max(1, window // 4)
    centres = np.arange(0, t, step)
    if centres[-1] != t - 1:
        centres = np.append(centres, t - 1)
    half = window // 2
    padded = np.pad(traces, ((0, 0), (half, half)), mode="reflect" if t > half else "edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=1)[:, centres]
    finite = np.isfinite(traces).all(axis=1)
    values = np.full((n, len(centres)), np.nan)
    if finite.any():
        values[finite] = np.percentile(windows[finite], percentile, axis=-1)
    if not finite.all():
        values[~finite] = np.nanpercentile(windows[~finite], percentile, axis=-1)
    out = np.empty_like(traces)
    frames = np.arange(t)
    for i in range(n):
        out[i] = np.interp(frames, centres, values[i])
    return out


def compute_dff(
    traces: np.ndarray,
    neuropil: np.ndarray | None,
    *,
    neuropil_coefficient: float = 0.7,
    baseline_window_s: float | None = None,
    frame_rate: float | None = None,
    baseline_percentile: float = 8.0,
    baseline_window: int | None = None,
) -> np.ndarray:
    """dF/F of neuropil-corrected traces (rows: sources, columns: frames).

    ``F = roi - c * (neuropil - median(neuropil))``: the neuropil's fluctuations are removed
    with coefficient ``c`` while its median level is kept, so ``F`` stays on the ROI's own
    scale (subtracting the level too would leave ``F0`` near zero whenever the neuropil is
    as bright as the cell). ``F0`` is the running ``baseline_percentile`` of ``F`` over
    ``baseline_window_s`` seconds at ``frame_rate`` (without a frame rate: a quarter of the
    recording, at least 10 frames), floored at 10 % of the ROI's median raw fluorescence,
    and dF/F is ``(F - F0) / F0``.

    ``baseline_window`` (a number of frames) is the deprecated old name of the window.
    """
    traces = np.asarray(traces, dtype=np.float64)
    window = baseline_window_frames(
        traces.shape[1], baseline_window_s, frame_rate, old_frames=baseline_window
    )
    corrected = traces.copy()
    if neuropil is not None and neuropil_coefficient:
        np_fill = np.where(np.isfinite(neuropil), neuropil, 0.0)
        corrected = traces - neuropil_coefficient * np_fill
        # keep the neuropil's mean level so that F stays on the ROI's scale
        corrected += neuropil_coefficient * np.nanmedian(np_fill, axis=1, keepdims=True)
    f0 = running_percentile(corrected, window, baseline_percentile)
    raw_f0 = np.nanmedian(traces, axis=1, keepdims=True)
    floor = 0.1 * np.abs(raw_f0) + 1e-6
    f0 = np.maximum(f0, floor)
    return ((corrected - f0) / f0).astype(np.float32)


def baseline_window_frames(
    n_frames: int,
    baseline_window_s: float | None,
    frame_rate: float | None,
    *,
    old_frames: int | None = None,
) -> int:
    """The baseline window in frames: ``baseline_window_s * frame_rate``.

    Without a frame rate the window is a quarter of the recording (at least 10 frames).
    ``old_frames`` is a window given in frames under the deprecated name ``baseline_window``.
    """
    if old_frames is not None:
        warnings.warn(
            "compute_dff(baseline_window=<frames>) is deprecated; give baseline_window_s= "
            "(seconds) and frame_rate= instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        return int(old_frames)
    if frame_rate:
        seconds = (
            DetectionParams().baseline_window_s if baseline_window_s is None else baseline_window_s
        )
        return int(round(float(seconds) * float(frame_rate)))
    return max(n_frames // 4, 10)


def _noise_sd(x: np.ndarray) -> np.ndarray:
    """Robust per-row noise level from frame-to-frame differences."""
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    diff = np.diff(x, axis=1)
    return (
        1.4826
        * np.nanmedian(np.abs(diff - np.nanmedian(diff, axis=1, keepdims=True)), axis=1)
        / math.sqrt(2)
    )


# -- the whole pipeline ----------------------------------------------------------------------
_DETECTION_FIELDS = frozenset(DetectionParams.specs())


def detect_point_sources(
    movie: Any,
    *,
    voxel_size: Any,
    cell_diameter: float | None = None,
    frame_rate: float | None = None,
    threshold: float | str | None = None,
    min_distance: float | None = None,
    min_activity: float | None = None,
    scales: tuple[float, ...] | None = None,
    roi_radius: float | None = None,
    neuropil_radii: tuple[float, float] | None = None,
    neuropil_coefficient: float | None = None,
    baseline_window_s: float | None = None,
    baseline_percentile: float | None = None,
    deconvolve: bool | None = None,
    tau: float | None = None,
    slab_frames: int | None = None,
    params: DetectionParams | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    baseline_window: float | None = None,
    register_motion: bool | str = False,
    registered_output: Any = None,
) -> PointSources:
    """Find cells in a calcium movie and extract their traces.

    Parameters
    ----------
    movie : array_like or dask.array.Array
        (T, Z, Y, X) volumes over time or (T, Y, X) planes. Dask arrays are read slab by slab
        (twice: summary images, then traces) and never loaded whole.
    voxel_size : sequence of float
        Voxel size in µm, (z, y, x); (y, x) or (z, y, x) for a plane (the result of a plane
        keeps (y, x)).
    cell_diameter, frame_rate, threshold, min_distance, min_activity, scales, roi_radius, \
neuropil_radii, neuropil_coefficient, baseline_window_s, baseline_percentile, deconvolve, tau, \
slab_frames
        The detection parameters: fields of
        :class:`~napari_mesoscale.segment.params.DetectionParams`, which gives each one's
        meaning, unit, default and valid range. ``None`` takes the value from ``params``.
    params : DetectionParams, optional
        All parameters at once; explicit keyword arguments override it.
    callback : callable, optional
        Progress callback (:mod:`napari_mesoscale.progress`): called with ``fraction``,
        ``message`` and ``stage`` (summary images, detecting cells, growing ROIs, traces,
        dF/F); returning False (or raising) stops the run with
        :class:`~napari_mesoscale.segment.DetectionCancelled`.
    baseline_window : float, optional
        Deprecated name of ``baseline_window_s`` (it was already in seconds).
    register_motion : True, False or "auto"
        Register the movie first (:func:`napari_mesoscale.motion.register_if_moving`);
        ``"auto"`` does so when a quick estimate finds more than half a voxel of motion. The
        correction is kept on the result (``sources.motion``) and saved with it.
    registered_output : path, optional
        Zarr folder for the registered movie (needed when registering a lazy movie).

    Returns
    -------
    PointSources
        Positions (µm), ROI labels, raw traces, neuropil traces, dF/F, optional rates (all
        (T, N)), features (id, size, brightness, snr) and the summary images.

    Raises
    ------
    ValueError
        Wrong number of dimensions, a voxel size of the wrong length, non-positive values,
        a cell diameter below one voxel, a parameter out of its range, or NaN / infinite
        values in the movie.
    """
    baseline_window_s = renamed_keyword(
        "baseline_window_s", baseline_window_s, "baseline_window", baseline_window
    )
    p = (params or DetectionParams()).merged(
        **{k: v for k, v in locals().items() if k in _DETECTION_FIELDS}
    )
    progress = Progress.wrap(callback, DetectionCancelled)
    movie, motion = _register_first(movie, voxel_size, register_motion, registered_output, progress)
    if motion is not None:
        progress = progress.stage(0.1, 1.0, "detecting")
    run = _prepare_run(movie, voxel_size, p)
    if int(np.prod(run.movie.shape)) == 0:
        return _no_sources(run, progress, f"the movie is empty (shape {tuple(movie.shape)}).")
    images = summary_images(
        run.movie,
        slab_frames=p.slab_frames,
        callback=progress.stage(0.0, 0.45, "summary images"),
        null_image=True,
    )
    null = images.pop("null")
    cells = _find_cells(run, images, null, progress.stage(0.45, 0.52, "detecting cells"))
    if isinstance(cells, str):
        return _no_sources(run, progress, cells, images)
    _grow_rois(run, cells, progress.stage(0.52, 0.55, "growing ROIs"))
    traces, np_traces = extract_traces(
        run.movie,
        cells["labels"],
        cells["annuli"],
        slab_frames=p.slab_frames,
        callback=progress.stage(0.55, 0.95, "traces"),
    )
    dff, rates = _dff_and_rates(run, traces, np_traces, progress.stage(0.95, 1.0, "dF/F"))
    progress.report(1.0, f"{len(cells['centres'])} point sources")
    return PointSources(
        positions=_positions_um(run, cells["centres"]),
        labels=cells["labels"].reshape(run.out_shape),
        voxel_size=tuple(run.out_vs),
        features=_source_features(run, images, cells, dff),
        traces=traces.T,
        neuropil=None if np_traces is None else np_traces.T,
        dff=dff.T,
        rates=None if rates is None else rates.T,
        summary_images={k: v.reshape(run.out_shape) for k, v in images.items()},
        parameters=run.record,
        motion=motion,
    )


def _register_first(movie, voxel_size, register_motion, output, progress: Progress):
    """The movie to detect on and its MotionCorrection (None when not registered)."""
    if register_motion is False:
        return movie, None
    from napari_mesoscale.motion.pipeline import register_if_moving

    spatial = tuple(np.ravel(np.asarray(voxel_size, dtype=float)))[-(movie.ndim - 1) :]
    registered, motion, _ = register_if_moving(
        movie,
        voxel_size=spatial,
        register=register_motion,
        output=output,
        callback=progress.stage(0.0, 0.1, "correcting motion"),
    )
    return registered, motion


@dataclass
class _Run:
    """The checked inputs of one :func:`detect_point_sources` run."""

    movie: Any  # (T, Z, Y, X)
    vs3: tuple[float, float, float]
    is_plane: bool
    params: DetectionParams
    record: dict[str, Any]  # JSON-able parameters, stored with the result

    @property
    def n_frames(self) -> int:
        return int(self.movie.shape[0])

    @property
    def out_vs(self) -> tuple[float, ...]:
        return self.vs3[1:] if self.is_plane else self.vs3

    @property
    def out_shape(self) -> tuple[int, ...]:
        spatial = tuple(int(s) for s in self.movie.shape[1:])
        return spatial[1:] if self.is_plane else spatial


def _prepare_run(movie: Any, voxel_size: Any, p: DetectionParams) -> _Run:
    """Check the movie and parameters; fill the defaults that depend on the cell diameter."""
    movie4, vs3, is_plane = _check_movie(movie, voxel_size)
    d = _check_diameter(p.cell_diameter, vs3, is_plane)
    _check_diameter_fits(d, movie4.shape[1:], vs3)
    radii = p.neuropil_radii if p.neuropil_radii is not None else (0.75 * d, 1.5 * d)
    inner, outer = (float(r) for r in radii)
    if not 0 < inner < outer:
        raise ValueError(
            f"neuropil_radii must be (inner, outer) with 0 < inner < outer; got {radii}."
        )
    if p.frame_rate is not None and not p.frame_rate > 0:
        raise ValueError(f"frame_rate must be positive (frames per second); got {p.frame_rate}.")
    if isinstance(p.threshold, str) and p.threshold != "auto":
        raise ValueError(f"threshold must be a number or 'auto'; got {p.threshold!r}.")
    p = p.replace(
        cell_diameter=d,
        min_distance=0.5 * d if p.min_distance is None else float(p.min_distance),
        roi_radius=0.5 * d if p.roi_radius is None else float(p.roi_radius),
        neuropil_radii=(inner, outer),
    ).validate()
    record = {"voxel_size": list(vs3[1:] if is_plane else vs3), **p.to_dict()}
    record.pop("slab_frames")
    return _Run(movie4, vs3, is_plane, p, record)


def _no_sources(
    run: _Run, progress: Progress, reason: str, images: dict[str, np.ndarray] | None = None
) -> PointSources:
    run.record["no_sources_reason"] = reason
    warnings.warn(f"No point sources: {reason}", stacklevel=3)
    progress.report(1.0, f"no point sources: {reason}")
    empty_series = np.zeros((run.n_frames, 0), np.float32)
    return PointSources(
        positions=np.zeros((0, 3)),
        labels=np.zeros(run.out_shape, dtype=np.int32),
        voxel_size=tuple(run.out_vs),
        features=empty_features(),
        traces=empty_series,
        neuropil=empty_series.copy(),
        dff=empty_series.copy(),
        rates=empty_series.copy() if run.params.deconvolve else None,
        summary_images={k: v.reshape(run.out_shape) for k, v in (images or {}).items()},
        parameters=run.record,
    )


def _find_cells(
    run: _Run, images: dict[str, np.ndarray], null: np.ndarray, progress: Progress
) -> dict[str, np.ndarray] | str:
    """Candidate centres: peaks of the blob response above the threshold (or why none)."""
    p = run.params
    std = images["std"]
    if not np.any(std > 0):
        return "the movie does not change over time (constant), so no cell is active."
    progress.report(0.0)
    white = float(np.median(std[std > 0])) / math.sqrt(run.n_frames)
    blob = {"voxel_size": run.vs3, "cell_diameter": p.cell_diameter, "scales": tuple(p.scales)}
    response, _ = blob_response(images["mean"], noise=white, **blob)
    background = _background_voxels(response > AUTO_FLOOR, run.vs3, 0.5 * p.cell_diameter)
    noises = _calibrated_noise(run, null, white, background)
    run.record["noise_correction"] = [round(n / white, 4) for n in noises]
    if max(noises) > white:
        response, _ = blob_response(images["mean"], noise=noises, **blob)
    if isinstance(p.threshold, str):
        candidates = find_peaks(
            response, voxel_size=run.vs3, min_distance=p.min_distance, threshold=AUTO_FLOOR
        )
        used_threshold = auto_threshold(response[tuple(candidates.T)], floor=AUTO_FLOOR)
        peaks = candidates[response[tuple(candidates.T)] > used_threshold]
    else:
        used_threshold = float(p.threshold)
        peaks = find_peaks(
            response, voxel_size=run.vs3, min_distance=p.min_distance, threshold=used_threshold
        )
    run.record["threshold_used"] = used_threshold
    if len(peaks) == 0:
        chosen = ", chosen automatically" if isinstance(p.threshold, str) else ""
        return (
            f"no cell-sized object above the threshold ({used_threshold:.3g} noise units"
            f"{chosen}); lower the threshold or check the cell diameter "
            f"({p.cell_diameter:g} µm) and the voxel size."
        )
    activity = _activity_z(run, images["correlation"], peaks, background)
    if p.min_activity is not None:
        active = activity >= p.min_activity
        run.record["n_inactive_dropped"] = int(np.sum(~active))
        peaks, activity = peaks[active], activity[active]
        if len(peaks) == 0:
            return (
                f"no blob above the threshold is active (activity_z >= {p.min_activity}); "
                "lower `min_activity` or give None to keep silent blobs."
            )
    progress.report(1.0, f"{len(peaks)} cells")
    return {
        "response": response,
        "peaks": peaks,
        "centres": _refine(response, peaks),
        "activity": activity,
    }


def _calibrated_noise(
    run: _Run, null: np.ndarray, white: float, background: np.ndarray
) -> list[float]:
    """Noise of the mean image, per scale, as the blob filter sees it.

    ``white`` (the median temporal standard deviation over sqrt(T)) is right for noise that
    is white in space and time. Noise correlated in space (interpolation, registration, a
    blurred camera) or in time (slow fluctuations) gives the filtered mean image more
    variance than that, and its texture passes for cells. The null image (the movie's own
    noise with the steady image removed, :func:`summary_images`) filtered at each scale
    measures it, on the ``background`` only (voxels away from blobs above the detection
    floor), since a cell's activity changes between the quarters of the movie and would pass
    for noise. The larger of the two levels is used, so white noise keeps its level.
    """
    p = run.params
    noises = []
    for scale in p.scales:
        null_z, _ = blob_response(
            null, voxel_size=run.vs3, cell_diameter=p.cell_diameter, scales=(scale,), noise=white
        )
        factor = robust_sd(null_z[background])
        noises.append(white * max(1.0, factor if np.isfinite(factor) else 1.0))
    return noises


def _background_voxels(strong: np.ndarray, vs3: tuple[float, ...], reach_um: float) -> np.ndarray:
    """Voxels farther than ``reach_um`` (per axis) from any ``strong`` voxel; all voxels when
    that leaves under a tenth of the volume (a movie packed with cells)."""
    half = np.floor(reach_um / np.asarray(vs3, dtype=float)).astype(int)
    size = tuple(int(2 * h + 1) if n > 1 else 1 for h, n in zip(half, strong.shape, strict=True))
    background = ~ndimage.maximum_filter(strong, size=size, mode="constant")
    if background.sum() < 0.1 * background.size:
        return np.ones_like(background)
    return background


def _grow_rois(run: _Run, cells: dict[str, Any], progress: Progress) -> None:
    """Add ROI ``labels``, neuropil ``annuli`` and ROI ``sizes`` to ``cells``.

    A source whose every voxel was claimed by closer sources has no trace: it is dropped.
    """
    p = run.params
    progress.report(0.0, f"{len(cells['centres'])} cells")
    labels, annuli = roi_masks(
        cells["centres"],
        cells["response"],
        voxel_size=run.vs3,
        roi_radius=p.roi_radius,
        neuropil_radii=p.neuropil_radii,
    )
    sizes = np.bincount(labels.reshape(-1), minlength=len(cells["centres"]) + 1)[1:]
    keep = sizes > 0
    if not np.all(keep):
        remap = np.zeros(len(keep) + 1, dtype=np.int32)
        remap[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        labels = remap[labels]
        for key in ("centres", "peaks", "activity"):
            cells[key] = cells[key][keep]
        sizes = sizes[keep]
        annuli = [a for a, k in zip(annuli, keep, strict=True) if k]
    cells.update(labels=labels, annuli=annuli, sizes=sizes)
    progress.report(1.0, f"{len(sizes)} ROIs")


def _dff_and_rates(
    run: _Run, traces: np.ndarray, np_traces: np.ndarray | None, progress: Progress
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, T) dF/F and, when asked, deconvolved event rates."""
    p = run.params
    progress.report(0.0)
    dff = compute_dff(
        traces,
        np_traces,
        neuropil_coefficient=p.neuropil_coefficient,
        baseline_window_s=p.baseline_window_s,
        frame_rate=p.frame_rate,
        baseline_percentile=p.baseline_percentile,
    )
    rates = None
    if p.deconvolve:
        progress.report(0.2, "deconvolving")
        rates = deconvolve_traces(dff, frame_rate=p.frame_rate or 1.0, tau=p.tau)
        rates = rates.astype(np.float32)
    return dff, rates


def _source_features(
    run: _Run, images: dict[str, np.ndarray], cells: dict[str, Any], dff: np.ndarray
) -> pd.DataFrame:
    """id, size, brightness (mean image in the ROI), snr (of the dF/F), blob response (z-score
    against the calibrated noise of the mean image) and its one-sided Gaussian ``p_value``."""
    from scipy.stats import norm

    n_cells = len(cells["centres"])
    brightness = ndimage.mean(
        images["mean"].reshape(-1), cells["labels"].reshape(-1), index=np.arange(1, n_cells + 1)
    )
    noise_sd = _noise_sd(dff.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.nanpercentile(dff, 99, axis=1) / noise_sd
    response = cells["response"][tuple(cells["peaks"].T)].astype(float)
    return pd.DataFrame(
        {
            "id": np.arange(1, n_cells + 1, dtype=np.int64),
            "size": cells["sizes"].astype(np.int64),
            "brightness": np.asarray(brightness, dtype=float),
            "snr": np.nan_to_num(snr.astype(float), nan=0.0, posinf=0.0),
            "response": response,
            "p_value": norm.sf(response),
            "activity_z": cells["activity"].astype(float),
        }
    )


def _activity_z(
    run: _Run, correlation: np.ndarray, peaks: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """How active each source is: the local correlation image averaged over a box of the ROI
    radius at its peak, in robust standard deviations above the same average over the
    background (voxels away from any bright blob). A bright but silent blob (a static texture,
    or the template that registering noise imprints on the mean image) scores near 0; an
    active cell scores high."""
    half = np.floor(run.params.roi_radius / np.asarray(run.vs3, dtype=float)).astype(int)
    size = tuple(int(2 * h + 1) for h in half)
    local = ndimage.uniform_filter(correlation.astype(np.float32), size=size, mode="reflect")
    spread = robust_sd(local[background])
    if not spread > 0:
        return np.zeros(len(peaks))
    centre = float(np.median(local[background]))
    return ((local[tuple(peaks.T)] - centre) / spread).astype(float)


def _positions_um(run: _Run, centres: np.ndarray) -> np.ndarray:
    positions = centres * np.asarray(run.vs3)
    if run.is_plane:
        positions[:, 0] = 0.0
    return positions
