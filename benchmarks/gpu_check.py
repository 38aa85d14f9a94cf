"""One prepared device check: precision, throughput, zebrafish scale, U-Net, worker, OOM.

Writes one JSON (``--output``, default ``benchmarks/results/gpu_check.json``), rewritten after
every section so that a run killed half-way still leaves its figures.

Usage::

    PYTHONPATH=src PYTHONUNBUFFERED=1 timeout 560 python3 benchmarks/gpu_check.py \
        --budget-s 480 --output $OUT/gpu_check.json
    PYTHONPATH=src python3 benchmarks/gpu_check.py --tiny      # every section, CPU, tiny
    PYTHONPATH=src python3 benchmarks/gpu_check.py --tiny --jobs 2  # two sections at once
    bash benchmarks/gpu_check.sh --budget-s 470 --only zebrafish_fit throughput_1m  # #19

Every section runs in its own subprocess under a hard wall-clock cap (its share of
``--budget-s``, never more than the budget left): a section that overruns is killed and
recorded as ``killed_at_cap`` with whatever figures it had saved, and the next one runs. An
exception is recorded in its section. Sections, most valuable first:

device        python, torch, CUDA, GPU name and memory, CPU load (in the parent).
precision     default toy brain (300 neurons, 500 frames, connectome): fp32 against bf16
              autocast, seconds per epoch and held-out one-step MSE (whole fits).
zebrafish_fit ZAPBench's shape (71,721 x 7,879), ``fit_mesoscale`` end to end with the DEFAULT
              ModelConfig (dynamics initialisation, ridge drive start, communities) on the
              device, ``epochs=ZEBRAFISH_FIT_EPOCHS`` (training stopped earlier at the
              section's deadline, leaving time to package): seconds of every stage (prepare,
              each initialisation step, every epoch, packaging) and the whole fit.
throughput    training steps at N = 1k, 10k, 100k (zebrafish-like synthetic activity, local
              connectome drive): neuron-steps per second, peak GPU memory. Cheap
              initialisation (random assignment, connectome drive start, no ridge) and no
              packaging: the figures are training alone.
throughput_1m the same at N = 1,000,000 in its own section: 64 frames (generation and
              preparation are linear in frames), 8 windows per step (32 need ~190 GiB).
zebrafish     ZAPBench's shape (71,721 x 7,879): preparation timed, training (cheap
              initialisation) capped at 30 s, an epoch and a 20-epoch fit extrapolated; then
              the default initialisation timed on the first 800 frames and extrapolated. No
              packaging (held-out errors of every pair run on the CPU: minutes at this N).
epoch_100k    one epoch over 100,000 neurons x 10,000 frames (target < 60 s on H100-class).
oom           training asked for far too much GPU memory: the package's MemoryError message.
worker        the fit widget's core call in the main thread, a threading.Thread and a spawned
              subprocess: training steps per second.
unet          soma U-Net training steps per second on the toy brain's EM volume.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_json  # noqa: E402
from zebrafish_scale import default_initialisation, peak_rss_bytes, staged_fit  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
GIB = 2**30

#: Sizes of every section: full run and ``--tiny`` (CPU, CI).
FULL = {
    "toy_epochs": 8,
    "throughput_neurons": (1_000, 10_000, 100_000),
    "throughput_frames": 256,
    "batch_frames": 32,
    "throughput_1m": {"neurons": 1_000_000, "frames": 64, "batch_frames": 8},
    "zebrafish_fit_epochs": 5,
    "zebrafish_fit_package_reserve_s": 60.0,
    "zebrafish_neurons": 71_721,
    "zebrafish_frames": 7_879,
    "zebrafish_epochs": 20,
    "zebrafish_train_s": 30.0,
    "zebrafish_init_frames": 800,
    "zebrafish_init_reserve_s": 50.0,
    "epoch_neurons": 100_000,
    "epoch_frames": 10_000,
    "oom_neurons": 50_000,
    "oom_frames": 400,
    "worker_neurons": 20_000,
    "worker_frames": 600,
    "worker_steps": 20,
    "unet": {"epochs": 3, "steps_per_epoch": 20},
}
TINY = {
    "toy_epochs": 1,
    "throughput_neurons": (100, 200, 400),
    "throughput_frames": 64,
    "batch_frames": 16,
    "throughput_1m": {"neurons": 400, "frames": 48, "batch_frames": 8},
    "zebrafish_fit_epochs": 1,
    "zebrafish_fit_package_reserve_s": 10.0,
    "zebrafish_neurons": 400,
    "zebrafish_frames": 120,
    "zebrafish_epochs": 20,
    "zebrafish_train_s": 5.0,
    "zebrafish_init_frames": 120,
    "zebrafish_init_reserve_s": 5.0,
    "epoch_neurons": 300,
    "epoch_frames": 100,
    "oom_neurons": 300,
    "oom_frames": 100,
    "worker_neurons": 200,
    "worker_frames": 80,
    "worker_steps": 4,
    "unet": {
        "epochs": 1,
        "steps_per_epoch": 2,
        "batch_size": 1,
        "patch_size": 16,
        "base_channels": 4,
        "depth": 1,
    },
}
#: Hard wall-clock cap of each section (seconds), in the order they run, most valuable
#: first. The caps of the sections that run are scaled together to fill 435/480 of
#: ``--budget-s`` (the rest is left for starting the subprocesses and writing the JSON): the
#: check of issue #19's missing figures, ``--only zebrafish_fit throughput_1m --budget-s 470``,
#: gives them 327 and 99 s.
CAPS = {
    "precision": 40,
    "zebrafish_fit": 330,
    "throughput_1m": 100,
    "throughput": 62,
    "zebrafish": 120,
    "epoch_100k": 90,
    "oom": 20,
    "worker": 45,
    "unet": 25,
}
#: Initialisation that makes a fit's cost training alone: random assignment, drive weights from
#: the connectome kernels (no per-neuron ridge), and the assignment trained from the first step.
FAST_INIT = {
    "init": "random",
    "group_init": False,
    "smooth_features": False,
    "edge_init": "connectome",
    "freeze_assignment_epochs": 0,
}


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- the parent
def device_info() -> dict:
    import numpy as np
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": os.getloadavg(),
        "hostname": platform.node(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            cuda=torch.version.cuda,
            gpu=props.name,
            gpu_memory_gib=props.total_memory / GIB,
            bf16_supported=torch.cuda.is_bf16_supported(),
            capability=list(torch.cuda.get_device_capability(0)),
        )
    return info


def _run_child(name: str, args: argparse.Namespace, cap: float, device: str) -> dict:
    """Run one section in a subprocess killed (with its children) at ``cap`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name]
        cmd += ["--cap-s", f"{cap:.1f}", "--device", device, "--output", str(part)]
        cmd += ["--tiny", "--jobs", str(args.jobs)] if args.tiny else []
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            rc = proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        figures = json.loads(part.read_text()) if part.exists() else {}
    if rc is None:
        figures["status"] = "killed_at_cap"
    elif rc != 0 and figures.get("status") in (None, "running"):
        figures["status"] = f"error: exit code {rc}"
    return figures


def orchestrate(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    chosen = [name for name in CAPS if not args.only or name in args.only]
    scale = args.budget_s * (435.0 / 480.0) / sum(CAPS[name] for name in chosen)
    if args.tiny:  # a budget of at least 1800 s; each section's cap as generous as before
        scale = max(scale, args.budget_s / 480.0)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    results: dict[str, Any] = {
        "what": "napari-mesoscale device check (benchmarks/gpu_check.py)",
        "tiny": bool(args.tiny),
        "device": device,
        "budget_s": args.budget_s,
        "caps_s": {k: CAPS[k] * scale for k in chosen},
        "sizes": TINY if args.tiny else FULL,
        "fast_init": FAST_INIT,
        "sections": {"device": device_info()},
        "section_wall_s": {},
    }
    info = results["sections"]["device"]
    results.update(gpu=info.get("gpu"), torch=info["torch"], python=info["python"])

    def save() -> None:
        results["elapsed_s"] = time.perf_counter() - start
        results["loadavg"] = os.getloadavg()
        write_json(args.output, results)

    log(f"device: {info}")
    save()
    lock = threading.Lock()
    done: dict[str, dict] = {}

    def run(name: str) -> None:
        left = args.budget_s - (time.perf_counter() - start)
        cap = min(CAPS[name] * scale, left - 2.0)
        if cap < 5.0:
            figures: dict = {"status": "skipped", "skipped": f"{left:.0f} s left"}
            log(f"{name}: skipped ({left:.0f} s of the budget left)")
        else:
            log(f"{name}: start (cap {cap:.0f} s, {left:.0f} s left)")
            t0 = time.perf_counter()
            figures = _run_child(name, args, cap, device)
            figures["section_s"] = time.perf_counter() - t0
            figures["cap_s"] = cap
            log(f"{name}: {figures.get('status')} in {figures['section_s']:.1f} s: "
                f"{_short(figures)}")
        with lock:
            done[name] = figures
            _in_order(results, done, chosen)
            save()

    # one worker (the GPU run) takes the sections one after the other, in the order chosen
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, chosen))
    results["finished"] = True
    save()
    log(f"done in {time.perf_counter() - start:.0f} s -> {args.output}")
    return results


def _in_order(results: dict, done: dict[str, dict], chosen: list[str]) -> None:
    """Put the finished sections into ``results`` in the order they were chosen."""
    sections = {"device": results["sections"]["device"]}
    sections.update({name: done[name] for name in chosen if name in done})
    results["sections"] = sections
    results["section_wall_s"] = {
        name: done[name]["section_s"] for name in chosen if "section_s" in done.get(name, {})
    }


def _short(figures: dict) -> str:
    keep = {k: v for k, v in figures.items() if k not in ("traceback", "section_s")}
    text = json.dumps(keep, default=str)
    return text if len(text) < 700 else text[:700] + "…"


# ----------------------------------------------------------------------------- the child
class Section:
    """What a section's body gets: sizes, device, its deadline and a way to save figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tiny = bool(args.tiny)
        self.sizes = TINY if args.tiny else FULL
        self.device = args.device
        self.cuda = self.device.startswith("cuda")
        self.start = time.perf_counter()
        self.cap = float(args.cap_s)
        self.figures: dict[str, Any] = {"status": "running"}

    def left(self) -> float:
        return self.cap - (time.perf_counter() - self.start)

    def deadline(self, reserve_s: float) -> float:
        """When training must stop to leave ``reserve_s`` of the cap (a perf_counter value)."""
        return self.start + self.cap - reserve_s

    def save(self) -> None:
        self.figures["section_child_s"] = time.perf_counter() - self.start
        if self.cuda:
            import torch

            self.figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GIB
        self.figures["peak_rss_gib"] = (peak_rss_bytes() or 0) / GIB
        write_json(self.args.output, self.figures)

    def reset_peak(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def gpu_peak(self) -> float | None:
        if not self.cuda:
            return None
        import torch

        return torch.cuda.max_memory_allocated() / GIB


def run_section(args: argparse.Namespace) -> None:
    import torch

    if not torch.cuda.is_available():
        # sections run beside each other (--jobs) share the cores
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1) // args.jobs))
    sec = Section(args)
    sec.save()
    try:
        SECTIONS[args.section](sec)
        if sec.figures["status"] == "running":
            sec.figures["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - recorded; the parent runs the next section
        sec.figures["status"] = "error"
        sec.figures["error"] = f"{type(error).__name__}: {error}"
        sec.figures["traceback"] = traceback.format_exc()[-3000:]
    sec.save()


def _synthetic(n_neurons: int, n_frames: int) -> Any:
    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    return zebrafish_scale_activity(n_neurons, n_frames, seed=0)


def precision_section(sec: Section) -> None:
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    kwargs = {"n_neurons": 40, "n_frames": 120, "shape": (32, 64, 64)} if sec.tiny else {}
    brain = make_toy_brain(render=None, em=False, seed=0, **kwargs)
    out = sec.figures
    out.update(n_neurons=brain.activity.shape[1], n_frames=brain.activity.shape[0])
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        fit = fit_mesoscale(
            brain.activity,
            brain.positions,
            connectome=brain.adjacency,
            stimulus=brain.stimulus,
            epochs=sec.sizes["toy_epochs"],
            seed=0,
            device=sec.device,
            precision=precision,
        )
        seconds = sorted(float(s) for s in fit.history["seconds"])
        out[precision] = {
            "wall_s": time.perf_counter() - t0,
            "epoch_s_median": seconds[len(seconds) // 2],
            "epoch_s_first": float(fit.history["seconds"][0]),
            "test_mse": float(fit.scores["test_mse"]),
            "val_mse": float(fit.scores["val_mse"]),
        }
        sec.save()
    out["fp32_over_bf16_epoch_time"] = out["fp32"]["epoch_s_median"] / out["bf16"]["epoch_s_median"]
    out["bf16_over_fp32_test_mse"] = out["bf16"]["test_mse"] / out["fp32"]["test_mse"]


def _training_run(
    sec: Section, n: int, frames: int, time_cap_s: float, reserve_s: float = 5.0, **extra: Any
) -> dict:
    """One epoch (capped) of training alone on synthetic activity; figures of the run."""
    t0 = time.perf_counter()
    data = _synthetic(n, frames)
    gen_s = time.perf_counter() - t0
    sec.figures["last_stage"] = f"generated N={n} x T={frames} in {gen_s:.1f} s"
    sec.save()  # a section killed later still says how far it got
    sec.reset_peak()
    options = {**FAST_INIT, "batch_frames": sec.sizes["batch_frames"], **extra}
    res = staged_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=sec.device,
        epochs=1,
        max_steps=None,
        time_cap_s=time_cap_s,
        deadline=sec.deadline(reserve_s),
        package=False,
        **options,
    )
    res["generation_s"] = gen_s
    res["neuron_steps_per_s"] = n * res["batch_frames"] / res["step_s"]
    res["peak_gpu_memory_gib"] = sec.gpu_peak()
    return res


def throughput_section(sec: Section) -> None:
    runs: list[dict] = []
    sec.figures.update(runs=runs, note="neuron-steps = N x batch_frames windows per Adam step")
    for n in sec.sizes["throughput_neurons"]:
        # 10x the neurons: start only with a fair chance to finish (a kill keeps earlier runs)
        if runs and "step_s" in runs[-1] and sec.left() < 2 * runs[-1]["total_s"]:
            runs.append({"n_neurons": n, "skipped": f"{sec.left():.0f} s of the cap left"})
            continue
        res = _throughput_run(sec, n)
        runs.append(res)
        log(f"throughput N={n}: {res.get('neuron_steps_per_s', math.nan):.3g} neuron-steps/s")
        sec.save()


def _throughput_run(sec: Section, n: int) -> dict:
    """Training at ``n`` neurons; out of memory at 32 windows per step: again with 8."""
    batch = sec.sizes["batch_frames"]
    frames = sec.sizes["throughput_frames"]
    try:
        return _training_run(sec, n, frames, sec.left() * 0.3, batch_frames=batch)
    except MemoryError as error:
        first = {"n_neurons": n, "batch_frames": batch, "oom": str(error)[:300]}
    if sec.cuda:
        import torch

        torch.cuda.empty_cache()
    try:
        res = _training_run(sec, n, frames, sec.left() * 0.3, batch_frames=max(1, batch // 4))
    except MemoryError as error:
        return {**first, "oom_at_quarter_batch": str(error)[:300]}
    res["oom_at_full_batch"] = first["oom"]
    return res


def throughput_1m_section(sec: Section) -> None:
    """Training steps at a million neurons (fewer frames and windows than ``throughput``)."""
    s = sec.sizes["throughput_1m"]
    sec.figures.update(settings=s, note="neuron-steps = N x batch_frames windows per Adam step")
    res = _training_run(
        sec, s["neurons"], s["frames"], sec.left() * 0.5, batch_frames=s["batch_frames"]
    )
    sec.figures.update(res)


def zebrafish_fit_section(sec: Section) -> None:
    """``fit_mesoscale`` at ZAPBench's shape with the default configuration, stage by stage."""
    from napari_mesoscale.model import fit_mesoscale

    s, out = sec.sizes, sec.figures
    t0 = time.perf_counter()
    data = _synthetic(s["zebrafish_neurons"], s["zebrafish_frames"])
    out.update(generation_s=time.perf_counter() - t0, n_neurons=int(data.activity.shape[1]))
    out.update(n_frames=int(data.activity.shape[0]), epochs=s["zebrafish_fit_epochs"])
    out["config"] = "ModelConfig() defaults, epochs=zebrafish_fit_epochs"
    sec.save()
    sec.reset_peak()
    clock = FitClock(sec, deadline=sec.deadline(s["zebrafish_fit_package_reserve_s"]))
    fit = fit_mesoscale(
        data.activity,
        data.positions,
        connectome=data.connectome,
        epochs=s["zebrafish_fit_epochs"],
        device=sec.device,
        seed=0,
        callback=clock,
    )
    out.update(clock.figures(), stopped=fit.stopped)
    out.update(test_mse=float(fit.scores["test_mse"]), val_mse=float(fit.scores["val_mse"]))
    out["n_domains"] = int(fit.domains.shape[0])
    # a clock that stops training inside the first epoch leaves no epoch row
    out["epoch_s"] = [float(x) for x in fit.history.get("seconds", [])]
    out["peak_gpu_memory_gib"] = sec.gpu_peak()
    out["target_whole_fit_s"] = 600.0
    if out["epoch_s"] and "whole_fit_s" in out:
        median = sorted(out["epoch_s"])[len(out["epoch_s"]) // 2]
        fixed = out["to_training_s"] + out["package_s"]  # prepare + initialise + packaging
        out["whole_fit_s_extrapolated"] = {
            str(e): fixed + e * median for e in (10, 20, 60)  # 60: ModelConfig's default
        }
        out["extrapolation_note"] = "measured stages + epochs x median measured epoch seconds"


class FitClock:
    """A fit's progress callback that times its stages and stops training at ``deadline``.

    Stage boundaries are the first report of each stage (prepare, every initialisation step,
    training, packaging); every new stage saves the section's figures (a kill keeps them).
    """

    def __init__(self, sec: Section, deadline: float) -> None:
        self.sec, self.deadline = sec, deadline
        self.start = time.perf_counter()
        self.marks: list[tuple[str, float]] = []
        self.train_start: float | None = None
        self.train_end: float | None = None

    def __call__(self, info: dict) -> bool:
        now = time.perf_counter()
        stage = info.get("stage", "")
        if stage in ("train", "epoch"):
            if self.train_start is None:
                self.train_start = self.marks[-1][1] if self.marks else now
                self.sec.figures.update(self.figures())
                self.sec.save()
            self.train_end = now
            return now < self.deadline
        if self.train_end is not None and all(name != "training" for name, _ in self.marks):
            self.marks.append(("training", self.train_end))
        self._mark(info.get("message", stage), now)
        return True

    def _mark(self, name: str, now: float) -> None:
        self.marks.append((name, now))
        self.sec.figures.update(self.figures())
        self.sec.save()

    def figures(self) -> dict:
        now = time.perf_counter()
        stages, before = {}, self.start
        for name, stamp in self.marks:
            stages[name] = stamp - before
            before = stamp
        out: dict[str, Any] = {"stages_s": stages, "fit_s_so_far": now - self.start}
        if self.train_start is not None and self.train_end is not None:
            out["train_s"] = self.train_end - self.train_start
            out["to_training_s"] = self.train_start - self.start
            done = [stamp for name, stamp in self.marks if stamp >= self.train_end]
            if done:  # the packaging's report comes after the last training report
                out["package_s"] = done[-1] - self.train_end
                out["whole_fit_s"] = done[-1] - self.start
        return out


def zebrafish_section(sec: Section) -> None:
    """Training at ZAPBench's shape (cheap initialisation), then the default initialisation
    timed on its own (the part a time cap cannot interrupt comes last)."""
    s, out = sec.sizes, sec.figures
    t0 = time.perf_counter()
    data = _synthetic(s["zebrafish_neurons"], s["zebrafish_frames"])
    out["generation_s"] = time.perf_counter() - t0
    sec.reset_peak()
    options = {**FAST_INIT, "batch_frames": s["batch_frames"]}
    res = staged_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=sec.device,
        epochs=s["zebrafish_epochs"],
        max_steps=None,
        time_cap_s=s["zebrafish_train_s"],
        deadline=sec.deadline(s["zebrafish_init_reserve_s"]),
        package=False,
        **options,
    )
    res["peak_gpu_memory_gib"] = sec.gpu_peak()
    epochs = s["zebrafish_epochs"]
    res["fit_s_extrapolated_without_init_and_packaging"] = (
        res["prepare_s"] + res["epoch_s_extrapolated"] * epochs
    )
    out.update(training=res, epochs_for_extrapolation=epochs, target_whole_fit_s=600.0)
    out["note"] = (
        "training with the cheap initialisation (FAST_INIT); the default initialisation "
        "timed on the first frames of the same data (CPU work, same on any device); "
        "packaging (held-out errors, on the CPU) not run here"
    )
    sec.save()
    if sec.left() < 0.8 * s["zebrafish_init_reserve_s"]:
        sec.figures["default_init"] = {"skipped": f"{sec.left():.0f} s of the cap left"}
        return
    _default_initialisation(sec, data)


def _default_initialisation(sec: Section, data: Any) -> None:
    """The default (dynamics) initialisation timed on the first frames, then extrapolated."""
    frames = min(sec.sizes["zebrafish_init_frames"], data.activity.shape[0])
    done: dict[str, float] = {}
    sec.figures["default_init"] = {"n_frames": frames, "stages_done_s": done}

    def on_stage(name: str, seconds: float) -> None:
        done[name] = seconds
        sec.save()  # a kill at the cap still says which stage was running

    init = default_initialisation(data.activity[:frames], data.positions, data.connectome, on_stage)
    full_train = int(0.7 * data.activity.shape[0])
    init["initialise_s_extrapolated"] = init["initialise_s"] * full_train / init["train_frames"]
    init["note"] = "extrapolated linearly in frames: an upper bound (k-means, grouping are not)"
    sec.figures["default_init"] = init
    training = sec.figures["training"]
    sec.figures["whole_fit_s_extrapolated_without_packaging"] = (
        training["prepare_s"]
        + init["initialise_s_extrapolated"]
        + training["epoch_s_extrapolated"] * sec.figures["epochs_for_extrapolation"]
    )


def epoch_section(sec: Section) -> None:
    s = sec.sizes
    res = _training_run(sec, s["epoch_neurons"], s["epoch_frames"], sec.cap, reserve_s=8.0)
    res["epoch_complete"] = res["stopped"] != "cancelled"
    res["epoch_s"] = (
        res["epoch_s_measured"][0] if res["epoch_complete"] else res["epoch_s_extrapolated"]
    )
    res["target_epoch_s"] = 60.0
    sec.figures.update(res)


def oom_section(sec: Section) -> None:
    out = sec.figures
    if not sec.cuda:  # a real allocation failure on the CPU would swap or kill the machine
        out["status"] = "skipped_on_cpu"
        return
    import torch

    free, _ = torch.cuda.mem_get_info()
    out["free_gib"] = free / GIB
    data = _synthetic(sec.sizes["oom_neurons"], sec.sizes["oom_frames"])
    try:  # hidden units scale every activation: several times the whole device at step one
        _training_run_on(sec, data, hidden=1024, batch_frames=256)
        out["status"] = "no_oom"
    except MemoryError as error:
        message = str(error)
        out.update(message=message, clear_message="reduce batch_frames" in message)
        out["cause"] = type(error.__cause__).__name__ if error.__cause__ else None
        out["status"] = "ok" if out["clear_message"] else "unclear_message"
    except torch.OutOfMemoryError as error:
        out.update(status="raw_torch_oom", message=str(error)[:500])
    torch.cuda.empty_cache()
    out["memory_after_gib"] = torch.cuda.memory_allocated() / GIB


def _training_run_on(sec: Section, data: Any, **extra: Any) -> dict:
    return staged_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=sec.device,
        epochs=1,
        max_steps=2,
        package=False,
        **{**FAST_INIT, **extra},
    )


def _worker_fit(n_neurons: int, n_frames: int, steps: int, device: str, queue: Any = None):
    """The fit widget's core call (stages of fit_mesoscale, progress callback): steps/s."""
    sys.path.insert(0, str(Path(__file__).parent))
    data = _synthetic(n_neurons, n_frames)
    res = staged_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=device,
        epochs=100,
        max_steps=steps,
        package=False,
        **FAST_INIT,
    )
    res["steps_per_s"] = 1.0 / res["step_s"]
    if queue is not None:
        queue.put(res)
    return res


def worker_section(sec: Section) -> None:
    s, out = sec.sizes, sec.figures
    argv = (s["worker_neurons"], s["worker_frames"], s["worker_steps"], sec.device)
    out.update(n_neurons=argv[0], n_frames=argv[1])
    out["main_thread"] = _worker_fit(*argv)
    sec.save()
    box: list[dict] = []
    thread = threading.Thread(target=lambda: box.append(_worker_fit(*argv)), daemon=True)
    thread.start()
    thread.join(timeout=max(1.0, sec.left() / 2))
    out["thread"] = box[0] if box else {"error": "no result within the cap"}
    sec.save()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=_worker_fit, args=(*argv, queue))
    t0 = time.perf_counter()
    proc.start()
    try:
        out["subprocess"] = queue.get(timeout=max(1.0, sec.left() - 2))
    except Exception as error:  # noqa: BLE001
        out["subprocess"] = {"error": f"{type(error).__name__}: {error}"}
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
    out["subprocess"]["wall_with_start_s"] = time.perf_counter() - t0
    base = out["main_thread"]["steps_per_s"]
    for key in ("thread", "subprocess"):
        if "steps_per_s" in out[key]:
            out[f"{key}_over_main"] = out[key]["steps_per_s"] / base


def unet_section(sec: Section) -> None:
    import numpy as np

    from napari_mesoscale.segment.unet import train_soma_detector
    from napari_mesoscale.synth import make_toy_brain

    kwargs = {"n_neurons": 20, "n_frames": 30, "shape": (32, 64, 64)} if sec.tiny else {}
    brain = make_toy_brain(render=None, em=True, seed=0, **kwargs)
    annotations = np.where(np.asarray(brain.em_labels) > 0, 2, 1).astype(np.int64)
    unet = sec.sizes["unet"]
    stamps: list[float] = []

    def callback(info: dict) -> bool:
        stamps.append(time.perf_counter())
        return True

    t0 = time.perf_counter()
    det = train_soma_detector(
        brain.em,
        annotations,
        voxel_size=brain.em_voxel_size,
        device=sec.device,
        seed=0,
        callback=callback,
        **unet,
    )
    wall = time.perf_counter() - t0
    steps = unet["epochs"] * unet["steps_per_epoch"]
    gaps = sorted(b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True))
    sec.figures.update(
        em_shape=list(np.shape(brain.em)),
        settings=unet,
        steps=steps,
        wall_s=wall,
        median_callback_gap_s=gaps[len(gaps) // 2] if gaps else math.nan,
        steps_per_s=steps / wall,
        final_loss=float(det.history[-1]["loss"]) if det.history else math.nan,
    )


SECTIONS: dict[str, Callable[[Section], None]] = {
    "precision": precision_section,
    "zebrafish_fit": zebrafish_fit_section,
    "throughput_1m": throughput_1m_section,
    "throughput": throughput_section,
    "zebrafish": zebrafish_section,
    "epoch_100k": epoch_section,
    "oom": oom_section,
    "worker": worker_section,
    "unet": unet_section,
}


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--tiny", action="store_true", help="every section, tiny, CPU (CI)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="sections run at once (only with --tiny: on a GPU they would share the device)",
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only these sections (spaces or commas)"
    )
    parser.add_argument("--section", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--cap-s", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        args.only = [name for item in args.only for name in item.split(",") if name]
        unknown = sorted(set(args.only) - set(CAPS))
        if unknown:
            parser.error(f"unknown section(s) {unknown}; choose from {list(CAPS)}")
    if args.section:
        run_section(args)
        return None
    if args.jobs > 1 and not args.tiny:
        parser.error("--jobs above 1 is for --tiny (CPU) checks: on a GPU the sections "
                     "would share the device and their figures would mean nothing")
    if args.tiny:  # CI: every section must run, whatever the machine's load
        args.budget_s = max(args.budget_s, 1800.0)
    return orchestrate(args)


if __name__ == "__main__":
    main()
