"""The mesoscale fit at zebrafish scale (ZAPBench: 71,721 neurons x 7,879 frames), on CPU.

Writes ``benchmarks/results/zebrafish_scale_cpu.json``.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/zebrafish_scale.py --threads 2     # full size
    python benchmarks/zebrafish_scale.py --frames 300 --fast-init    # training + packaging

Activity comes from :func:`napari_mesoscale.synth.zebrafish.zebrafish_scale_activity` (activity
only, generated block by block, never a movie) with its local connectome as the drive.
:func:`staged_fit` runs the stages of ``fit_mesoscale`` one by one (prepare, initialise, train,
package) with the DEFAULT ModelConfig (``--fast-init``: random assignment, drive from the
connectome kernels), timing each and recording the process's peak resident memory (VmHWM)
after every stage against the 12 GiB target; training stops after ``--max-steps`` steps (the
epoch cost is extrapolated: steps per epoch x seconds per step) and packaging scores the
validation and test blocks on their first ``--package-frames`` frames (the same passes and
arrays, so the same peak memory, in a fraction of the CPU time).
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


def _stage(times: dict, name: str, t0: float) -> float:
    now = time.perf_counter()
    times[name] = now - t0
    times[name.replace("_s", "_cpu_s")] = time.process_time()  # cumulative CPU of the process
    return now


def staged_fit(
    activity: Any,
    positions: Any,
    connectome: Any,
    *,
    device: str,
    epochs: int,
    max_steps: int | None,
    time_cap_s: float | None = None,
    deadline: float | None = None,
    package: bool = True,
    warmup_steps: int = 2,
    package_frames: int | None = None,
    on_stage: Any = None,
    **options: Any,
) -> dict:
    """``fit_mesoscale``'s stages one by one, timed; training stops after ``max_steps`` steps,
    ``time_cap_s`` seconds of training or at ``deadline`` (a ``time.perf_counter()`` value).

    The stages are those of :func:`napari_mesoscale.model.fit_mesoscale` (prepare, initialise,
    train, package). ``package=False`` leaves out the packaging (held-out errors of every
    pair, on the CPU: minutes at 10^5 neurons), for figures of training alone.

    ``package_frames`` scores the validation and test blocks on their first frames only (the
    same passes and arrays, so the same peak memory, in a fraction of the CPU time).
    ``on_stage(name, figures)`` is called as each stage ends, with the figures so far and the
    process's peak resident memory (``peak_rss_gib``) at that point.

    Returns wall times per stage (``prepare_s``, ``initialise_s``, ``to_first_step_s`` from the
    start of training, ``training_s``, ``package_s``), ``step_s`` (median seconds per step
    after ``warmup_steps``), steps per epoch and the epoch cost they imply.
    """
    import dataclasses

    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.fit import FitCancelled, _package, _train, resolve_device
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.model.result import package_versions
    from napari_mesoscale.model.training import RunOptions
    from napari_mesoscale.progress import Progress

    stamps: list[float] = []
    info_last: dict = {}

    def callback(info: dict) -> bool:
        if info.get("stage") == "train":
            stamps.append(time.perf_counter())
            info_last.update(steps=info.get("steps"), epoch=info.get("epoch"))
            if max_steps is not None and len(stamps) >= max_steps:
                return False
            over = time_cap_s is not None and stamps[-1] - train_start > time_cap_s
            late = deadline is not None and stamps[-1] > deadline
            if len(stamps) >= 3 and (over or late):
                return False
        return True

    times: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def ended(name: str) -> None:
        peaks[name] = (peak_rss_bytes() or 0) / GIB
        if on_stage is not None:
            on_stage(name, {**times, "peak_rss_gib_by_stage": peaks})

    t0 = time.perf_counter()
    cfg = ModelConfig().merged(epochs=epochs, **options)
    cfg.check(has_connectome=connectome is not None)
    data = prepare_data(activity, positions, None, cfg)
    t = _stage(times, "prepare_s", t0)
    ended("prepare")
    init_marks: list[tuple[str, float]] = []

    def init_mark(info: dict) -> None:
        init_marks.append((info.get("message", ""), time.perf_counter()))
        ended("initialise: " + init_marks[-1][0])

    init = initialise_model(data, cfg, connectome, 0, Progress(init_mark), device)
    train_start = _stage(times, "initialise_s", t)
    befores = [t] + [stamp for _, stamp in init_marks]
    init_stages = {m: stamp - b for (m, stamp), b in zip(init_marks, befores, strict=False)}
    run = RunOptions(resolve_device(device), 0, None, False)
    training = _train(init, data, run, Progress.wrap(callback, FitCancelled))
    t = _stage(times, "train_total_s", train_start)
    ended("train")
    out = _step_figures(stamps, warmup_steps, int(info_last.get("steps") or 0), train_start)
    out["initialise_stages_s"] = init_stages
    out.update(times, n_frames=int(activity.shape[0]), n_neurons=int(activity.shape[1]))
    out.update(stopped=training.stopped, batch_frames=int(init.config.batch_frames))
    out["n_edges"] = int(init.edges.shape[1])
    out["n_fields"] = int(init.grid.n_fields)
    out["candidates_per_neuron"] = int(init.grid.candidates.shape[1])
    out["epoch_s_measured"] = [float(h["seconds"]) for h in training.history if "seconds" in h]
    out["peak_rss_gib_by_stage"] = peaks
    if package:
        scored = data
        if package_frames is not None:
            short = {
                k: (a, min(b, a + package_frames)) if k != "train" else (a, b)
                for k, (a, b) in data.blocks.items()
            }
            scored = dataclasses.replace(data, blocks=short)
            out["package_frames"] = package_frames
        fit = _package(init, scored, training, run, package_versions())
        _stage(times, "package_s", t)
        ended("package")
        out.update(package_s=times["package_s"], test_mse=float(fit.scores["test_mse"]))
        out["val_mse"] = float(fit.scores["val_mse"])
        out["n_domains"] = int(len(fit.domains))
    out["total_s"] = time.perf_counter() - t0
    return out


def _step_figures(stamps: list[float], warmup: int, steps_per_epoch: int, start: float) -> dict:
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    gaps = sorted(gaps[warmup - 1 :] or gaps) or [math.nan]  # warm-up left out if possible
    step_s = gaps[len(gaps) // 2]
    return {
        "steps_run": len(stamps),
        "steps_per_epoch": steps_per_epoch,
        "to_first_step_s": (stamps[0] - start) if stamps else math.nan,
        "step_s": step_s,
        "epoch_s_extrapolated": step_s * steps_per_epoch,
        "training_s": (stamps[-1] - stamps[0]) if stamps else math.nan,
    }


#: Backwards-compatible name.
timed_fit = staged_fit


#: Initialisation that makes a fit's cost training alone (gpu_check's throughput sections).
FAST_INIT = {
    "init": "random",
    "group_init": False,
    "smooth_features": False,
    "edge_init": "connectome",
}


def default_initialisation(
    activity: Any, positions: Any, connectome: Any, on_stage: Any = None
) -> dict:
    """prepare + initialise with the default settings (dynamics init), timed by stage.

    ``on_stage(name, seconds)`` is called as each stage ends (to save partial figures).
    """
    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.progress import Progress

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    cfg = ModelConfig()
    data = prepare_data(activity, positions, None, cfg)
    t1 = time.perf_counter()
    if on_stage is not None:
        on_stage("prepare", t1 - t0)

    def mark(info: dict) -> None:
        marks.append((info.get("message", ""), time.perf_counter()))
        if on_stage is not None:
            on_stage(marks[-1][0], marks[-1][1] - (marks[-2][1] if len(marks) > 1 else t1))

    initialise_model(data, cfg, connectome, 0, Progress(mark))
    befores = [t1] + [m for _, m in marks]
    return {
        "n_frames": int(activity.shape[0]),
        "train_frames": int(data.blocks["train"][1]),
        "prepare_s": t1 - t0,
        "initialise_s": time.perf_counter() - t1,
        "stages_s": {m: stamp - b for (m, stamp), b in zip(marks, befores, strict=False)},
    }


def memory_estimate_gib(n_neurons: int, n_frames: int) -> dict:
    """The (T, N) arrays a CPU fit holds at its peak, in GiB (an estimate, not a measurement).

    The caller's float32 activity, the finite mask (bool), the normalised float32 ``z`` (the
    training tensors share it on the CPU), training's float32 loss mask, and with the dynamics
    initialisation the per-neuron z-scored training block (float32, 70 % of the frames).
    """
    cells = n_neurons * n_frames / GIB
    held = {"activity": 4 * cells, "finite": 1 * cells, "z": 4 * cells, "train_mask": 4 * cells}
    return {
        **held,
        "fast_init_total": sum(held.values()),
        "dynamics_init_extra": 4 * 0.7 * cells,
        "note": "plus transients of at most one more (T_train, N) float32 array",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=71_721)
    parser.add_argument("--frames", type=int, default=7_879)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--package-frames", type=int, default=8, help="0: whole blocks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fast-init", action="store_true", help="random assignment (training's memory alone)"
    )
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    import torch

    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    torch.set_num_threads(args.threads)
    out: dict = {
        "what": (
            "fit_mesoscale's stages at zebrafish scale on CPU with the DEFAULT ModelConfig "
            "(dynamics initialisation on the first init_frames frames, ridge drive start, "
            "communities): generation, preparation, initialisation, --max-steps training steps "
            "(micro-batched automatically) and packaging (validation and test blocks cut to "
            "their first --package-frames frames: the same passes and arrays, so the same peak "
            "memory, in a fraction of the CPU time); the process's peak resident memory (VmHWM) "
            "after every stage against the 12 GiB target; the epoch cost extrapolated from the "
            "measured steps"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "loadavg_before": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "target_peak_rss_gib": 12.0,
        "memory_estimate_full_size_gib": memory_estimate_gib(71_721, 7_879),
        "cpu_s_note": "*_cpu_s: the process's cumulative CPU seconds at the end of that stage",
    }
    t0 = time.perf_counter()
    data = zebrafish_scale_activity(args.neurons, args.frames, seed=0)
    out.update(generation_s=time.perf_counter() - t0, generation_cpu_s=time.process_time())
    out["activity_gib"] = data.activity.nbytes / GIB
    out["rss_after_generation_gib"] = (peak_rss_bytes() or 0) / GIB
    write_json(args.output, out)

    def on_stage(name: str, figures: dict) -> None:
        out.update(last_stage=name, stages_so_far=figures, loadavg=os.getloadavg())
        out["cpu_s_so_far"] = time.process_time()
        write_json(args.output, out)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {figures}", flush=True)

    fit = staged_fit(
        data.activity,
        data.positions,
        data.connectome,
        device="cpu",
        epochs=args.epochs,
        max_steps=args.max_steps,
        package=True,
        package_frames=args.package_frames or None,
        on_stage=on_stage,
        precision="fp32",
        **(FAST_INIT if args.fast_init else {}),
    )
    out["initialisation"] = FAST_INIT if args.fast_init else "ModelConfig() default"
    fit["epoch_s_extrapolated_note"] = "median seconds per step x steps per epoch (extrapolated)"
    out["fit"] = fit
    peak = peak_rss_bytes()
    out["peak_rss_gib"] = None if peak is None else peak / GIB
    out["below_target"] = None if peak is None else peak / GIB < 12.0
    out["machine"]["loadavg_after"] = os.getloadavg()
    out["cpu_s_total"] = time.process_time()
    write_json(args.output, out)
    print(f"wrote {args.output}: peak RSS {out['peak_rss_gib']:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
