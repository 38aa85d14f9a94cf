"""The classical EM path's opt-in options on the dev presets over several seeds: before and after.

Every dev preset of :mod:`napari_mesoscale.synth.em_presets` (held-out presets are refused:
they are measured only by ``em_generalisation.py``), rendered with each seed, detected by
``detect_somata_em`` twice: with the defaults and with one boolean option on (``--option``:
``block_likeness_pass``, the fourth pass, by default; or ``anisotropic_shell``). F1, precision
and recall within half a cell diameter, process CPU seconds of each detection, the machine's
load.

Run: ``OMP_NUM_THREADS=1 python benchmarks/em_classical_passes.py --seeds 0 1 2 3 4``
(``--option anisotropic_shell --out benchmarks/results/em_anisotropic_shell.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from napari_mesoscale.segment import detect_somata_em, match_points
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "em_classical_passes.json"
PRESET_DIAMETER = 9.0  # µm, as in em_generalisation.py


OPTIONS = ("block_likeness_pass", "anisotropic_shell")


def _detect(volume, voxel_size, truth, options: dict) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    result = detect_somata_em(
        volume, voxel_size=voxel_size, cell_diameter=PRESET_DIAMETER, **options
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    match = match_points(result.positions, truth, PRESET_DIAMETER / 2)
    return {
        "f1": float(match.f1),
        "precision": float(match.precision),
        "recall": float(match.recall),
        "n_detected": int(len(result.positions)),
        "cpu_seconds": cpu,
        "seconds": wall,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--presets", nargs="*", default=None, help="dev presets (default: all)")
    parser.add_argument("--option", choices=OPTIONS, default="block_likeness_pass")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = list(DEV_PRESETS) if args.presets is None else args.presets
    unknown = [n for n in names if n not in DEV_PRESETS]
    if unknown:
        parser.error(f"dev presets only; not {unknown}")
    warnings.simplefilter("ignore")
    out = {"machine": {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}, "rows": []}
    out["option"] = args.option
    without = "without_fourth_pass" if args.option == "block_likeness_pass" else "without"
    for seed in args.seeds:
        for name in names:
            s = render_em_preset(name, seed=seed)
            row = {"preset": name, "seed": seed, "n_somata": len(s.centres)}
            for label, on in [(without, False), ("with", True)]:
                row[label] = _detect(s.volume, s.voxel_size, s.centres, {args.option: on})
            row["load"] = os.getloadavg()[0]
            out["rows"].append(row)
            b, a = row[without], row["with"]
            print(
                f"{name:26s} {seed}  {b['f1']:.2f} (P {b['precision']:.2f} R {b['recall']:.2f})"
                f" -> {a['f1']:.2f} (P {a['precision']:.2f} R {a['recall']:.2f})",
                flush=True,
            )
    out["machine"]["load_after"] = os.getloadavg()
    out["machine"]["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    out["summary"] = _summary(out["rows"], without)
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


def _summary(rows: list[dict], without: str) -> dict:
    """Mean F1 before/after per seed group: the two faint inverted presets and the others."""
    faint = {"dev_faint_inverted_dark", "dev_inverted_thick_dim"}
    summary = {}
    for group, members in [("faint_inverted", faint), ("earlier", set(DEV_PRESETS) - faint)]:
        chosen = [r for r in rows if r["preset"] in members]
        if chosen:
            summary[group] = {
                label: float(np.mean([r[label]["f1"] for r in chosen]))
                for label in (without, "with")
            }
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
