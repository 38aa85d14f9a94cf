"""Test-time augmentation and self-training of the fine-tuned soma U-Net, on DEV presets only.

Per dev block (preset × ``--seeds``): the shipped prior fine-tuned on 6 painted somata with
the default settings, detection plain and with ``test_time_augmentation``; then the
self-training round of ``train_soma_detector(self_training=True)`` run on that detector
(:func:`~napari_mesoscale.segment.unet.self_training_labels`, then ``self_training_epochs``
more epochs), detection plain and with test-time augmentation. Scored as in
``benchmarks/em_generalisation.py`` on the unpainted somata; process CPU seconds of every
stage; the labels added by self-training checked against the truth. Held-out presets are
refused.

Run: ``OMP_NUM_THREADS=1 python benchmarks/em_self_training_dev.py --seeds 0 1 --out X.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import warnings
from pathlib import Path

import numpy as np

from napari_mesoscale.segment import detect_somata_em, train_soma_detector
from napari_mesoscale.segment.params import SomaTrainingParams
from napari_mesoscale.segment.unet import SOMA, self_training_labels
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402
from em_generalisation import PRESET_DIAMETER, _unscored_painted, paint_somata  # noqa: E402

FAINTEST = ["dev_faint_inverted_dark", "dev_inverted_thick_dim", "dev_faint_thick_sections"]
VARIANTS = ["fine_tuned", "fine_tuned_tta", "self_trained", "self_trained_tta"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _detect(s, painted, detector, tta: bool) -> dict:
    cpu = _cpu()
    result = detect_somata_em(
        s.volume,
        voxel_size=s.voxel_size,
        cell_diameter=PRESET_DIAMETER,
        detector=detector,
        test_time_augmentation=tta,
    )
    return {
        **_unscored_painted(result, s.centres, painted, PRESET_DIAMETER),
        "detect_cpu_seconds": _cpu() - cpu,
    }


def _label_check(s, annotations, extended) -> dict:
    """How many somata self-training labelled, and how many of them are true somata."""
    from scipy import ndimage

    added = (extended == SOMA) & (annotations != SOMA)
    parts, n = ndimage.label(added)
    true = 0
    for i in range(1, n + 1):
        inside = s.soma_labels[parts == i]
        true += int(np.mean(inside > 0) > 0.5)
    wrong_background = int(np.sum((extended == 1) & (annotations != 1) & (s.soma_labels > 0)))
    return {
        "somata_added": n,
        "true_somata_added": true,
        "background_voxels_in_somata": wrong_background,
    }


def block_row(name: str, seed: int, settings: SomaTrainingParams, tta: bool = True) -> dict:
    s = render_em_preset(name, seed=seed)
    annotations, painted = paint_somata(s.soma_labels, s.voxel_size)
    common = {"voxel_size": s.voxel_size, "seed": 0, "device": "cpu"}
    cpu = _cpu()
    first = train_soma_detector(s.volume, annotations, params=settings, **common)
    row = {"shape": list(s.volume.shape), "train_cpu_seconds": _cpu() - cpu}
    row["fine_tuned"] = _detect(s, painted, first, False)
    if tta:
        row["fine_tuned_tta"] = _detect(s, painted, first, True)
    cpu = _cpu()
    extended = self_training_labels(
        first, s.volume, annotations, voxel_size=s.voxel_size, cell_diameter=PRESET_DIAMETER
    )
    row["labels_cpu_seconds"] = _cpu() - cpu
    row["labels"] = _label_check(s, annotations, extended)
    cpu = _cpu()
    second = train_soma_detector(
        s.volume,
        extended,
        detector=first,
        params=settings.replace(epochs=settings.self_training_epochs),
        **common,
    )
    row["retrain_cpu_seconds"] = _cpu() - cpu
    row["self_trained"] = _detect(s, painted, second, False)
    if tta:
        row["self_trained_tta"] = _detect(s, painted, second, True)
    return row


def summarise(rows: dict, variants: list[str] | None = None) -> dict:
    """Mean F1 per preset (over its seeds) and over the presets, for each variant."""
    variants = VARIANTS if variants is None else variants
    per: dict[str, dict[str, list[float]]] = {}
    for key, row in rows.items():
        entry = per.setdefault(key.split("/")[0], {v: [] for v in variants})
        for v in variants:
            entry[v].append(row[v]["f1"] if v in row else np.nan)
    means = {n: {v: float(np.mean(f)) for v, f in cols.items()} for n, cols in per.items()}
    return {
        "per_preset": means,
        "mean": {v: float(np.mean([m[v] for m in means.values()])) for v in variants},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=FAINTEST)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--self-training-epochs", type=int, default=None)
    parser.add_argument("--no-tta", action="store_true", help="skip test-time augmentation")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--merge", nargs="*", type=Path, default=None, help="merge partial JSONs")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    if not set(args.presets) <= set(DEV_PRESETS):
        parser.error("dev presets only: held-out presets are never used to choose anything")
    settings = SomaTrainingParams(cell_diameter=PRESET_DIAMETER, self_training=False)
    if args.self_training_epochs is not None:
        settings = settings.replace(self_training_epochs=args.self_training_epochs)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows: dict[str, dict] = {}
    for name in args.presets:
        for seed in args.seeds:
            rows[f"{name}/{seed}"] = row = block_row(name, seed, settings, not args.no_tta)
            out = {
                "settings": {"self_training_epochs": settings.self_training_epochs},
                "seeds": args.seeds,
                "rows": rows,
                "summary": summarise(rows),
                "machine": {"load_before": load_before, "load_after": os.getloadavg()},
            }
            write_json(args.out, out)  # after every block: a stopped run keeps what it measured
            print(
                name,
                seed,
                " ".join(f"{v} {row[v]['f1']:.3f}" for v in VARIANTS if v in row),
                f"train {row['train_cpu_seconds']:.0f}+{row['labels_cpu_seconds']:.0f}"
                f"+{row['retrain_cpu_seconds']:.0f} CPU s",
                row["labels"],
                flush=True,
            )
    print(summarise(rows))
    return 0


def merge(parts: list[Path], out_path: Path) -> int:
    """One JSON from runs made one after the other (a later part's row replaces an earlier)."""
    import json

    rows: dict[str, dict] = {}
    machines = []
    for part in parts:
        data = json.loads(Path(part).read_text())
        rows.update(data["rows"])
        machines.append({"part": Path(part).name, **data["machine"]})
    out = {"rows": rows, "summary": summarise(rows), "machine": {"parts": machines}}
    write_json(out_path, out)
    print(out["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
