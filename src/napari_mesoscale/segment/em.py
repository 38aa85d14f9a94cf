"""Somata in EM volumes: a classical pipeline, the U-Net probability path, and label volumes.

Classical pipeline (:func:`detect_somata_em`): downsample to about ``resolution`` µm, measure
the soma / nucleus contrast as local edge energy (the plasma membrane, the nuclear envelope
and the nucleus against bright cytoplasm make somata the strongest textured bodies of their
size), threshold it, open and fill holes, take the distance transform, split touching bodies
by a seeded watershed on it, and keep bodies of soma size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage

from napari_mesoscale.io import check_voxel_size
from napari_mesoscale.segment.calcium import _ellipsoid_offsets, _is_dask, find_peaks
from napari_mesoscale.segment.sources import PointSources, empty_features, report

if TYPE_CHECKING:  # pragma: no cover
    from napari_mesoscale.segment.unet import SomaDetector


# -- shared helpers -----------------------------------------------------------------------
def check_em_volume(volume: Any, voxel_size: Any) -> tuple[Any, tuple[float, float, float]]:
    """Validate a (Z, Y, X) EM volume and its voxel size; returns the volume and voxel size."""
    shape = getattr(volume, "shape", None)
    if shape is None:
        volume = np.asarray(volume)
        shape = volume.shape
    if len(shape) != 3:
        raise ValueError(
            f"EM volume must be 3D (Z, Y, X); got {len(shape)} dimensions with shape "
            f"{tuple(shape)}. For a single section, add an axis: volume[None]."
        )
    dtype = np.dtype(getattr(volume, "dtype", np.float32))
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise ValueError(f"EM volume must hold numbers; got dtype {dtype}.")
    vs = check_voxel_size(voxel_size, ndim=3)
    return volume, vs


def downsample_factors(voxel_size: tuple[float, ...], resolution: float) -> np.ndarray:
    """Integer block sizes that bring each axis to at most ``resolution`` µm (at least 1)."""
    if not resolution > 0:
        raise ValueError(f"resolution must be a positive number of µm; got {resolution}.")
    return np.maximum(1, np.floor(resolution / np.asarray(voxel_size) + 1e-6)).astype(int)


def downsample(volume: Any, factors: np.ndarray) -> np.ndarray:
    """Block mean by integer ``factors`` (trailing partial blocks are dropped); float32.

    Works block by block on dask arrays (``dask.array.coarsen``), so only the small result
    is held in memory.
    """
    factors = tuple(int(f) for f in factors)
    crop = tuple(slice(0, (s // f) * f) for s, f in zip(volume.shape, factors, strict=True))
    cropped = volume[crop]
    if _is_dask(cropped):
        import dask.array as da

        cropped = cropped.astype(np.float32)
        if any(f > 1 for f in factors):
            cropped = da.coarsen(np.mean, cropped, dict(enumerate(factors)), trim_excess=True)
        return np.asarray(cropped.compute(), dtype=np.float32)
    array = np.asarray(cropped, dtype=np.float32)
    if all(f == 1 for f in factors):
        return array
    shape = []
    for s, f in zip(array.shape, factors, strict=True):
        shape.extend([s // f, f])
    return array.reshape(shape).mean(axis=(1, 3, 5), dtype=np.float32)


def upsample_labels(labels: np.ndarray, factors: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``labels`` by ``factors``, padded to ``shape``."""
    out = labels
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, int(f), axis=axis)
    pad = [(0, max(0, s - o)) for s, o in zip(shape, out.shape, strict=True)]
    if any(p[1] for p in pad):
        out = np.pad(out, pad, mode="edge")
    return np.ascontiguousarray(out[: shape[0], : shape[1], : shape[2]])


def _ball(radius_um: float, voxel_size: np.ndarray) -> np.ndarray:
    offsets, _ = _ellipsoid_offsets(radius_um, voxel_size, (3, 3, 3))
    half = np.abs(offsets).max(axis=0)
    footprint = np.zeros(2 * half + 1, dtype=bool)
    footprint[tuple((offsets + half).T)] = True
    return footprint


def soma_contrast(
    image: np.ndarray, voxel_size: tuple[float, ...], scale: float = 1.0
) -> np.ndarray:
    """Local edge energy at ``scale`` µm: ``sqrt(G * (x - G * x)^2)`` with Gaussians of width
    ``scale`` µm. High on and around membranes, nuclear envelopes and nuclei of somata."""
    sigma = scale / np.asarray(voxel_size, dtype=float)
    image = image.astype(np.float32, copy=False)
    high = image - ndimage.gaussian_filter(image, sigma)
    np.square(high, out=high)
    return np.sqrt(ndimage.gaussian_filter(high, sigma))


def split_bodies(
    mask: np.ndarray,
    *,
    voxel_size: tuple[float, ...],
    soma_diameter: float,
    min_distance: float | None = None,
    shrink: float = 0.0,
) -> np.ndarray:
    """Label a foreground mask into bodies: distance transform, peaks, seeded watershed.

    Voxels closer than ``shrink`` µm to the mask's border are left out of the bodies (the
    halo a smoothed contrast image adds around each soma).
    """
    from skimage.segmentation import watershed

    vs = np.asarray(voxel_size, dtype=float)
    dist = ndimage.distance_transform_edt(mask, sampling=vs).astype(np.float32)
    if shrink > 0:
        mask = dist > shrink
    min_distance = 0.5 * soma_diameter if min_distance is None else min_distance
    peaks = find_peaks(
        dist, voxel_size=tuple(vs), min_distance=min_distance, threshold=0.2 * soma_diameter
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    if len(peaks):
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    return watershed(-dist, markers=markers, mask=mask).astype(np.int32)


def _label_measures(labels: np.ndarray, voxel_size: tuple[float, ...]) -> pd.DataFrame:
    """Per label: voxel count, centroid (µm), volume, equivalent diameter, elongation."""
    vs = np.asarray(voxel_size, dtype=float)
    flat = labels.reshape(-1).astype(np.int64)
    ids = np.unique(flat)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return pd.DataFrame(
            columns=[
                "label",
                "size",
                "z_um",
                "y_um",
                "x_um",
                "volume_um3",
                "diameter_um",
                "elongation",
            ]
        )
    lookup = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    lookup[ids] = np.arange(len(ids))
    inside = flat > 0
    index = lookup[flat[inside]]
    coords = np.unravel_index(np.flatnonzero(inside), labels.shape)
    n = len(ids)
    count = np.bincount(index, minlength=n).astype(float)
    first = [
        np.bincount(index, weights=c * v, minlength=n) / count
        for c, v in zip(coords, vs, strict=True)
    ]
    second = np.zeros((n, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            m = (
                np.bincount(index, weights=(coords[a] * vs[a]) * (coords[b] * vs[b]), minlength=n)
                / count
                - first[a] * first[b]
            )
            second[:, a, b] = second[:, b, a] = m
    # a voxel is a box, not a point: add its own second moment so single voxels are not flat
    second += np.diag(vs**2 / 12.0)[None]
    eig = np.clip(np.linalg.eigvalsh(second), 1e-12, None)
    volume = count * float(np.prod(vs))
    return pd.DataFrame(
        {
            "label": ids,
            "size": count.astype(np.int64),
            "z_um": first[0],
            "y_um": first[1],
            "x_um": first[2],
            "volume_um3": volume,
            "diameter_um": (6.0 * volume / math.pi) ** (1.0 / 3.0),
            "elongation": np.sqrt(eig[:, -1] / eig[:, 0]),
        }
    )


def _sources_from_bodies(
    bodies: np.ndarray,
    *,
    voxel_size: tuple[float, ...],
    keep: np.ndarray,
    measures: pd.DataFrame,
    brightness: np.ndarray,
    snr: np.ndarray,
    out_labels: Callable[[np.ndarray], np.ndarray],
    out_voxel_size: tuple[float, ...],
    parameters: dict[str, Any],
    summary_images: dict[str, np.ndarray],
) -> PointSources:
    kept = measures[keep].reset_index(drop=True)
    remap = np.zeros(int(bodies.max()) + 1 if bodies.size else 1, dtype=np.int32)
    remap[kept["label"].to_numpy()] = np.arange(1, len(kept) + 1, dtype=np.int32)
    relabelled = out_labels(remap[bodies])
    features = pd.DataFrame(
        {
            "id": np.arange(1, len(kept) + 1, dtype=np.int64),
            "size": np.bincount(relabelled.reshape(-1), minlength=len(kept) + 1)[1:].astype(
                np.int64
            ),
            "brightness": np.asarray(brightness, dtype=float)[keep],
            "snr": np.asarray(snr, dtype=float)[keep],
            "volume_um3": kept["volume_um3"].to_numpy(),
            "diameter_um": kept["diameter_um"].to_numpy(),
            "elongation": kept["elongation"].to_numpy(),
        }
    )
    return PointSources(
        positions=kept[["z_um", "y_um", "x_um"]].to_numpy(dtype=float).reshape(-1, 3),
        labels=relabelled,
        voxel_size=tuple(out_voxel_size),
        features=features,
        summary_images=summary_images,
        parameters=parameters,
    )


# -- from raw EM ------------------------------------------------------------------------------
def detect_somata_em(
    volume: Any,
    *,
    voxel_size: Any,
    soma_diameter: float = 8.0,
    resolution: float = 1.0,
    threshold: float | str = "auto",
    detector: SomaDetector | None = None,
    probability_threshold: float = 0.7,
    size_range: tuple[float, float] = (0.5, 1.6),
    opening_radius: float | None = None,
    full_resolution_labels: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> PointSources:
    """Find somata in a raw EM volume.

    Parameters
    ----------
    volume : array_like or dask.array.Array
        (Z, Y, X) EM intensities. Dask arrays are downsampled block by block.
    voxel_size : sequence of float
        Voxel size in µm, (z, y, x).
    soma_diameter : float
        Typical soma diameter in µm.
    resolution : float
        Working voxel size in µm; each axis is block-averaged by an integer factor to at most
        this size.
    threshold : float or "auto"
        Threshold of the soma contrast image (edge energy, intensity units); ``"auto"`` uses
        Otsu's method. Ignored when a ``detector`` is given.
    detector : SomaDetector, optional
        A trained U-Net (:func:`train_soma_detector`); its soma probability, thresholded at
        ``probability_threshold``, replaces the contrast threshold.
    probability_threshold : float
        Soma probability above which a voxel belongs to a soma (U-Net path). 0.7 keeps the
        confident core and drops the uncertain rim that would join touching somata.
    size_range : (float, float)
        Kept bodies have an equivalent diameter between these multiples of ``soma_diameter``.
    opening_radius : float, optional
        Radius (µm) of the morphological opening that cuts thin structures from the mask
        (default: half the working voxel size, at least 0.5 µm).
    full_resolution_labels : bool
        Return labels on the input grid (True) or on the working grid.
    callback : callable, optional
        Progress callback ``{"fraction", "message"}``; returning False stops.

    Returns
    -------
    PointSources
        Soma centres (µm), labels, features (id, size, brightness, snr = mean contrast over the
        background's median contrast, volume_um3, diameter_um, elongation); no traces.
    """
    volume, vs = check_em_volume(volume, voxel_size)
    d = float(soma_diameter)
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"soma_diameter must be a positive number of µm; got {soma_diameter}.")
    if d < min(vs):
        raise ValueError(
            f"soma_diameter {d} µm is smaller than one voxel ({min(vs)} µm); check units (µm)."
        )
    lo_size, hi_size = (float(s) for s in size_range)
    if not 0 <= lo_size < hi_size:
        raise ValueError(f"size_range must be (low, high) with 0 <= low < high; got {size_range}.")
    factors = downsample_factors(vs, resolution)
    work_vs = tuple(float(v) for v in np.asarray(vs) * factors)
    shape = tuple(int(s) for s in volume.shape)
    parameters = {
        "voxel_size": list(vs),
        "soma_diameter": d,
        "resolution": resolution,
        "threshold": threshold,
        "method": "unet" if detector is not None else "classical",
        "probability_threshold": probability_threshold,
        "size_range": [lo_size, hi_size],
        "working_voxel_size": list(work_vs),
    }
    out_vs = vs if full_resolution_labels else work_vs

    def empty(reason: str, images: dict[str, np.ndarray] | None = None) -> PointSources:
        warnings.warn(f"No somata: {reason}", stacklevel=3)
        report(callback, 1.0, f"no somata: {reason}")
        out_shape = (
            shape
            if full_resolution_labels
            else tuple(s // f for s, f in zip(shape, factors, strict=True))
        )
        return PointSources(
            positions=np.zeros((0, 3)),
            labels=np.zeros(out_shape, dtype=np.int32),
            voxel_size=tuple(out_vs),
            features=empty_features(),
            summary_images=images or {},
            parameters=parameters,
        )

    if int(np.prod(shape)) == 0 or any(s < f for s, f in zip(shape, factors, strict=True)):
        return empty(f"the volume is empty or smaller than one working voxel (shape {shape}).")
    report(callback, 0.0, "downsampling")
    image = downsample(volume, factors)
    if not np.all(np.isfinite(image)):
        raise ValueError("EM volume contains NaN or infinite values; replace them first.")
    if float(image.max()) == float(image.min()):
        return empty("the volume is constant.")
    report(callback, 0.15, "soma contrast")
    scale = max(1.0, 0.125 * d)
    contrast = soma_contrast(image, work_vs, scale=scale)
    images: dict[str, np.ndarray] = {"contrast": contrast}
    if detector is not None:
        report(callback, 0.2, "U-Net prediction")
        probability = detector.predict_working(image, callback=callback, progress_span=(0.2, 0.6))
        images["probability"] = probability
        mask = probability > probability_threshold
        used = probability_threshold
    else:
        if isinstance(threshold, str):
            if threshold != "auto":
                raise ValueError(f"threshold must be a number or 'auto'; got {threshold!r}.")
            from skimage.filters import threshold_otsu

            used = float(threshold_otsu(contrast))
        else:
            used = float(threshold)
        mask = contrast > used
    parameters["threshold_used"] = used
    report(callback, 0.65, "opening, filling, distance transform")
    radius = max(0.5, 0.5 * max(work_vs)) if opening_radius is None else float(opening_radius)
    if radius > 0:
        mask = ndimage.binary_opening(mask, _ball(radius, np.asarray(work_vs)))
    mask = ndimage.binary_fill_holes(mask)
    # the contrast spreads about one smoothing width beyond the membrane: trim that halo
    halo = scale if detector is None else 0.0
    bodies = split_bodies(mask, voxel_size=work_vs, soma_diameter=d, shrink=halo)
    report(callback, 0.85, "measuring bodies")
    measures = _label_measures(bodies, work_vs)
    if len(measures) == 0:
        return empty("no body of soma size above the threshold.", images)
    # working voxel i covers input voxels i*f .. i*f+f-1: its centre is shifted by (f-1)/2
    offset = 0.5 * (factors - 1) * np.asarray(vs)
    measures[["z_um", "y_um", "x_um"]] += offset
    keep = (measures["diameter_um"] >= lo_size * d) & (measures["diameter_um"] <= hi_size * d)
    keep = keep.to_numpy()
    ids = measures["label"].to_numpy()
    brightness = ndimage.mean(image, bodies, ids)
    background = float(np.median(contrast[bodies == 0])) if np.any(bodies == 0) else 1.0
    snr = np.asarray(ndimage.mean(contrast, bodies, ids)) / max(background, 1e-9)

    def out_labels(lab: np.ndarray) -> np.ndarray:
        return upsample_labels(lab, factors, shape) if full_resolution_labels else lab

    result = _sources_from_bodies(
        bodies,
        voxel_size=work_vs,
        keep=keep,
        measures=measures,
        brightness=np.asarray(brightness),
        snr=snr,
        out_labels=out_labels,
        out_voxel_size=out_vs,
        parameters=parameters,
        summary_images=images,
    )
    report(callback, 1.0, f"{len(result)} somata")
    if len(result) == 0:
        warnings.warn(
            "No somata: no body of soma size; check soma_diameter and voxel_size.", stacklevel=2
        )
    return result


# -- from an existing segmentation ---------------------------------------------------------------
def somata_from_labels(
    labels: Any,
    *,
    voxel_size: Any,
    soma_diameter: float = 8.0,
    size_range: tuple[float, float] = (0.5, 2.0),
    max_elongation: float = 2.5,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> PointSources:
    """Somata from a label volume (e.g. a connectomics segmentation).

    Every label is measured (centroid, volume, equivalent diameter, elongation = square
    root of the ratio of the largest to the smallest principal second moment). A label is a
    soma if its equivalent diameter lies within ``size_range`` times ``soma_diameter`` and its
    elongation is at most ``max_elongation``; neurite fragments are small or elongated.

    Returns
    -------
    PointSources
        Somata only, relabelled 1..N; ``features`` keeps the original ``label`` and the
        measures. :func:`label_table` gives the measures of every label.
    """
    labels = np.asarray(labels.compute() if _is_dask(labels) else labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (Z, Y, X) volume; got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}.")
    vs = check_voxel_size(voxel_size, ndim=3)
    d = float(soma_diameter)
    if not d > 0:
        raise ValueError(f"soma_diameter must be positive µm; got {soma_diameter}.")
    report(callback, 0.0, "measuring labels")
    table = label_table(labels, voxel_size=vs)
    table["is_soma"] = (
        (table["diameter_um"] >= size_range[0] * d)
        & (table["diameter_um"] <= size_range[1] * d)
        & (table["elongation"] <= max_elongation)
    )
    somata = table[table["is_soma"]].reset_index(drop=True)
    remap = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int32)
    remap[somata["label"].to_numpy()] = np.arange(1, len(somata) + 1, dtype=np.int32)
    relabelled = remap[np.clip(labels, 0, None)]
    features = pd.DataFrame(
        {
            "id": np.arange(1, len(somata) + 1, dtype=np.int64),
            "size": somata["size"].to_numpy(dtype=np.int64),
            "brightness": np.zeros(len(somata)),
            "snr": np.zeros(len(somata)),
            "label": somata["label"].to_numpy(),
            "volume_um3": somata["volume_um3"].to_numpy(),
            "diameter_um": somata["diameter_um"].to_numpy(),
            "elongation": somata["elongation"].to_numpy(),
        }
    )
    report(callback, 1.0, f"{len(somata)} somata of {len(table)} labels")
    return PointSources(
        positions=somata[["z_um", "y_um", "x_um"]].to_numpy(dtype=float).reshape(-1, 3),
        labels=relabelled,
        voxel_size=vs,
        features=features,
        parameters={
            "voxel_size": list(vs),
            "soma_diameter": d,
            "size_range": list(size_range),
            "max_elongation": max_elongation,
            "n_labels": int(len(table)),
        },
    )


def label_table(labels: np.ndarray, *, voxel_size: Any) -> pd.DataFrame:
    """Measures of every label: size, centroid (µm), volume, equivalent diameter, elongation."""
    vs = check_voxel_size(voxel_size, ndim=3)
    return _label_measures(np.asarray(labels), vs)
