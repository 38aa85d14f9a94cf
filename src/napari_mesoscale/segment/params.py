"""Parameters of calcium detection, EM soma detection and soma-detector training.

Each dataclass is the single source of the defaults of its core function, of the options of
``napari-mesoscale segment`` and of the controls of the detection widgets. The soma (cell)
size is called ``cell_diameter`` (µm) in both calcium and EM detection.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from napari_mesoscale.params import Params, param

__all__ = [
    "DetectionParams",
    "SomaDetectionParams",
    "SomaTrainingParams",
    "renamed_keyword",
]


@dataclass
class DetectionParams(Params):
    """Parameters of :func:`napari_mesoscale.segment.detect_point_sources` (calcium).

    Attributes
    ----------
    cell_diameter : float
        Typical soma diameter in µm.
    frame_rate : float or None
        Frames per second; sets the baseline window and deconvolution time scale. Without it
        the baseline window is a quarter of the movie.
    threshold : float or "auto"
        Detection threshold as a z-score of the blob response over the noise of the mean
        image: the median temporal standard deviation over sqrt(T), through the filter's gain
        at each voxel (larger at the faces), raised when the movie's own noise (the difference
        of its quarters) shows spatial or temporal correlation. ``"auto"``
        places it in the gap between the two modes of the peak responses (background texture
        vs cells, split by Otsu's method on log responses) when they are well separated, and
        never below ``AUTO_FLOOR`` noise units.
    min_distance : float or None
        Smallest centre-to-centre distance in µm (None: ``0.5 * cell_diameter``).
    min_activity : float or None
        Drop sources whose ``activity_z`` (local correlation image over the ROI, in robust
        standard deviations above the background's) is below this. None keeps every bright
        blob: silent cells included, but also static bright texture and the template that
        registering pure noise imprints on the mean image (all scored below 3 on the dev
        movies, active toy cells 5.6 and above). Sparse-firing dim cells score low too
        (about 1 on the realistic calcium preset at SNR 2), hence off by default.
    scales : tuple of float
        Blob sizes tried, as multiples of the Gaussian width matched to ``cell_diameter``.
        One scale of 0.8 separates touching cells best on the toy brain; several scales
        help when cell sizes vary a lot but favour the larger ones in dense tissue.
    roi_radius : float or None
        Largest distance (µm) of an ROI voxel from its centre (None: ``cell_diameter / 2``).
    neuropil_radii : (float, float) or None
        Inner and outer radius (µm) of the neuropil annulus (None: ``0.75 d, 1.5 d``).
    neuropil_coefficient : float
        Fraction of the neuropil trace subtracted from the ROI trace.
    baseline_window_s : float
        Running-percentile window of the baseline F0 in seconds (needs ``frame_rate``).
    baseline_percentile : float
        Percentile used as the baseline F0.
    deconvolve : bool
        Also estimate non-negative event rates (AR(1) OASIS) into ``PointSources.rates``.
    tau : float
        Indicator decay time (s) for deconvolution.
    slab_frames : int or None
        Frames per slab (None: about 256 MiB; dask arrays keep their own chunks).
    """

    cell_diameter: float = param(8.0, "typical soma diameter", unit="µm", minimum=0.1, step=0.5)
    frame_rate: float | None = param(
        None,
        "frames per second (sets the baseline window and deconvolution)",
        unit="Hz",
        minimum=0.0,
    )
    threshold: float | str = param(
        "auto",
        "detection threshold (z-score of the blob response) or 'auto'",
        unit="noise sd",
        minimum=1.0,
    )
    min_distance: float | None = param(
        None,
        "smallest centre-to-centre distance (default half the cell diameter)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    min_activity: float | None = param(
        None,
        "drop sources less active than this (activity_z; None keeps silent blobs)",
        unit="robust sd",
        gui=False,
    )
    scales: tuple[float, ...] = param(
        (0.8,), "blob sizes tried, in multiples of the width matched to the cell", gui=False
    )
    roi_radius: float | None = param(
        None,
        "largest distance of an ROI voxel from its centre (default d / 2)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    neuropil_radii: tuple[float, float] | None = param(
        None,
        "inner and outer radius of the neuropil annulus (default 0.75 d, 1.5 d)",
        unit="µm",
        gui=False,
    )
    neuropil_coefficient: float = param(
        0.7, "fraction of the neuropil trace subtracted", minimum=0.0, maximum=1.5, step=0.05
    )
    baseline_window_s: float = param(
        30.0, "running-percentile window of the baseline F0", unit="s", minimum=0.1, step=5.0
    )
    baseline_percentile: float = param(
        8.0, "percentile used as the baseline F0", minimum=0.0, maximum=100.0, gui=False
    )
    deconvolve: bool = param(False, "also estimate event rates (AR(1), OASIS)")
    tau: float = param(
        1.0,
        "indicator decay time for deconvolution",
        unit="s",
        minimum=0.01,
        maximum=100.0,
        step=0.1,
    )
    slab_frames: int | None = param(
        None, "frames read per slab (default about 256 MiB)", minimum=1, gui=False
    )


@dataclass
class SomaDetectionParams(Params):
    """Parameters of :func:`napari_mesoscale.segment.detect_somata_em` (EM).

    Attributes
    ----------
    cell_diameter : float
        Typical soma diameter in µm, as in :class:`DetectionParams`.
    resolution : float
        Working voxel size in µm; each axis is block-averaged by an integer factor to at most
        this size.
    cue : {"shell", "contrast"}
        Classical evidence of a soma. ``"shell"`` (default): a matched filter for a closed
        spherical membrane (radius 0.75-1.2 of half ``cell_diameter``) around membrane-free
        cytoplasm, on the polarity-corrected membrane map
        (:func:`~napari_mesoscale.segment.em.soma_shell_response`); somata are its peaks above
        ``shell_threshold``, those on tubular ridges (vessel walls) dropped. ``"contrast"``:
        the earlier path, edge energy thresholded at ``threshold``.
    shell_threshold : float
        Shell response, in robust standard deviations over the volume, above which a peak is
        a soma (in a block of faint somata a second pass accepts weaker shells that hold a
        nucleus, :data:`~napari_mesoscale.segment.em.WEAK_SHELL_FRACTION`).
    shell_fraction : float
        A peak above ``shell_threshold`` is kept only if its response is at least this
        fraction of the median such peak's: the somata of one block are stained alike, so a far
        weaker shell is a chance arrangement of neuropil membranes.
    threshold : float or "auto"
        Threshold of the texture image relative to its median (a voxel is smooth below
        ``threshold * median``); ``"auto"`` uses Otsu's method on the log texture. Ignored
        when a ``detector`` is given.
    probability_threshold : float
        Soma probability above which a voxel belongs to a soma (U-Net path). 0.7 keeps
        the confident core and drops the uncertain rim that would join touching somata.
    size_range : (float, float)
        Kept bodies have an equivalent diameter between these multiples of ``cell_diameter``.
    opening_radius : float, optional
        Radius (µm) of the morphological opening that cuts thin structures from the mask
        (default: a quarter of ``cell_diameter`` for the classical path, which cuts
        myelinated axons and neurite stubs; half the working voxel size, at least 0.5 µm,
        for the U-Net path).
    full_resolution_labels : bool
        Return labels on the input grid (True) or on the working grid.
    polarity : {"auto", "dark_membranes", "bright_membranes"}
        Contrast polarity of the EM; ``"auto"`` reads it from the skew of the band-passed
        image (thin dark membranes make it negative).
    texture_scale : float
        Width (µm) of the band-pass whose local energy (texture) is high in the membrane-rich
        neuropil and low in soma cytoplasm and nuclei; the classical path keeps the smooth
        regions.
    max_elongation, max_tube_elongation, lumen_contrast : float
        Shape and brightness rules that reject non-soma compartments (neurite stubs, vessels
        with their bright lumen).
    block_likeness_pass : bool
        Classical path, blocks of faint somata: also keep the weak shells whose nucleus looks
        like that of the block's first-pass somata (the fourth pass,
        :data:`~napari_mesoscale.segment.em.LIKENESS_PASS_SCORE`). Off by default: it raised
        recall on the faint inverted dev presets but added chance shells on a held-out one.
    anisotropic_shell : bool
        Build the shell template with the z blur of the sections
        (:func:`~napari_mesoscale.segment.em.soma_shell_response`'s ``section_thickness_um``):
        the caps of a soma's membrane, cut at a grazing angle by thick sections, are smeared
        along z and weaker while its equator stays sharp. Off by default (isotropic shell).
    section_thickness_um : float, optional
        Section thickness (µm) used by ``anisotropic_shell``; default: the z voxel size of
        the working grid (the input's, times the z block-averaging factor).
    test_time_augmentation : bool
        U-Net path: the soma probability averaged over the 8 flips of the working volume and,
        where its y and x voxels are alike, their y-x transposes
        (:meth:`~napari_mesoscale.segment.unet.SomaDetector.predict_working`'s ``augment``).
    fused_shell_pass : bool
        U-Net path, blocks of faint somata: also keep a weak shell on which the network and the
        classical evidence agree: the classical third pass's score plus the log-odds of the
        network's support reaches the third pass's bar at the smallest radius
        (:data:`~napari_mesoscale.segment.em.FUSED_PASS_SCORE`). On by default: with the
        default fine-tuning on 6 painted somata it raised the mean F1 of the dev presets on the
        design seeds 0-1 (0.899 -> 0.918, the three faintest up, none down) and over dev seeds
        0-3 (0.887 -> 0.906), and the held-out mean over seeds 0-2 (0.954 -> 0.960); no CPU
        cost. ``False`` gives the U-Net path of before.
    """

    cell_diameter: float = param(8.0, "typical soma diameter", unit="µm", minimum=0.1, step=0.5)
    resolution: float = param(
        1.0,
        "working voxel size (block-averaged)",
        unit="µm",
        minimum=0.01,
        maximum=100.0,
        step=0.25,
        label="working voxel",
    )
    cue: str = param(
        "shell",
        "classical soma evidence: a closed spherical membrane around smooth cytoplasm "
        "('shell') or thresholded edge energy ('contrast', the earlier path)",
        choices=("shell", "contrast"),
    )
    shell_threshold: float = param(
        6.5,
        "shell response (robust units over the volume) above which a peak is a soma",
        minimum=0.0,
        step=0.5,
    )
    shell_fraction: float = param(
        0.4,
        "a peak is kept only if its shell response is at least this fraction of the median "
        "kept peak's (somata of one block are stained alike)",
        minimum=0.0,
        maximum=1.0,
        gui=False,
    )
    threshold: float | str = param("auto", "soma contrast threshold or 'auto' (Otsu)", minimum=0.0)
    probability_threshold: float = param(
        0.7, "soma probability threshold (U-Net path)", minimum=0.01, maximum=0.99, step=0.05
    )
    size_range: tuple[float, float] = param(
        (0.5, 1.6), "kept equivalent diameters, in multiples of the cell diameter", gui=False
    )
    opening_radius: float | None = param(
        None,
        "radius of the opening that cuts thin structures",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    full_resolution_labels: bool = param(
        True, "labels on the input grid (else on the working grid)", gui=False
    )
    polarity: str = param(
        "auto",
        "membranes darker or brighter than cytoplasm ('auto': from the skew of the band-pass)",
        choices=("auto", "dark_membranes", "bright_membranes"),
    )
    texture_scale: float = param(
        0.5,
        "width of the band-pass whose local energy tells membrane-rich neuropil from smooth "
        "cytoplasm",
        unit="µm",
        minimum=0.05,
        maximum=10.0,
        gui=False,
    )
    max_elongation: float = param(
        2.0,
        "largest elongation (sqrt of the principal moment ratio) of a soma body",
        minimum=1.0,
        gui=False,
    )
    max_tube_elongation: float = param(
        3.0,
        "a connected smooth region more elongated than this and larger than two somata is a "
        "vessel (tubular lumen) and all its bodies are dropped",
        minimum=1.0,
        gui=False,
    )
    lumen_contrast: float = param(
        2.0,
        "a body brighter than the neuropil (polarity-corrected) by more than this multiple of "
        "the median body's excess is a vessel lumen",
        minimum=0.0,
        gui=False,
    )
    block_likeness_pass: bool = param(
        False,
        "in blocks of faint somata, also keep weak shells whose nucleus looks like the "
        "block's first-pass somata (fourth classical pass)",
        gui=False,
    )
    anisotropic_shell: bool = param(
        False, "shell template smeared along z by the section thickness", gui=False
    )
    section_thickness_um: float | None = param(
        None,
        "section thickness for the anisotropic shell (default: the z voxel size)",
        unit="µm",
        minimum=0.0,
        maximum=100.0,
        gui=False,
    )
    test_time_augmentation: bool = param(
        False,
        "U-Net path: average the soma probability over the flips of the volume (and the y-x "
        "transpose where y and x voxels are alike), 16 network passes instead of 1",
        gui=False,
    )
    fused_shell_pass: bool = param(
        True,
        "U-Net path, blocks of faint somata: also keep weak shells whose classical evidence "
        "plus the network's log-odds reaches the fused pass's score",
        label="fused shell pass",
    )


@dataclass
class SomaTrainingParams(Params):
    """Training settings of :func:`napari_mesoscale.segment.train_soma_detector`.

    ``start_from="pretrained"`` fine-tunes the soma prior shipped with the package (its
    architecture and working voxel size win over ``base_channels``, ``depth`` and
    ``resolution``); giving ``base_channels`` or ``depth`` explicitly trains from scratch.
    """

    # fine-tuning the shipped prior: 64 steps, under 2 minutes of CPU for an 80x160x160 block
    epochs: int = param(8, "training epochs", minimum=1, maximum=10_000)
    steps_per_epoch: int = param(8, "optimiser steps per epoch", minimum=1, maximum=10_000)
    batch_size: int = param(4, "patches per step", minimum=1, gui=False)
    patch_size: int = param(
        24, "patch edge on the working grid", unit="voxels", minimum=8, gui=False
    )
    resolution: float = param(
        1.0,
        "working voxel size",
        unit="µm",
        minimum=0.01,
        maximum=100.0,
        step=0.25,
        label="working voxel",
    )
    base_channels: int = param(8, "channels of the first U-Net level", minimum=1, gui=False)
    depth: int = param(2, "U-Net levels below the top", minimum=1, gui=False)
    learning_rate: float = param(3e-3, "Adam learning rate", minimum=0.0, gui=False)
    device: str = param("auto", "torch device", choices=("auto", "cpu", "cuda", "mps"))
    seed: int = param(0, "seed of the weights and patch draws", minimum=0, gui=False)
    start_from: str = param(
        "pretrained",
        "start from the shipped soma prior (fine-tuning) or from random weights",
        choices=("pretrained", "scratch"),
    )
    augmentation: str = param(
        "light",
        "patch augmentation: flips and ±10 % contrast ('light'), or also ±30 % contrast, "
        "offsets, added noise and blur ('strong')",
        choices=("light", "strong"),
        gui=False,
    )
    self_training: bool = param(
        False,
        "after fine-tuning, add the somata the classical path and the network agree on (and "
        "confident background) as labels and train again briefly",
    )
    self_training_epochs: int = param(
        4, "epochs of the second, self-training round", minimum=1, maximum=10_000, gui=False
    )
    cell_diameter: float = param(
        8.0,
        "typical soma diameter, for the detection pass of self-training",
        unit="µm",
        minimum=0.1,
    )


def renamed_keyword(
    new_name: str, new_value: Any, old_name: str, old_value: Any, *, stacklevel: int = 3
) -> Any:
    """The value of a renamed keyword: ``new_value``, or ``old_value`` with a warning.

    Giving both (with different values) is a ``TypeError``.
    """
    if old_value is None:
        return new_value
    warnings.warn(
        f"{old_name}= is deprecated; use {new_name}= instead.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if new_value is not None and new_value != old_value:
        raise TypeError(f"give {new_name}= or its old name {old_name}=, not both.")
    return old_value
