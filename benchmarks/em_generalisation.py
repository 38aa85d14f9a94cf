"""EM soma detection across renderer presets: dev presets (tuned on) and held-out presets.

Every preset of :mod:`napari_mesoscale.synth.em_presets` (and the toy brain's own EM) ×
{classical ``detect_somata_em``, the shipped pretrained U-Net alone, the prior fine-tuned
from 6 painted somata with the default settings, (``--unet``) a U-Net trained from scratch on
the same paint, ``somata_from_labels`` on the preset's segmentation, a naive Otsu +
distance-transform peer}: F1 (detections matched to
true centres within half a cell diameter) and seconds. The U-Net is scored on the unpainted
somata only (detections matched to painted somata are dropped first).

Run: ``OMP_NUM_THREADS=1 python benchmarks/em_generalisation.py [--unet] [--quick]``.
The held-out evaluation is every held-out preset × the seeds of
:data:`~napari_mesoscale.synth.em_presets.HELDOUT_SEEDS` (``--heldout-seeds``; rows keyed
``preset/seed``, with the mean over seeds in ``heldout_means``); ``--fresh-heldout-seeds``
renders them with the seeds of :data:`~napari_mesoscale.synth.em_presets.FRESH_HELDOUT_SEEDS`
instead (blocks first rendered to confirm the fused shell pass as the U-Net path's default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_mesoscale.segment import (
    detect_somata_em,
    match_points,
    somata_from_labels,
    train_soma_detector,
)
from napari_mesoscale.segment.em import split_bodies
from napari_mesoscale.segment.params import SomaDetectionParams, SomaTrainingParams
from napari_mesoscale.segment.unet import pretrained_soma_detector, self_training_labels
from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.em_presets import (
    DEV_PRESETS,
    FRESH_HELDOUT_SEEDS,
    HELDOUT_PRESETS,
    HELDOUT_SEEDS,
    render_em_preset,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "em_generalisation.json"
PRESET_DIAMETER = 9.0  # µm, the middle of the presets' 7-11 µm somata
TOY_DIAMETER = 8.0


def naive_peer(volume, voxel_size, cell_diameter):
    """Otsu threshold of the smoothed volume (bright = foreground), distance transform, peaks,
    watershed, size filter: what one writes first."""
    from skimage.filters import threshold_otsu

    vs = np.asarray(voxel_size, dtype=float)
    smooth = ndimage.gaussian_filter(volume.astype(np.float32), 1.0 / vs)
    mask = ndimage.binary_fill_holes(smooth > threshold_otsu(smooth))
    bodies = split_bodies(mask, voxel_size=tuple(vs), cell_diameter=cell_diameter)
    ids = np.arange(1, int(bodies.max()) + 1)
    if len(ids) == 0:
        return np.zeros((0, 3))
    sizes = ndimage.sum(np.ones_like(bodies), bodies, ids) * float(np.prod(vs))
    diam = (6 * sizes / np.pi) ** (1 / 3)
    keep = ids[(diam >= 0.5 * cell_diameter) & (diam <= 1.6 * cell_diameter)]
    centres = np.asarray(ndimage.center_of_mass(np.ones_like(bodies), bodies, keep)) * vs
    return centres.reshape(-1, 3)


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def _cpu_timed(function, *args, **kwargs):
    """Result, wall seconds and process CPU seconds (what a loaded machine does not inflate)."""
    cpu = time.process_time()
    out, wall = _timed(function, *args, **kwargs)
    return out, wall, time.process_time() - cpu


def _score(detected, truth, diameter):
    m = match_points(detected, truth, diameter / 2)
    return {
        "f1": float(m.f1),
        "precision": float(m.precision),
        "recall": float(m.recall),
        "n_detected": int(len(detected)),
        "n_truth": int(len(truth)),
    }


def paint_somata(soma_labels, voxel_size, n_somata=6, seed=0, fill=0.6):
    """Annotations a user would paint: ``n_somata`` somata filled to ``fill`` of their radius
    (2), small background dabs in the neuropil away from any soma (1)."""
    rng = np.random.default_rng(seed)
    vs = np.asarray(voxel_size, dtype=float)
    ids = rng.choice(np.arange(1, int(soma_labels.max()) + 1), n_somata, replace=False)
    annotations = np.zeros(soma_labels.shape, dtype=np.uint8)
    for i in ids:
        inside = soma_labels == i
        depth = ndimage.distance_transform_edt(inside, sampling=vs)
        annotations[depth >= (1 - fill) * depth.max()] = 2
    far = ndimage.distance_transform_edt(soma_labels == 0, sampling=vs) > 2.0
    candidates = np.argwhere(far)
    half = np.maximum(1, np.round(1.5 / vs)).astype(int)
    for c in candidates[rng.choice(len(candidates), 40, replace=False)]:
        sl = tuple(slice(max(0, a - h), a + h + 1) for a, h in zip(c, half, strict=True))
        block = annotations[sl]
        block[(block == 0) & far[sl]] = 1
    return annotations, ids


def _unscored_painted(result, truth, painted, diameter):
    """Score on the unpainted somata: detections matched to painted somata are dropped."""
    unpainted = np.setdiff1d(np.arange(len(truth)), painted - 1)
    near_painted = match_points(result.positions, truth[painted - 1], diameter / 2)
    keep = np.ones(len(result.positions), bool)
    keep[near_painted.detected_index] = False
    return _score(result.positions[keep], truth[unpainted], diameter)


def _unet_row(volume, voxel_size, soma_labels, truth, diameter, start_from, **settings):
    annotations, painted = paint_somata(soma_labels, voxel_size)
    detector, train_s, train_cpu_s = _cpu_timed(
        train_soma_detector,
        volume,
        annotations,
        voxel_size=voxel_size,
        seed=0,
        device="cpu",
        start_from=start_from,
        **settings,
    )
    result, detect_s = _timed(
        detect_somata_em,
        volume,
        voxel_size=voxel_size,
        cell_diameter=diameter,
        detector=detector,
    )
    score = _unscored_painted(result, truth, painted, diameter)
    steps = len(detector.history)
    return {
        **score,
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu_s,
        "seconds": detect_s,
        "start_from": start_from,
        "final_loss": detector.history[-1]["loss"],
        "epochs_run": steps,
        **settings,
    }


def _detected_row(volume, voxel_size, truth, painted, diameter, detector, tta=False, fused=None):
    """Detection with ``detector`` scored on the unpainted somata; ``fused=None`` takes
    ``SomaDetectionParams``'s default of ``fused_shell_pass``."""
    result, s, cpu = _cpu_timed(
        detect_somata_em,
        volume,
        voxel_size=voxel_size,
        cell_diameter=diameter,
        detector=detector,
        test_time_augmentation=tta,
        fused_shell_pass=fused,
    )
    score = _unscored_painted(result, truth, painted, diameter)
    return {**score, "seconds": s, "detect_cpu_seconds": cpu}


def _option_rows(volume, voxel_size, soma_labels, truth, diameter, options):
    """The default fine-tuning (``fine_tuned_6``) and, from the same run, the options:
    detection with test-time augmentation (``tta``), and the self-training round of
    ``train_soma_detector(self_training=True)`` continued from that detector (its first round
    is the default fine-tuning, same seed), detected plainly (``self_training``) or with
    test-time augmentation (``self_training_tta``); ``fused`` and ``self_training_fused``:
    the default and the self-trained detector with ``fused_shell_pass=True``; ``unfused``: the
    default detector with ``fused_shell_pass=False`` (the default before the fused pass was).
    Columns without a suffix detect with the current defaults. CPU seconds of the
    option's whole training = the default's + the labels' + the second round's."""
    annotations, painted = paint_somata(soma_labels, voxel_size)
    common = {"voxel_size": voxel_size, "seed": 0, "device": "cpu"}
    # the first round explicitly without self-training, whatever the default
    detector, train_s, train_cpu = _cpu_timed(
        train_soma_detector,
        volume,
        annotations,
        start_from="pretrained",
        self_training=False,
        **common,
    )
    rows = {}
    base = {"train_seconds": train_s, "train_cpu_seconds": train_cpu}
    detect = (volume, voxel_size, truth, painted, diameter)
    rows["fine_tuned_6"] = {**_detected_row(*detect, detector), **base}
    if "tta" in options:
        rows["fine_tuned_6_tta"] = {**_detected_row(*detect, detector, tta=True), **base}
    if "fused" in options:
        rows["fine_tuned_6_fused"] = {**_detected_row(*detect, detector, fused=True), **base}
    if "unfused" in options:
        rows["fine_tuned_6_unfused"] = {**_detected_row(*detect, detector, fused=False), **base}
    if {"self_training", "self_training_tta", "self_training_fused"} & set(options):
        settings = SomaTrainingParams(self_training=False)
        extended, label_s, label_cpu = _cpu_timed(
            self_training_labels,
            detector,
            volume,
            annotations,
            voxel_size=voxel_size,
            cell_diameter=diameter,
        )
        second, retrain_s, retrain_cpu = _cpu_timed(
            train_soma_detector,
            volume,
            extended,
            detector=detector,
            params=settings.replace(epochs=settings.self_training_epochs),
            **common,
        )
        timing = {
            "train_seconds": train_s + label_s + retrain_s,
            "train_cpu_seconds": train_cpu + label_cpu + retrain_cpu,
            "labels_cpu_seconds": label_cpu,
            "retrain_cpu_seconds": retrain_cpu,
        }
        if "self_training" in options:
            rows["fine_tuned_6_self_training"] = {**_detected_row(*detect, second), **timing}
        if "self_training_tta" in options:
            rows["fine_tuned_6_self_training_tta"] = {
                **_detected_row(*detect, second, tta=True),
                **timing,
            }
        if "self_training_fused" in options:
            rows["fine_tuned_6_self_training_fused"] = {
                **_detected_row(*detect, second, fused=True),
                **timing,
            }
    return rows


def _pretrained_row(volume, voxel_size, truth, diameter):
    detector = pretrained_soma_detector(device="cpu")
    result, s = _timed(
        detect_somata_em, volume, voxel_size=voxel_size, cell_diameter=diameter, detector=detector
    )
    return {**_score(result.positions, truth, diameter), "seconds": s}


def evaluate(name, volume, voxel_size, truth, soma_labels, segmentation, diameter, args):
    row = {"voxel_size": list(voxel_size), "shape": list(volume.shape), "n_somata": len(truth)}
    classical, s = _timed(
        detect_somata_em,
        volume,
        voxel_size=voxel_size,
        cell_diameter=diameter,
        anisotropic_shell=getattr(args, "anisotropic_shell", False),
    )
    row["classical"] = {
        **_score(classical.positions, truth, diameter),
        "seconds": s,
        "polarity": classical.parameters.get("polarity_used"),
    }
    peer, s = _timed(naive_peer, volume, voxel_size, diameter)
    row["naive_peer"] = {**_score(peer, truth, diameter), "seconds": s}
    labels, s = _timed(
        somata_from_labels, segmentation, voxel_size=voxel_size, cell_diameter=diameter
    )
    row["from_labels"] = {**_score(labels.positions, truth, diameter), "seconds": s}
    if args.light:
        print(name, {k: v.get("f1") for k, v in row.items() if isinstance(v, dict)}, flush=True)
        return row
    row["pretrained"] = _pretrained_row(volume, voxel_size, truth, diameter)
    # the default settings of SomaTrainingParams: what the widget runs
    if args.options:
        row.update(_option_rows(volume, voxel_size, soma_labels, truth, diameter, args.options))
    else:
        row["fine_tuned_6"] = _unet_row(
            volume, voxel_size, soma_labels, truth, diameter, "pretrained"
        )
    if args.unet:
        row["scratch_6"] = _unet_row(
            volume,
            voxel_size,
            soma_labels,
            truth,
            diameter,
            "scratch",
            epochs=args.epochs,
            steps_per_epoch=args.steps,
            batch_size=4,
            patch_size=24,
        )
    print(name, {k: v.get("f1") for k, v in row.items() if isinstance(v, dict)}, flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--unet", action="store_true", help="also train from scratch on 6 painted somata"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="dev_sbem and one held-out only")
    parser.add_argument(
        "--only", nargs="*", default=None, help="these presets (and 'toy_brain') only, into --out"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--light", action="store_true", help="classical, naive peer and labels only (no U-Net)"
    )
    parser.add_argument(
        "--merge", nargs="*", type=Path, default=None, help="merge partial JSONs into --out"
    )
    parser.add_argument(
        "--anisotropic-shell",
        action="store_true",
        help="classical path with the section-smeared shell template (anisotropic_shell=True)",
    )
    parser.add_argument(
        "--options",
        nargs="*",
        choices=(
            "tta",
            "self_training",
            "self_training_tta",
            "fused",
            "self_training_fused",
            "unfused",
        ),
        default=None,
        help="also these fine-tuning options (columns fine_tuned_6_<option>)",
    )
    parser.add_argument(
        "--heldout-seeds",
        action="store_true",
        help="the held-out evaluation: held-out presets rendered with every seed of HELDOUT_SEEDS",
    )
    parser.add_argument(
        "--fresh-heldout-seeds",
        action="store_true",
        help="the held-out presets rendered with every seed of FRESH_HELDOUT_SEEDS instead",
    )
    args = parser.parse_args(argv)
    args.seeds = _heldout_seeds(args)
    args.heldout_seeds = bool(args.seeds)
    if args.merge:
        return merge(args.merge, args.out)
    warnings.simplefilter("ignore")
    load_before = os.getloadavg()
    out = {"dev": {}, "heldout": {}, "toy_brain": {}}
    names = [("dev", n) for n in DEV_PRESETS] + [("heldout", n) for n in HELDOUT_PRESETS]
    if args.quick:
        names = [("dev", "dev_sbem"), ("heldout", "heldout_issue16")]
    if args.only is not None:
        names = [(split, n) for split, n in names if n in args.only]
    for split, name, seed in _blocks(names, args.seeds):
        s = render_em_preset(name, seed=seed)
        key = f"{name}/{seed}" if args.heldout_seeds and split == "heldout" else name
        out[split][key] = evaluate(
            key,
            s.volume,
            s.voxel_size,
            s.centres,
            s.soma_labels,
            s.segmentation,
            PRESET_DIAMETER,
            args,
        )
        if args.heldout_seeds:  # after every block: a run stopped early keeps what it measured
            _write(out, args, load_before, complete=False)
    if args.only is None or "toy_brain" in args.only:
        out["toy_brain"] = _toy_brain(args)
    _write(out, args, load_before, complete=True)
    print(f"wrote {args.out}")
    return 0


def _write(out: dict, args, load_before, *, complete: bool) -> None:
    if args.heldout_seeds:
        out["heldout_seeds"] = list(args.seeds)
        out["heldout_means"] = seed_means(out["heldout"])
        out["complete"] = complete
    out["machine"] = _machine(load_before)
    out["classical_options"] = {"anisotropic_shell": bool(args.anisotropic_shell)}
    out["fine_tuning_options"] = list(args.options or [])
    out["detection_defaults"] = {"fused_shell_pass": SomaDetectionParams().fused_shell_pass}
    out["targets"] = TARGETS
    write_json(args.out, out)


def _heldout_seeds(args) -> tuple[int, ...]:
    """The seeds the held-out presets are rendered with: () for seed 0 alone."""
    if args.heldout_seeds and args.fresh_heldout_seeds:
        raise SystemExit("--heldout-seeds and --fresh-heldout-seeds exclude each other")
    if args.fresh_heldout_seeds:
        return tuple(FRESH_HELDOUT_SEEDS)
    return tuple(HELDOUT_SEEDS) if args.heldout_seeds else ()


def _blocks(names, seeds: tuple[int, ...]):
    """(split, preset, seed) of every block: seed 0, or every held-out seed of ``seeds`` (seed
    by seed, so that a run stopped early has every preset at its first seeds)."""
    for split, name in names:
        if not (seeds and split == "heldout"):
            yield split, name, 0
    for seed in seeds:
        for split, name in names:
            if split == "heldout":
                yield split, name, seed


def seed_means(rows: dict) -> dict:
    """Per preset and column, the mean F1, precision and recall over its ``preset/seed`` rows."""
    grouped: dict[str, list[dict]] = {}
    for key, row in rows.items():
        grouped.setdefault(key.split("/")[0], []).append(row)
    means: dict[str, dict] = {}
    for name, group in grouped.items():
        columns = [k for k, v in group[0].items() if isinstance(v, dict) and "f1" in v]
        means[name] = {
            column: {
                figure: float(np.mean([row[column][figure] for row in group]))
                for figure in ("f1", "precision", "recall")
            }
            for column in columns
        }
        means[name]["n_seeds"] = len(group)
    return means


TARGETS = {
    "classical_heldout_f1": 0.85,
    "fine_tuned_heldout_f1": 0.9,
    "toy_brain_f1": 0.99,
    "fine_tune_seconds": 120,
}


def _machine(load_before):
    return {
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def merge(parts, out_path) -> int:
    """One JSON from the partial runs of ``--only`` (run side by side on a loaded machine)."""
    import json

    out = {"dev": {}, "heldout": {}, "toy_brain": {}, "machine": {"parts": []}}
    for part in parts:
        data = json.loads(Path(part).read_text())
        out["dev"].update(data.get("dev", {}))
        out["heldout"].update(data.get("heldout", {}))
        out["toy_brain"].update(data.get("toy_brain", {}))
        machine = data["machine"]  # a merged JSON brings its own parts: keep them flat
        out["machine"]["parts"].extend(machine.get("parts", [machine]))
    out["targets"] = TARGETS
    write_json(out_path, out)
    print(f"wrote {out_path}")
    return 0


def _toy_brain(args):
    brain = make_toy_brain(120, n_frames=10, shape=(40, 96, 96), em=True, seed=0, render=None)
    return evaluate(
        "toy_brain",
        brain.em,
        tuple(brain.em_voxel_size),
        brain.positions,
        brain.em_labels,
        brain.em_labels,
        TOY_DIAMETER,
        args,
    )


if __name__ == "__main__":
    raise SystemExit(main())
