"""``napari-mesoscale segment``: point sources from a calcium movie, an EM volume or labels.

Examples::

    napari-mesoscale segment movie.ome.tif --out cells.mesoscale --csv cells.csv
    napari-mesoscale segment em.ome.tif --kind em --cell-diameter 8 --out somata.mesoscale
    napari-mesoscale segment seg.zarr --kind labels --voxel-size 0.04 0.008 0.008 --csv somata.csv
    napari-mesoscale segment em.zarr --kind em --detector somata.pt --out somata.mesoscale
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``napari-mesoscale segment``.

    The detection options come from :class:`DetectionParams` (calcium) and
    :class:`SomaDetectionParams` (EM), so their defaults and help are those of the core.
    """
    from napari_mesoscale.segment.params import DetectionParams, SomaDetectionParams

    parser.add_argument("input", type=Path, help="TIFF / OME-Zarr / .npy movie or volume")
    parser.add_argument(
        "--kind",
        choices=("calcium", "em", "labels"),
        default="calcium",
        help="calcium movie (T, [Z,] Y, X), raw EM (Z, Y, X) or a label volume (default calcium)",
    )
    parser.add_argument(
        "--voxel-size",
        type=float,
        nargs="+",
        metavar="UM",
        help="voxel size in µm, (z y x) or (y x) for a plane; default: from the file",
    )
    shared = ("cell_diameter", "threshold")
    diameter = DetectionParams.specs()["cell_diameter"]
    parser.add_argument(
        "--cell-diameter",
        "--soma-diameter",
        type=float,
        dest="cell_diameter",
        help=f"{diameter.help} [µm] (default: {DetectionParams().cell_diameter}; "
        "--soma-diameter is its old name)",
    )
    parser.add_argument(
        "--threshold",
        help="detection threshold or 'auto' (calcium: noise units; EM: contrast) (default: auto)",
    )
    DetectionParams.add_arguments(
        parser.add_argument_group("calcium detection"), exclude=(*shared, "frame_rate")
    )
    parser.add_argument("--frame-rate", type=float, help="Hz (calcium; default: from the file)")
    SomaDetectionParams.add_arguments(parser.add_argument_group("EM detection"), exclude=shared)
    parser.add_argument("--detector", type=Path, help="a trained soma detector (.pt) for --kind em")
    parser.add_argument("--out", type=Path, help="results bundle folder (.mesoscale) to write")
    parser.add_argument("--csv", type=Path, help="table of sources (id, features, z, y, x in µm)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def _progress(quiet: bool):
    last = [-1.0]

    def callback(info: dict[str, Any]) -> bool:
        fraction = float(info.get("fraction", 0.0))
        if not quiet and (fraction - last[0] >= 0.1 or fraction >= 1.0):
            print(f"[{100 * fraction:5.1f}%] {info.get('message', '')}", file=sys.stderr)
            last[0] = fraction
        return True

    return callback


def _threshold(value: str | None) -> float | str | None:
    """``--threshold``: a number, ``auto`` or not given (None: the default)."""
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError as error:
        raise ValueError(f"--threshold must be a number or 'auto'; got {value!r}.") from error


def run(args: argparse.Namespace) -> int:
    """Run the detection, print a summary, write the bundle and/or CSV."""
    from napari_mesoscale.io import read_volume, write_table
    from napari_mesoscale.segment import (
        DetectionParams,
        SomaDetectionParams,
        SomaDetector,
        detect_point_sources,
        detect_somata_em,
        somata_from_labels,
    )

    if not args.input.exists():
        raise FileNotFoundError(f"input not found: {args.input}")
    from napari_mesoscale.io.bundle import BUNDLE_SUFFIX
    from napari_mesoscale.io.outputs import check_output

    overwrite = bool(getattr(args, "overwrite", False))
    inputs = (args.input, args.detector)
    if args.out is not None:
        if not args.out.name.endswith(BUNDLE_SUFFIX):
            args.out = args.out.with_name(args.out.name + BUNDLE_SUFFIX)
        check_output(args.out, inputs, overwrite=overwrite, option="--out")
    if args.csv is not None:
        check_output(args.csv, inputs, overwrite=overwrite, option="--csv")
    volume = read_volume(args.input, lazy=True)
    voxel_size = args.voxel_size or volume.voxel_size
    if voxel_size is None:
        raise ValueError(f"{args.input} carries no voxel size; give it with --voxel-size (µm).")
    data = volume.data
    args.threshold = _threshold(args.threshold)
    callback = _progress(args.quiet)
    start = time.perf_counter()
    if args.kind == "calcium":
        if data.ndim in (3, 4) and voxel_size is not None and len(voxel_size) > data.ndim - 1:
            voxel_size = tuple(voxel_size)[-(data.ndim - 1) :]
        params = DetectionParams.from_namespace(args)
        result = detect_point_sources(
            data,
            voxel_size=voxel_size,
            frame_rate=args.frame_rate or volume.frame_rate,
            params=params,
            callback=callback,
        )
    elif args.kind == "em":
        detector = SomaDetector.load(args.detector) if args.detector else None
        params = SomaDetectionParams.from_namespace(args)
        if detector is not None:
            params = params.replace(resolution=detector.resolution)
        result = detect_somata_em(
            data, voxel_size=voxel_size, detector=detector, params=params, callback=callback
        )
    else:
        result = somata_from_labels(
            data, voxel_size=voxel_size, cell_diameter=args.cell_diameter, callback=callback
        )
    seconds = time.perf_counter() - start
    summary = {
        "input": str(args.input),
        "kind": args.kind,
        "n_sources": len(result),
        "seconds": round(seconds, 2),
    }
    if args.out:
        summary["bundle"] = str(result.save(args.out))
    if args.csv:
        summary["csv"] = str(write_table(result.to_table(), args.csv))
    print(json.dumps(summary))
    return 0
