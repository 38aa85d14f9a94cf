"""Conversion of core results into napari layer-data tuples (no Qt needed)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.io.volumes import Volume
from napari_mesoscale.napari._contract import metadata_dict

LayerDataTuple = tuple[Any, dict[str, Any], str]

# Motif colours: one hue per motif family, reused by every layer that shows motifs.
MOTIF_COLORS = np.array(
    [
        [0.90, 0.30, 0.25, 1.0],
        [0.25, 0.60, 0.90, 1.0],
        [0.35, 0.80, 0.35, 1.0],
        [0.95, 0.75, 0.20, 1.0],
        [0.70, 0.40, 0.85, 1.0],
        [0.30, 0.85, 0.80, 1.0],
        [0.95, 0.50, 0.75, 1.0],
        [0.60, 0.60, 0.60, 1.0],
    ]
)


#: what the plugin's steps append to the name of the layer they ran on (longest first, so that
#: " somata (U-Net)" is taken whole; a user's own " (…)" qualifier is no suffix of ours).
#: " registered" is not among them: cells found in a registered movie keep that in their name.
OUTPUT_SUFFIXES = (" somata (U-Net)", " annotations", " somata", " points", " ROIs")


def _tail_pattern(suffixes: tuple[str, ...]) -> re.Pattern[str]:
    """One of ``suffixes`` at the end of a name, with the ``_2``, ``_3``… a taken name gets."""
    alternatives = "|".join(re.escape(suffix) for suffix in sorted(suffixes, key=len, reverse=True))
    return re.compile(f"(?:{alternatives})(?:_\\d+)?$")


def output_name(source_name: str, suffix: str) -> str:
    """The name of a step's output layer: ``source_name`` without the suffixes the plugin's
    steps appended to it, then ``suffix``.

    Parameters
    ----------
    source_name : str
        The name of the layer the step ran on (itself maybe an output of a step).
    suffix : str
        What this step appends, e.g. ``" somata points"``.

    Returns
    -------
    str
        E.g. ``"X somata points"`` for ``"X somata ROIs"`` and ``" somata points"`` (not
        ``"X somata ROIs somata points"``); ``"EM somata (truth) somata points"`` for
        ``"EM somata (truth)"``, whose ``" (truth)"`` is the user's; ``"movie registered"``
        for ``"movie registered"`` and ``" registered"`` (a step's own suffix is not repeated)
        but ``"movie registered points"`` for ``" points"``.
    """
    tail_pattern = _tail_pattern(tuple({*OUTPUT_SUFFIXES, suffix.rstrip()} - {""}))
    base = source_name
    while (tail := tail_pattern.search(base)) is not None and tail.start() > 0:
        base = base[: tail.start()]
    return base + suffix


def layer_scale(voxel_size: Any, ndim: int) -> tuple[float, ...]:
    """napari ``scale`` for an array whose last three axes are (z, y, x) in µm.

    Leading axes (time, channel) keep a scale of 1, so the time slider counts frames.
    """
    spatial = tuple(float(v) for v in (voxel_size if voxel_size is not None else (1, 1, 1)))
    return (1.0,) * (ndim - len(spatial)) + spatial[-min(ndim, len(spatial)) :]


def axis_labels(ndim: int, axes: str | None = None) -> tuple[str, ...]:
    """napari axis labels: the data's own axis names (``"TZYX"`` → t, z, y, x) when they fit,
    else the last ``ndim`` of t, z, y, x (so that sliders read t and z, not -4 and -3)."""
    if axes and len(axes) == ndim:
        return tuple(axes.lower())
    names = ("t", "z", "y", "x")
    return names[-ndim:] if ndim <= len(names) else tuple(str(i - ndim) for i in range(ndim))


def volume_layer(
    volume: Volume, name: str, *, layer_type: str = "image", **kwargs: Any
) -> LayerDataTuple:
    """An Image or Labels layer tuple for ``volume`` with its physical scale."""
    metadata = metadata_dict(
        **volume.metadata,
        voxel_size_um=volume.voxel_size,
        frame_rate_hz=volume.frame_rate,
        axes=volume.axes,
    )
    attributes = {
        "name": name,
        "scale": layer_scale(volume.voxel_size, volume.data.ndim),
        "axis_labels": axis_labels(volume.data.ndim, volume.axes),
        "metadata": metadata,
        **kwargs,
    }
    if volume.voxel_size is None:  # read without one: its scale is 1 pixel, not 1 µm
        attributes["units"] = ("pixel",) * volume.data.ndim
    return volume.data, attributes, layer_type


def points_layer(
    positions: np.ndarray,
    name: str,
    *,
    features: pd.DataFrame | None = None,
    size: float = 6.0,
    color_by: str | None = None,
    **kwargs: Any,
) -> LayerDataTuple:
    """A Points layer tuple; ``positions`` in µm (z, y, x), so ``scale`` stays 1."""
    positions = np.asarray(positions, dtype=float)
    ndim = positions.shape[1] if positions.ndim == 2 else 3
    attributes: dict[str, Any] = {
        "name": name, "size": size, "axis_labels": axis_labels(ndim), **kwargs
    }
    if features is not None:
        attributes["features"] = features.reset_index(drop=True)
    if color_by is not None and features is not None and color_by in features:
        codes = pd.Series(features[color_by]).astype("category").cat.codes.to_numpy()
        attributes["face_color"] = MOTIF_COLORS[codes % len(MOTIF_COLORS)]
    return np.asarray(positions, dtype=float), attributes, "points"


def edge_vectors_layer(
    start: np.ndarray,
    end: np.ndarray,
    name: str,
    *,
    features: pd.DataFrame | None = None,
    **kwargs: Any,
) -> LayerDataTuple:
    """A Vectors layer tuple of edges from ``start`` to ``end`` (µm, (E, 3) each).

    Vectors stay interactive with tens of thousands of edges, where a Shapes layer of paths
    would not.
    """
    start = np.asarray(start, dtype=float)
    vectors = np.stack([start, np.asarray(end, dtype=float) - start], axis=1)
    attributes: dict[str, Any] = {"name": name, "edge_width": 0.5, "vector_style": "line", **kwargs}
    if features is not None:
        attributes["features"] = features.reset_index(drop=True)
    return vectors, attributes, "vectors"


def world_positions(layer: Any) -> np.ndarray:
    """World coordinates (µm) of a Points layer's last three axes, (N, 3) as (z, y, x).

    Uses the layer's whole data-to-world transform (scale, translate, rotation, affine): it is
    linear, so it is read off once from the origin and the unit vectors and applied to all
    points together. Points (y, x) of one imaging plane (what *Detect point sources* gives
    for a (T, Y, X) movie) lie at z = 0 µm.
    """
    data = np.asarray(layer.data, dtype=float)
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(
            f"Layer {layer.name!r} must hold 3D points (z, y, x), or (y, x) points of one "
            f"plane; got {data.shape}."
        )
    ndim = data.shape[1]
    origin = np.asarray(layer.data_to_world(np.zeros(ndim)), dtype=float)
    axes = np.stack([np.asarray(layer.data_to_world(unit), dtype=float) - origin
                     for unit in np.eye(ndim)])
    world = data @ axes + origin
    if ndim == 2:  # one plane: its cells at z = 0
        return np.column_stack([np.zeros(len(world)), world])
    return world[:, -3:]
