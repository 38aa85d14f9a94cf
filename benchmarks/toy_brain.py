"""Benchmark of the toy brain generator (``make_toy_brain``): time and peak memory.

Cases, each in its own subprocess so that its peak memory (``ru_maxrss``) is its own:

``default``
    ``make_toy_brain()`` exactly as documented: 300 neurons, 64x128x128, 500 frames, movie
    (render="auto": the 1 GB movie is lazy) + EM volume.
``default_eager``
    The same with ``render="eager"``: the whole 500-frame movie rendered to numpy.
``n5000_lazy``
    5,000 neurons, ``shape=None`` (volume scaled to the default density), 500 frames,
    ``render="lazy"``, ``em=False``; make the brain, then render one dask chunk of frames
    and stream the movie's first 64 frames through dask (per-frame means; threads, 2
    workers), as a detector reading the movie chunk by chunk would.
``n100k``
    100,000 neurons, ``shape=None``, 500 frames, activity only (``render=None, em=False``).

Times are medians of ``--repeat`` runs inside the case's process (the per-stage timings are
those of the median run); ``peak_rss_gib`` is the process's maximum resident memory.

Usage::

    python benchmarks/toy_brain.py              # all cases -> benchmarks/results/toy_brain.json
    python benchmarks/toy_brain.py --quick      # fewer repeats, 20k instead of 100k neurons
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("default", "default_eager", "n5000_lazy", "n100k")


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_case(case: str, repeat: int, n_big: int) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    out: dict = {"case": case}
    times, stage_times, extra = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        if case == "default":
            b = make_toy_brain(seed=0)
        elif case == "default_eager":
            b = make_toy_brain(seed=0, render="eager")
        elif case == "n5000_lazy":
            b = make_toy_brain(5000, shape=None, render="lazy", em=False, seed=0)
        elif case == "n100k":
            b = make_toy_brain(n_big, shape=None, render=None, em=False, seed=0)
        else:
            raise ValueError(case)
        times.append(time.perf_counter() - t0)
        stage_times.append(b.timings)
        if case == "n5000_lazy":
            t1 = time.perf_counter()
            first = b.movie.blocks[0].compute()
            t2 = time.perf_counter()
            # streamed: per-frame means, so only a few chunks are in memory at a time
            b.movie[:64].mean(axis=(1, 2, 3)).compute(scheduler="threads", num_workers=2)
            t3 = time.perf_counter()
            extra.append(
                {
                    "chunk_frames": int(first.shape[0]),
                    "first_chunk_s": t2 - t1,
                    "per_frame_s_first_chunk": (t2 - t1) / first.shape[0],
                    "frames_64_s": t3 - t2,
                    "frame_mb": float(np.prod(b.shape) * 2 / 2**20),
                }
            )
        del b
    k = int(np.argsort(times)[len(times) // 2])
    out.update(
        {
            "repeats": repeat,
            "seconds_median": float(np.median(times)),
            "seconds_all": [round(t, 3) for t in times],
            "stage_seconds_median_run": stage_times[k],
            "peak_rss_gib": round(_rss_gib(), 3),
        }
    )
    if extra:
        out["render"] = extra[k]
    return out


def _describe(case: str, n_big: int) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    kw = {
        "default": {},
        "default_eager": {"render": "eager"},
        "n5000_lazy": {"n_neurons": 5000, "shape": None, "render": "lazy", "em": False},
        "n100k": {"n_neurons": n_big, "shape": None, "render": None, "em": False},
    }[case]
    b = make_toy_brain(**{**kw, "n_frames": 2, "render": None})
    return {
        "arguments": {k: v for k, v in kw.items()},
        "n_neurons": b.n_neurons,
        "shape": list(b.shape),
        "n_instances": b.n_instances,
        "n_synapses_per_neuron": round(len(b.synapses) / b.n_neurons, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--case", choices=CASES, help="run one case in this process (internal)")
    ap.add_argument("--n-big", type=int, default=None)
    args = ap.parse_args()
    n_big = args.n_big or (20_000 if args.quick else 100_000)
    if args.case:
        repeat = args.repeat or 1
        print(json.dumps(run_case(args.case, repeat, n_big)))
        return
    repeats = {"default": 5, "default_eager": 3, "n5000_lazy": 1, "n100k": 3}
    if args.quick:
        repeats = {"default": 2, "default_eager": 1, "n5000_lazy": 1, "n100k": 1}
    results = {}
    for case in CASES:
        cmd = [sys.executable, __file__, "--case", case, "--repeat", str(repeats[case])]
        cmd += ["--n-big", str(n_big)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results[case] = {"error": proc.stderr[-2000:]}
            print(f"{case}: FAILED\n{proc.stderr[-2000:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res.update(_describe(case, n_big))
        res["wall_including_import_s"] = round(time.perf_counter() - t0, 2)
        results[case] = res
        print(
            f"{case:14s} median {res['seconds_median']:7.2f} s  peak RSS "
            f"{res['peak_rss_gib']:.2f} GiB  ({res['n_neurons']} neurons, shape {res['shape']})"
        )
    load = os.getloadavg()
    doc = {
        "benchmark": "toy_brain",
        "command": "python benchmarks/toy_brain.py" + (" --quick" if args.quick else ""),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in load],
            "note": "shared machine: absolute times vary with load; compare cases in one run",
        },
        "targets": {"default_s": 10.0, "n100k_activity_s": 60.0},
        "results": results,
    }
    if "default" in results and "n100k" in results and "error" not in results["n100k"]:
        doc["ratio_n100k_over_default"] = round(
            results["n100k"]["seconds_median"] / results["default"]["seconds_median"], 2
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "toy_brain_quick.json" if args.quick else "toy_brain.json"
    tmp = RESULTS / (name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, RESULTS / name)
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
