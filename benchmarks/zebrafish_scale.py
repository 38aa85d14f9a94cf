"""The mesoscale fit at zebrafish scale (ZAPBench: 71,721 neurons x 7,879 frames), on CPU.

Writes ``benchmarks/results/zebrafish_scale_cpu.json``.

Usage::

    python benchmarks/zebrafish_scale.py                       # full size, capped steps
    python benchmarks/zebrafish_scale.py --frames 800 --max-steps 4

Activity comes from :func:`napari_mesoscale.synth.zebrafish.zebrafish_scale_activity` (activity
only, generated block by block, never a movie) with its local connectome as the drive. The fit
runs through the public ``fit_mesoscale``; a callback times every training step and stops the
fit after ``--max-steps`` steps (the fit then finishes as "cancelled": the result, test scores
included, is still assembled, so the whole path is measured). Reported: generation time, time
to the first training step (validation, grid, initialisation), seconds per step and the cost of
one epoch extrapolated from them (steps per epoch x seconds per step), the time to assemble
the result, and the peak resident memory of the process (VmHWM), against the 12 GiB target.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "zebrafish_scale_cpu.json"
GIB = 2**30


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process (VmHWM), or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def timed_fit(
    activity: Any,
    positions: Any,
    connectome: Any,
    *,
    device: str,
    epochs: int,
    max_steps: int | None,
    time_cap_s: float | None = None,
    warmup_steps: int = 2,
    **options: Any,
) -> dict:
    """Run ``fit_mesoscale`` with a timing callback; stop after ``max_steps`` or ``time_cap_s``.

    Returns wall times: ``to_first_step_s`` (everything before training: checks, grid,
    initialisation, and the first step), ``step_s`` (median seconds per training step after
    ``warmup_steps``), ``after_training_s`` (result assembly), plus the fit's test MSE.
    """
    from napari_mesoscale.model import fit_mesoscale

    stamps: list[float] = []
    info_last: dict = {}
    start = time.perf_counter()

    def callback(info: dict) -> bool:
        if info.get("stage") == "train":
            stamps.append(time.perf_counter())
            info_last.update(steps=info.get("steps"), epoch=info.get("epoch"))
            if max_steps is not None and len(stamps) >= max_steps:
                return False
            if time_cap_s is not None and len(stamps) >= 3 and stamps[-1] - start > time_cap_s:
                return False
        return True

    fit = fit_mesoscale(
        activity,
        positions,
        connectome=connectome,
        epochs=epochs,
        device=device,
        seed=0,
        callback=callback,
        **options,
    )
    end = time.perf_counter()
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    gaps = sorted(gaps[warmup_steps - 1 :] or gaps) or [math.nan]  # warm-up left out if possible
    step_s = gaps[len(gaps) // 2]
    steps_per_epoch = int(info_last.get("steps") or 0)
    history = fit.history if hasattr(fit, "history") else None
    epoch_seconds = None
    if history is not None and len(history) and "seconds" in history:
        epoch_seconds = [float(s) for s in list(history["seconds"])]
    return {
        "n_frames": int(activity.shape[0]),
        "n_neurons": int(activity.shape[1]),
        "steps_run": len(stamps),
        "steps_per_epoch": steps_per_epoch,
        "to_first_step_s": (stamps[0] - start) if stamps else math.nan,
        "step_s": step_s,
        "epoch_s_extrapolated": step_s * steps_per_epoch,
        "epoch_s_measured": epoch_seconds,
        "training_s": (stamps[-1] - stamps[0]) if stamps else math.nan,
        "after_training_s": end - (stamps[-1] if stamps else start),
        "total_s": end - start,
        "stopped": fit.stopped,
        "test_mse": float(fit.scores.get("test_mse", math.nan)),
        "val_mse": float(fit.scores.get("val_mse", math.nan)),
        "batch_frames": int(fit.config.batch_frames),
        "n_domains": int(len(fit.domains)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=71_721)
    parser.add_argument("--frames", type=int, default=7_879)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    import torch

    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    torch.set_num_threads(args.threads)
    out: dict = {
        "what": "fit_mesoscale at zebrafish scale on CPU, steps capped, epoch extrapolated",
        "machine": {
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "loadavg_before": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "target_peak_rss_gib": 12.0,
    }
    t0 = time.perf_counter()
    data = zebrafish_scale_activity(args.neurons, args.frames, seed=0)
    out["generation_s"] = time.perf_counter() - t0
    out["activity_gib"] = data.activity.nbytes / GIB
    out["rss_after_generation_gib"] = (peak_rss_bytes() or 0) / GIB
    write_json(args.output, out)
    fit = timed_fit(
        data.activity,
        data.positions,
        data.connectome,
        device="cpu",
        epochs=args.epochs,
        max_steps=args.max_steps,
        precision="fp32",
    )
    out["fit"] = fit
    peak = peak_rss_bytes()
    out["peak_rss_gib"] = None if peak is None else peak / GIB
    out["below_target"] = None if peak is None else peak / GIB < 12.0
    out["machine"]["loadavg_after"] = os.getloadavg()
    if args.frames != 7_879 or args.neurons != 71_721:
        out["note"] = (
            "reduced size; per-epoch cost scales with frames x neurons (steps per epoch with "
            "frames, cost per step with neurons)"
        )
    write_json(args.output, out)
    print(f"wrote {args.output}: peak RSS {out['peak_rss_gib']:.2f} GiB, fit {fit}")


if __name__ == "__main__":
    main()
