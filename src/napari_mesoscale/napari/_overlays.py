"""Overlays of a fitted model: domains, motifs and predicted activity painted into ROI masks.

Pure array code (numpy, dask, pandas); the widgets turn these tuples into layers.
"""

from __future__ import annotations

import colorsys
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd

from napari_mesoscale.napari._layers import MOTIF_COLORS, LayerDataTuple, layer_scale


def paint_rois(roi_labels: np.ndarray, values: np.ndarray, *, background: float = 0) -> np.ndarray:
    """Paint one value per ROI into a label volume.

    Parameters
    ----------
    roi_labels : ndarray of int, shape (Z, Y, X)
        ROI volume where voxel value ``i + 1`` belongs to neuron ``i`` and 0 is background.
    values : ndarray, shape (N,)
        The value of each neuron.
    background : float
        Value outside every ROI.
    """
    values = np.asarray(values)
    roi_labels = np.asarray(roi_labels)
    if roi_labels.max(initial=0) > values.shape[0]:
        raise ValueError(
            f"The ROI volume has label {int(roi_labels.max())} but only {values.shape[0]} "
            "neurons have values; use the ROI labels of the same point sources."
        )
    lookup = np.empty(values.shape[0] + 1, dtype=values.dtype)
    lookup[0] = background
    lookup[1:] = values
    return lookup[roi_labels]


def paint_activity(roi_labels: np.ndarray, activity: np.ndarray) -> da.Array:
    """A lazy (T, Z, Y, X) movie with each ROI filled by its neuron's activity at each frame
    ((T, Y, X) for the (Y, X) ROIs of one plane).

    ``activity`` is (T, N). Frames are painted on demand, so a long prediction costs no
    memory until napari shows a frame.
    """
    activity = np.asarray(activity, dtype=np.float32)
    roi_labels = np.asarray(roi_labels)
    n_frames = activity.shape[0]
    lookup = np.zeros((n_frames, activity.shape[1] + 1), dtype=np.float32)
    lookup[:, 1:] = activity
    frames = da.arange(n_frames, chunks=1)

    spatial = roi_labels.ndim

    def paint(block: np.ndarray) -> np.ndarray:
        return lookup[block.reshape(-1, *(1,) * spatial), roi_labels[None]]

    return frames.map_blocks(
        paint,
        new_axis=list(range(1, spatial + 1)),
        chunks=((1,) * n_frames, *((s,) for s in roi_labels.shape)),
        dtype=np.float32,
    )


def domain_colors(domains: np.ndarray, motifs: np.ndarray) -> dict[int | None, np.ndarray]:
    """Colours for domain labels, grouped by motif: one hue per motif, shades per domain."""
    colors: dict[int | None, np.ndarray] = {None: np.zeros(4), 0: np.zeros(4)}
    table = pd.DataFrame({"domain": domains, "motif": motifs}).drop_duplicates("domain")
    for motif, group in table.groupby("motif"):
        base = MOTIF_COLORS[int(motif) % len(MOTIF_COLORS), :3]
        hue, lightness, saturation = colorsys.rgb_to_hls(*base)
        shades = np.linspace(0.35, 0.75, max(len(group), 2))
        for shade, domain in zip(shades, sorted(group["domain"]), strict=False):
            rgb = colorsys.hls_to_rgb(hue, shade, saturation)
            colors[int(domain) + 1] = np.array([*rgb, 1.0])
    return colors


def domain_layers(
    roi_labels: np.ndarray,
    voxel_size: Any,
    domains: np.ndarray,
    motifs: np.ndarray,
    *,
    domain_table: pd.DataFrame | None = None,
) -> list[LayerDataTuple]:
    """Labels layers of functional domains (coloured by motif) and of motifs.

    Label values are ``domain + 1`` and ``motif + 1`` so that 0 stays background.
    """
    from napari.utils.colormaps import DirectLabelColormap

    domains = np.asarray(domains, dtype=np.int64)
    motifs = np.asarray(motifs, dtype=np.int64)
    scale = layer_scale(voxel_size, np.ndim(roi_labels))  # (Z, Y, X), or (Y, X): one plane
    labels = tuple("zyx"[-np.ndim(roi_labels) :])
    domain_volume = paint_rois(roi_labels, domains + 1).astype(np.int32)
    motif_volume = paint_rois(roi_labels, motifs + 1).astype(np.int32)
    features = domain_table if domain_table is not None else _domain_features(domains, motifs)
    motif_colors = {None: np.zeros(4), 0: np.zeros(4)}
    for motif in np.unique(motifs):
        motif_colors[int(motif) + 1] = MOTIF_COLORS[int(motif) % len(MOTIF_COLORS)]
    return [
        (
            domain_volume,
            {
                "name": "functional domains",
                "scale": scale,
                "axis_labels": labels,
                "colormap": DirectLabelColormap(color_dict=domain_colors(domains, motifs)),
                "features": _label_features(features, "domain"),
                "opacity": 0.7,
            },
            "labels",
        ),
        (
            motif_volume,
            {
                "name": "motifs",
                "scale": scale,
                "axis_labels": labels,
                "colormap": DirectLabelColormap(color_dict=motif_colors),
                "opacity": 0.7,
                "visible": False,
            },
            "labels",
        ),
    ]


def _domain_features(domains: np.ndarray, motifs: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"domain": domains, "motif": motifs})
    return (
        table.groupby("domain").agg(motif=("motif", "first"), size=("motif", "size")).reset_index()
    )


def _label_features(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """napari Labels features need an ``index`` column equal to the label value."""
    features = table.copy()
    features.insert(0, "index", features[key].astype(int) + 1)
    background = pd.DataFrame(
        {column: [0 if column == "index" else np.nan] for column in features.columns}
    )
    return pd.concat([background, features], ignore_index=True)


#: opacity of the least confident cells: low enough to tell apart, high enough to see
MIN_POINT_OPACITY = 0.4


def motif_point_colors(motifs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """RGBA face colours: motif hue, assignment confidence as opacity (at least
    :data:`MIN_POINT_OPACITY`, so that uncertain cells stay visible)."""
    colors = MOTIF_COLORS[np.asarray(motifs, dtype=int) % len(MOTIF_COLORS)].copy()
    colors[:, 3] = np.clip(np.asarray(confidence, dtype=float), MIN_POINT_OPACITY, 1.0)
    return colors


#: what a fit writes on its cells layer, per cell: fitted domain, motif and confidence
FIT_COLUMNS = ("domain", "motif", "confidence")
#: prefix of a fit column whose plain name already held other data (the sample's true motif)
FITTED_PREFIX = "fitted_"


def fitted_column(columns: Any, name: str, fitted_before: bool = True) -> str:
    """The feature column that holds (or is to hold) a fit's ``name`` values (of
    :data:`FIT_COLUMNS`).

    Parameters
    ----------
    columns : iterable of str
        The cells layer's feature columns.
    name : str
        ``"domain"``, ``"motif"`` or ``"confidence"``.
    fitted_before : bool
        Whether a fit already wrote on the layer (its plain columns are then the fit's own).

    Returns
    -------
    str
        ``fitted_<name>`` when a fit already wrote there, or when ``name`` holds data no fit
        wrote (the toy sample's ground-truth ``motif``, kept); else ``name``.
    """
    columns = set(columns)
    renamed = FITTED_PREFIX + name
    if renamed in columns or (name in columns and not fitted_before):
        return renamed
    return name


def activity_layers(
    roi_labels: np.ndarray,
    voxel_size: Any,
    recorded: np.ndarray,
    predicted: np.ndarray,
) -> list[LayerDataTuple]:
    """Predicted activity and residual (recorded − predicted) painted into the ROIs, (T, Z, Y, X).

    Frames where the model has no prediction (the first) hold NaN in ``predicted`` and are
    shown as zero.
    """
    recorded = np.asarray(recorded, dtype=np.float32)
    predicted = np.nan_to_num(np.asarray(predicted, dtype=np.float32))
    if recorded.shape != predicted.shape:
        raise ValueError(
            f"recorded {recorded.shape} and predicted {predicted.shape} activity differ in "
            "shape; both must be (T, N) for the same neurons."
        )
    scale = layer_scale(voxel_size, np.ndim(roi_labels) + 1)
    labels = tuple("t" + "zyx"[-np.ndim(roi_labels) :])  # the slider reads t, not z
    limits = [float(np.nanpercentile(recorded, 1)), float(np.nanpercentile(recorded, 99.5))]
    if limits[1] <= limits[0]:
        limits[1] = limits[0] + 1.0
    spread = float(np.nanpercentile(np.abs(recorded - predicted), 99)) or 1.0
    return [
        (
            paint_activity(roi_labels, predicted),
            {
                "name": "predicted activity",
                "scale": scale,
                "axis_labels": labels,
                "colormap": "magma",
                "contrast_limits": limits,
                "blending": "additive",
            },
            "image",
        ),
        (
            paint_activity(roi_labels, recorded - predicted),
            {
                "name": "residual",
                "scale": scale,
                "axis_labels": labels,
                "colormap": "PiYG",
                "contrast_limits": [-spread, spread],
                "visible": False,
            },
            "image",
        ),
    ]
