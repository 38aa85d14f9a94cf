"""Why the fine-tuned soma U-Net misses somata or adds false ones on the faint DEV presets.

Per dev block (preset × ``--seeds``): the shipped prior fine-tuned on 6 painted somata with the
default settings (as ``benchmarks/em_generalisation.py``), then the fine-tuned shell path's
decision re-traced peak by peak (shell peaks, their strength, the U-Net's support, which rule
kept or proposed them, the overlap rule), and every unpainted true soma and every unmatched
detection given one class:

misses: ``no_shell_peak`` (no shell peak above the proposal floor within half a diameter),
``low_probability`` (a peak, but the network's support below what its shell strength needs),
``weak_shell_no_evidence`` (support high enough for a weak shell but neither the proposal
strength nor the classical passes' evidence), ``overlap`` (proposed, dropped beside a kept
soma), ``size_filter`` (kept, removed by the size / shape / lumen filter), with the soma's
diameter, z extent in sections and distance to the block border beside it.
false positives: the compartment under the detection (neuropil, myelin, glia, vessel, nucleus or
soma of another cell, i.e. a duplicate) and the rule that admitted it.

Held-out presets are refused. Run:
``OMP_NUM_THREADS=1 python benchmarks/em_faint_diagnosis.py --presets … --seeds 0 1 --out X.json``
(``--cache DIR`` keeps the fine-tuned detectors for later runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_mesoscale.segment import detect_somata_em, match_points, train_soma_detector
from napari_mesoscale.segment import em as em_module
from napari_mesoscale.segment.params import SomaDetectionParams
from napari_mesoscale.segment.unet import SomaDetector
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402
from em_generalisation import PRESET_DIAMETER, _unscored_painted, paint_somata  # noqa: E402

FAINT = ["dev_inverted_thick_dim", "dev_faint_inverted_dark"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fine_tuned(s, annotations, cache: Path | None, key: str) -> SomaDetector:
    """The default fine-tuning on the painted block (loaded from ``cache`` when there)."""
    path = None if cache is None else cache / f"{key.replace('/', '_')}.pt"
    if path is not None and path.exists():
        return SomaDetector.load(path, device="cpu")
    detector = train_soma_detector(
        s.volume, annotations, voxel_size=s.voxel_size, seed=0, device="cpu", self_training=False
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        detector.save(path)
    return detector


def trace_decision(volume, voxel_size, detector, diameter) -> dict:
    """The fine-tuned shell path of ``detect_somata_em`` step by step, per shell peak."""
    p = SomaDetectionParams(cell_diameter=diameter)
    run = em_module._prepare_em_run(volume, voxel_size, p, detector)
    image = em_module.downsample(run["volume"], run["factors"])
    from napari_mesoscale.progress import Progress

    quiet = Progress.wrap(None)
    threshold = float(p.shell_threshold)
    probability = em_module._unet_probability(run, image, detector, quiet)
    floor = min(em_module.PROPOSAL_FRACTION, em_module.WEAK_SHELL_FRACTION)
    floor = min(floor, em_module.LOCAL_PASS_FLOOR) * threshold
    peaks, radius, response = em_module._shell_peaks(run, image, floor, 0.0, quiet)
    strength = response[tuple(peaks.T)]
    classical = em_module._classical_threshold(strength, threshold, float(p.shell_fraction))
    cores = em_module._balls_around(peaks, 0.5 * radius, run["work_vs"])
    support = np.nan_to_num(ndimage.mean(probability, cores, np.arange(1, len(peaks) + 1)))
    pt = float(p.probability_threshold)
    kept = (strength >= classical) & (support >= 0.25 * pt)
    strong_proposal = (
        ~kept & (strength >= em_module.PROPOSAL_FRACTION * threshold) & (support >= 0.5 * (1 + pt))
    )
    evidence = em_module._shell_evidence(run, image, peaks, radius, response)
    second = (strength >= em_module.WEAK_SHELL_FRACTION * threshold) & evidence["nucleated_smooth"]
    weak = ~kept & ~strong_proposal & (support >= pt)
    evidence_ok = second | evidence["local_pass"]
    weak_proposal = weak & evidence_ok if classical <= threshold else np.zeros_like(weak)
    proposed = strong_proposal | weak_proposal
    keep = em_module._add_without_overlap(peaks, radius, run["work_vs"], kept, proposed, strength)
    offset = 0.5 * (run["factors"] - 1) * np.asarray(run["voxel_size"])
    return {
        "run": run,
        "image": image,
        "probability": probability,
        "response": response,
        "positions": peaks * np.asarray(run["work_vs"]) + offset,
        "peaks": peaks,
        "radius": radius[tuple(peaks.T)],
        "strength": strength,
        "support": support,
        "classical": classical,
        "kept": kept,
        "strong_proposal": strong_proposal,
        "weak_proposal": weak_proposal,
        "evidence": evidence_ok,
        "keep": keep,
    }


def _compartment(seg_value: int) -> str:
    if seg_value == 0:
        return "background"
    if seg_value < 10_000:
        return "soma"
    if seg_value < 50_000:
        return "nucleus"
    if seg_value < 60_000:
        return "neuropil"
    if seg_value < 70_000:
        return "myelin"
    if seg_value < 80_000:
        return "vessel"
    return "glia"


def classify_misses(s, painted, trace, detected, diameter) -> list[dict]:
    """One row per unpainted true soma that the detection missed."""
    unpainted = np.setdiff1d(np.arange(len(s.centres)), painted - 1)
    m = match_points(detected, s.centres[unpainted], diameter / 2)
    found = set(int(i) for i in m.truth_index)
    extent = np.asarray(s.volume.shape) * np.asarray(s.voxel_size)
    rows = []
    pt = SomaDetectionParams().probability_threshold
    for k, i in enumerate(unpainted):
        if k in found:
            continue
        c = s.centres[i]
        near = np.linalg.norm(trace["positions"] - c, axis=1)
        z_sections = int(np.any(s.soma_labels == i + 1, axis=(1, 2)).sum())
        row = {
            "soma": int(i + 1),
            "diameter_um": float(s.diameters[i]),
            "z_sections": z_sections,
            "border_um": float(np.min(np.minimum(c, extent - c))),
            "border_z_um": float(min(c[0], extent[0] - c[0])),
        }
        close = np.flatnonzero(near <= diameter / 2)
        if len(close) == 0:
            row["class"] = "no_shell_peak"
            row["nearest_peak_um"] = float(near.min()) if len(near) else None
            rows.append(row)
            continue
        j = close[np.argmin(near[close])]
        row.update(
            strength=float(trace["strength"][j]),
            support=float(trace["support"][j]),
            classical=float(trace["classical"]),
            evidence=bool(trace["evidence"][j]),
            peak_distance_um=float(near[j]),
        )
        if trace["keep"][j]:
            row["class"] = "size_filter"
        elif trace["kept"][j] or trace["strong_proposal"][j] or trace["weak_proposal"][j]:
            row["class"] = "overlap"
        elif trace["support"][j] < pt:
            row["class"] = "low_probability"
        else:
            row["class"] = "weak_shell_no_evidence"
        rows.append(row)
    return rows


def classify_false_positives(s, painted, trace, detected, diameter) -> list[dict]:
    """One row per detection matched to no true soma (those near painted somata excluded)."""
    m = match_points(detected, s.centres, diameter / 2)
    matched = set(int(i) for i in m.detected_index)
    vs = np.asarray(s.voxel_size)
    rows = []
    for d_i, pos in enumerate(detected):
        if d_i in matched:
            continue
        index = tuple(np.clip(np.round(pos / vs).astype(int), 0, np.asarray(s.volume.shape) - 1))
        distance = np.linalg.norm(s.centres - pos, axis=1)
        near = np.linalg.norm(trace["positions"] - pos, axis=1)
        j = int(np.argmin(near))
        rule = (
            "kept"
            if trace["kept"][j]
            else "strong_proposal"
            if trace["strong_proposal"][j]
            else "weak_proposal"
        )
        rows.append(
            {
                "compartment": _compartment(int(s.segmentation[index])),
                "nearest_soma_um": float(distance.min()),
                "nearest_is_painted": bool(int(np.argmin(distance)) + 1 in set(painted)),
                "rule": rule,
                "strength": float(trace["strength"][j]),
                "support": float(trace["support"][j]),
            }
        )
    return rows


def block(name: str, seed: int, cache: Path | None) -> dict:
    s = render_em_preset(name, seed=seed)
    annotations, painted = paint_somata(s.soma_labels, s.voxel_size)
    cpu = _cpu()
    detector = fine_tuned(s, annotations, cache, f"{name}/{seed}")
    train_cpu = _cpu() - cpu
    cpu = _cpu()
    result = detect_somata_em(
        s.volume, voxel_size=s.voxel_size, cell_diameter=PRESET_DIAMETER, detector=detector
    )
    detect_cpu = _cpu() - cpu
    trace = trace_decision(s.volume, s.voxel_size, detector, PRESET_DIAMETER)
    score = _unscored_painted(result, s.centres, painted, PRESET_DIAMETER)
    return {
        "score": score,
        "n_traced_kept": int(trace["keep"].sum()),
        "n_detected": int(len(result.positions)),
        "misses": classify_misses(s, painted, trace, result.positions, PRESET_DIAMETER),
        "false_positives": classify_false_positives(
            s, painted, trace, result.positions, PRESET_DIAMETER
        ),
        "train_cpu_seconds": train_cpu,
        "detect_cpu_seconds": detect_cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=FAINT)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not set(args.presets) <= set(DEV_PRESETS):
        parser.error("dev presets only: held-out presets are never used to choose anything")
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows = {}
    for name in args.presets:
        for seed in args.seeds:
            rows[f"{name}/{seed}"] = row = block(name, seed, args.cache)
            misses = [m["class"] for m in row["misses"]]
            fps = [(f["compartment"], f["rule"]) for f in row["false_positives"]]
            print(name, seed, f"F1 {row['score']['f1']:.3f}", misses, fps, flush=True)
            machine = {"load_before": load_before, "load_after": os.getloadavg()}
            write_json(args.out, {"rows": rows, "machine": machine})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
