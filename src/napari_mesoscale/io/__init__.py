"""Readers and writers: TIFF, Zarr / OME-Zarr (lazy), CSV / Parquet tables, result bundles."""

from napari_mesoscale.io.atomic import atomic_path
from napari_mesoscale.io.bundle import (
    ResultsBundle,
    is_bundle,
    load_bundle,
    looks_like_bundle,
    restore_values,
    save_bundle,
    store_values,
)
from napari_mesoscale.io.tables import (
    read_matrix,
    read_npy,
    read_positions,
    read_table,
    write_table,
)
from napari_mesoscale.io.volumes import (
    Volume,
    check_voxel_size,
    is_lazy,
    read_volume,
    write_ome_zarr,
    write_tiff,
)

__all__ = [
    "ResultsBundle",
    "Volume",
    "atomic_path",
    "check_voxel_size",
    "is_lazy",
    "is_bundle",
    "load_bundle",
    "looks_like_bundle",
    "read_matrix",
    "read_npy",
    "read_positions",
    "read_table",
    "read_volume",
    "restore_values",
    "save_bundle",
    "store_values",
    "write_ome_zarr",
    "write_table",
    "write_tiff",
]
