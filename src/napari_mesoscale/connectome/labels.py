"""Connectomes from label volumes: synapses on segments, or contact edges (Chu et al. 2022).

Contact edges: the tolerance region of a segment is the segment dilated by ``tolerance`` µm (an
ellipsoidal structuring element in voxels, so anisotropic voxels are handled); two segments are
joined when their tolerance regions share at least ``min_overlap`` voxels, with weight = the
number of shared voxels. Everything is vectorised over voxels: only voxels that see two or more
segments inside the structuring element (found with a maximum and a minimum filter) are looked
at, in chunks, by stacking the labels at every offset of the element.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from napari_mesoscale.connectome._util import ConnectomeCancelled, rows_text
from napari_mesoscale.io.tables import read_table
from napari_mesoscale.progress import Progress


def _voxel_size(voxel_size: Any) -> np.ndarray:
    size = np.asarray(voxel_size, dtype=float)
    if size.ndim == 0:
        size = np.full(3, float(size))
    if size.shape != (3,):
        raise ValueError(
            f"voxel_size must be one number or 3 numbers (z, y, x) in µm; got {voxel_size!r}."
        )
    if not np.all(np.isfinite(size) & (size > 0)):
        raise ValueError(f"voxel_size must be positive µm values; got {size.tolist()}.")
    return size


def _check_labels(labels: Any) -> np.ndarray:
    if hasattr(labels, "compute") and not isinstance(labels, np.ndarray):
        labels = labels.compute()
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (Z, Y, X) volume; got shape {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must hold integers (0 = background); got dtype {labels.dtype}.")
    if labels.size == 0:
        raise ValueError("labels volume is empty.")
    if np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError("labels must not be negative (0 = background, ≥ 1 = segments).")
    return labels


def _ball(radius_um: float, voxel_size: np.ndarray) -> np.ndarray:
    """Integer offsets (K, 3) within ``radius_um`` µm (ellipsoid in voxels), nearest first."""
    reach = np.floor(radius_um / voxel_size + 1e-9).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack(grids, axis=-1).reshape(-1, 3)
    distance = np.sqrt(((offsets * voxel_size) ** 2).sum(axis=1))
    keep = distance <= radius_um * (1 + 1e-9)
    offsets, distance = offsets[keep], distance[keep]
    return offsets[np.argsort(distance, kind="stable")]


def segment_table(labels: np.ndarray, voxel_size: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Segment ids and a neurons table (id, z, y, x centroid in µm, volume in voxels)."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if ids.size == 0:
        raise ValueError("labels volume has no segments (only background 0).")
    count = np.zeros(ids.size)
    sums = np.zeros((ids.size, 3))
    plane = labels.shape[1] * labels.shape[2]
    slab = max(1, int(4_000_000 // max(plane, 1)))
    for z0 in range(0, labels.shape[0], slab):
        block = labels[z0 : z0 + slab]
        flat = np.flatnonzero(block)
        if flat.size == 0:
            continue
        index = np.searchsorted(ids, block.ravel()[flat])
        zz, yy, xx = np.unravel_index(flat, block.shape)
        count += np.bincount(index, minlength=ids.size)
        for axis, coordinate in enumerate((zz + z0, yy, xx)):
            sums[:, axis] += np.bincount(index, weights=coordinate, minlength=ids.size)
    centroid = sums / count[:, None] * voxel_size
    neurons = pd.DataFrame(
        {
            "id": ids.astype(np.int64),
            "z": centroid[:, 0],
            "y": centroid[:, 1],
            "x": centroid[:, 2],
            "volume_voxels": count.astype(np.int64),
        }
    )
    return ids, neurons


def lookup_segments(
    labels: np.ndarray,
    points: np.ndarray,
    voxel_size: np.ndarray,
    search_radius: float,
) -> np.ndarray:
    """Label under each point (µm); background points take the nearest segment within
    ``search_radius`` µm; 0 where none."""
    voxel = np.round(points / voxel_size).astype(np.int64)
    shape = np.array(labels.shape)
    inside = np.all((voxel >= 0) & (voxel < shape), axis=1)
    result = np.zeros(points.shape[0], dtype=labels.dtype)
    result[inside] = labels[tuple(voxel[inside].T)]
    missing = np.flatnonzero(result == 0)
    if missing.size and search_radius > 0:
        offsets = _ball(search_radius, voxel_size)
        for start in range(0, missing.size, 20_000):
            rows = missing[start : start + 20_000]
            candidates = voxel[rows][:, None, :] + offsets[None]  # (R, K, 3)
            valid = np.all((candidates >= 0) & (candidates < shape), axis=2)
            clipped = np.clip(candidates, 0, shape - 1)
            values = labels[clipped[..., 0], clipped[..., 1], clipped[..., 2]]
            values = np.where(valid, values, 0)
            has = values != 0
            first = np.argmax(has, axis=1)  # offsets are sorted nearest first
            found = has[np.arange(rows.size), first]
            result[rows[found]] = values[np.arange(rows.size), first][found]
    return result


def _block_pairs(
    block: np.ndarray, padded: np.ndarray, offsets: np.ndarray, reach: np.ndarray, n_ids: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Segment pairs met in the neighbourhoods of ``block``'s voxels, in parts.

    Each part holds the pair keys ``a * n_ids + b`` (a < b, compact ids), the number of voxels
    of ``block`` whose neighbourhood holds both, and the sum of those voxels' coordinates.
    """
    shifted = block[:, None, :] + offsets[None] + reach  # (C, K, 3)
    stack = padded[shifted[..., 0], shifted[..., 1], shifted[..., 2]]
    stack = np.sort(stack, axis=1)[:, ::-1]  # descending, zeros last
    duplicate = np.zeros_like(stack, dtype=bool)
    duplicate[:, 1:] = stack[:, 1:] == stack[:, :-1]
    stack = np.where(duplicate, 0, stack)
    stack = np.sort(stack, axis=1)[:, ::-1]
    distinct = (stack > 0).sum(axis=1)
    k_max = int(distinct.max()) if distinct.size else 0
    stack = stack[:, :k_max]
    for p in range(k_max):
        for q in range(p + 1, k_max):
            both = stack[:, q] > 0
            if not both.any():
                continue
            a = stack[both, q].astype(np.int64)  # smaller id
            b = stack[both, p].astype(np.int64)
            unique, inverse = np.unique(a * n_ids + b, return_inverse=True)
            positions = block[both].astype(float)
            sums = np.stack(
                [np.bincount(inverse, weights=positions[:, k]) for k in range(3)], axis=1
            )
            yield unique, np.bincount(inverse), sums


def contact_edges(
    labels: np.ndarray,
    voxel_size: np.ndarray,
    *,
    tolerance: float,
    min_overlap: int = 1,
    chunk: int = 200_000,
    callback: Any = None,
) -> pd.DataFrame:
    """Pairs of segments whose tolerance regions overlap, with overlap size and centroid.

    Returns a DataFrame with ``a < b`` (segment ids), ``overlap`` (voxels) and ``z, y, x``
    (µm, centroid of the shared voxels), one row per pair with overlap ≥ ``min_overlap``.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    empty = pd.DataFrame({"a": [], "b": [], "overlap": [], "z": [], "y": [], "x": []})
    if ids.size < 2:
        return empty
    compact = np.zeros(labels.shape, dtype=np.int32)
    nonzero = labels != 0
    compact[nonzero] = np.searchsorted(ids, labels[nonzero]) + 1
    offsets = _ball(tolerance, voxel_size)
    reach = np.abs(offsets).max(axis=0)
    footprint = np.zeros(tuple(2 * reach + 1), dtype=bool)
    footprint[tuple((offsets + reach).T)] = True
    # a voxel matters when its neighbourhood holds two different segments
    highest = ndimage.maximum_filter(compact, footprint=footprint, mode="constant", cval=0)
    big = np.int32(ids.size + 1)
    lowest = ndimage.minimum_filter(
        np.where(compact == 0, big, compact), footprint=footprint, mode="constant", cval=big
    )
    candidates = np.flatnonzero(((highest > 0) & (lowest < highest)).ravel())
    del highest, lowest
    padded = np.pad(compact, [(r, r) for r in reach])
    coords = np.stack(np.unravel_index(candidates, labels.shape), axis=1)
    keys_parts, count_parts, sum_parts = [], [], []
    n_ids = np.int64(ids.size + 1)
    for start in range(0, coords.shape[0], chunk):
        block = coords[start : start + chunk]
        for unique, counts, sums in _block_pairs(block, padded, offsets, reach, n_ids):
            keys_parts.append(unique)
            count_parts.append(counts)
            sum_parts.append(sums)
        progress.report(
            min(1.0, (start + chunk) / max(coords.shape[0], 1)),
            f"contact edges: {min(start + chunk, coords.shape[0])}/{coords.shape[0]} voxels",
        )
    if not keys_parts:
        return empty
    keys = np.concatenate(keys_parts)
    unique, inverse = np.unique(keys, return_inverse=True)
    overlap = np.bincount(inverse, weights=np.concatenate(count_parts))
    sums = np.stack(
        [np.bincount(inverse, weights=np.concatenate(sum_parts)[:, k]) for k in range(3)], axis=1
    )
    keep = overlap >= min_overlap
    unique, overlap, sums = unique[keep], overlap[keep], sums[keep]
    centroid = sums / overlap[:, None] * voxel_size
    a = ids[unique // n_ids - 1]
    b = ids[unique % n_ids - 1]
    return pd.DataFrame(
        {
            "a": a.astype(np.int64),
            "b": b.astype(np.int64),
            "overlap": overlap.astype(np.int64),
            "z": centroid[:, 0],
            "y": centroid[:, 1],
            "x": centroid[:, 2],
        }
    )


def _symmetric_contact_table(contacts: pd.DataFrame) -> pd.DataFrame:
    """A synapse table with both directions of every contact, weighted by its overlap."""
    forward = pd.DataFrame(
        {
            "pre": contacts["a"].to_numpy(),
            "post": contacts["b"].to_numpy(),
            "z": contacts["z"].to_numpy(),
            "y": contacts["y"].to_numpy(),
            "x": contacts["x"].to_numpy(),
            "weight": contacts["overlap"].to_numpy(dtype=float),
        }
    )
    backward = forward.rename(columns={"pre": "post", "post": "pre"})[forward.columns]
    table = pd.concat([forward, backward], ignore_index=True)
    table["pre"] = table["pre"].astype(np.int64)
    table["post"] = table["post"].astype(np.int64)
    return table


def _synapses_on_segments(
    synapses: pd.DataFrame,
    labels: np.ndarray,
    voxel_size: np.ndarray,
    search_radius: float,
    drop_unassigned: bool,
) -> pd.DataFrame:
    """Synapses given by a point on each side: pre and post are the segments under them."""
    pre_cols = ["pre_z", "pre_y", "pre_x"]
    post_cols = ["post_z", "post_y", "post_x"]
    pre_points = synapses[pre_cols].to_numpy(dtype=float)
    post_points = synapses[post_cols].to_numpy(dtype=float)
    bad = np.flatnonzero(
        ~(np.isfinite(pre_points).all(axis=1) & np.isfinite(post_points).all(axis=1))
    )
    if bad.size:
        raise ValueError(f"synapses table has NaN positions in {rows_text(bad)}.")
    pre = lookup_segments(labels, pre_points, voxel_size, search_radius)
    post = lookup_segments(labels, post_points, voxel_size, search_radius)
    unassigned = np.flatnonzero((pre == 0) | (post == 0))
    if unassigned.size and not drop_unassigned:
        raise ValueError(
            f"{unassigned.size} synapse point(s) lie on no segment within {search_radius:g} µm "
            f"({rows_text(unassigned)}); raise search_radius or pass drop_unassigned=True."
        )
    table = synapses.drop(columns=[c for c in ("pre", "post") if c in synapses.columns])
    table = table.assign(
        pre=pre.astype(np.int64),
        post=post.astype(np.int64),
        z=(pre_points[:, 0] + post_points[:, 0]) / 2,
        y=(pre_points[:, 1] + post_points[:, 1]) / 2,
        x=(pre_points[:, 2] + post_points[:, 2]) / 2,
    )
    if unassigned.size:
        table = table.drop(index=unassigned).reset_index(drop=True)
    return table


def connectome_from_labels(
    cls: type,
    labels: Any,
    synapses: Any = None,
    *,
    voxel_size: Any,
    tolerance: float | None = None,
    min_overlap: int = 1,
    search_radius: float | None = None,
    drop_unassigned: bool = False,
    callback: Any = None,
) -> Any:
    """Implementation of :meth:`Connectome.from_labels` (see there)."""
    progress = Progress.wrap(callback, ConnectomeCancelled)
    voxel_size = _voxel_size(voxel_size)
    labels = _check_labels(labels)
    if int(min_overlap) != min_overlap or min_overlap < 1:
        raise ValueError(f"min_overlap must be a whole number of voxels ≥ 1; got {min_overlap}.")
    if tolerance is None:
        tolerance = float(voxel_size.max())
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be ≥ 0 µm; got {tolerance}.")
    if search_radius is None:
        search_radius = float(tolerance) if tolerance > 0 else float(voxel_size.max())
    progress.report(0.0, "segments: centroids")
    _, neurons = segment_table(labels, voxel_size)

    if synapses is None:
        contacts = contact_edges(
            labels,
            voxel_size,
            tolerance=float(tolerance),
            min_overlap=int(min_overlap),
            callback=progress.stage(0.0, 0.9),
        )
        table = _symmetric_contact_table(contacts)
        return cls(neurons, table, value="weight", directed=False)

    synapses = read_table(synapses, "synapses").reset_index(drop=True)
    pre_cols = ["pre_z", "pre_y", "pre_x"]
    post_cols = ["post_z", "post_y", "post_x"]
    if all(c in synapses.columns for c in pre_cols + post_cols):
        table = _synapses_on_segments(synapses, labels, voxel_size, search_radius, drop_unassigned)
        return cls(neurons, table)
    if "pre" in synapses.columns and "post" in synapses.columns:
        return cls(neurons, synapses)
    raise ValueError(
        "synapses for a label volume need either pre_z, pre_y, pre_x, post_z, post_y, post_x "
        "(a point on each side, µm) or pre and post segment ids; got columns "
        f"{list(synapses.columns)}."
    )
