"""The :class:`PointSources` result shared by calcium and EM detection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.progress import Cancelled

FEATURE_COLUMNS = ("id", "size", "brightness", "snr")


#: columns of the source positions (µm) in :meth:`PointSources.to_table`, as in the
#: connectome's neuron tables (``io.read_positions`` also reads the older ``z_um, y_um, x_um``)
POSITION_COLUMNS = ("z", "y", "x")

#: bundle metadata marking time series stored (T, N); older bundles stored them (N, T)
_TIME_FIRST = "time_first"
_SERIES = ("traces", "neuropil", "dff", "rates")


class DetectionCancelled(Cancelled, RuntimeError):
    """A detection's progress callback asked it to stop (a :class:`~.progress.Cancelled`)."""


def empty_features() -> pd.DataFrame:
    """A features table with the standard columns and no rows."""
    return pd.DataFrame(
        {
            "id": np.zeros(0, dtype=np.int64),
            "size": np.zeros(0, dtype=np.int64),
            "brightness": np.zeros(0, dtype=float),
            "snr": np.zeros(0, dtype=float),
        }
    )


@dataclass
class PointSources:
    """Cells found in a calcium movie or an EM volume.

    Attributes
    ----------
    positions : numpy.ndarray
        (N, 3) centres in µm, (z, y, x) order (z is 0 for a single plane).
    labels : numpy.ndarray
        Integer ROI volume, the spatial shape of the input; label ``i + 1`` belongs to source
        ``i`` (row ``i`` of ``positions``, ``features`` and the traces); 0 is background.
    voxel_size : tuple of float
        Voxel size of ``labels`` in µm, (z, y, x) (or (y, x) for a plane).
    features : pandas.DataFrame
        One row per source: ``id`` (= label value), ``size`` (voxels), ``brightness`` (mean
        summary-image intensity in the ROI), ``snr``, and any detector-specific columns.
    traces : numpy.ndarray or None
        (T, N) raw ROI mean fluorescence per frame (calcium only); column ``i`` is source ``i``.
    neuropil : numpy.ndarray or None
        (T, N) mean fluorescence of each ROI's surrounding annulus.
    dff : numpy.ndarray or None
        (T, N) neuropil-corrected dF/F.
    rates : numpy.ndarray or None
        (T, N) non-negative deconvolved event rates (AR(1), OASIS), if requested.
    summary_images : dict
        Named (Z, Y, X) float32 images (``mean``, ``max``, ``std``, ``correlation`` for calcium;
        ``probability`` etc. for EM).
    parameters : dict
        The parameters of the run (JSON-serialisable), to repeat it.
    """

    positions: np.ndarray
    labels: np.ndarray
    voxel_size: tuple[float, ...]
    features: pd.DataFrame = field(default_factory=empty_features)
    traces: np.ndarray | None = None
    neuropil: np.ndarray | None = None
    dff: np.ndarray | None = None
    rates: np.ndarray | None = None
    summary_images: dict[str, np.ndarray] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: MotionCorrection of the movie when it was registered before detection (else None)
    motion: Any = None

    def __len__(self) -> int:
        return int(len(self.positions))

    @property
    def n_sources(self) -> int:
        """Number of sources N."""
        return len(self)

    @property
    def activity(self) -> np.ndarray | None:
        """dF/F as a contiguous (T, N) activity matrix (the layout the model expects), or None."""
        return None if self.dff is None else np.ascontiguousarray(self.dff)

    def to_table(self) -> pd.DataFrame:
        """One row per source: features plus its position ``z``, ``y``, ``x`` in µm."""
        table = self.features.reset_index(drop=True).copy()
        positions = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        for axis, name in enumerate(POSITION_COLUMNS):
            table[name] = positions[:, axis]
        return table

    def __repr__(self) -> str:
        t = None if self.traces is None else self.traces.shape[0]
        return (
            f"PointSources(n={len(self)}, labels shape={tuple(self.labels.shape)}, "
            f"voxel_size={tuple(self.voxel_size)}, frames={t})"
        )

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save as a results bundle folder (``.mesoscale``), written atomically."""
        from napari_mesoscale.io import ResultsBundle, Volume

        arrays = {"positions": np.asarray(self.positions, dtype=float)}
        for name in _SERIES:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value)
        for name, image in self.summary_images.items():
            arrays[f"summary_{name}"] = np.asarray(image)
        volumes = {
            "labels": Volume(
                data=np.asarray(self.labels),
                axes="zyx"[-self.labels.ndim :],
                voxel_size=tuple(self.voxel_size),
            )
        }
        tables = {"point_sources": self.features.reset_index(drop=True)}
        if self.motion is not None:
            tables["motion_shifts"] = self.motion.to_table()
            arrays.update(self.motion.to_arrays())
        bundle = ResultsBundle(
            tables=tables,
            arrays=arrays,
            volumes=volumes,
            metadata={
                "kind": "PointSources",
                "voxel_size": [float(v) for v in self.voxel_size],
                "parameters": self.parameters,
                _TIME_FIRST: True,
            },
        )
        return bundle.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PointSources:
        """Load what :meth:`save` wrote."""
        from napari_mesoscale.io import load_bundle

        bundle = load_bundle(path, lazy=False)
        if bundle.metadata.get("kind") != "PointSources":
            raise ValueError(f"{path} is a results bundle but does not hold point sources.")
        arrays = dict(bundle.arrays)
        if not bundle.metadata.get(_TIME_FIRST, False):  # written (N, T) before
            for name in _SERIES:
                if arrays.get(name) is not None:
                    arrays[name] = np.asarray(arrays[name]).T
        return cls(
            positions=np.asarray(arrays["positions"], dtype=float).reshape(-1, 3),
            labels=np.asarray(bundle.volumes["labels"].data),
            voxel_size=tuple(bundle.metadata["voxel_size"]),
            features=bundle.tables["point_sources"],
            traces=arrays.get("traces"),
            neuropil=arrays.get("neuropil"),
            dff=arrays.get("dff"),
            rates=arrays.get("rates"),
            summary_images={
                k[len("summary_") :]: np.asarray(v)
                for k, v in arrays.items()
                if k.startswith("summary_")
            },
            parameters=dict(bundle.metadata.get("parameters", {})),
            motion=_load_motion(arrays),
        )


def _load_motion(arrays: dict[str, Any]) -> Any:
    if "motion_shifts_um" not in arrays:
        return None
    from napari_mesoscale.motion.register import MotionCorrection

    return MotionCorrection.from_arrays(arrays)
