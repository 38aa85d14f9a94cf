"""Units of the axes of the layers the plugin makes, for napari's scale bar.

napari reads a layer's ``units`` (one per axis, "pixel" unless set) to label its scale bar:
the plugin's layers carry positions and scales in µm, but with napari's default the bar of a
movie of 1.5 µm pixels read "15 pixel" over 10 pixels. Spatial axes (z, y, x) are µm, the time
axis stays "pixel" (its scale counts frames).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_mesoscale.napari._layers import LayerDataTuple

MICROMETRE = "micrometer"
#: napari's unit of an axis without one (here: time, counted in frames)
NO_UNIT = "pixel"
SPATIAL_AXES = ("z", "y", "x")


def with_units(layers: list[LayerDataTuple], spatial: str = MICROMETRE) -> list[LayerDataTuple]:
    """``layers`` with ``units`` on every axis: ``spatial`` (µm) on z, y, x, "pixel" on others.

    A widget passes the unit of the layer it ran on (:func:`spatial_unit`), so that its output
    matches its input: a layer without units keeps "pixel", and napari's scale bar one unit. A
    tuple that sets its own ``units`` (a volume read without a voxel size: "pixel") is left as
    it is.
    """
    return [_with_units(layer, spatial) for layer in layers]


def spatial_unit(layer: Any) -> str:
    """The unit of ``layer``'s last (x) axis, as napari names it ("micrometer", "pixel")."""
    units = getattr(layer, "units", None)
    return str(units[-1]) if units is not None and len(units) else NO_UNIT


def has_voxel_size(layer: Any) -> bool:
    """Whether ``layer``'s spatial axes say their size: a unit, or a scale other than 1.

    A TIFF opened with napari's own reader has neither (unit "pixel", scale 1).
    """
    if spatial_unit(layer) != NO_UNIT:
        return True
    scale = np.asarray(getattr(layer, "scale", ()), dtype=float)
    return bool(np.any(scale[-min(3, scale.size) :] != 1.0)) if scale.size else False


def _with_units(layer: LayerDataTuple, spatial: str) -> LayerDataTuple:
    data, attributes, layer_type = layer
    if "units" in attributes:
        return layer
    names = _axis_names(data, attributes, layer_type)
    if names is None:
        return layer
    units = tuple(spatial if name in SPATIAL_AXES else NO_UNIT for name in names)
    return data, {**attributes, "units": units}, layer_type


def _axis_names(data: Any, attributes: dict[str, Any], layer_type: str) -> tuple[str, ...] | None:
    """The layer's axis names: its ``axis_labels``, else its data's axes, the last three spatial."""
    labels = attributes.get("axis_labels")
    if labels:
        return tuple(str(label).lower() for label in labels)
    ndim = _ndim(data, layer_type)
    if ndim is None:
        return None
    axes = str((attributes.get("metadata") or {}).get("axes") or "")
    if len(axes) == ndim:
        return tuple(axes.lower())
    return (("t",) * ndim + SPATIAL_AXES)[-ndim:] if ndim <= 4 else None


def _ndim(data: Any, layer_type: str) -> int | None:
    if layer_type in ("image", "labels"):
        first = data[0] if isinstance(data, list | tuple) else data  # multiscale: a list
        return int(getattr(first, "ndim", 0)) or None
    shape = np.shape(data)
    if layer_type == "points" and len(shape) == 2:
        return int(shape[1])
    if layer_type == "vectors" and len(shape) == 3:
        return int(shape[2])
    return None


def in_micrometres(
    make_layers: Callable[..., list[LayerDataTuple]],
) -> Callable[..., list[LayerDataTuple]]:
    """Decorate a reader or sample function: its layers get :func:`with_units`."""

    @functools.wraps(make_layers)
    def with_micrometres(*args: Any, **kwargs: Any) -> list[LayerDataTuple]:
        return with_units(make_layers(*args, **kwargs))

    return with_micrometres
