"""Somata in EM volumes: a classical pipeline, the U-Net probability path, and label volumes.

Classical pipeline (:func:`detect_somata_em`, ``cue="shell"``, the default): downsample to
about ``resolution`` µm, read the contrast polarity (given, or from the skew of the
high-passed volume, :func:`membrane_polarity`), turn the volume into polarity-corrected
membrane evidence (:func:`membrane_map`) and correlate it with a closed spherical shell
around membrane-free cytoplasm at radii from the cell diameter in µm
(:func:`soma_shell_response`). A soma is the only compartment whose membrane is a closed
sphere of its size; neuropil membranes cross the shell at random, myelin and blood cells are
too thin or too small, and a vessel's wall makes a ridge of the response along its whole
length, which is dropped as a tube. Somata are the response's peaks above ``shell_threshold``
(robust units) and above ``shell_fraction`` of the typical peak, as balls of their best
radius; bodies of the wrong size or far off the typical brightness (vessel lumen) are
rejected. In a block of faint somata (``shell_threshold`` itself decides) a second pass keeps
weaker shells, down to :data:`WEAK_SHELL_FRACTION` of it, that overlap no soma kept, hold a
nuclear envelope and have no membranes inside, and a third pass keeps shells down to
:data:`LOCAL_PASS_FLOOR` of it whose local response (against a staining gradient), interior
and nucleus, in robust units over the block's peaks, add up to :data:`LOCAL_PASS_SCORE`; a
fourth pass (``block_likeness_pass``, off by default) keeps those of them whose nucleus looks
like the block's first-pass somata's (:data:`LIKENESS_PASS_SCORE`): the block's strong somata
are its own examples.
With a trained ``detector`` the shells are proposed down to :data:`PROPOSAL_FRACTION` of the
threshold and the U-Net's soma probability decides (the second and third passes' shells with
its plain agreement); a shell it adds may not overlap a soma already kept.
``cue="contrast"`` keeps the earlier path: local edge energy thresholded, opened, filled,
split by a distance-transform watershed.

Label volumes (:func:`somata_from_labels`): nucleus-like compartments merged into the segment
enclosing them, somata picked by the size and shape of each segment's thick part."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage

from napari_mesoscale.io import check_voxel_size, is_lazy
from napari_mesoscale.progress import Progress
from napari_mesoscale.segment.calcium import _ellipsoid_offsets, find_peaks
from napari_mesoscale.segment.params import SomaDetectionParams, renamed_keyword
from napari_mesoscale.segment.sources import DetectionCancelled, PointSources, empty_features

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
    if is_lazy(cropped):
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


def _band_pass(image: np.ndarray, voxel_size: tuple[float, ...], scale: float) -> np.ndarray:
    sigma = scale / np.asarray(voxel_size, dtype=float)
    image = image.astype(np.float32, copy=False)
    return ndimage.gaussian_filter(image, sigma) - ndimage.gaussian_filter(image, 2 * sigma)


def membrane_polarity(image: np.ndarray, voxel_size: tuple[float, ...], scale: float = 1.0) -> str:
    """``"dark_membranes"`` or ``"bright_membranes"``: the sign of the skew of the high-passed
    image (thin dark membranes on a lighter background make its lower tail the long one).

    ``scale`` (µm) is the width of the Gaussian subtracted; about twice the membrane spacing
    of neuropil is right."""
    image = image.astype(np.float32, copy=False)
    sigma = scale / np.asarray(voxel_size, dtype=float)
    band = (image - ndimage.gaussian_filter(image, sigma)).reshape(-1)
    if band.size > 4_000_000:
        band = band[:: band.size // 4_000_000]
    band = band - band.mean()
    skew = float(np.mean(band**3) / max(float(np.mean(band**2)) ** 1.5, 1e-12))
    return "dark_membranes" if skew < 0 else "bright_membranes"


def soma_texture(
    image: np.ndarray, voxel_size: tuple[float, ...], scale: float = 0.5
) -> np.ndarray:
    """Local band-pass energy at ``scale`` µm: high in neuropil (membranes every micron or so),
    low in the smooth cytoplasm and nucleus of somata and in vessel lumens. Either polarity."""
    band = _band_pass(image, voxel_size, scale)
    np.square(band, out=band)
    return np.sqrt(ndimage.gaussian_filter(band, 1.5 * scale / np.asarray(voxel_size, dtype=float)))


def split_bodies(
    mask: np.ndarray,
    *,
    voxel_size: tuple[float, ...],
    cell_diameter: float,
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
    min_distance = 0.5 * cell_diameter if min_distance is None else min_distance
    peaks = find_peaks(
        dist, voxel_size=tuple(vs), min_distance=min_distance, threshold=0.2 * cell_diameter
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
    if len(ids) == 0:  # typed columns: the labels still index arrays (an empty segmentation)
        measures = ("z", "y", "x", "volume_um3", "diameter_um", "elongation")
        dtypes = {"label": np.int64, "size": np.int64} | dict.fromkeys(measures, float)
        return pd.DataFrame({column: np.zeros(0, dtype) for column, dtype in dtypes.items()})
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
            "z": first[0],
            "y": first[1],
            "x": first[2],
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
        positions=kept[["z", "y", "x"]].to_numpy(dtype=float).reshape(-1, 3),
        labels=relabelled,
        voxel_size=tuple(out_voxel_size),
        features=features,
        summary_images=summary_images,
        parameters=parameters,
    )


# -- from raw EM ------------------------------------------------------------------------------
SHELL_WIDTH_UM = 0.75  # µm, about two membrane widths with their blur
# A fine-tuned U-Net may add shells down to this fraction of ``shell_threshold``. It was half;
# on the noisy dev presets the U-Net's probability stays high (0.85-0.97) in much of the
# neuropil, and 24 of the 25 false additions were shells below 0.8 of the threshold, against
# 2 of the 8 true ones.
PROPOSAL_FRACTION = 0.8
# Second pass of the classical path over shells between WEAK_SHELL_FRACTION of the threshold
# used and the threshold: such a shell is a soma when it overlaps no soma kept, holds a nucleus
# (the shell response of a sphere NUCLEUS_FRACTION of the cell diameter across reaches
# NUCLEUS_EVIDENCE) and has no membranes inside (mean membrane evidence within 0.75 of its
# radius at most INTERIOR_MEMBRANE_MAX, robust units). Chosen on seeds 0 and 1 of the seven
# dev presets (it added 8 somata and 1 chance shell there); on their seed 2, 6 and 1; on the
# toy brain none (see _shell_bodies for the faint-block rule).
WEAK_SHELL_FRACTION = 0.77
NUCLEUS_FRACTION = 0.5
NUCLEUS_EVIDENCE = 3.5
INTERIOR_MEMBRANE_MAX = -0.25
# Third pass of the classical path, in blocks of faint somata (inverted, thick sections, staining
# gradients): every shell peak down to LOCAL_PASS_FLOOR of the threshold is scored by three
# figures, each in robust units over the block's peaks (most of which are chance shells, so
# the units calibrate themselves to the block): the shell response against its surroundings
# within LOCAL_WINDOW cell diameters (a staining gradient or a noisier region does not hide a
# soma), the membrane-free interior and the nuclear envelope's shell. A peak whose score reaches
# LOCAL_PASS_SCORE (plus SMALLEST_RADIUS_MARGIN at the smallest radius, where glia and other
# small bodies answer) is added when its ball overlaps no soma kept. Chosen on seeds 0-1 of the
# nine dev presets: mean classical F1 of the seven earlier ones 0.954 -> 0.961, of the two faint
# inverted ones 0.41 -> 0.63 (a score of 5 gave 0.70 there but cost dev_faint_thick_sections
# its precision, 1.00 -> 0.89-0.91); their seed 2: 0.958 -> 0.968 and 0.37 -> 0.64.
LOCAL_PASS_FLOOR = 0.45
LOCAL_WINDOW = 1.1
LOCAL_PASS_SCORE = 6.0
SMALLEST_RADIUS_MARGIN = 3.0
# Fourth pass, in the same blocks and over the same peaks: the block's first-pass somata serve as
# examples of what a soma of this volume looks like (no labels needed). A peak's nucleus blob (the
# brightest band-passed spot at the nucleus's scale within a nucleus radius, polarity-corrected)
# is compared with theirs: the third pass's score minus LIKENESS_WEIGHT times the distance from
# the first-pass somata's median, in robust units over the block's peaks, and that sum itself put
# in robust units over the peaks, must reach LIKENESS_PASS_SCORE (plus LIKENESS_SMALLEST_MARGIN
# at the smallest radius). A chance shell in the neuropil holds no nucleus like the block's, a
# glial or myelin profile holds a darker or brighter one. Chosen on seeds 0-2 of the nine dev
# presets (mean classical F1 of the two faint inverted ones 0.63 -> 0.74, of the seven earlier
# ones 0.962 -> 0.964 with no precision lost, in a per-peak simulation of the passes). Off by
# default (``block_likeness_pass``): measured once on the held-out presets it added two chance
# shells and no soma to heldout_inverted_tem.
LIKENESS_WEIGHT = 1.5
LIKENESS_PASS_SCORE = 3.0
LIKENESS_SMALLEST_MARGIN = 1.0
# Fused pass of the U-Net path (``fused_shell_pass``, on by default), in blocks of faint somata:
# a shell peak the network supports (support at least ``probability_threshold``) but too weak for
# the proposal strength and without the classical passes' verdict is added when the third pass's
# score (local shell response + nucleus - interior membranes, robust units over the block's
# peaks) plus the network's log-odds (of its support, clipped to 0.001-0.999) reaches
# FUSED_PASS_SCORE, the third pass's own bar at the smallest radius: the fine-tuned network's
# confidence counts as evidence, in natural units, at any radius. On the faint dev presets most
# misses of the fine-tuned path were such shells (support 0.7-1.0, shell 3-5 robust units, the
# third pass's score 4-9 at the smallest radius, where it needs 9).
FUSED_PASS_SCORE = LOCAL_PASS_SCORE + SMALLEST_RADIUS_MARGIN
_SOMA_DETECTION_FIELDS = frozenset(SomaDetectionParams.specs())


def detect_somata_em(
    volume: Any,
    *,
    voxel_size: Any,
    cell_diameter: float | None = None,
    resolution: float | None = None,
    threshold: float | str | None = None,
    detector: SomaDetector | None = None,
    probability_threshold: float | None = None,
    size_range: tuple[float, float] | None = None,
    opening_radius: float | None = None,
    full_resolution_labels: bool | None = None,
    polarity: str | None = None,
    texture_scale: float | None = None,
    max_elongation: float | None = None,
    max_tube_elongation: float | None = None,
    lumen_contrast: float | None = None,
    cue: str | None = None,
    shell_threshold: float | None = None,
    shell_fraction: float | None = None,
    block_likeness_pass: bool | None = None,
    anisotropic_shell: bool | None = None,
    section_thickness_um: float | None = None,
    test_time_augmentation: bool | None = None,
    fused_shell_pass: bool | None = None,
    params: SomaDetectionParams | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    soma_diameter: float | None = None,
) -> PointSources:
    """Find somata in a raw EM volume.

    Every parameter left at ``None`` takes its value from ``params`` (default:
    :class:`~napari_mesoscale.segment.params.SomaDetectionParams`, which documents defaults,
    units and valid ranges).

    Parameters
    ----------
    volume : array_like or dask.array.Array
        (Z, Y, X) EM intensities. Dask arrays are downsampled block by block.
    voxel_size : sequence of float
        Voxel size in µm, (z, y, x).
    cell_diameter, resolution, threshold, probability_threshold, size_range, \
opening_radius, full_resolution_labels, polarity, texture_scale, max_elongation, \
max_tube_elongation, lumen_contrast, cue, shell_threshold, shell_fraction, block_likeness_pass, \
anisotropic_shell, section_thickness_um, test_time_augmentation, fused_shell_pass
        The detection parameters: fields of
        :class:`~napari_mesoscale.segment.params.SomaDetectionParams`, which gives each
        one's meaning, unit, default and valid range. ``None`` takes the value from ``params``.
    detector : SomaDetector, optional
        A trained U-Net (:func:`train_soma_detector`); its soma probability, thresholded at
        ``probability_threshold``, replaces the contrast threshold.
    params : SomaDetectionParams, optional
        All parameters at once; explicit keyword arguments override it.
    callback : callable, optional
        Progress callback (:mod:`napari_mesoscale.progress`); returning False stops the run
        with :class:`~napari_mesoscale.segment.DetectionCancelled`.
    soma_diameter : float, optional
        Deprecated name of ``cell_diameter``.

    Returns
    -------
    PointSources
        Soma centres (µm), labels, features (id, size, brightness, snr = mean contrast over the
        background's median contrast, volume_um3, diameter_um, elongation); no traces.
    """
    cell_diameter = renamed_keyword("cell_diameter", cell_diameter, "soma_diameter", soma_diameter)
    p = (params or SomaDetectionParams()).merged(
        **{k: v for k, v in locals().items() if k in _SOMA_DETECTION_FIELDS}
    )
    run = _prepare_em_run(volume, voxel_size, p, detector)
    progress = Progress.wrap(callback, DetectionCancelled)
    shape, factors = run["shape"], run["factors"]
    if int(np.prod(shape)) == 0 or any(s < f for s, f in zip(shape, factors, strict=True)):
        reason = f"the volume is empty or smaller than one working voxel (shape {shape})."
        return _no_somata(run, progress, reason)
    progress.report(0.0, "downsampling")
    image = downsample(run["volume"], factors)
    if not np.all(np.isfinite(image)):
        raise ValueError("EM volume contains NaN or infinite values; replace them first.")
    if float(image.max()) == float(image.min()):
        return _no_somata(run, progress, "the volume is constant.")
    if detector is None and run["params"].cue == "shell":
        bodies, images = _shell_bodies(run, image, progress.stage(0.15, 0.85, "soma shells"))
    elif run["params"].cue == "shell":
        shells = progress.stage(0.15, 0.85, "U-Net on soma shells")
        bodies, images = _verified_shell_bodies(run, image, detector, shells)
    else:
        mask, images = _soma_mask(run, image, detector, progress.stage(0.15, 0.65, "soma mask"))
        progress.report(0.65, "opening, filling, distance transform")
        bodies = _bodies(run, mask, detector is not None)
    progress.report(0.85, "measuring bodies")
    result = _measure_somata(run, image, bodies, images)
    if result is None or len(result) == 0:
        reason = _no_body_reason(run["params"], detector is not None)
        return _no_somata(run, progress, reason, images)
    progress.report(1.0, f"{len(result)} somata")
    return result


def _no_body_reason(p: SomaDetectionParams, unet: bool) -> str:
    """Why no soma was kept: the threshold the run used and the sizes to check."""
    if unet:
        threshold = f"probability threshold ({p.probability_threshold:g})"
    elif p.threshold == "auto":
        threshold = "threshold (chosen automatically)"
    else:
        threshold = f"threshold ({float(p.threshold):g})"
    return (
        f"no body of a soma's size and shape above the {threshold}; lower the threshold or "
        f"check the cell diameter ({p.cell_diameter:g} µm) and the voxel size."
    )


def _prepare_em_run(
    volume: Any, voxel_size: Any, p: SomaDetectionParams, detector: SomaDetector | None
) -> dict[str, Any]:
    """Check the inputs; the working grid and the JSON-able parameters of the run."""
    p.validate()
    volume, vs = check_em_volume(volume, voxel_size)
    d = float(p.cell_diameter)
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"cell_diameter must be a positive number of µm; got {p.cell_diameter}.")
    if d < min(vs):
        raise ValueError(
            f"cell_diameter {d} µm is smaller than one voxel ({min(vs)} µm); check units (µm)."
        )
    lo_size, hi_size = (float(s) for s in p.size_range)
    if not 0 <= lo_size < hi_size:
        raise ValueError(
            f"size_range must be (low, high) with 0 <= low < high; got {p.size_range}."
        )
    if detector is None and isinstance(p.threshold, str) and p.threshold != "auto":
        raise ValueError(f"threshold must be a number or 'auto'; got {p.threshold!r}.")
    if p.polarity not in ("auto", "dark_membranes", "bright_membranes"):
        raise ValueError(
            f"polarity must be 'auto', 'dark_membranes' or 'bright_membranes'; got {p.polarity!r}."
        )
    if p.cue not in ("shell", "contrast"):
        raise ValueError(f"cue must be 'shell' or 'contrast'; got {p.cue!r}.")
    factors = downsample_factors(vs, p.resolution)
    work_vs = tuple(float(v) for v in np.asarray(vs) * factors)
    section = None
    if p.anisotropic_shell:
        given = p.section_thickness_um
        section = float(vs[0] * factors[0] if given is None else given)
    record = {
        "cue": p.cue if detector is None else f"unet+{p.cue}",
        "shell_threshold": p.shell_threshold,
        "voxel_size": list(vs),
        "cell_diameter": d,
        "resolution": p.resolution,
        "threshold": p.threshold,
        "method": "unet" if detector is not None else "classical",
        "probability_threshold": p.probability_threshold,
        "size_range": [lo_size, hi_size],
        "working_voxel_size": list(work_vs),
        "section_thickness_um": section,
    }
    return {
        "section_um": section,
        "volume": volume,
        "voxel_size": vs,
        "shape": tuple(int(s) for s in volume.shape),
        "factors": factors,
        "work_vs": work_vs,
        "params": p.replace(cell_diameter=d, size_range=(lo_size, hi_size)),
        "record": record,
    }


def _no_somata(
    run: dict[str, Any],
    progress: Progress,
    reason: str,
    images: dict[str, np.ndarray] | None = None,
) -> PointSources:
    warnings.warn(f"No somata: {reason}", stacklevel=3)
    run["record"]["no_somata_reason"] = reason
    progress.report(1.0, f"no somata: {reason}")
    full = run["params"].full_resolution_labels
    shape, factors = run["shape"], run["factors"]
    out_shape = shape if full else tuple(s // f for s, f in zip(shape, factors, strict=True))
    return PointSources(
        positions=np.zeros((0, 3)),
        labels=np.zeros(out_shape, dtype=np.int32),
        voxel_size=tuple(run["voxel_size"] if full else run["work_vs"]),
        features=empty_features(),
        summary_images=images or {},
        parameters=run["record"],
    )


def _unet_probability(
    run: dict[str, Any], image: np.ndarray, detector: SomaDetector, progress: Progress
) -> np.ndarray:
    """The detector's soma probability on the working grid, averaged over flips (and the y-x
    transpose where y and x voxels are alike) with ``test_time_augmentation``."""
    if not run["params"].test_time_augmentation:
        return detector.predict_working(image, callback=progress)
    vs = run["work_vs"]
    run["record"]["test_time_augmentation"] = True
    return detector.predict_working(
        image, callback=progress, augment=True, rotate_in_plane=math.isclose(vs[1], vs[2])
    )


def _soma_mask(
    run: dict[str, Any], image: np.ndarray, detector: SomaDetector | None, progress: Progress
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Soma voxels: smooth texture (classical) or U-Net probability above its threshold."""
    p = run["params"]
    progress.report(0.0, "soma contrast")
    run["record"]["polarity_used"] = _polarity(run, image)
    contrast = soma_contrast(image, run["work_vs"], scale=_contrast_scale(p))
    images: dict[str, np.ndarray] = {"contrast": contrast}
    if detector is not None:
        probability = _unet_probability(run, image, detector, progress.stage(0.1, 0.9, "U-Net"))
        images["probability"] = probability
        mask = probability > p.probability_threshold
        used = p.probability_threshold
    elif isinstance(p.threshold, str):
        from skimage.filters import threshold_otsu

        used = float(threshold_otsu(contrast))
        mask = contrast > used
    else:
        used = float(p.threshold)
        mask = contrast > used
    run["record"]["threshold_used"] = used
    return mask, images


def membrane_map(
    image: np.ndarray, voxel_size: tuple[float, ...], polarity: str, scale: float = 1.5
) -> np.ndarray:
    """Membrane evidence: how much darker (``"dark_membranes"``; brighter for
    ``"bright_membranes"``) than its surroundings within ``scale`` µm each voxel is, in robust
    units (median 0, scaled MAD 1) and clipped to ±3, so that the very dark myelin sheaths and
    vessel walls count no more than a plasma membrane."""
    sign = 1.0 if polarity == "dark_membranes" else -1.0
    sigma = scale / np.asarray(voxel_size, dtype=float)
    image = image.astype(np.float32, copy=False)
    membranes = sign * (ndimage.gaussian_filter(image, sigma) - image)
    return np.clip(_robust_z(membranes), -3.0, 3.0)


def _robust_z(values: np.ndarray) -> np.ndarray:
    sample = values.reshape(-1)
    if sample.size > 4_000_000:
        sample = sample[:: sample.size // 4_000_000]
    centre = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - centre)))
    return ((values - centre) / max(spread, 1e-9)).astype(np.float32)


def _shell_kernels(
    radius: float, voxel_size: tuple[float, ...], width: float, section_um: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-sum kernels: a spherical shell of ``radius`` µm (Gaussian profile of ``width`` µm)
    and the cytoplasm between 0.6 and 0.85 of the radius (outside the nucleus).

    With ``section_um`` the shell is the expected image of a membrane cut by sections that
    thick: at polar angle θ the z box of the section adds ``section_um² cos²θ / 12`` to the
    profile's radial variance, widening the caps and lowering them by the same factor (the
    membrane's amount is kept), while the equator stays as sharp as the isotropic shell."""
    vs = np.asarray(voxel_size, dtype=float)
    reach = width if section_um is None else float(np.hypot(width, section_um / np.sqrt(6.0)))
    half = np.ceil((radius + 2 * reach) / vs - 1e-6).astype(int)
    axes = [np.arange(-h, h + 1) * v for h, v in zip(half, vs, strict=True)]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    distance = np.sqrt(sum(g**2 for g in grids))
    local = width
    if section_um is not None:
        cos_z = grids[0] / np.maximum(distance, 1e-9)
        # Gaussian exp(-(x/w)^2) has variance w^2/2; a box of thickness T has T^2/12
        local = np.sqrt(width**2 + (section_um * cos_z) ** 2 / 6.0)
    shell = (width / local) * np.exp(-(((distance - radius) / local) ** 2))
    cytoplasm = ((distance > 0.6 * radius) & (distance < 0.85 * radius)).astype(float)
    return shell / shell.sum(), cytoplasm / max(cytoplasm.sum(), 1.0)


def soma_shell_response(
    image: np.ndarray,
    voxel_size: tuple[float, ...],
    polarity: str,
    cell_diameter: float,
    section_thickness_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Matched filter for a soma: membrane evidence on a closed spherical shell minus that in
    the cytoplasm inside it, for radii 0.75-1.2 of half ``cell_diameter``; returns the best
    response in robust units (median 0, scaled MAD 1) and the radius (µm) that gave it.

    Each radius's response is put in robust units before the best is taken: a small shell
    averages fewer voxels, so its chance response in noisy neuropil spreads wider, and an
    unnormalised maximum over radii lets those chance shells outbid faint somata (on the
    noisy dev presets with 2 µm sections nearly every false peak was at the smallest radius).

    A soma is the only compartment whose membrane is a closed sphere of its size around a
    membrane-free cytoplasm; neuropil membranes cross the shell at random, so the response is
    independent of the cytoplasm's grey level, of the polarity (after correction) and of the
    staining gradient, and is measured in µm whatever the voxel size.

    ``section_thickness_um`` (default None: an isotropic shell) smears the template's caps
    along z as sections of that thickness smear a soma's membrane (:func:`_shell_kernels`)."""
    from scipy.signal import fftconvolve

    vs = tuple(float(v) for v in voxel_size)
    membranes = membrane_map(image, vs, polarity)
    # the shell must span at least one coarse voxel; with the sections' smear the z spacing is
    # in the template already, so only the in-plane voxel sets that floor
    coarse = max(vs) if section_thickness_um is None else max(vs[1:])
    width = max(SHELL_WIDTH_UM, 0.5 * coarse)
    best = np.full(image.shape, -np.inf, dtype=np.float32)
    radius = np.zeros(image.shape, dtype=np.float32)
    for r in 0.5 * cell_diameter * np.array([0.75, 0.9, 1.05, 1.2]):
        shell, cytoplasm = _shell_kernels(float(r), vs, width, section_thickness_um)
        response = _robust_z(fftconvolve(membranes, shell - cytoplasm, mode="same"))
        better = response > best
        best[better], radius[better] = response[better], r
    return _robust_z(best), radius


def _shell_peaks(
    run: dict[str, Any], image: np.ndarray, floor: float, fraction: float, progress: Progress
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of the shell response above ``floor`` and above ``fraction`` of the median such
    peak's, those on tubular ridges of the response (vessels, whose wall is a shell along their
    whole length) dropped; returns the peaks, the radius map and the response."""
    p, work_vs = run["params"], run["work_vs"]
    progress.report(0.0, "membrane shells")
    run["record"]["polarity_used"] = _polarity(run, image)
    response, radius = soma_shell_response(
        image, work_vs, run["polarity"], p.cell_diameter, run["section_um"]
    )
    progress.report(0.7, "peaks")
    peaks = find_peaks(
        response, voxel_size=work_vs, min_distance=0.6 * p.cell_diameter, threshold=floor
    )
    on_tube = _drop_tubes(response > 0.3 * p.shell_threshold, work_vs, p, tubes_only=True)
    if len(peaks):
        peaks = peaks[~on_tube[tuple(peaks.T)]]
    # somata of one block are stained alike: a shell far weaker than the typical one is not one
    strength = response[tuple(peaks.T)] if len(peaks) else np.zeros(0)
    used = max(floor, fraction * float(np.median(strength))) if len(peaks) else floor
    run["record"]["threshold_used"] = used
    run["snr_is_peak"] = True
    return (peaks[strength >= used] if len(peaks) else peaks), radius, response


def _shell_bodies(
    run: dict[str, Any], image: np.ndarray, progress: Progress
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Somata as balls of their best shell radius around the shell response's peaks: those
    above the threshold used (``shell_threshold``, raised to ``shell_fraction`` of the median
    such peak's), then, when ``shell_threshold`` itself was the threshold used (a block of
    faint somata), the weaker shells that overlap no soma kept and pass the second pass
    (down to :data:`WEAK_SHELL_FRACTION` of it, :func:`_nucleated_smooth`), the third or the
    fourth (down to :data:`LOCAL_PASS_FLOOR`, :func:`_shell_evidence`)."""
    p = run["params"]
    threshold = float(p.shell_threshold)
    peaks, radius, response = _shell_peaks(run, image, LOCAL_PASS_FLOOR * threshold, 0.0, progress)
    images = {"contrast": response}
    if len(peaks) == 0:
        return np.zeros(image.shape, dtype=np.int32), images
    strength = response[tuple(peaks.T)]
    used = _classical_threshold(strength, threshold, float(p.shell_fraction))
    run["record"]["threshold_used"] = used
    kept = strength >= used
    # only where the block's somata are faint: when the median soma sets the threshold they
    # are stained strongly, and a shell below it is a chance shell (the toy brain's one
    # addition without this rule was such a shell, a third of the median soma's response)
    proposed = np.zeros_like(kept)
    if used <= threshold and (~kept).any():
        evidence = _shell_evidence(run, image, peaks, radius, response)
        weak = (strength >= WEAK_SHELL_FRACTION * threshold) & evidence["nucleated_smooth"]
        proposed = ~kept & (weak | evidence["local_pass"])
        run["record"]["n_like_block_proposed"] = int((~kept & evidence["like_block"]).sum())
    keep = _add_without_overlap(peaks, radius, run["work_vs"], kept, proposed, strength)
    run["record"]["n_weak_shells_added"] = int(keep.sum() - kept.sum())
    return _balls_around(peaks[keep], radius, run["work_vs"]), images


def _classical_threshold(strength: np.ndarray, threshold: float, fraction: float) -> float:
    """The shell strength a soma needs: ``threshold``, raised to ``fraction`` of the median
    peak above it (strongly stained somata make weaker shells chance shells)."""
    strong = strength >= threshold
    return max(threshold, fraction * float(np.median(strength[strong])) if strong.any() else 0.0)


def _nucleated_smooth(
    run: dict[str, Any], image: np.ndarray, peaks: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """Peaks whose shell holds a nucleus and a membrane-free interior: the nuclear envelope's
    own shell response (a shell of :data:`NUCLEUS_FRACTION` of the cell diameter, within one
    working voxel of the peak, for the nucleus sits off centre) at least
    :data:`NUCLEUS_EVIDENCE`, and the mean membrane evidence within 0.75 of the peak's radius
    at most :data:`INTERIOR_MEMBRANE_MAX` (a chance shell in the neuropil has the neuropil's
    membranes inside it)."""
    nucleus, interior = _nucleus_and_interior(run, image, peaks, radius)
    smooth = np.nan_to_num(interior, nan=np.inf) <= INTERIOR_MEMBRANE_MAX
    return (nucleus >= NUCLEUS_EVIDENCE) & smooth


def _nucleus_and_interior(
    run: dict[str, Any], image: np.ndarray, peaks: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per peak: the nuclear envelope's shell response (best within one working voxel) and the
    mean membrane evidence within 0.75 of the peak's radius (robust units)."""
    work_vs, polarity = run["work_vs"], run["polarity"]
    membranes = membrane_map(image, work_vs, polarity)
    interiors = _balls_around(peaks, 0.75 * radius, work_vs)
    ids = np.arange(1, len(peaks) + 1)
    interior = np.asarray(ndimage.mean(membranes, interiors, ids), dtype=float)
    nucleus, _ = soma_shell_response(
        image,
        work_vs,
        polarity,
        NUCLEUS_FRACTION * run["params"].cell_diameter,
        run["section_um"],
    )
    return ndimage.maximum_filter(nucleus, size=3)[tuple(peaks.T)], interior


def _shell_evidence(
    run: dict[str, Any],
    image: np.ndarray,
    peaks: np.ndarray,
    radius: np.ndarray,
    response: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per peak, verdicts on a shell too weak for the first pass: ``nucleated_smooth``
    (the second pass, :func:`_nucleated_smooth`), ``third_pass`` (the local shell response,
    the interior and the nucleus, each in robust units over the block's peaks, summed to a
    score that must reach :data:`LOCAL_PASS_SCORE`, plus :data:`SMALLEST_RADIUS_MARGIN` for a
    peak at the smallest radius), ``like_block`` (the fourth: that score less the distance of
    the peak's nucleus blob from the first-pass somata's, :func:`_like_first_pass`) and
    ``local_pass``, the third or the fourth."""
    nucleus, interior = _nucleus_and_interior(run, image, peaks, radius)
    interior = np.nan_to_num(interior, nan=np.inf)
    smooth = interior <= INTERIOR_MEMBRANE_MAX
    d = float(run["params"].cell_diameter)
    local = _local_response(response, run["work_vs"], LOCAL_WINDOW * d)[tuple(peaks.T)]
    finite = np.isfinite(interior)
    score = (
        _robust_over(local)
        + _robust_over(nucleus)
        - np.where(finite, _robust_over(np.where(finite, interior, 0.0)), np.inf)
    )
    smallest = radius[tuple(peaks.T)] <= 0.5 * d * 0.75 + 1e-6
    third = score >= LOCAL_PASS_SCORE + SMALLEST_RADIUS_MARGIN * smallest
    like_block = _like_first_pass(run, image, peaks, response, score)
    fourth = like_block >= LIKENESS_PASS_SCORE + LIKENESS_SMALLEST_MARGIN * smallest
    return {
        "score": score,
        "nucleated_smooth": (nucleus >= NUCLEUS_EVIDENCE) & smooth,
        "third_pass": third,
        "like_block": fourth,
        "local_pass": third | fourth,
    }


def _like_first_pass(
    run: dict[str, Any],
    image: np.ndarray,
    peaks: np.ndarray,
    response: np.ndarray,
    score: np.ndarray,
) -> np.ndarray:
    """The fourth pass's score per peak: the third pass's ``score`` less
    :data:`LIKENESS_WEIGHT` times how far the peak's nucleus blob (:func:`_nucleus_blob`) lies
    from the median of the first-pass somata's (the block's own examples of a soma), in robust
    units over the block's peaks; the result again in robust units over the peaks (``-inf``
    where the score is not finite, when the first pass kept nothing, or when
    ``block_likeness_pass`` is off)."""
    p = run["params"]
    out = np.full(len(peaks), -np.inf)
    if not p.block_likeness_pass:
        return out
    strength = response[tuple(peaks.T)]
    first = strength >= _classical_threshold(
        strength, float(p.shell_threshold), float(p.shell_fraction)
    )
    finite = np.isfinite(score)
    if not first.any() or finite.sum() < 3:
        return out
    blob = _robust_over(_nucleus_blob(run, image, peaks))
    unlike = np.abs(blob - float(np.median(blob[first])))
    combined = score - LIKENESS_WEIGHT * unlike
    out[finite] = _robust_over(combined[finite])
    return out


def _nucleus_blob(run: dict[str, Any], image: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Per peak, the brightest spot of the polarity-corrected image band-passed at the
    nucleus's scale (difference of Gaussians, sigma = nucleus radius / sqrt(3) and twice that)
    within a nucleus radius of the peak along each axis: the nucleus sits off centre."""
    work_vs = np.asarray(run["work_vs"], dtype=float)
    sign = 1.0 if run["polarity"] == "dark_membranes" else -1.0
    nucleus_radius = 0.5 * NUCLEUS_FRACTION * float(run["params"].cell_diameter)
    sigma = nucleus_radius / math.sqrt(3.0) / work_vs
    corrected = sign * image.astype(np.float32, copy=False)
    band = ndimage.gaussian_filter(corrected, sigma) - ndimage.gaussian_filter(corrected, 2 * sigma)
    reach = 2 * np.maximum(1, np.round(nucleus_radius / work_vs)).astype(int) + 1
    return ndimage.maximum_filter(band, size=tuple(int(r) for r in reach))[tuple(peaks.T)]


def _local_response(
    response: np.ndarray, voxel_size: tuple[float, ...], window_um: float
) -> np.ndarray:
    """The shell response against its surroundings: minus the Gaussian-weighted mean within
    ``window_um`` µm, over the Gaussian-weighted standard deviation there."""
    sigma = window_um / np.asarray(voxel_size, dtype=float)
    mean = ndimage.gaussian_filter(response, sigma)
    second = ndimage.gaussian_filter(np.square(response), sigma)
    return (response - mean) / np.sqrt(np.maximum(second - mean**2, 1e-6))


def _robust_over(values: np.ndarray) -> np.ndarray:
    """``values`` in robust units over themselves (median 0, scaled MAD 1)."""
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    return (values - centre) / max(spread, 1e-9)


def _verified_shell_bodies(
    run: dict[str, Any], image: np.ndarray, detector: SomaDetector, progress: Progress
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shell peaks down to ``PROPOSAL_FRACTION`` of ``shell_threshold`` proposed, the U-Net's
    soma probability (mean within half the proposal's radius, its support) deciding: a
    proposal the classical
    path keeps stays unless its support is below a quarter of ``probability_threshold``; a
    weaker one is added when its support reaches halfway from ``probability_threshold`` to 1
    and its ball overlaps no soma kept so far (:func:`_add_without_overlap`); in a block of
    faint somata a shell that passes the classical second or third pass's test
    (:func:`_shell_evidence`) needs a support of only ``probability_threshold``.
    The painted somata teach the network what a soma of this volume looks like; the shells
    say where bodies of soma size and shape are."""
    p = run["params"]
    threshold = float(p.shell_threshold)
    probability = _unet_probability(run, image, detector, progress.stage(0.0, 0.6, "U-Net"))
    peaks, radius, response = _shell_peaks(
        run,
        image,
        min(PROPOSAL_FRACTION, WEAK_SHELL_FRACTION, LOCAL_PASS_FLOOR) * threshold,
        0.0,
        progress.stage(0.6, 1.0, "shells"),
    )
    images = {"contrast": response, "probability": probability}
    if len(peaks) == 0:
        return np.zeros(image.shape, dtype=np.int32), images
    strength = response[tuple(peaks.T)]
    classical = _classical_threshold(strength, threshold, float(p.shell_fraction))
    cores = _balls_around(peaks, 0.5 * radius, run["work_vs"])
    support = np.nan_to_num(ndimage.mean(probability, cores, np.arange(1, len(peaks) + 1)))
    pt = float(p.probability_threshold)
    kept = (strength >= classical) & (support >= 0.25 * pt)
    proposed = ~kept & (strength >= PROPOSAL_FRACTION * threshold) & (support >= 0.5 * (1 + pt))
    # the classical second and third passes' evidence lets a weak shell in with the U-Net's
    # plain agreement (support at probability_threshold; half of it cost precision on dev)
    weak = ~kept & ~proposed & (support >= pt)
    if weak.any() and classical <= threshold:
        evidence = _shell_evidence(run, image, peaks, radius, response)
        second = (strength >= WEAK_SHELL_FRACTION * threshold) & evidence["nucleated_smooth"]
        proposed |= weak & (second | evidence["local_pass"])
        if p.fused_shell_pass:
            fused = weak & (_fused_score(evidence["score"], support) >= FUSED_PASS_SCORE)
            run["record"]["n_fused_proposed"] = int((fused & ~proposed).sum())
            proposed |= fused
    keep = _add_without_overlap(peaks, radius, run["work_vs"], kept, proposed, strength)
    run["record"]["threshold_used"] = pt
    run["record"]["n_added_by_unet"] = int(keep.sum() - kept.sum())
    run["record"]["n_overlapping_dropped"] = int(proposed.sum() - (keep.sum() - kept.sum()))
    return _balls_around(peaks[keep], radius, run["work_vs"]), images


def _fused_score(score: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The fused pass's score per peak: the third pass's ``score`` plus the log-odds of the
    network's ``support`` (clipped to 0.001-0.999); ``-inf`` where the score is not finite."""
    clipped = np.clip(support, 1e-3, 1 - 1e-3)
    fused = score + np.log(clipped / (1 - clipped))
    return np.where(np.isfinite(score), fused, -np.inf)


def _add_without_overlap(
    peaks: np.ndarray,
    radius: np.ndarray,
    voxel_size: tuple[float, ...],
    kept: np.ndarray,
    proposed: np.ndarray,
    strength: np.ndarray,
) -> np.ndarray:
    """``kept`` plus the ``proposed`` peaks, strongest first, whose ball (of the peak's best
    radius) overlaps no ball kept so far: two somata do not interpenetrate. A weak shell beside
    a kept soma lies in that soma's high probability, not in a soma of its own (on the toy
    brain every proposal the U-Net added this way was such a neighbour, 5-6 µm from a true
    centre)."""
    keep = kept.copy()
    centres = peaks * np.asarray(voxel_size, dtype=float)
    radii = radius[tuple(peaks.T)].astype(float)
    for i in np.flatnonzero(proposed)[np.argsort(-strength[proposed], kind="stable")]:
        distance = np.linalg.norm(centres[keep] - centres[i], axis=1)
        if np.all(distance >= radii[keep] + radii[i]):
            keep[i] = True
    return keep


def _balls_around(
    peaks: np.ndarray, radius: np.ndarray, voxel_size: tuple[float, ...]
) -> np.ndarray:
    """Label i+1 on the voxels within ``radius[peak i]`` µm of peak i and nearer to it than
    to any other peak."""
    shape = radius.shape
    if len(peaks) == 0:
        return np.zeros(shape, dtype=np.int32)
    markers = np.ones(shape, dtype=bool)
    markers[tuple(peaks.T)] = False
    ids = np.zeros(shape, dtype=np.int32)
    ids[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    distance, nearest = ndimage.distance_transform_edt(
        markers, sampling=voxel_size, return_indices=True
    )
    owner = ids[tuple(nearest)]
    reach = np.zeros(len(peaks) + 1, dtype=np.float32)
    reach[1:] = radius[tuple(peaks.T)]
    return np.where(distance <= reach[owner], owner, 0).astype(np.int32)


def _polarity(run: dict[str, Any], image: np.ndarray) -> str:
    """The polarity given, or read from a grid fine enough for the membranes."""
    p, vs = run["params"], run["voxel_size"]
    if p.polarity != "auto":
        run["polarity"] = p.polarity
        return p.polarity
    scale = float(p.texture_scale)
    fine_factors = np.minimum(downsample_factors(vs, scale), run["factors"])
    fine_vs = tuple(float(v) for v in np.asarray(vs) * fine_factors)
    if np.array_equal(fine_factors, run["factors"]):
        fine = image
    else:
        fine = downsample(run["volume"], fine_factors)
    run["polarity"] = membrane_polarity(fine, fine_vs, 2 * scale)
    return run["polarity"]


def _contrast_scale(p: SomaDetectionParams) -> float:
    return max(1.0, 0.125 * p.cell_diameter)


def _bodies(run: dict[str, Any], mask: np.ndarray, from_unet: bool) -> np.ndarray:
    """Open, fill, drop tubular regions and split the mask into bodies on the working grid."""
    p, work_vs = run["params"], run["work_vs"]
    # a quarter of the soma diameter cuts myelinated axons and neurite stubs off the contrast
    default_radius = max(0.5, 0.5 * max(work_vs)) if from_unet else 0.25 * p.cell_diameter
    radius = default_radius if p.opening_radius is None else float(p.opening_radius)
    if radius > 0:
        mask = ndimage.binary_opening(mask, _ball(radius, np.asarray(work_vs)))
    mask = ndimage.binary_fill_holes(mask)
    mask = _drop_tubes(mask, work_vs, p)
    # the contrast spreads about one smoothing width beyond the membrane: trim that halo
    halo = 0.0 if from_unet else _contrast_scale(p)
    return split_bodies(mask, voxel_size=work_vs, cell_diameter=p.cell_diameter, shrink=halo)


def _drop_tubes(
    mask: np.ndarray,
    work_vs: tuple[float, ...],
    p: SomaDetectionParams,
    *,
    tubes_only: bool = False,
) -> np.ndarray:
    """Remove connected regions that are tubes (vessel lumens): larger than two somata and
    more elongated than ``max_tube_elongation``; with ``tubes_only``, return the tubes."""
    regions, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask) if tubes_only else mask
    measures = _label_measures(regions, work_vs)
    soma_volume = math.pi / 6 * p.cell_diameter**3
    tubes = measures["label"][
        (measures["volume_um3"] > 2 * soma_volume)
        & (measures["elongation"] > p.max_tube_elongation)
    ].to_numpy()
    tube_mask = np.isin(regions, tubes) if len(tubes) else np.zeros_like(mask)
    return tube_mask if tubes_only else mask & ~tube_mask


def _measure_somata(
    run: dict[str, Any], image: np.ndarray, bodies: np.ndarray, images: dict[str, np.ndarray]
) -> PointSources | None:
    """Keep the bodies of soma size and shape that are no vessel lumen; None when none."""
    p, work_vs, factors = run["params"], run["work_vs"], run["factors"]
    measures = _label_measures(bodies, work_vs)
    if len(measures) == 0:
        return None
    # working voxel i covers input voxels i*f .. i*f+f-1: its centre is shifted by (f-1)/2
    measures[["z", "y", "x"]] += 0.5 * (factors - 1) * np.asarray(run["voxel_size"])
    ids = measures["label"].to_numpy()
    brightness = np.asarray(ndimage.mean(image, bodies, ids))
    d, (lo_size, hi_size) = p.cell_diameter, p.size_range
    keep = (
        (measures["diameter_um"] >= lo_size * d)
        & (measures["diameter_um"] <= hi_size * d)
        & (measures["elongation"] <= p.max_elongation)
    ).to_numpy(copy=True)
    keep &= ~_is_lumen(run, image, bodies, brightness, keep)
    contrast = images["contrast"]
    if run.get("snr_is_peak"):  # the shell response is already in robust units
        snr = np.asarray(ndimage.maximum(contrast, bodies, ids))
    else:
        background = float(np.median(contrast[bodies == 0])) if np.any(bodies == 0) else 1.0
        snr = np.asarray(ndimage.mean(contrast, bodies, ids)) / max(background, 1e-9)
    full = p.full_resolution_labels

    def out_labels(lab: np.ndarray) -> np.ndarray:
        return upsample_labels(lab, factors, run["shape"]) if full else lab

    return _sources_from_bodies(
        bodies,
        voxel_size=work_vs,
        keep=keep,
        measures=measures,
        brightness=brightness,
        snr=snr,
        out_labels=out_labels,
        out_voxel_size=run["voxel_size"] if full else work_vs,
        parameters=run["record"],
        summary_images=images,
    )


def _is_lumen(
    run: dict[str, Any],
    image: np.ndarray,
    bodies: np.ndarray,
    brightness: np.ndarray,
    candidates: np.ndarray,
) -> np.ndarray:
    """Bodies whose polarity-corrected brightness above the neuropil is far from the median
    candidate's: the electron-lucent lumen of vessels (brighter), myelin, blood cells and
    glial heterochromatin (darker)."""
    if candidates.sum() < 3 or not p_lumen(run) > 0:
        return np.zeros(len(brightness), dtype=bool)
    sign = 1.0 if run.get("polarity", "dark_membranes") == "dark_membranes" else -1.0
    neuropil = float(np.median(image[bodies == 0])) if np.any(bodies == 0) else 0.0
    excess = sign * (brightness - neuropil)
    typical = float(np.median(excess[candidates]))
    spread = float(np.median(np.abs(excess[candidates] - typical)))
    limit = p_lumen(run) * max(abs(typical), 3 * spread)
    # far brighter: a vessel lumen; far darker: myelin, blood cells, glial heterochromatin
    return np.abs(excess - typical) > limit


def p_lumen(run: dict[str, Any]) -> float:
    return float(run["params"].lumen_contrast)


# -- from an existing segmentation ---------------------------------------------------------------
def somata_from_labels(
    labels: Any,
    *,
    voxel_size: Any,
    cell_diameter: float | None = None,
    size_range: tuple[float, float] = (0.5, 2.0),
    max_elongation: float = 2.5,
    nucleus: bool | str = "auto",
    callback: Callable[[dict[str, Any]], Any] | None = None,
    soma_diameter: float | None = None,
) -> PointSources:
    """Somata from a label volume (e.g. a connectomics segmentation).

    Segments enclosed by exactly one other segment (nucleus-like compartments, as in
    exports that segment nuclei apart) are merged into it and count as evidence of a soma.
    Each segment's thick part (voxels deeper than ``0.2 * cell_diameter`` inside it, which
    drops dendrites and axons attached to a soma) is measured: centroid, equivalent diameter
    (the trimmed depth added back), elongation = square root of the ratio of the largest to
    the smallest principal second moment. A segment is a soma if that diameter lies within
    ``size_range`` times ``cell_diameter`` (µm, default that of
    :class:`~napari_mesoscale.segment.params.SomaDetectionParams`), its elongation is at most
    ``max_elongation`` and, when ``nucleus`` is True (``"auto"``: when any segment encloses
    another), it encloses a nucleus. ``soma_diameter`` is the deprecated name of
    ``cell_diameter``.

    Returns
    -------
    PointSources
        Somata only, relabelled 1..N; ``features`` keeps the original ``label``, the
        measures and ``has_nucleus``. :func:`label_table` gives the measures of every label.
    """
    labels = np.asarray(labels.compute() if is_lazy(labels) else labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (Z, Y, X) volume; got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}.")
    if nucleus not in (True, False, "auto"):
        raise ValueError(f"nucleus must be True, False or 'auto'; got {nucleus!r}.")
    vs = check_voxel_size(voxel_size, ndim=3)
    cell_diameter = renamed_keyword("cell_diameter", cell_diameter, "soma_diameter", soma_diameter)
    if cell_diameter is None:
        cell_diameter = SomaDetectionParams().cell_diameter
    d = float(cell_diameter)
    if not d > 0:
        raise ValueError(f"cell_diameter must be positive µm; got {cell_diameter}.")
    progress = Progress.wrap(callback, DetectionCancelled)
    progress.report(0.0, "merging enclosed compartments")
    merged, parents = _merge_enclosed(np.clip(labels, 0, None).astype(np.int64))
    need_nucleus = bool(len(parents)) if nucleus == "auto" else bool(nucleus)
    progress.report(0.3, "measuring thick parts")
    trim = 0.2 * d
    table = _thick_part_table(merged, vs, trim)
    table["has_nucleus"] = np.isin(table["label"], parents)
    table["is_soma"] = (
        (table["diameter_um"] >= size_range[0] * d)
        & (table["diameter_um"] <= size_range[1] * d)
        & (table["elongation"] <= max_elongation)
        & (table["has_nucleus"] | (not need_nucleus))
    )
    somata = table[table["is_soma"]].reset_index(drop=True)
    remap = np.zeros(int(merged.max()) + 1 if merged.size else 1, dtype=np.int32)
    remap[somata["label"].to_numpy()] = np.arange(1, len(somata) + 1, dtype=np.int32)
    relabelled = remap[merged]
    features = pd.DataFrame(
        {
            "id": np.arange(1, len(somata) + 1, dtype=np.int64),
            "size": np.bincount(relabelled.reshape(-1), minlength=len(somata) + 1)[1:],
            "brightness": np.zeros(len(somata)),
            "snr": np.zeros(len(somata)),
            "label": somata["label"].to_numpy(),
            "volume_um3": somata["volume_um3"].to_numpy(),
            "diameter_um": somata["diameter_um"].to_numpy(),
            "elongation": somata["elongation"].to_numpy(),
            "has_nucleus": somata["has_nucleus"].to_numpy(),
        }
    )
    progress.report(1.0, f"{len(somata)} somata of {len(table)} labels")
    return PointSources(
        positions=somata[["z", "y", "x"]].to_numpy(dtype=float).reshape(-1, 3),
        labels=relabelled,
        voxel_size=vs,
        features=features,
        parameters={
            "voxel_size": list(vs),
            "cell_diameter": d,
            "size_range": list(size_range),
            "max_elongation": max_elongation,
            "nucleus_required": need_nucleus,
            "n_labels": int(len(table)),
            "n_enclosed_merged": int(len(parents)),
        },
    )


def _merge_enclosed(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge every segment whose only face neighbour inside the volume is one other segment
    into that one; returns the merged labels and the enclosing labels.

    The volume's own faces do not count as a neighbour: a nucleus cut by the block's face is
    still enclosed by its soma (its contact with the outside says nothing).
    """
    padded = np.pad(labels, 1, constant_values=-1) + 1  # 0: outside the volume
    base = int(padded.max()) + 1
    codes = []
    for axis in range(3):
        a = np.moveaxis(padded, axis, 0)
        lo, hi = a[:-1].reshape(-1), a[1:].reshape(-1)
        differ = lo != hi
        lo, hi = lo[differ], hi[differ]
        codes.extend([lo * base + hi, hi * base + lo])
    codes = np.unique(np.concatenate(codes))
    pairs = np.stack([codes // base, codes % base], 1) - 1
    pairs = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] >= 0)]
    if len(pairs) == 0:
        return labels, np.zeros(0, dtype=np.int64)
    owners, counts = np.unique(pairs[:, 0], return_counts=True)
    single = owners[counts == 1]
    neighbour = dict(pairs[np.isin(pairs[:, 0], single)].tolist())
    sizes = np.bincount(labels.reshape(-1).clip(0))
    # the smaller of two segments that only touch each other is the enclosed one
    enclosed = {a: b for a, b in neighbour.items() if b > 0 and sizes[a] < sizes[b]}
    if not enclosed:
        return labels, np.zeros(0, dtype=np.int64)
    lookup = np.arange(int(labels.max()) + 1, dtype=np.int64)
    for a, b in enclosed.items():
        lookup[a] = b
    return lookup[labels], np.unique(np.fromiter(enclosed.values(), dtype=np.int64))


def _thick_part_table(labels: np.ndarray, vs: tuple[float, ...], trim: float) -> pd.DataFrame:
    """Measures of each segment's body: its morphological opening by a ball of ``trim`` µm.

    The core (voxels deeper than ``trim`` µm inside the segment) is grown back by ``trim``
    within the same segment, which cuts neurites thinner than ``2 * trim`` and keeps the
    soma whole. Measuring the core alone fails on coarse grids: a soma a few voxels across
    keeps a core of 1-4 voxels whose elongation and diameter say nothing of its shape.
    Segments without a core are left out.
    """
    inner = labels > 0
    for axis in range(3):
        same = np.diff(labels, axis=axis) == 0
        edge = np.ones_like(inner)
        sl_lo = [slice(None)] * 3
        sl_hi = [slice(None)] * 3
        sl_lo[axis], sl_hi[axis] = slice(0, -1), slice(1, None)
        edge[tuple(sl_lo)] &= same
        edge[tuple(sl_hi)] &= same
        inner &= edge
    depth = ndimage.distance_transform_edt(inner, sampling=vs)
    core = depth >= trim
    if not core.any():
        return _label_measures(np.zeros_like(labels), vs)
    indices = np.empty((3, *labels.shape), dtype=np.int32)
    reach = ndimage.distance_transform_edt(~core, sampling=vs, return_indices=True, indices=indices)
    nearest_core_label = labels[tuple(indices)]
    del indices
    # the core lies trim inside the outermost voxel layer: grow back to that layer's centres
    body = (reach <= trim + max(vs) + 1e-9) & (nearest_core_label == labels)
    return _label_measures(np.where(body, labels, 0), vs)


def label_table(labels: np.ndarray, *, voxel_size: Any) -> pd.DataFrame:
    """Measures of every label: size, centroid (µm), volume, equivalent diameter, elongation."""
    vs = check_voxel_size(voxel_size, ndim=3)
    return _label_measures(np.asarray(labels), vs)
