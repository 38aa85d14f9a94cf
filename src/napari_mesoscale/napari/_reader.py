"""npe2 readers: result bundles and volumes (TIFF, OME-Zarr) with their voxel sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_mesoscale.io import (
    is_bundle,
    load_bundle,
    looks_like_bundle,
    read_volume,
    restore_values,
)
from napari_mesoscale.napari._contract import metadata_dict
from napari_mesoscale.napari._layers import LayerDataTuple, points_layer, volume_layer
from napari_mesoscale.napari._units import in_micrometres

_LABEL_HINTS = ("label", "somata", "roi", "domain", "motif", "mask")

PLUGIN_NAME = "napari-mesoscale"
#: napari reader preferences (``settings.plugins.extension2reader``) for the plugin's formats:
#: bundles and OME-Zarr (folders match with a trailing separator), OME-TIFF with voxel size,
#: tables
READER_PATTERNS = ("*.mesoscale", "*.mesoscale/", "*.ome.tif", "*.ome.tiff", "*.ome.zarr",
                   "*.ome.zarr/", "*.csv", "*.tsv", "*.parquet", "*.pq")


def prefer_mesoscale_readers(*, overwrite: bool = False) -> dict[str, str]:
    """Make napari open the plugin's formats with this plugin without asking.

    napari asks which plugin to use (a dialog on drag-and-drop, ``MultipleReaderError`` from
    ``viewer.open(path, plugin=None)``) when several can read a file, unless a reader
    preference is saved for its pattern; this saves those preferences (what the dialog's
    "remember" box does). ``viewer.open(path)`` itself always uses napari's builtin reader
    (its ``plugin`` argument defaults to ``"napari"``): pass ``plugin=None`` or
    ``plugin="napari-mesoscale"``. Preferences the user set are kept unless ``overwrite``.

    Returns
    -------
    dict
        The patterns set now (pattern → plugin name).
    """
    from napari.settings import get_settings

    preferences = get_settings().plugins.extension2reader
    chosen = {
        pattern: PLUGIN_NAME
        for pattern in READER_PATTERNS
        if overwrite or pattern not in preferences
    }
    get_settings().plugins.extension2reader = {**preferences, **chosen}
    return chosen


def get_bundle_reader(path: str | list[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """Return a reader for a ``.mesoscale`` results bundle, or None for other paths.

    A ``*.mesoscale`` folder is claimed even when it is empty or its ``bundle.json`` is
    damaged: reading it then raises a ``ValueError`` saying what is wrong, where returning
    None left napari's bare "refused the file".
    """
    if isinstance(path, list) or not looks_like_bundle(path):
        return None
    return read_bundle_layers


def get_volume_reader(path: str | list[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """Return a reader for TIFF or OME-Zarr volumes, or None for other paths."""
    paths = path if isinstance(path, list) else [path]
    if not all(str(p).lower().rstrip("/").endswith((".tif", ".tiff", ".zarr")) for p in paths):
        return None
    if any(is_bundle(p) for p in paths):
        return None
    return read_volume_layers


@in_micrometres
def read_volume_layers(path: str | list[str]) -> list[LayerDataTuple]:
    """Read each volume as an Image (or Labels, for integer label volumes) with its scale."""
    paths = path if isinstance(path, list) else [path]
    layers = []
    for item in paths:
        volume = read_volume(item)
        name = Path(str(item).rstrip("/")).name.split(".")[0]
        layers.append(volume_layer(volume, name, layer_type=_guess_layer_type(name, volume.data)))
    return layers


def _guess_layer_type(name: str, data: Any) -> str:
    is_integer = np.issubdtype(np.dtype(data.dtype), np.integer)
    if is_integer and any(hint in name.lower() for hint in _LABEL_HINTS):
        return "labels"
    return "image"


@in_micrometres
def read_bundle_layers(path: str) -> list[LayerDataTuple]:
    """Restore the layers saved in a results bundle.

    The bundle's ``metadata["layers"]`` (written by the plugin's writer) lists each layer
    with its type, source and display settings; bundles without it get one layer per
    volume and per table with z, y, x columns.
    """
    bundle = load_bundle(path)
    specs = bundle.metadata.get("layers")
    if specs is None and bundle.metadata.get("kind") == "PointSources":
        return _point_source_layers(path)
    if specs is None:
        specs = _default_specs(bundle)
    layers: list[LayerDataTuple] = []
    for spec in specs:
        try:
            layers.extend(_spec_layers(bundle, spec))
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(
                f"{path}: the bundle.json entry of layer {_spec_name(spec)!r} is damaged "
                f"({type(error).__name__}: {error}); copy the bundle again or save it again."
            ) from error
    return layers


def _spec_name(spec: Any) -> Any:
    return spec.get("name") if isinstance(spec, dict) else spec


def _spec_layers(bundle: Any, spec: dict[str, Any]) -> list[LayerDataTuple]:
    """The layers one entry of a bundle's ``metadata["layers"]`` describes."""
    kind, source = spec["source"].split("/", 1)
    kwargs = dict(spec.get("kwargs", {}))
    if spec.get("colormap") is not None:
        kwargs["colormap"] = colormap_from_spec(spec["colormap"])
    elif "colormap" in kwargs and not isinstance(kwargs["colormap"], str):
        kwargs.pop("colormap")
    if kind == "volumes":
        volume = bundle.volumes[source]
        layer = volume_layer(volume, spec["name"], layer_type=spec["type"], **kwargs)
        layer[1]["metadata"] = _layer_metadata(bundle, spec, layer[1]["metadata"])
        return [layer]
    if kind == "tables":
        table = bundle.tables[source]
        axes = [c for c in ("z", "y", "x") if c in table.columns]  # y, x: cells of one plane
        features = table.drop(columns=axes)
        if "face_color" in kwargs:
            kwargs["face_color"] = np.asarray(kwargs["face_color"])
        kwargs["metadata"] = _layer_metadata(bundle, spec, {})
        positions = table[axes].to_numpy()
        return [points_layer(positions, spec["name"], features=features, **kwargs)]
    if kind == "arrays":
        data = bundle.arrays[source]
        if "edge_color" in kwargs:
            kwargs["edge_color"] = np.asarray(kwargs["edge_color"])
        kwargs["metadata"] = _layer_metadata(bundle, spec, {})
        if spec.get("features") is not None:  # bundles before vector features had none
            kwargs["features"] = bundle.tables[spec["features"]]
        return [(data, {"name": spec["name"], **kwargs}, spec["type"])]
    if kind == "paint":
        return _painted_layers(bundle, spec, source)
    return []


def _point_source_layers(path: str) -> list[LayerDataTuple]:
    """The cells (Points with their activity) and ROIs of ``napari-mesoscale segment --out``.

    Such a bundle has no saved layer list, and its sources table has no z, y, x columns (the
    positions are an array), so only the ROI labels opened: no cells to build or fit from.
    """
    from napari_mesoscale.napari._detect_widgets import source_layers
    from napari_mesoscale.segment.sources import PointSources

    sources = PointSources.load(path)
    name = Path(str(path).rstrip("/")).name.split(".")[0]
    return source_layers(sources, name=name, plane=np.ndim(sources.labels) == 2)


def _layer_metadata(bundle: Any, spec: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """The layer's ``metadata`` as it was saved (``default`` for bundles that did not save it),
    with the arrays and connectome adjacency that older writers kept beside Points layers."""
    saved = spec.get("metadata")
    metadata = dict(default) if saved is None else restore_values(bundle, saved)
    for name, key in spec.get("metadata_arrays", {}).items():
        metadata[name] = bundle.arrays[key]
    metadata.update(_adjacency(bundle, spec.get("adjacency")))
    return metadata_dict(**metadata)


def _adjacency(bundle: Any, saved: dict[str, Any] | None) -> dict[str, Any]:
    """The ``adjacency`` metadata field saved with a Points layer (sparse CSR), if any."""
    if not saved:
        return {}
    import scipy.sparse as sp

    row, col, data = (np.asarray(bundle.arrays[saved[part]]) for part in ("row", "col", "data"))
    matrix = sp.coo_matrix((data, (row, col)), shape=tuple(saved["shape"])).tocsr()
    return {"adjacency": matrix}


def colormap_from_spec(spec: dict[str, Any]) -> Any:
    """The napari colormap described by the writer's ``colormap_spec``."""
    from napari.utils.colormaps import Colormap, DirectLabelColormap

    if "direct" in spec:
        colors = {label: np.asarray(color) for label, color in spec["direct"]}
        return DirectLabelColormap(color_dict=colors)
    if "colors" in spec:
        return Colormap(
            colors=np.asarray(spec["colors"]),
            controls=np.asarray(spec["controls"]),
            interpolation=spec.get("interpolation", "linear"),
            name=spec.get("name") or "custom",
        )
    return spec["name"]


def _painted_layers(bundle: Any, spec: dict[str, Any], what: str) -> list[LayerDataTuple]:
    """Layers painted into the bundle's ROI masks: domains, motifs or predicted activity."""
    from napari_mesoscale.napari._overlays import activity_layers, domain_layers

    rois = bundle.volumes[spec["rois"]]
    labels = np.asarray(rois.data)
    if what in ("domain", "motif"):
        table = bundle.tables[spec["table"]]
        domain, motif = domain_layers(
            labels, rois.voxel_size, table["domain"].to_numpy(), table["motif"].to_numpy()
        )
        chosen = domain if what == "domain" else motif
        chosen[1].update(spec.get("kwargs", {}))
        return [chosen]
    recorded = bundle.arrays[spec["recorded"]]
    predicted, _residual = activity_layers(labels, rois.voxel_size, recorded, bundle.arrays[what])
    predicted[1].update(spec.get("kwargs", {}))
    return [predicted]


def _default_specs(bundle: Any) -> list[dict[str, Any]]:
    specs = []
    for name, volume in bundle.volumes.items():
        layer_type = _guess_layer_type(name, volume.data)
        specs.append({"name": name, "type": layer_type, "source": f"volumes/{name}"})
    for name, table in bundle.tables.items():
        if {"z", "y", "x"} <= set(table.columns):
            specs.append({"name": name, "type": "points", "source": f"tables/{name}"})
    return specs
