"""npe2 writers: point sources as CSV (µm), labels as OME-TIFF with voxel size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.io import write_table, write_tiff
from napari_mesoscale.napari import _contract


def _world_table(data: Any, meta: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """World coordinates (µm) of a Points layer as a table: z, y, x, or y, x for the points
    of one plane (a (T, Y, X) movie's cells); and all world coordinates (N, D)."""
    points = np.asarray(data, dtype=float)
    if points.ndim != 2 or points.shape[1] < 2:
        raise ValueError(
            f"Point sources need (z, y, x) or, in one plane, (y, x) coordinates; got shape "
            f"{points.shape}."
        )
    scale = np.asarray(meta.get("scale", np.ones(points.shape[1])), dtype=float)
    translate = np.asarray(meta.get("translate", np.zeros(points.shape[1])), dtype=float)
    world = points * scale + translate
    columns = ["z", "y", "x"] if points.shape[1] >= 3 else ["y", "x"]
    return pd.DataFrame(world[:, -len(columns) :], columns=columns), world


def write_points_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Points layer as CSV: z, y, x in µm (world coordinates; y, x for the points of
    one plane) and its features."""
    table, world = _world_table(data, meta)
    for index in range(world.shape[1] - 3):  # leading axes (time, ...) before z, y, x
        table.insert(index, f"axis{index}", world[:, index])
    features = meta.get("features")
    if features is not None and len(features) == len(table):
        features = pd.DataFrame(features).reset_index(drop=True)
        features = features.drop(columns=[c for c in features.columns if c in table.columns])
        table = pd.concat([table, features], axis=1)
    write_table(table, path)
    return [path]


def write_labels_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as an OME-TIFF whose voxel size is the layer's scale (µm).

    Labels of one plane (Y, X), e.g. ROIs detected in a (T, Y, X) movie, keep their (y, x)
    pixel size.
    """
    ndim = np.ndim(data)
    if ndim not in (2, 3, 4):
        raise ValueError(
            f"Labels must be 2D (y, x), 3D (z, y, x) or 4D (t, z, y, x); got {ndim}D."
        )
    axes = _layer_axes(meta, ndim)
    write_tiff(
        path,
        np.asarray(data),
        voxel_size=_spatial_scale(meta, axes),
        axes=axes,
        metadata={"name": meta.get("name", "labels")},
    )
    return [path]


def _spatial_scale(meta: dict[str, Any], axes: str) -> tuple[float, ...]:
    """The layer's scale on its spatial axes (µm): (z, y, x), or (y, x) without a z axis."""
    scale = tuple(float(s) for s in meta.get("scale", (1.0,) * len(axes)))
    return scale[-len(axes.replace("T", "")) :]


_KEPT_ATTRIBUTES = ("opacity", "visible", "blending", "size", "edge_width", "contrast_limits")


def write_bundle(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Write every given layer into one results bundle; opening it restores them.

    Images and labels become OME-Zarr volumes with the layer's voxel size (and a movie's frame
    rate), points a table in µm with their features, vectors an array with a table of their
    features (pre, post, synapses, bin …). Every layer's
    ``metadata`` is kept beside it (:func:`napari_mesoscale.io.store_values`): arrays (activity,
    predictions, stimulus) as arrays, sparse matrices (adjacency) as their COO arrays, data
    frames as tables, plain values (``roi_labels``, ``voxel_size_um``, ``frame_rate_hz``, ...)
    as JSON. Values it cannot store (a fit, a connectome object) are named in one warning
    notification and in the bundle; a connectome's adjacency is kept in the cells' order.
    """
    from napari_mesoscale.io import ResultsBundle, Volume

    bundle = ResultsBundle(metadata={"layers": []})
    used: set[str] = set()
    left_out: list[str] = []
    for data, meta, layer_type in layer_data:
        key = _unique_key(meta.get("name", layer_type), used)
        spec: dict[str, Any] = {
            "name": meta.get("name", key),
            "type": layer_type,
            "kwargs": _display_attributes(meta),
        }
        colormap = colormap_spec(meta.get("colormap"))
        if colormap is not None:
            spec["colormap"] = colormap
        if layer_type in ("image", "labels"):
            ndim = np.ndim(data)
            if not 2 <= ndim <= 4:
                raise ValueError(
                    f"Layer {spec['name']!r} is {ndim}D; bundles hold 2D (y, x), 3D or 4D data."
                )
            axes = _layer_axes(meta, ndim)
            frame_rate = _frame_rate(meta) if axes.startswith("T") else None
            voxel_size = _spatial_scale(meta, axes)
            bundle.volumes[key] = Volume(data, axes, voxel_size, frame_rate=frame_rate)
            spec["source"] = f"volumes/{key}"
        elif layer_type == "points":
            table, _ = _world_table(data, meta)
            features = _storable_features(meta, len(table))
            if features is not None:
                features = features.drop(columns=[c for c in ("z", "y", "x") if c in features])
                table = pd.concat([table, features], axis=1)
            bundle.tables[key] = table
            spec["source"] = f"tables/{key}"
            spec["kwargs"]["face_color"] = np.asarray(meta.get("face_color", "white")).tolist()
            if "adjacency" not in (meta.get("metadata") or {}):
                _save_adjacency(bundle, spec, key, meta, len(table))
        elif layer_type == "vectors":
            bundle.arrays[key] = np.asarray(data, dtype=float)
            spec["source"] = f"arrays/{key}"
            features = _storable_features(meta, len(bundle.arrays[key]))
            if features is not None and len(features.columns):
                bundle.tables[f"{key}.features"] = features  # pre, post, synapses, bin …
                spec["features"] = f"{key}.features"
            # the transmission over time has a time axis of bins (scale e.g. 10 frames): at
            # scale 1 a reopened bundle showed bin k's edges at frame k
            for attribute in ("scale", "translate"):
                if meta.get(attribute) is not None:
                    spec["kwargs"][attribute] = np.asarray(meta[attribute], dtype=float).tolist()
            edge_color = meta.get("edge_color")
            if edge_color is not None:
                spec["kwargs"]["edge_color"] = np.asarray(edge_color, dtype=float).tolist()
        else:
            continue
        missing = _save_metadata(bundle, spec, key, meta)
        if missing:
            left_out.append(f"{spec['name']!r}: {', '.join(missing)}")
        bundle.metadata["layers"].append(spec)
    saved = bundle.save(path)
    if left_out:
        from napari.utils.notifications import show_warning

        show_warning(
            f"napari-mesoscale: {saved.name} left out layer metadata it cannot store "
            f"(Python objects): {'; '.join(left_out)}."
        )
    return [str(saved)]


def _save_metadata(bundle: Any, spec: dict[str, Any], key: str, meta: dict[str, Any]) -> list[str]:
    """Store the layer's ``metadata`` in the bundle; the keys left out, as the user reads them."""
    from napari_mesoscale.io import store_values

    description, missing = store_values(bundle, f"{key}.metadata", meta.get("metadata") or {})
    spec["metadata"] = description
    if missing:
        spec["metadata_left_out"] = missing
    if "adjacency" in spec:  # written by _save_adjacency from the layer's connectome
        missing = [f"{m} (its adjacency kept)" if m == "connectome" else m for m in missing]
    return missing


def _layer_axes(meta: dict[str, Any], ndim: int) -> str:
    """The axes the layer's metadata names (a (T, Y, X) movie says "TYX"), else the usual
    ones for its dimensions: (Z, Y, X) or (T, Z, Y, X)."""
    named = str((meta.get("metadata") or {}).get("axes") or "").upper()
    if len(named) == ndim and named.endswith("YX") and set(named) <= set("TZYX"):
        return named
    return "TZYX"[-ndim:]


def _storable_features(meta: dict[str, Any], n_rows: int) -> pd.DataFrame | None:
    """The layer's ``features`` a bundle table can hold: one row per point or vector.

    Kept: columns with string names holding numbers, booleans, categories or only strings
    (neuron ids); other Python objects are left out. None when there are no features or
    their length does not match the layer's data.
    """
    features = meta.get("features")
    if features is None or len(features) != n_rows:
        return None
    table = pd.DataFrame(features).reset_index(drop=True)
    kept = [c for c in table.columns if isinstance(c, str) and _storable_column(table[c])]
    return table[kept]


def _storable_column(column: pd.Series) -> bool:
    if column.dtype != object:
        return True
    return bool(column.map(lambda value: isinstance(value, str)).all())


def _frame_rate(meta: dict[str, Any]) -> float | None:
    value = (meta.get("metadata") or {}).get("frame_rate_hz")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _unique_key(name: str, used: set[str]) -> str:
    key = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") or "layer"
    candidate, number = key, 1
    while candidate in used:
        number += 1
        candidate = f"{key}_{number}"
    used.add(candidate)
    return candidate


def _display_attributes(meta: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for name in _KEPT_ATTRIBUTES:
        value = meta.get(name)
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            if value.size != 1:
                continue
            value = value.item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, list | tuple):
            value = [float(v) for v in value]
        kept[name] = value if isinstance(value, bool | int | float | str | list) else str(value)
    return kept


def _save_adjacency(
    bundle: Any, spec: dict[str, Any], key: str, meta: dict[str, Any], n_points: int
) -> None:
    """Keep a Points layer's connectome's adjacency (in the same point order) as the three
    arrays of a sparse COO matrix, so that a reopened layer can drive a new fit."""
    import scipy.sparse as sp

    fields = _contract.read(meta)
    adjacency = fields.adjacency
    if adjacency is None and fields.connectome is not None:
        adjacency = getattr(fields.connectome, "adjacency", None)
    if adjacency is None or tuple(adjacency.shape) != (n_points, n_points):
        return
    coo = sp.coo_matrix(adjacency)
    names = {}
    for part in ("row", "col", "data"):
        names[part] = f"{key}.adjacency_{part}"
        bundle.arrays[names[part]] = np.asarray(getattr(coo, part))
    spec["adjacency"] = {"shape": [n_points, n_points], **names}


def colormap_spec(colormap: Any) -> dict[str, Any] | None:
    """A JSON description of a layer's colormap: a registered name, a custom colormap's colours
    and controls, or a direct label colormap's label → colour table. None: napari's default
    (e.g. the random label colours)."""
    from napari.utils.colormaps import AVAILABLE_COLORMAPS, CyclicLabelColormap, DirectLabelColormap

    if colormap is None or isinstance(colormap, CyclicLabelColormap):
        return None
    if isinstance(colormap, str):
        return {"name": colormap}
    if isinstance(colormap, DirectLabelColormap):
        table = [
            [None if label is None else int(label), [float(c) for c in color]]
            for label, color in colormap.color_dict.items()
        ]
        return {"direct": table}
    if hasattr(colormap, "dict") and not isinstance(colormap, dict):
        colormap = colormap.dict()
    if not isinstance(colormap, dict) or "colors" not in colormap:
        return None  # cyclic label colours: napari's default
    name = str(colormap.get("name", ""))
    if name in AVAILABLE_COLORMAPS:
        return {"name": name}
    return {
        "name": name,
        "colors": np.asarray(colormap["colors"], dtype=float).tolist(),
        "controls": np.asarray(colormap["controls"], dtype=float).tolist(),
        "interpolation": str(colormap.get("interpolation", "linear")),
    }
