"""The fused shell pass of the fine-tuned soma U-Net (``fused_shell_pass``), on DEV presets only.

Per dev block (preset × ``--seeds``): the shipped prior fine-tuned on 6 painted somata with the
default settings (as ``benchmarks/em_generalisation.py``; ``--cache DIR`` keeps the detectors),
then detection with the default settings and with ``fused_shell_pass=True`` (for every value of
``--scores``, the pass's :data:`~napari_mesoscale.segment.em.FUSED_PASS_SCORE`), scored on the
unpainted somata; process CPU seconds of training and detection. Held-out presets are refused.

Run: ``OMP_NUM_THREADS=1 python benchmarks/em_fused_pass_dev.py --seeds 0 1 --out X.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import warnings
from pathlib import Path

from napari_mesoscale.segment import detect_somata_em
from napari_mesoscale.segment import em as em_module
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402
from em_faint_diagnosis import fine_tuned  # noqa: E402
from em_generalisation import PRESET_DIAMETER, _unscored_painted, paint_somata  # noqa: E402
from em_self_training_dev import summarise as summarise_variants  # noqa: E402

FAINTEST = ["dev_faint_inverted_dark", "dev_inverted_thick_dim", "dev_faint_thick_sections"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _detect(s, painted, detector, **options) -> dict:
    cpu = _cpu()
    result = detect_somata_em(
        s.volume,
        voxel_size=s.voxel_size,
        cell_diameter=PRESET_DIAMETER,
        detector=detector,
        **options,
    )
    return {
        **_unscored_painted(result, s.centres, painted, PRESET_DIAMETER),
        "detect_cpu_seconds": _cpu() - cpu,
        "n_fused_proposed": result.parameters.get("n_fused_proposed", 0),
    }


def block_row(name: str, seed: int, scores: list[float], cache: Path | None) -> dict:
    s = render_em_preset(name, seed=seed)
    annotations, painted = paint_somata(s.soma_labels, s.voxel_size)
    cpu = _cpu()
    detector = fine_tuned(s, annotations, cache, f"{name}/{seed}")
    row = {"shape": list(s.volume.shape), "train_cpu_seconds": _cpu() - cpu}
    # the U-Net path without the fused pass (its default until the pass became the default)
    row["fine_tuned"] = _detect(s, painted, detector, fused_shell_pass=False)
    default_score = em_module.FUSED_PASS_SCORE
    try:
        for score in scores:
            em_module.FUSED_PASS_SCORE = float(score)
            row[f"fused_{score:g}"] = _detect(s, painted, detector, fused_shell_pass=True)
    finally:
        em_module.FUSED_PASS_SCORE = default_score
    return row


def summarise(rows: dict) -> dict:
    variants = sorted({v for row in rows.values() for v in row if isinstance(row[v], dict)})
    return summarise_variants(rows, variants)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=list(DEV_PRESETS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--scores", nargs="*", type=float, default=[em_module.FUSED_PASS_SCORE])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not set(args.presets) <= set(DEV_PRESETS):
        parser.error("dev presets only: held-out presets are never used to choose anything")
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows: dict[str, dict] = {}
    for name in args.presets:
        for seed in args.seeds:
            rows[f"{name}/{seed}"] = row = block_row(name, seed, args.scores, args.cache)
            machine = {"load_before": load_before, "load_after": os.getloadavg()}
            summary = summarise(rows)
            out = {"seeds": args.seeds, "rows": rows, "summary": summary, "machine": machine}
            write_json(args.out, out)  # after every block: a stopped run keeps what it measured
            figures = " ".join(f"{v} {row[v]['f1']:.3f}" for v in row if isinstance(row[v], dict))
            print(name, seed, figures, f"train {row['train_cpu_seconds']:.0f} CPU s", flush=True)
    print(summarise(rows)["mean"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
