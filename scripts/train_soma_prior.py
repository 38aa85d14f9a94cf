"""Train the pretrained soma detector shipped in ``napari_mesoscale/segment/weights``.

Trains the small 3D U-Net of :mod:`napari_mesoscale.segment.unet` on the DEV EM presets only
(:data:`napari_mesoscale.synth.em_presets.DEV_PRESETS`; the held-out presets are never
seen), each rendered with two seeds and in both polarities, fully labelled (soma / not soma),
at 1 µm working voxels. Rounds over the volumes continue the same network with a learning
rate that halves every third of the run.

Run: ``OMP_NUM_THREADS=1 python scripts/train_soma_prior.py [--rounds 3] [--steps 6]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_mesoscale.segment.unet import PRETRAINED_WEIGHTS, SomaDetector, train_soma_detector
from napari_mesoscale.synth.em_presets import DEV_PRESETS, render_em_preset


def training_volumes(seeds=(0, 1)):
    """(volume, voxel size, annotations) of every dev preset and seed, both polarities."""
    out = []
    for name in DEV_PRESETS:
        for seed in seeds:
            sample = render_em_preset(name, seed=100 + seed)
            annotations = np.where(sample.soma_labels > 0, 2, 1).astype(np.uint8)
            out.append((name, sample.volume, sample.voxel_size, annotations))
            out.append((name + "~inverted", 255 - sample.volume, sample.voxel_size, annotations))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="steps per volume and round")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--patch-size", type=int, default=24)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=PRETRAINED_WEIGHTS)
    parser.add_argument("--init", type=Path, default=None, help="continue from these weights")
    args = parser.parse_args(argv)
    volumes = training_volumes()
    rng = np.random.default_rng(0)
    detector = None if args.init is None else SomaDetector.load(args.init, device=args.device)
    start = time.perf_counter()
    for r in range(args.rounds):
        lr = args.learning_rate * 0.5 ** (3 * r // args.rounds)
        for k in rng.permutation(len(volumes)):
            name, volume, voxel_size, annotations = volumes[k]
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
                seed=1000 * r + int(k),
            )
        loss = detector.history[-1]["loss"]
        print(
            f"round {r + 1}/{args.rounds}: loss {loss:.4f}, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    detector.model.to("cpu")
    detector.device = "cpu"
    detector.history = detector.history[-len(volumes) :]
    detector.config = {**detector.config, "trained_on": sorted(DEV_PRESETS)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    detector.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
