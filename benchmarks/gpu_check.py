"""One prepared device check: precision, throughput, scale, U-Net, worker, out-of-memory.

Writes one JSON (``--output``, default ``benchmarks/results/gpu_check.json``), rewritten after
every section so that a run killed half-way still leaves its figures.

Usage::

    PYTHONPATH=src python3 benchmarks/gpu_check.py --output $OUT/gpu_check.json
    PYTHONPATH=src python3 benchmarks/gpu_check.py --tiny      # every section, CPU, < 60 s

Sections, most important first; each has a wall-clock cap, checks the time left in
``--budget-s`` before it starts and is skipped with a recorded reason rather than overrun; an
exception is recorded in its section and the next one runs:

device        torch, CUDA device, memory, CPU load.
precision     default toy brain (300 neurons, 500 frames, connectome, stimulus): fp32 against
              bf16 autocast, seconds per epoch and held-out one-step MSE.
throughput    neuron-steps per second of training at N = 10k, 100k, 1M (zebrafish-like
              synthetic activity, local connectome drive), peak GPU memory.
epoch_100k    one epoch over 100,000 neurons x 10,000 frames (target < 60 s on H100-class).
zebrafish     the whole fit at ZAPBench's shape (71,721 x 7,879), initialisation included;
              epochs capped by time, the whole fit extrapolated (target < 10 min).
unet          soma U-Net training steps per second on the toy brain's EM volume.
worker        the fit widget's code path (core call with a progress callback) in the main
              thread, a threading.Thread and a spawned subprocess: training steps per second.
oom           a fit asked for far too much memory: the package's MemoryError and its message.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_json  # noqa: E402
from zebrafish_scale import peak_rss_bytes, timed_fit  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
GIB = 2**30

#: Sizes of every section: full run and ``--tiny`` (CPU, CI).
FULL = {
    "toy_epochs": 8,
    "throughput_neurons": (10_000, 100_000, 1_000_000),
    "throughput_frames": 96,
    "throughput_steps": 12,
    "epoch_neurons": 100_000,
    "epoch_frames": 10_000,
    "zebrafish_neurons": 71_721,
    "zebrafish_frames": 7_879,
    "zebrafish_epochs": 20,
    "unet_epochs": 3,
    "unet_steps": 20,
    "worker_neurons": 20_000,
    "worker_frames": 600,
    "worker_steps": 30,
}
TINY = {
    "toy_epochs": 1,
    "throughput_neurons": (300, 1_000),
    "throughput_frames": 48,
    "throughput_steps": 4,
    "epoch_neurons": 500,
    "epoch_frames": 200,
    "zebrafish_neurons": 600,
    "zebrafish_frames": 150,
    "zebrafish_epochs": 2,
    "unet_epochs": 1,
    "unet_steps": 2,
    "worker_neurons": 300,
    "worker_frames": 120,
    "worker_steps": 4,
}
#: Share of the total budget each section may use at most (the rest is left to later ones).
CAPS = {
    "precision": 60,
    "throughput": 100,
    "epoch_100k": 90,
    "zebrafish": 150,
    "unet": 25,
    "worker": 45,
    "oom": 20,
}


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Run:
    """The JSON being written, the budget and the device."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.sizes = TINY if args.tiny else FULL
        self.scale = 1.0 if args.tiny else args.budget_s / 480.0
        self.start = time.perf_counter()
        if args.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
        else:
            self.device = args.device
        self.cuda = self.device.startswith("cuda")
        self.results: dict[str, Any] = {
            "tiny": bool(args.tiny),
            "device": self.device,
            "budget_s": args.budget_s,
            "sections": {},
        }

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.start)

    def cap(self, name: str) -> float:
        return CAPS[name] * self.scale

    def save(self) -> None:
        self.results["elapsed_s"] = time.perf_counter() - self.start
        self.results["loadavg"] = os.getloadavg()
        write_json(self.args.output, self.results)

    def section(self, name: str, body: Callable[[Run, float], dict], need_s: float = 0) -> None:
        """Run one section within its cap, record its figures, skip or error; save."""
        cap = min(self.cap(name), self.left())
        if cap < max(need_s, 1.0):
            reason = f"skipped: {self.left():.0f} s of the budget left, section needs {need_s}"
            self.results["sections"][name] = {"skipped": reason}
            log(f"{name}: {reason}")
            self.save()
            return
        log(f"{name}: start (cap {cap:.0f} s, {self.left():.0f} s left)")
        t0 = time.perf_counter()
        try:
            figures = body(self, cap)
            figures["status"] = figures.get("status", "ok")
        except Exception as error:  # noqa: BLE001 - one section failing must not lose the rest
            figures = {"status": "error", "error": f"{type(error).__name__}: {error}"}
            figures["traceback"] = traceback.format_exc()[-3000:]
        figures["section_s"] = time.perf_counter() - t0
        if self.cuda:
            import torch

            figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GIB
            torch.cuda.empty_cache()
        self.results["sections"][name] = figures
        log(f"{name}: {figures.get('status')} in {figures['section_s']:.1f} s: {_short(figures)}")
        self.save()

    def reset_peak(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()


def _short(figures: dict) -> str:
    keep = {k: v for k, v in figures.items() if k not in ("traceback", "runs", "section_s")}
    text = str(keep)
    return text if len(text) < 600 else text[:600] + "…"


# ----------------------------------------------------------------------------- sections
def device_info(run: Run) -> dict:
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


def precision_section(run: Run, cap: float) -> dict:
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    kwargs = {"n_neurons": 40, "n_frames": 120, "shape": (32, 64, 64)} if run.args.tiny else {}
    brain = make_toy_brain(render=None, em=False, seed=0, **kwargs)
    out: dict[str, Any] = {
        "n_neurons": brain.activity.shape[1],
        "n_frames": brain.activity.shape[0],
    }
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        fit = fit_mesoscale(
            brain.activity,
            brain.positions,
            connectome=brain.adjacency,
            stimulus=brain.stimulus,
            epochs=run.sizes["toy_epochs"],
            seed=0,
            device=run.device,
            precision=precision,
        )
        seconds = list(fit.history["seconds"])
        out[precision] = {
            "wall_s": time.perf_counter() - t0,
            "epoch_s_median": float(sorted(seconds)[len(seconds) // 2]),
            "epoch_s_first": float(seconds[0]),
            "test_mse": float(fit.scores["test_mse"]),
            "val_mse": float(fit.scores["val_mse"]),
        }
    out["fp32_over_bf16_epoch_time"] = out["fp32"]["epoch_s_median"] / out["bf16"]["epoch_s_median"]
    return out


def _synthetic(n_neurons: int, n_frames: int) -> Any:
    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    return zebrafish_scale_activity(n_neurons, n_frames, seed=0)


#: Options that make a fit's cost mostly training (throughput figures): random assignment init.
FAST_INIT = {"init": "random", "group_init": False, "smooth_features": False}


def throughput_section(run: Run, cap: float) -> dict:
    out: dict[str, Any] = {"runs": []}
    sizes = run.sizes
    for n in sizes["throughput_neurons"]:
        t_left = cap - (time.perf_counter() - run._section_start)
        if t_left < 5:
            out["runs"].append({"n_neurons": n, "skipped": f"section cap reached ({t_left:.0f} s)"})
            continue
        for batch in (32, 8):
            run.reset_peak()
            try:
                t0 = time.perf_counter()
                data = _synthetic(n, sizes["throughput_frames"])
                gen_s = time.perf_counter() - t0
                res = timed_fit(
                    data.activity,
                    data.positions,
                    data.connectome,
                    device=run.device,
                    epochs=100,
                    max_steps=sizes["throughput_steps"],
                    time_cap_s=t_left * 0.5,
                    batch_frames=batch,
                    **FAST_INIT,
                )
            except MemoryError as error:
                out["runs"].append({"n_neurons": n, "batch_frames": batch, "oom": str(error)})
                continue
            res["generation_s"] = gen_s
            res["neuron_steps_per_s"] = n * batch / res["step_s"]
            res["neuron_frames_per_s_note"] = "N x batch_frames windows per optimiser step"
            if run.cuda:
                import torch

                res["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / GIB
            res["peak_rss_gib"] = (peak_rss_bytes() or 0) / GIB
            out["runs"].append(res)
            log(f"throughput N={n}: {res['neuron_steps_per_s']:.3g} neuron-steps/s")
            del data
            break
    return out


def epoch_section(run: Run, cap: float) -> dict:
    sizes = run.sizes
    t0 = time.perf_counter()
    data = _synthetic(sizes["epoch_neurons"], sizes["epoch_frames"])
    gen_s = time.perf_counter() - t0
    run.reset_peak()
    budget = cap - gen_s
    res = timed_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=run.device,
        epochs=1,
        max_steps=None,
        time_cap_s=budget * 0.8,
        **FAST_INIT,
    )
    res["generation_s"] = gen_s
    res["epoch_s"] = (
        res["epoch_s_measured"][0] if res["epoch_s_measured"] else res["epoch_s_extrapolated"]
    )
    res["epoch_complete"] = res["stopped"] != "cancelled"
    res["target_epoch_s"] = 60.0
    return res


def zebrafish_section(run: Run, cap: float) -> dict:
    sizes = run.sizes
    t0 = time.perf_counter()
    data = _synthetic(sizes["zebrafish_neurons"], sizes["zebrafish_frames"])
    gen_s = time.perf_counter() - t0
    run.reset_peak()
    res = timed_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=run.device,
        epochs=sizes["zebrafish_epochs"],
        max_steps=None,
        time_cap_s=(cap - gen_s) * 0.6,
    )
    res["generation_s"] = gen_s
    epochs_done = res["steps_run"] / max(1, res["steps_per_epoch"])
    res["epochs_run"] = epochs_done
    res["whole_fit_s_extrapolated"] = (
        res["to_first_step_s"]
        + res["epoch_s_extrapolated"] * sizes["zebrafish_epochs"]
        + res["after_training_s"]
    )
    res["epochs_for_extrapolation"] = sizes["zebrafish_epochs"]
    res["target_whole_fit_s"] = 600.0
    res["peak_rss_gib"] = (peak_rss_bytes() or 0) / GIB
    return res


def unet_section(run: Run, cap: float) -> dict:
    import numpy as np

    from napari_mesoscale.segment.unet import train_soma_detector
    from napari_mesoscale.synth import make_toy_brain

    kwargs = {"n_neurons": 20, "n_frames": 30, "shape": (32, 64, 64)} if run.args.tiny else {}
    brain = make_toy_brain(render=None, em=True, seed=0, **kwargs)
    labels = np.asarray(brain.em_labels)
    annotations = np.where(labels > 0, 2, 1).astype(np.int64)
    sizes = run.sizes
    stamps: list[float] = []

    def callback(info: dict) -> bool:
        stamps.append(time.perf_counter())
        return True

    t0 = time.perf_counter()
    det = train_soma_detector(
        brain.em,
        annotations,
        voxel_size=brain.em_voxel_size,
        epochs=sizes["unet_epochs"],
        steps_per_epoch=sizes["unet_steps"],
        device=run.device,
        seed=0,
        callback=callback,
    )
    wall = time.perf_counter() - t0
    steps = sizes["unet_epochs"] * sizes["unet_steps"]
    gaps = sorted(b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True))
    return {
        "em_shape": list(np.shape(brain.em)),
        "steps": steps,
        "wall_s": wall,
        "median_callback_gap_s": gaps[len(gaps) // 2] if gaps else math.nan,
        "steps_per_s": steps / wall,
        "final_loss": float(det.history[-1]["loss"]) if det.history else math.nan,
    }


def _worker_fit(n_neurons: int, n_frames: int, steps: int, device: str, queue: Any = None):
    """The fit widget's core call: fit_mesoscale with a progress callback; steps per second."""
    sys.path.insert(0, str(Path(__file__).parent))
    data = _synthetic(n_neurons, n_frames)
    res = timed_fit(
        data.activity,
        data.positions,
        data.connectome,
        device=device,
        epochs=100,
        max_steps=steps,
        **FAST_INIT,
    )
    res["steps_per_s"] = 1.0 / res["step_s"]
    if queue is not None:
        queue.put(res)
    return res


def worker_section(run: Run, cap: float) -> dict:
    s = run.sizes
    argv = (s["worker_neurons"], s["worker_frames"], s["worker_steps"], run.device)
    out: dict[str, Any] = {"n_neurons": argv[0], "n_frames": argv[1]}
    out["main_thread"] = _worker_fit(*argv)
    box: list[dict] = []
    thread = threading.Thread(target=lambda: box.append(_worker_fit(*argv)), daemon=True)
    thread.start()
    thread.join(timeout=cap / 3)
    out["thread"] = box[0] if box else {"error": "no result within the cap"}
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    proc = context.Process(target=_worker_fit, args=(*argv, queue))
    t0 = time.perf_counter()
    proc.start()
    try:
        out["subprocess"] = queue.get(timeout=max(5.0, cap / 3))
    except Exception as error:  # noqa: BLE001
        out["subprocess"] = {"error": f"{type(error).__name__}: {error}"}
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
    out["subprocess"]["wall_with_start_s"] = time.perf_counter() - t0
    base = out["main_thread"]["steps_per_s"]
    for key in ("thread", "subprocess"):
        if "steps_per_s" in out[key]:
            out[f"{key}_over_main"] = out[key]["steps_per_s"] / base
    return out


def oom_section(run: Run, cap: float) -> dict:
    import torch

    data = _synthetic(2_000 if run.args.tiny else 50_000, 400)
    if run.cuda:
        free, _ = torch.cuda.mem_get_info()
        # hidden units scale every activation: ask for several times the whole device
        hidden = 4096
        batch = 256
    else:  # CPU: a real allocation failure would take the machine down; ask torch directly
        free, hidden, batch = None, None, None
    t0 = time.perf_counter()
    out: dict[str, Any] = {"free_gib": None if free is None else free / GIB}
    try:
        if run.cuda:
            from napari_mesoscale.model import fit_mesoscale

            fit_mesoscale(
                data.activity,
                data.positions,
                connectome=data.connectome,
                epochs=1,
                device=run.device,
                batch_frames=batch,
                hidden=hidden,
                **FAST_INIT,
            )
            out["status"] = "no_oom"
        else:
            raise MemoryError("CPU: not provoked (an allocation beyond RAM would swap or kill)")
    except MemoryError as error:
        message = str(error)
        out["message"] = message
        out["cause"] = type(error.__cause__).__name__ if error.__cause__ else None
        out["clear_message"] = "reduce batch_frames" in message
        out["status"] = (
            "ok"
            if (run.cuda and out["clear_message"])
            else ("skipped_on_cpu" if not run.cuda else "unclear_message")
        )
    except torch.OutOfMemoryError as error:
        out["status"] = "raw_torch_oom"
        out["message"] = str(error)[:500]
    out["seconds"] = time.perf_counter() - t0
    if run.cuda:
        torch.cuda.empty_cache()
        out["memory_after_gib"] = torch.cuda.memory_allocated() / GIB
    return out


SECTIONS: list[tuple[str, Callable, float]] = [
    ("precision", precision_section, 10),
    ("throughput", throughput_section, 15),
    ("epoch_100k", epoch_section, 20),
    ("zebrafish", zebrafish_section, 30),
    ("unet", unet_section, 5),
    ("worker", worker_section, 10),
    ("oom", oom_section, 5),
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--tiny", action="store_true", help="every section, tiny, CPU (CI)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="*", default=None, help="run only these sections")
    args = parser.parse_args(argv)
    if args.tiny:  # CI: every section must run, whatever the machine's load
        args.budget_s = max(args.budget_s, 900.0)
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(min(4, os.cpu_count() or 1))
    run = Run(args)
    run.results["sections"]["device"] = device_info(run)
    log(f"device: {run.results['sections']['device']}")
    run.save()
    for name, body, need in SECTIONS:
        if args.only and name not in args.only:
            continue
        run._section_start = time.perf_counter()
        run.section(name, body, need)
    run.results["finished"] = True
    run.save()
    log(f"done in {time.perf_counter() - run.start:.0f} s -> {args.output}")
    return run.results


if __name__ == "__main__":
    main()
