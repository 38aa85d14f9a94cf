"""Train the pretrained soma detector shipped in ``napari_mesoscale/segment/weights``.

Trains the small 3D U-Net of :mod:`napari_mesoscale.segment.unet` on the DEV EM presets only
(:data:`napari_mesoscale.synth.em_presets.DEV_PRESETS`; the held-out presets are never
seen). Every round renders each dev preset afresh with a new seed and a randomly jittered
appearance (cytoplasm brighter or darker than the neuropil, membrane, nucleus and noise
contrast, blur, staining gradient, voxel sizes 0.5-2 µm, either polarity), fully labelled
(soma / not soma), so the network learns what a soma is across appearances rather than one
renderer's grey levels. The run lasts ``--minutes`` of wall time; the learning rate follows
a cosine from ``--learning-rate`` to 5 % of it over that time.

Run: ``OMP_NUM_THREADS=1 python scripts/train_soma_prior.py [--minutes 25] [--steps 8]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from napari_mesoscale.segment.unet import PRETRAINED_WEIGHTS, SomaDetector, train_soma_detector
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset

EXTENT_UM = (36.0, 64.0, 64.0)


def jittered_appearance(name: str, rng: np.random.Generator) -> dict:
    """Overrides of a dev preset's appearance: the same kind of tissue, another microscope."""
    a = DEV_PRESETS[name]
    neuropil = float(rng.uniform(0.45, 0.65))
    return {
        "voxel_size": (
            float(rng.choice([0.5, 1.0, 1.5, 2.0])),
            *(2 * [float(rng.choice([0.5, 0.75, 1.0]))]),
        ),
        "neuropil": neuropil,
        "neuropil_membrane": float(rng.uniform(0.15, 0.35)),
        "cytoplasm": neuropil + float(rng.uniform(-0.18, 0.22)),
        "plasma_membrane": float(rng.uniform(0.2, 0.45)),
        "nucleus": float(rng.uniform(0.4, 0.85)),
        "envelope": float(rng.uniform(0.2, 0.4)),
        "myelinated_axons": int(rng.integers(0, 3 * max(a.myelinated_axons, 8))),
        "glia": int(rng.integers(0, 2 * max(a.glia, 6))),
        "noise": float(rng.uniform(0.03, 0.11)),
        "blur_um": float(rng.uniform(0.25, 0.55)),
        "gradient": float(rng.uniform(0.0, 0.35)),
        "inverted": bool(rng.random() < 0.5),
    }


def training_volume(name: str, seed: int, rng: np.random.Generator, native: float = 0.25):
    """(volume, voxel size, annotations) of one jittered rendering of dev preset ``name``;
    with probability ``native`` the preset keeps its own look (only the polarity may flip)."""
    overrides = jittered_appearance(name, rng)
    if rng.random() < native:
        overrides = {"inverted": bool(rng.random() < 0.5) != DEV_PRESETS[name].inverted}
    sample = render_em_preset(name, seed=1000 + seed, extent_um=EXTENT_UM, **overrides)
    annotations = np.where(sample.soma_labels > 0, 2, 1).astype(np.uint8)
    return sample.volume, sample.voxel_size, annotations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="wall-clock length")
    parser.add_argument("--steps", type=int, default=8, help="steps per rendered volume")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--patch-size", type=int, default=24)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--init", type=Path, default=None, help="continue from these weights")
    parser.add_argument(
        "--native-fraction",
        type=float,
        default=0.25,
        help="share of renderings that keep the preset's own look (not jittered)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the renderings (a new one for each continued run)",
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    detector = None if args.init is None else SomaDetector.load(args.init, device=args.device)
    steps_before = 0 if detector is None else int(detector.config.get("training_steps", 0))
    start, budget = time.perf_counter(), 60.0 * args.minutes
    names, first, r = sorted(DEV_PRESETS), 100_000 * args.seed, 0
    volumes_seen = first
    while time.perf_counter() - start < budget:
        losses = []
        for name in rng.permutation(names):
            done = min(1.0, (time.perf_counter() - start) / budget)
            lr = args.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))
            volume, voxel_size, annotations = training_volume(
                str(name), volumes_seen, rng, args.native_fraction
            )
            detector = train_soma_detector(
                volume,
                annotations,
                voxel_size=voxel_size,
                detector=detector,
                start_from="scratch",
                base_channels=8,
                depth=2,
                epochs=1,
                steps_per_epoch=args.steps,
                batch_size=4,
                patch_size=args.patch_size,
                resolution=1.0,
                learning_rate=lr,
                device=args.device,
                seed=volumes_seen,
            )
            volumes_seen += 1
            losses.append(detector.history[-1]["loss"])
        r += 1
        print(
            f"round {r}: loss {np.mean(losses):.4f}, lr {lr:.2e}, {volumes_seen} volumes, "
            f"{time.perf_counter() - start:.0f} s, {time.process_time():.0f} CPU s",
            flush=True,
        )
        if r % 5 == 0:
            partial = args.out.with_suffix(".partial.pt")
            _save(detector, partial, volumes_seen - first, args, steps_before)
    _save(detector, args.out, volumes_seen - first, args, steps_before)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")
    return 0


def _save(
    detector: SomaDetector, out: Path, volumes_seen: int, args, steps_before: int = 0
) -> None:
    """Write the weights; a continued run (``--init``) counts the steps before it too."""
    detector.model.to("cpu")
    detector.device = "cpu"
    detector.history = detector.history[-len(DEV_PRESETS) :]
    detector.config = {
        **detector.config,
        "trained_on": sorted(DEV_PRESETS),
        "training_steps": steps_before + volumes_seen * args.steps,
        "jittered_appearance": True,
    }
    if args.init is not None:
        detector.config["continued_steps"] = volumes_seen * args.steps
        detector.config["continued_seed"] = args.seed
        detector.config["continued_native_fraction"] = args.native_fraction
    out.parent.mkdir(parents=True, exist_ok=True)
    detector.save(out)


if __name__ == "__main__":
    raise SystemExit(main())
