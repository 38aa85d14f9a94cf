"""``napari-mesoscale segment``: point sources from a calcium movie, an EM volume or labels.

Examples::

    napari-mesoscale segment movie.ome.tif --out cells.mesoscale --csv cells.csv
    napari-mesoscale segment em.ome.tif --kind em --soma-diameter 8 --out somata.mesoscale
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
    """Declare the arguments of ``napari-mesoscale segment``."""
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
    parser.add_argument(
        "--cell-diameter",
        "--soma-diameter",
        type=float,
        default=8.0,
        dest="diameter",
        help="µm (default 8)",
    )
    parser.add_argument("--frame-rate", type=float, help="Hz (calcium; default: from the file)")
    parser.add_argument("--threshold", default="auto", help="detection threshold or 'auto'")
    parser.add_argument("--neuropil-coefficient", type=float, default=0.7)
    parser.add_argument("--deconvolve", action="store_true", help="also estimate event rates")
    parser.add_argument("--resolution", type=float, default=1.0, help="EM working voxel (µm)")
    parser.add_argument("--detector", type=Path, help="a trained soma detector (.pt) for --kind em")
    parser.add_argument("--out", type=Path, help="results bundle folder (.mesoscale) to write")
    parser.add_argument(
        "--csv", type=Path, help="table of sources (id, features, z_um, y_um, x_um)"
    )
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


def run(args: argparse.Namespace) -> int:
    """Run the detection, print a summary, write the bundle and/or CSV."""
    from napari_mesoscale.io import read_volume, write_table
    from napari_mesoscale.segment import (
        SomaDetector,
        detect_point_sources,
        detect_somata_em,
        somata_from_labels,
    )

    if not args.input.exists():
        raise FileNotFoundError(f"input not found: {args.input}")
    volume = read_volume(args.input, lazy=True)
    voxel_size = args.voxel_size or volume.voxel_size
    if voxel_size is None:
        raise ValueError(f"{args.input} carries no voxel size; give it with --voxel-size (µm).")
    data = volume.data
    threshold: Any = args.threshold
    if threshold != "auto":
        try:
            threshold = float(threshold)
        except ValueError as error:
            raise ValueError(
                f"--threshold must be a number or 'auto'; got {threshold!r}."
            ) from error
    callback = _progress(args.quiet)
    start = time.perf_counter()
    if args.kind == "calcium":
        if data.ndim in (3, 4) and voxel_size is not None and len(voxel_size) > data.ndim - 1:
            voxel_size = tuple(voxel_size)[-(data.ndim - 1) :]
        result = detect_point_sources(
            data,
            voxel_size=voxel_size,
            cell_diameter=args.diameter,
            frame_rate=args.frame_rate or volume.frame_rate,
            threshold=threshold,
            neuropil_coefficient=args.neuropil_coefficient,
            deconvolve=args.deconvolve,
            callback=callback,
        )
    elif args.kind == "em":
        detector = SomaDetector.load(args.detector) if args.detector else None
        result = detect_somata_em(
            data,
            voxel_size=voxel_size,
            soma_diameter=args.diameter,
            resolution=detector.resolution if detector else args.resolution,
            threshold=threshold,
            detector=detector,
            callback=callback,
        )
    else:
        result = somata_from_labels(
            data, voxel_size=voxel_size, soma_diameter=args.diameter, callback=callback
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
