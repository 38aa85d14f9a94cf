"""npe2 writers: point sources as CSV (µm), labels as OME-TIFF with voxel size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.io import write_table, write_tiff


def write_points_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Points layer as CSV: z, y, x in µm (world coordinates) and its features."""
    points = np.asarray(data, dtype=float)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"Point sources need 3D coordinates (z, y, x); got shape {points.shape}.")
    scale = np.asarray(meta.get("scale", np.ones(points.shape[1])), dtype=float)
    translate = np.asarray(meta.get("translate", np.zeros(points.shape[1])), dtype=float)
    world = points * scale + translate
    table = pd.DataFrame(world[:, -3:], columns=["z", "y", "x"])
    if points.shape[1] > 3:
        for index in range(points.shape[1] - 3):
            table.insert(index, f"axis{index}", world[:, index])
    features = meta.get("features")
    if features is not None and len(features) == len(table):
        features = pd.DataFrame(features).reset_index(drop=True)
        features = features.drop(columns=[c for c in features.columns if c in table.columns])
        table = pd.concat([table, features], axis=1)
    write_table(table, path)
    return [path]


def write_labels_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as an OME-TIFF whose voxel size is the layer's scale (µm)."""
    ndim = np.ndim(data)
    if ndim not in (3, 4):
        raise ValueError(f"Labels must be 3D (z, y, x) or 4D (t, z, y, x); got {ndim}D.")
    scale = tuple(meta.get("scale", (1.0,) * ndim))
    axes = "ZYX" if ndim == 3 else "TZYX"
    write_tiff(
        path,
        np.asarray(data),
        voxel_size=scale[-3:],
        axes=axes,
        metadata={"name": meta.get("name", "labels")},
    )
    return [path]
