"""Somata from label volumes (``somata_from_labels``) against the true soma centres.

Label volumes: the toy brain's soma labels on its calcium grid (2 x 1 x 1 µm) and its EM
labels (1 x 0.5 x 0.5 µm, and subsampled to 2 x 1 x 1 µm), for a few seeds; the full
segmentations of the EM presets (``synth.em_presets``: somata with nuclei, dendrites, glia,
vessels). Dev presets are measured always; held-out presets only with ``--heldout`` (they are
never used to choose anything). A detection matches a true centre within half a diameter
(one-to-one, ``segment.match_points``).

Usage::

    python benchmarks/somata_from_labels.py [--heldout] [--tag before]

Writes ``benchmarks/results/somata_from_labels[_TAG].json``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

from _results import write_json
from napari_mesoscale.segment import match_points, somata_from_labels
from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.em_presets import DEV_PRESETS, HELDOUT_PRESETS, render_em_preset

RESULTS = Path(__file__).resolve().parent / "results"
SMALL = (30.0, 60.0, 60.0)  # µm, as in the EM generalisation tests


def _score(labels, voxel_size, truth, diameter) -> dict:
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = somata_from_labels(labels, voxel_size=voxel_size, cell_diameter=diameter)
    match = match_points(result.positions, truth, max_distance=diameter / 2)
    missed = sorted(set(range(len(truth))) - set(int(i) for i in match.truth_index))
    return {
        **{k: float(v) for k, v in match.scores().items()},
        "missed_truth_index": missed,
        "cpu_s": round(time.process_time() - start, 2),
    }


def toy_rows(seeds) -> list[dict]:
    rows = []
    for seed in seeds:
        brain = make_toy_brain(100, n_frames=20, render=None, em=True, seed=seed)
        em = np.asarray(brain.em_labels)
        volumes = {
            "calcium_grid_2x1x1": (np.asarray(brain.soma_labels), brain.voxel_size),
            "em_grid_1x0.5x0.5": (em, brain.em_voxel_size),
            "em_subsampled_2x1x1": (em[::2, ::2, ::2], tuple(2 * v for v in brain.em_voxel_size)),
        }
        for name, (labels, vs) in volumes.items():
            row = _score(labels, vs, brain.positions, 8.0)
            rows.append({"volume": f"toy_brain_100_seed{seed}", "grid": name, **row})
            print(rows[-1], flush=True)
    return rows


def preset_rows(names) -> list[dict]:
    rows = []
    for name in names:
        preset = render_em_preset(name, extent_um=SMALL, seed=0)
        diameter = float(np.median(preset.diameters))
        row = _score(preset.segmentation, preset.voxel_size, preset.centres, diameter)
        rows.append({"volume": name, "grid": str(tuple(preset.voxel_size)), **row})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", action="store_true", help="also the held-out presets")
    parser.add_argument("--tag", default="", help="suffix of the JSON file")
    args = parser.parse_args()
    result = {
        "load_average": os.getloadavg(),
        "toy": toy_rows(seeds=(0, 1, 2)),
        "dev_presets": preset_rows(sorted(DEV_PRESETS)),
    }
    if args.heldout:
        result["heldout_presets"] = preset_rows(sorted(HELDOUT_PRESETS))
    suffix = f"_{args.tag}" if args.tag else ""
    print(write_json(RESULTS / f"somata_from_labels{suffix}.json", result))


if __name__ == "__main__":
    main()
