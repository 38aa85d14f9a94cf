"""Benchmark of the toy brain generator (``make_toy_brain``): time and peak memory.

Cases, each in its own subprocess so that its peak memory (``ru_maxrss``) is its own:

``default``
    ``make_toy_brain()`` exactly as documented: 300 neurons, 64x128x128, 500 frames, movie
    (render="auto": the 1 GB movie is lazy) + EM volume.
``default_eager``
    The same with ``render="eager"``: the whole 500-frame movie rendered to numpy.
``default_eager_1thread``
    ``default_eager`` with the movie rendered in one thread (``MovieRenderer.render`` uses
    ``min(2, cpu_count)`` threads by default).
``default_eager_plain``
    ``default_eager`` with the renderer as first written (``_PlainMovieRenderer`` below: the
    sparse product over every voxel, (V, k) -> (k, V) transposes, one thread), the reference
    the faster renderer is measured against. All three eager cases must give the same movie:
    each records the SHA-256 of its movie bytes (computed outside the timing).
``n5000_lazy``
    5,000 neurons, ``shape=None`` (volume scaled to the default density), 500 frames,
    ``render="lazy"``, ``em=False``; make the brain, then render one dask chunk of frames
    and stream the movie's first 64 frames through dask (per-frame means; threads, 2
    workers), as a detector reading the movie chunk by chunk would.
``n100k``
    100,000 neurons, ``shape=None``, 500 frames, activity only (``render=None, em=False``).

Times are medians of ``--repeat`` runs inside the case's process (the per-stage timings are
those of the median run); ``peak_rss_gib`` is the process's maximum resident memory. The three
eager cases run round-robin, one run per process, so that they see the same machine load.

Usage::

    python benchmarks/toy_brain.py              # all cases -> benchmarks/results/toy_brain.json
    python benchmarks/toy_brain.py --quick      # fewer repeats, 20k instead of 100k neurons
    python benchmarks/toy_brain.py --only default_eager default_eager_1thread default_eager_plain
        # only these cases; the other cases' results in the JSON are kept
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).resolve().parent / "results"
CASES = (
    "default",
    "default_eager",
    "default_eager_1thread",
    "default_eager_plain",
    "n5000_lazy",
    "n100k",
)
EAGER_CASES = ("default_eager", "default_eager_1thread", "default_eager_plain")


class _PlainMovieRenderer:
    """The calcium-movie renderer as first written (before commit 8c9e463), for comparison.

    Same formula and random draws as ``napari_mesoscale.synth.render.MovieRenderer``: the
    expected photon count of every voxel from the full (V, N) sparse product, then N(λ, λ)
    noise per frame from its own generator.
    """

    def __init__(self, footprints, baseline, calcium, background, drift, snr, shape, seed):
        self.p = footprints
        self.baseline = baseline.astype(np.float32)
        self.calcium = calcium
        self.background = background.reshape(-1).astype(np.float32)
        self.drift = drift.astype(np.float32)
        self.k = float(snr) ** 2 * (1.0 + float(self.background.mean()))
        self.shape = tuple(int(s) for s in shape)
        self.seed = int(seed)

    def frame_expected(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.int64)
        b = self.baseline[:, None] * (1.0 + self.calcium[frames].T.astype(np.float32))
        img = self.p @ b.astype(np.float32)
        img = img[:, 0][None] if img.shape[1] == 1 else np.ascontiguousarray(img.T)
        img += self.background[None, :]
        img *= (self.k * self.drift[frames])[:, None].astype(np.float32)
        return img

    def render(self, frames) -> np.ndarray:
        from napari_mesoscale.synth.render import CAMERA_OFFSET

        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        out = np.empty((len(frames), *self.shape), dtype=np.uint16)
        v = int(np.prod(self.shape))
        step = max(1, int(2**23 // max(v, 1)))
        offset = np.float32(CAMERA_OFFSET)
        for j0 in range(0, len(frames), step):
            fr = frames[j0 : j0 + step]
            lam = self.frame_expected(fr)
            for j, t in enumerate(fr):
                rng = np.random.default_rng([self.seed, 0xCA, int(t)])
                img = rng.standard_normal(v, dtype=np.float32)
                img *= np.sqrt(lam[j])
                img += lam[j]
                img += offset
                np.rint(img, out=img)
                np.clip(img, 0, 65535, out=img)
                out[j0 + j].reshape(-1)[:] = img
        return out


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_case(case: str, repeat: int, n_big: int) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    out: dict = {"case": case}
    if case == "default_eager_1thread":
        from napari_mesoscale.synth import render as _render

        render = _render.MovieRenderer.render
        _render.MovieRenderer.render = lambda self, frames, workers=None: render(self, frames, 1)
    elif case == "default_eager_plain":
        from napari_mesoscale.synth import toy_brain

        toy_brain.MovieRenderer = _PlainMovieRenderer
    times, stage_times, extra, digests = [], [], [], []
    load_before = os.getloadavg()
    for _ in range(repeat):
        t0 = time.perf_counter()
        if case == "default":
            b = make_toy_brain(seed=0)
        elif case in EAGER_CASES:
            b = make_toy_brain(seed=0, render="eager")
        elif case == "n5000_lazy":
            b = make_toy_brain(5000, shape=None, render="lazy", em=False, seed=0)
        elif case == "n100k":
            b = make_toy_brain(n_big, shape=None, render=None, em=False, seed=0)
        else:
            raise ValueError(case)
        times.append(time.perf_counter() - t0)
        stage_times.append(b.timings)
        if case in EAGER_CASES:
            # hash a byte view of the movie (no 1 GB copy, so peak memory stays the case's own)
            digests.append(hashlib.sha256(b.movie.reshape(-1).view(np.uint8)).hexdigest())
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
            "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        }
    )
    if extra:
        out["render"] = extra[k]
    if digests:
        out["movie_sha256"] = sorted(set(digests))
    return out


def _describe(case: str, n_big: int) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    kw = {
        "default": {},
        "default_eager": {"render": "eager"},
        "default_eager_1thread": {"render": "eager"},
        "default_eager_plain": {"render": "eager"},
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


def _run_subprocess(case: str, repeat: int, n_big: int) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--repeat", str(repeat)]
    cmd += ["--n-big", str(n_big)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"{case}: FAILED\n{proc.stderr[-2000:]}")
        return {"error": proc.stderr[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_including_import_s"] = round(time.perf_counter() - t0, 2)
    return res


def _merge_runs(runs: list[dict]) -> dict:
    """One result from single-run processes of a case: median over all runs."""
    times = [t for r in runs for t in r["seconds_all"]]
    k = int(np.argsort(times)[len(times) // 2])
    out = dict(runs[k])
    out.update(
        {
            "repeats": len(times),
            "seconds_median": float(np.median(times)),
            "seconds_all": times,
            "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
            "loadavg_1min_before_after": [r["loadavg_1min_before_after"] for r in runs],
            "wall_including_import_s": round(sum(r["wall_including_import_s"] for r in runs), 2),
        }
    )
    if any("movie_sha256" in r for r in runs):
        out["movie_sha256"] = sorted({h for r in runs for h in r.get("movie_sha256", [])})
    return out


def _report(case: str, res: dict) -> None:
    print(
        f"{case:22s} median {res['seconds_median']:7.2f} s  peak RSS "
        f"{res['peak_rss_gib']:.2f} GiB  ({res['n_neurons']} neurons, shape {res['shape']})",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--case", choices=CASES, help="run one case in this process (internal)")
    ap.add_argument(
        "--only", nargs="+", choices=CASES, help="run only these cases; keep the others' results"
    )
    ap.add_argument("--n-big", type=int, default=None)
    args = ap.parse_args()
    n_big = args.n_big or (20_000 if args.quick else 100_000)
    if args.case:
        repeat = args.repeat or 1
        print(json.dumps(run_case(args.case, repeat, n_big)))
        return
    repeats = {"default": 5, "n5000_lazy": 1, "n100k": 3, **dict.fromkeys(EAGER_CASES, 3)}
    if args.quick:
        repeats = {"default": 2, "n5000_lazy": 1, "n100k": 1, **dict.fromkeys(EAGER_CASES, 1)}
    if args.repeat:
        repeats = dict.fromkeys(CASES, args.repeat)
    cases = [c for c in CASES if args.only is None or c in args.only]
    results: dict = {}
    for case in cases:
        if case in EAGER_CASES:
            continue
        res = _run_subprocess(case, repeats[case], n_big)
        if "error" not in res:
            res.update(_describe(case, n_big))
            _report(case, res)
        results[case] = res
    # the eager cases round-robin, one run per process, so that they share the machine's load
    eager = [c for c in cases if c in EAGER_CASES]
    runs: dict = {c: [] for c in eager}
    for _ in range(max((repeats[c] for c in eager), default=0)):
        for case in eager:
            if len(runs[case]) < repeats[case]:
                runs[case].append(_run_subprocess(case, 1, n_big))
    for case in eager:
        errors = [r for r in runs[case] if "error" in r]
        if errors:
            results[case] = errors[0]
            continue
        res = _merge_runs(runs[case])
        res.update(_describe(case, n_big))
        _report(case, res)
        results[case] = res

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "toy_brain_quick.json" if args.quick else "toy_brain.json"
    load = [round(x, 2) for x in os.getloadavg()]
    command = "python benchmarks/toy_brain.py" + (" --quick" if args.quick else "")
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_end": load,
        "note": "shared machine: absolute times vary with load; compare cases in one run",
    }
    this_run = {
        "command": command + (" --only " + " ".join(cases) if args.only else ""),
        "cases": cases,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_at_end": load,
    }
    if args.only and (RESULTS / name).exists():
        # a partial run: keep the other cases' results (and where they came from)
        doc = json.loads((RESULTS / name).read_text())
        doc.setdefault("results", {}).update(results)
        doc["partial_runs"] = doc.get("partial_runs", []) + [this_run]
    else:
        doc = {
            "benchmark": "toy_brain",
            "command": command,
            "machine": machine,
            "date_utc": this_run["date_utc"],
            "targets": {"default_s": 10.0, "n100k_activity_s": 60.0},
            "results": results,
        }
    res_all = doc["results"]
    if "default" in results or "n100k" in results:
        doc.pop("ratio_n100k_over_default", None)
        if all(c in res_all and "error" not in res_all[c] for c in ("default", "n100k")):
            doc["ratio_n100k_over_default"] = round(
                res_all["n100k"]["seconds_median"] / res_all["default"]["seconds_median"], 2
            )
    if "default_eager_plain" in results and "error" not in results["default_eager_plain"]:
        # measured side by side (round-robin) in this run
        plain = results["default_eager_plain"]
        cmp: dict = {"measured_in": this_run["command"], "date_utc": this_run["date_utc"]}
        for c in ("default_eager", "default_eager_1thread"):
            if c in results and "error" not in results[c]:
                cmp[f"plain_over_{c}"] = round(
                    plain["seconds_median"] / results[c]["seconds_median"], 2
                )
                cmp[f"movie_stage_plain_over_{c}"] = round(
                    plain["stage_seconds_median_run"]["movie"]
                    / results[c]["stage_seconds_median_run"]["movie"],
                    2,
                )
        hashes = {h for c in eager if "error" not in results[c] for h in results[c]["movie_sha256"]}
        cmp["identical_movies"] = len(hashes) == 1
        doc["eager_render_comparison"] = cmp
    write_json(RESULTS / name, doc)
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
