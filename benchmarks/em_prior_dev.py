"""The soma U-Net's two columns (prior alone, fine-tuned on 6 painted somata) on DEV presets.

For choosing the shipped prior's weights and the fine-tuning settings on dev data only: every
dev preset of :mod:`napari_mesoscale.synth.em_presets` rendered with each of ``--seeds``, the
prior (``--prior``, default the shipped weights) run alone and fine-tuned with the settings
given (``--epochs``, ``--steps``, ``--augmentation``; default: :class:`SomaTrainingParams`),
scored as in ``benchmarks/em_generalisation.py`` (the fine-tuned column on the unpainted
somata). Held-out presets are refused.

Run: ``OMP_NUM_THREADS=1 python benchmarks/em_prior_dev.py --seeds 0 1 --out X.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import napari_mesoscale.segment.unet as unet
from napari_mesoscale.segment import detect_somata_em, train_soma_detector
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402
from em_generalisation import (  # noqa: E402
    PRESET_DIAMETER,
    _score,
    _unscored_painted,
    paint_somata,
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def block_row(name: str, seed: int, settings: dict, tuned_only: bool = False) -> dict:
    """Prior alone and fine-tuned F1 on one dev rendering."""
    s = render_em_preset(name, seed=seed)
    row: dict = {"shape": list(s.volume.shape)}
    if not tuned_only:
        prior = unet.pretrained_soma_detector(device="cpu")
        alone = detect_somata_em(
            s.volume, voxel_size=s.voxel_size, cell_diameter=PRESET_DIAMETER, detector=prior
        )
        row["pretrained"] = _score(alone.positions, s.centres, PRESET_DIAMETER)
    annotations, painted = paint_somata(s.soma_labels, s.voxel_size)
    cpu, wall = _cpu(), time.perf_counter()
    detector = train_soma_detector(
        s.volume, annotations, voxel_size=s.voxel_size, seed=0, device="cpu", **settings
    )
    train_cpu, train_wall = _cpu() - cpu, time.perf_counter() - wall
    tuned = detect_somata_em(
        s.volume, voxel_size=s.voxel_size, cell_diameter=PRESET_DIAMETER, detector=detector
    )
    return {
        **row,
        "fine_tuned_6": {
            **_unscored_painted(tuned, s.centres, painted, PRESET_DIAMETER),
            "train_cpu_seconds": train_cpu,
            "train_seconds": train_wall,
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", type=Path, default=None, help="weights to use as the prior")
    parser.add_argument("--presets", nargs="*", default=sorted(DEV_PRESETS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--augmentation", default=None)
    parser.add_argument("--tuned-only", action="store_true", help="skip the prior alone")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not set(args.presets) <= set(DEV_PRESETS):
        parser.error("dev presets only: held-out presets are never used to choose anything")
    if args.prior is not None:
        unet.PRETRAINED_WEIGHTS = args.prior
    settings = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "steps_per_epoch": args.steps,
            "augmentation": args.augmentation,
        }.items()
        if v is not None
    }
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows: dict[str, dict] = {}
    for name in args.presets:
        for seed in args.seeds:
            row = block_row(name, seed, settings, args.tuned_only)
            rows[f"{name}/{seed}"] = row
            # after every block, so that a run stopped early keeps what it measured
            _write(args, settings, rows, load_before, complete=False)
            print(
                name,
                seed,
                f"prior {row.get('pretrained', {}).get('f1', float('nan')):.3f}",
                f"tuned {row['fine_tuned_6']['f1']:.3f}",
                f"({row['fine_tuned_6']['train_cpu_seconds']:.0f} CPU s)",
                flush=True,
            )
    print(_write(args, settings, rows, load_before, complete=True)["summary"])
    return 0


def _write(args, settings: dict, rows: dict, load_before, *, complete: bool) -> dict:
    out = {
        "prior": str(args.prior or "shipped"),
        "settings": settings,
        "seeds": args.seeds,
        "complete": complete,
        "rows": rows,
        "summary": summarise(rows),
        "machine": {"load_before": load_before, "load_after": os.getloadavg()},
    }
    write_json(args.out, out)
    return out


def summarise(rows: dict[str, dict]) -> dict:
    """Mean F1 of both columns per preset (over seeds) and overall."""
    per_preset: dict[str, dict[str, list[float]]] = {}
    for key, row in rows.items():
        name = key.split("/")[0]
        entry = per_preset.setdefault(name, {"pretrained": [], "fine_tuned_6": []})
        for column in entry:
            entry[column].append(row.get(column, {}).get("f1", np.nan))
    means = {
        name: {column: float(np.mean(v)) for column, v in cols.items()}
        for name, cols in per_preset.items()
    }
    prior = float(np.mean([m["pretrained"] for m in means.values()]))
    tuned = float(np.mean([m["fine_tuned_6"] for m in means.values()]))
    return {
        "per_preset": means,
        "pretrained_mean": prior,
        "fine_tuned_mean": tuned,
        "mean_of_both": 0.5 * (prior + tuned),
    }


if __name__ == "__main__":
    raise SystemExit(main())
