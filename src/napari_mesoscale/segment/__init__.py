"""Point sources from calcium movies and from EM volumes.

Core only (numpy / scipy / scikit-image / torch): no Qt, napari or magicgui import.
"""

from napari_mesoscale.segment.calcium import (
    compute_dff,
    detect_point_sources,
    extract_traces,
    running_percentile,
    summary_images,
)
from napari_mesoscale.segment.deconvolve import deconvolve_traces, oasis_ar1
from napari_mesoscale.segment.matching import PointMatch, match_points
from napari_mesoscale.segment.sources import DetectionCancelled, PointSources

__all__ = [
    "DetectionCancelled",
    "PointMatch",
    "PointSources",
    "compute_dff",
    "deconvolve_traces",
    "detect_point_sources",
    "extract_traces",
    "match_points",
    "oasis_ar1",
    "running_percentile",
    "summary_images",
]
