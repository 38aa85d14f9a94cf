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
from napari_mesoscale.segment.em import detect_somata_em, label_table, somata_from_labels
from napari_mesoscale.segment.matching import PointMatch, match_points
from napari_mesoscale.segment.params import (
    DetectionParams,
    SomaDetectionParams,
    SomaTrainingParams,
)
from napari_mesoscale.segment.sources import DetectionCancelled, PointSources
from napari_mesoscale.segment.unet import SomaDetector, train_soma_detector

__all__ = [
    "DetectionCancelled",
    "DetectionParams",
    "PointMatch",
    "PointSources",
    "SomaDetectionParams",
    "SomaDetector",
    "SomaTrainingParams",
    "compute_dff",
    "deconvolve_traces",
    "detect_point_sources",
    "detect_somata_em",
    "extract_traces",
    "label_table",
    "match_points",
    "oasis_ar1",
    "running_percentile",
    "somata_from_labels",
    "summary_images",
    "train_soma_detector",
]
