"""Should ``input_lags="auto"`` be the default? The probe on every dataset the benchmarks fit,
and side-by-side fits where it picks 2.

The rule (fixed by the lead before any of these measurements, issue #13):

    ``input_lags`` defaults to ``"auto"`` iff on **every dev case** auto's held-out one-step
    MSE is at most **1.02 x** lag 1's (same seed, side by side). Dev cases: the 21 of
    ``benchmarks/results/input_lags_auto_dev.json`` plus every development dataset the
    benchmarks and the sample data fit (toy dev seeds, the calcium ``classic`` and
    ``realistic`` presets, the bundled sample, the population-filter and spike benchmarks'
    data). Where the probe picks 1 the auto fit *is* the lag-1 fit (shown once: equal to 5
    significant digits); where it picks 2, lag 1 and lag 2 are trained side by side and the
    1.02 bar applies. Held-out / test data (toy seeds 0-3, the calcium ``heldout`` preset, the
    C. elegans atlas, the zebrafish-scale data, the zoo's test brains) decide nothing: only
    the probe's pick is recorded.

The probe is read from the benchmark's own entry point: each dataset's fit is called exactly
as its benchmark calls it (same data, configuration, connectome, observation model) with
``input_lags="auto"``, and stopped as soon as ``fit_mesoscale`` has run the probe (the probe
function is wrapped for the call; nothing is trained). So the pick is the one a default fit
would make there.

Rule R4 (fixed by the lead on 2026-11-30, before any of the ``fresh`` cases was made; the
first rule failed on one case of 125, the realistic preset's 2,000-frame oracle fit of seed 1,
2.4 % over the bar):

    The probe's pooled-gain threshold becomes **0.10** (was 0.05; the share rule, >= 5 % of
    the neurons with an own gain >= 0.5, is kept). Chosen on the dev survey above: every dev
    case it sent to 2 without second-order units had a pooled gain of 0.052-0.071 and a share
    of at most 0.021 (toy 4 and 31, five calcium oracle fits), every dev case with them a gain
    >= 0.088 or a share >= 0.113 (resonators, zoo_osc 1002, the population-filter calcium
    traces). ``input_lags`` defaults to ``"auto"`` (with that threshold) iff on **every**
    ``fresh`` dev case auto's held-out one-step MSE is at most **1.02 x** lag 1's (same seed,
    side by side where it picks 2; where it picks 1 the fit is the lag-1 fit). ``fresh`` cases
    are development data never made before: zoo dev brains 1124-1131, zoo_osc 1124-1126,
    resonators 12 and 13 (input_lags_auto_dev.py's cases and fits), toy dev seeds 68-91, and
    the calcium ``classic`` and ``realistic`` presets of seeds 3 and 4 at 200 / 600 / 2,000
    frames (dF/F, calcium and oracle fits; seed 4 cannot be laid out by the generator, seed 5
    stands in for it, a change made after the first run stopped on it, before any seed-5
    data). If it passes, the zoo's test-family brains 8000-8019 are fitted once with the new
    defaults (``benchmarks/motif_zoo.py``).

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/input_lags_default.py --survey dev \
        --out benchmarks/results/input_lags_default.json
    ... --survey heldout          # picks only, after the decision is committed
    ... --survey fresh --rule r4 --out benchmarks/results/input_lags_default_r4.json
    ... --fits --rule r4 --out ...  # side by side where a fresh case picked 2
    ... --fits                    # lag 1 / lag 2 side by side on the dev cases that picked 2
    ... --identity "sample pipeline"  # auto fit vs input_lags=1 fit where the probe picks 1
    ... --seed-spread "calcium realistic 2000 1 oracle:1:1"  # NAME:LAGS:FIT_SEED, information
    ... --probe-memory 30000 7879  # the probe's own peak allocation with and without its bound

Results accumulate in ``--out`` (cases already there are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BAR = 1.02  # auto's held-out MSE at most 1.02 x lag 1's on every dev case
TOY_DEV = tuple(range(4, 48))
TOY_HELDOUT = (0, 1, 2, 3)
CALCIUM_SEEDS = (0, 1, 2)
CALCIUM_FRAMES = (200, 600, 2000)
CALCIUM_VARIANTS = ("dF/F", "calcium", "oracle")
CALCIUM_EPOCHS = 60  # pipeline_calcium.py's default
TOY_EPOCHS = 30  # model.py's
POPULATION = {"duration": 30.0, "epochs": 30, "rf_diameter": 250.0, "seeds": (0, 1)}
ZOO_TEST = tuple(range(2000, 2020))
ZEBRAFISH_SHAPE = (71_721, 7_879)  # ZAPBench's shape, zebrafish_scale.py's default
FRESH = {  # rule R4's fresh development data
    "zoo_dev": tuple(range(1124, 1132)), "zoo_osc": (1124, 1125, 1126), "resonators": (12, 13),
    # seed 4 was named in the rule, but the generator cannot lay out the sample's volume for
    # it ("could not place 6 non-overlapping somata"): the next seed that it can make stands in
    "toy": tuple(range(68, 92)), "calcium_seeds": (3, 5),
}


class _Stop(Exception):
    """Raised by the wrapped probe: the fit stops right after the probe."""


def probe_as_fit(call: Callable[..., Any]) -> dict:
    """Call ``call(input_lags="auto")`` and return the probe ``fit_mesoscale`` runs in it."""
    import napari_mesoscale.model.lag_probe as lag_probe

    real = lag_probe.probe_input_lags
    seen: dict = {}

    def spy(*args: Any, **kwargs: Any):
        import tracemalloc

        tracemalloc.start()  # numpy reports its arrays to tracemalloc: the probe's own peak
        try:
            seen["probe"] = real(*args, **kwargs)
            seen["alloc_peak_gib"] = tracemalloc.get_traced_memory()[1] / 2**30
        finally:
            tracemalloc.stop()
        raise _Stop

    lag_probe.probe_input_lags = spy
    try:
        call(input_lags="auto")
    except _Stop:
        pass
    finally:
        lag_probe.probe_input_lags = real
    if "probe" not in seen:
        raise RuntimeError("the entry point never ran the probe")
    return {**seen["probe"].to_dict(), "alloc_peak_gib": seen["alloc_peak_gib"]}


# -- datasets: name -> (split, maker); a maker returns call(**options) -> MesoscaleFit --------


def _fit(**common: Any) -> Callable[..., Any]:
    def call(**options: Any):
        import torch

        from napari_mesoscale.model import fit_mesoscale

        torch.set_num_threads(1)
        return fit_mesoscale(device="cpu", **{**common, **options})

    return call


def _toy(seed: int) -> Callable[..., Any]:
    """benchmarks/model.py's default fit (with connectome, 30 epochs)."""
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(render=None, em=False, seed=seed)
    return _fit(
        activity=brain.activity, positions=brain.positions, connectome=brain.adjacency,
        stimulus=brain.stimulus, epochs=TOY_EPOCHS, seed=seed,
    )


def _auto_dev(kind: str, seed: int) -> Callable[..., Any]:
    """A case of input_lags_auto_dev.py, fitted as there."""
    import input_lags_auto_dev as dev

    args = argparse.Namespace(neurons=240, frames=1500, zoo_epochs=5, toy_epochs=30,
                              calcium_frames=600, calcium_epochs=20)
    case = dev.MAKERS[kind](seed, args)
    return _fit(
        activity=case["activity"], positions=case["positions"], connectome=case["connectome"],
        stimulus=case["stimulus"], config=case["config"], **case["fit"],
    )


_MOVIES: dict = {}


def _calcium(preset: str, seed: int, frames: int, variant: str) -> Callable[..., Any]:
    """benchmarks/pipeline_calcium.py's fit of one variant (pipeline configuration)."""
    import scipy.sparse as sp

    from napari_mesoscale.connectome import register_point_sources
    from napari_mesoscale.segment import detect_point_sources
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.workflow import pipeline_config, restrict_adjacency
    from pipeline_calcium import _sample_parameters

    key = (preset, seed, frames)
    if key not in _MOVIES:
        _MOVIES.clear()
        params = {**_sample_parameters(), "n_frames": frames}
        brain = make_toy_brain(**params, render="eager", em=False, seed=seed,
                               calcium_preset=preset)
        sources = detect_point_sources(brain.movie, voxel_size=brain.voxel_size,
                                       cell_diameter=8.0, frame_rate=brain.frame_rate)
        reg = register_point_sources(sources.positions, brain.positions)
        dff = np.asarray(sources.dff, dtype=float)
        adjacency = sp.csr_matrix(restrict_adjacency(brain.adjacency, reg.matches, dff.shape[1]))
        det, neu = reg.matches[:, 0], reg.matches[:, 1]
        _MOVIES[key] = {
            "dF/F": (dff, sources.positions, adjacency, "activity"),
            "calcium": (dff, sources.positions, adjacency, "calcium"),
            "oracle": (brain.activity[:, neu].astype(float), sources.positions[det],
                       adjacency[det][:, det], "activity"),
            "stimulus": brain.stimulus.astype(float),
        }
    signal, positions, adjacency, observation = _MOVIES[key][variant]
    return _fit(
        activity=signal, positions=positions, connectome=adjacency,
        stimulus=_MOVIES[key]["stimulus"], config=pipeline_config(), epochs=CALCIUM_EPOCHS,
        seed=0, observation=observation,
    )


def _sample_pipeline() -> Callable[..., Any]:
    """The demo: run_pipeline on the bundled calcium sample (its default epochs)."""

    def call(**options: Any):
        import torch

        from napari_mesoscale.io import read_table, read_volume
        from napari_mesoscale.napari._sample_data import sample_path
        from napari_mesoscale.workflow import run_pipeline

        torch.set_num_threads(1)
        movie = read_volume(sample_path("calcium"))
        result = run_pipeline(
            movie.data, voxel_size=movie.voxel_size, frame_rate=movie.frame_rate,
            neurons=read_table(sample_path("neurons")),
            synapses=read_table(sample_path("synapses")),
            stimulus=np.load(sample_path("stimulus")), seed=0, device="cpu", **options,
        )
        return result.fit

    return call


def _sample_activity() -> Callable[..., Any]:
    """The bundled sample's true activity with its connectome (the connectome sample's
    neurons layer, as the fit widget passes it), default configuration."""
    from napari_mesoscale.connectome import Connectome
    from napari_mesoscale.io import read_table
    from napari_mesoscale.napari._sample_data import sample_path

    neurons = read_table(sample_path("neurons"))
    connectome = Connectome.from_tables(neurons, read_table(sample_path("synapses")))
    activity = np.load(sample_path("activity"))
    positions = neurons[["z", "y", "x"]].to_numpy(float)
    return _fit(activity=activity, positions=positions, connectome=connectome,
                stimulus=np.load(sample_path("stimulus")), seed=0)


def _population(signal: str, seed: int) -> Callable[..., Any]:
    """population_filters.py's data and its default ('configurable') row."""
    from napari_mesoscale.reproductions.populations import make_population_brain
    from population_filters import frame_input

    brain = make_population_brain(duration=POPULATION["duration"], burn_in=1.0, seed=seed,
                                  frame_rate=20.0, tau_decay=0.5)
    x = (brain.calcium if signal == "calcium" else brain.spikes).astype(np.float64)
    return _fit(activity=x, positions=brain.positions, connectome=brain.adjacency,
                stimulus=frame_input(brain, burn_in=1.0), epochs=POPULATION["epochs"],
                seed=seed, rf_diameter=POPULATION["rf_diameter"], n_filters=2)


def _worm() -> Callable[..., Any]:
    """worm_fit_profile.py's fit of the C. elegans atlas (fit_and_score, pipeline kernels)."""
    from napari_mesoscale.workflow import pipeline_config
    from worm_fit_profile import worm_inputs

    inputs = worm_inputs()
    config = pipeline_config()

    def call(**options: Any):
        import torch

        from napari_mesoscale.workflow import fit_and_score

        torch.set_num_threads(1)
        return fit_and_score(**inputs, seed=0, device="cpu", edge_init=config.edge_init,
                             freeze_edges=config.freeze_edges, **options).fit

    return call


def _zoo_test(seed: int) -> Callable[..., Any]:
    """motif_zoo.py's default fit of a test-family brain (240 neurons, 1,500 frames)."""
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(240, 1500, "test", n_families=4, seed=seed)
    return _fit(activity=brain.activity, positions=brain.positions,
                connectome=brain.connectome(), stimulus=brain.stimulus,
                n_filters=len(brain.motif_names), epochs=5, seed=0)


def _zebrafish() -> Callable[..., Any]:
    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    data = zebrafish_scale_activity(*ZEBRAFISH_SHAPE, seed=0)
    return _fit(activity=data.activity, positions=data.positions, connectome=data.connectome,
                seed=0)


def datasets(which: str) -> dict[str, tuple[str, Callable[[], Callable[..., Any]]]]:
    """name -> (split, maker)."""
    out: dict = {}
    if which == "dev":
        import input_lags_auto_dev as dev

        previous = json.loads((HERE / "results" / "input_lags_auto_dev.json").read_text())
        for c in previous["cases"]:
            out[f"auto_dev {c['kind']} {c['seed']}"] = (
                "dev", lambda k=c["kind"], s=c["seed"]: _auto_dev(k, s))
        assert dev.MAKERS
        for s in TOY_DEV:
            out[f"toy {s}"] = ("dev", lambda s=s: _toy(s))
        for preset in ("classic", "realistic"):
            for frames in CALCIUM_FRAMES:
                for s in CALCIUM_SEEDS:
                    for v in CALCIUM_VARIANTS:
                        out[f"calcium {preset} {frames} {s} {v}"] = (
                            "dev", lambda p=preset, s=s, f=frames, v=v: _calcium(p, s, f, v))
        out["sample pipeline"] = ("dev", _sample_pipeline)
        out["sample activity"] = ("dev", _sample_activity)
        for signal in ("calcium", "spikes"):
            for s in POPULATION["seeds"]:
                out[f"population {signal} {s}"] = ("dev", lambda g=signal, s=s: _population(g, s))
    elif which == "fresh":
        for kind in ("zoo_dev", "zoo_osc", "resonators"):
            for s in FRESH[kind]:
                out[f"auto_dev {kind} {s}"] = ("fresh", lambda k=kind, s=s: _auto_dev(k, s))
        for s in FRESH["toy"]:
            out[f"toy {s}"] = ("fresh", lambda s=s: _toy(s))
        for preset in ("classic", "realistic"):
            for frames in CALCIUM_FRAMES:
                for s in FRESH["calcium_seeds"]:
                    for v in CALCIUM_VARIANTS:
                        out[f"calcium {preset} {frames} {s} {v}"] = (
                            "fresh", lambda p=preset, s=s, f=frames, v=v: _calcium(p, s, f, v))
    elif which == "heldout":
        for s in TOY_HELDOUT:
            out[f"toy {s}"] = ("heldout", lambda s=s: _toy(s))
        for s in CALCIUM_SEEDS:
            for v in CALCIUM_VARIANTS:
                out[f"calcium heldout 600 {s} {v}"] = (
                    "heldout", lambda s=s, v=v: _calcium("heldout", s, 600, v))
        out["celegans atlas"] = ("heldout", _worm)
        for s in ZOO_TEST:
            out[f"zoo_test {s}"] = ("heldout", lambda s=s: _zoo_test(s))
        out[f"zebrafish-scale {ZEBRAFISH_SHAPE[0]}x{ZEBRAFISH_SHAPE[1]}"] = (
            "heldout", _zebrafish)
    else:
        raise ValueError(which)
    return out


def _peak_rss_gib() -> float | None:
    """The process's peak resident memory so far (VmHWM), GiB."""
    from zebrafish_scale import peak_rss_bytes

    peak = peak_rss_bytes()
    return None if peak is None else peak / 2**30


def _fit_row(call: Callable[..., Any], **options: Any) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    fit = call(**options)
    return {
        "test_mse": float(fit.scores["test_mse"]),
        "val_mse": float(fit.scores["val_mse"]),
        "input_lags": fit.config.input_lags,
        "epochs_run": int(len(fit.history)),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "load": os.getloadavg(),
    }


def probe_memory(n_neurons: int, n_frames: int) -> dict:
    """The probe's own peak allocation (tracemalloc) and time on zebrafish-scale data, with
    the default ``max_values`` and without it."""
    import tracemalloc

    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.lag_probe import probe_input_lags
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

    gen = zebrafish_scale_activity(n_neurons, n_frames, seed=0)
    data = prepare_data(gen.activity, gen.positions, None, ModelConfig())
    out: dict = {"neurons": n_neurons, "frames": n_frames}
    for label, options in (("default", {}), ("no_max_values", {"max_values": None})):
        tracemalloc.start()
        t0 = time.perf_counter()
        probe = probe_input_lags(data, gen.connectome, **options)
        out[label] = {"alloc_peak_gib": tracemalloc.get_traced_memory()[1] / 2**30,
                      "seconds": time.perf_counter() - t0, "fit_frames": probe.fit_frames,
                      "lags": probe.lags, "gain": probe.gain, "share": probe.share}
        tracemalloc.stop()
        print(f"probe memory {n_neurons} x {n_frames} {label}: {out[label]}", flush=True)
    return out


def decide(result: dict, split: str = "dev") -> dict:
    """The lead's rule on the ``split`` cases: auto / lag 1 <= BAR on every one."""
    rows, missing = [], []
    for name, case in result["survey"].items():
        if case["split"] != split:
            continue
        pick = case["probe"]["lags"]
        side = result.get("fits", {}).get(name)
        if pick == 1:
            rows.append({"case": name, "pick": 1, "auto_over_lag1": 1.0})
        elif side is not None:
            rows.append({"case": name, "pick": 2,
                         "auto_over_lag1": side["lag2"]["test_mse"] / side["lag1"]["test_mse"]})
        else:
            missing.append(name)
    worst = max((r["auto_over_lag1"] for r in rows), default=None)
    over = [r["case"] for r in rows if r["auto_over_lag1"] > BAR]
    return {
        "bar": BAR, "dev_cases": len(rows) + len(missing), "judged": len(rows),
        "picked_2": [r["case"] for r in rows if r["pick"] == 2] + missing,
        "not_yet_fitted": missing, "over_bar": over, "worst_ratio": worst,
        "passes": (not missing and not over) if rows else None,
    }


def main() -> None:
    from _results import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--survey", choices=("dev", "heldout", "fresh"), nargs="*", default=[])
    parser.add_argument("--rule", choices=("first", "r4"), default="first",
                        help="r4: decide on the fresh cases (the probe's threshold of the code)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="survey (and fit) only the datasets whose names start with these")
    parser.add_argument("--fits", action="store_true",
                        help="lag 1 and lag 2 side by side on the dev cases that picked 2")
    parser.add_argument("--identity", nargs="*", default=[],
                        help="dev datasets (picked 1) fitted with 'auto' and with 1")
    parser.add_argument("--probe-memory", type=int, nargs=2, default=None,
                        metavar=("NEURONS", "FRAMES"),
                        help="the probe's own peak allocation with and without max_values on "
                             "zebrafish-scale data of this shape")
    parser.add_argument("--seed-spread", nargs="*", default=[], metavar="NAME:LAGS:SEED",
                        help="one more fit of a dev case with this input_lags and fit seed "
                             "(information on the fits' seed noise; decides nothing)")
    parser.add_argument("--merge", nargs="*", default=[],
                        help="JSON files of other runs whose entries (and runs) join --out")
    parser.add_argument("--out", default=str(HERE / "results" / "input_lags_default.json"))
    args = parser.parse_args()
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    result.setdefault("rule", __doc__.split("Usage::")[0].strip())
    result.setdefault("survey", {})
    result.setdefault("fits", {})
    result.setdefault("identity", {})
    result.setdefault("runs", [])
    for other in args.merge:
        extra = json.loads(Path(other).read_text())
        for key in ("survey", "fits", "identity", "seed_spread"):
            for name, entry in extra.get(key, {}).items():
                result.setdefault(key, {}).setdefault(name, {})
                if key == "seed_spread":
                    result[key][name].update(entry)
                else:
                    result[key][name] = result[key][name] or entry
        result["runs"] += [r for r in extra.get("runs", []) if r not in result["runs"]]
        result.setdefault("probe_memory", [])
        result["probe_memory"] += [
            r for r in extra.get("probe_memory", []) if r not in result["probe_memory"]
        ]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    run = {"argv": sys.argv[1:], "commit": commit, "load_before": os.getloadavg(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "machine": platform.platform(), "cpus": os.cpu_count()}
    t0, cpu0 = time.perf_counter(), time.process_time()
    split = "fresh" if args.rule == "r4" else "dev"
    for which in args.survey:
        for name, (split, maker) in datasets(which).items():
            if name in result["survey"] or (
                args.only is not None and not any(name.startswith(o) for o in args.only)
            ):
                continue
            t1 = time.perf_counter()
            call = maker()
            made = time.perf_counter() - t1
            rss_before = _peak_rss_gib()
            probe = probe_as_fit(call)
            result["survey"][name] = {
                "split": split, "probe": probe, "data_seconds": made,
                "probe_seconds": probe["seconds"], "load": os.getloadavg(),
                "peak_rss_gib_before_probe": rss_before, "peak_rss_gib_after": _peak_rss_gib(),
            }
            print(f"{split} {name}: pick {probe['lags']} gain {probe['gain']:+.4f} share "
                  f"{probe['share']:.3f} ({probe['seconds']:.2f} s)", flush=True)
            result["decision"] = decide(result, split)
            write_json(out_path, result)
    if args.fits:
        makers = datasets(split)
        for name, case in result["survey"].items():
            if case["split"] != split or case["probe"]["lags"] != 2 or name in result["fits"]:
                continue
            if args.only is not None and not any(name.startswith(o) for o in args.only):
                continue
            call = makers[name][1]()
            side = {f"lag{k}": _fit_row(call, input_lags=k) for k in (1, 2)}
            side["auto_over_lag1"] = side["lag2"]["test_mse"] / side["lag1"]["test_mse"]
            result["fits"][name] = side
            print(f"{name}: lag1 {side['lag1']['test_mse']:.5g} lag2 "
                  f"{side['lag2']['test_mse']:.5g} (x{side['auto_over_lag1']:.3f})", flush=True)
            result["decision"] = decide(result, split)
            write_json(out_path, result)
    if args.probe_memory:
        result.setdefault("probe_memory", []).append(probe_memory(*args.probe_memory))
        write_json(out_path, result)
    for spec in args.seed_spread:
        name, lags, seed = spec.rsplit(":", 2)
        call = datasets("dev")[name][1]()
        row = _fit_row(call, input_lags=int(lags), seed=int(seed))
        result.setdefault("seed_spread", {}).setdefault(name, {})[f"lag{lags} seed {seed}"] = row
        print(f"{name}: input_lags {lags}, fit seed {seed}: {row['test_mse']:.5g}", flush=True)
        write_json(out_path, result)
    if args.identity:
        makers = datasets("dev")
        for name in args.identity:
            call = makers[name][1]()
            pair = {"auto": _fit_row(call, input_lags="auto"), "lag1": _fit_row(call, input_lags=1)}
            pair["equal_5_significant"] = bool(
                f"{pair['auto']['test_mse']:.5g}" == f"{pair['lag1']['test_mse']:.5g}"
                and f"{pair['auto']['val_mse']:.5g}" == f"{pair['lag1']['val_mse']:.5g}"
            )
            result["identity"][name] = pair
            print(f"{name}: auto {pair['auto']['test_mse']:.7g} lag1 "
                  f"{pair['lag1']['test_mse']:.7g}", flush=True)
            write_json(out_path, result)
    run.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0,
               load_after=os.getloadavg())
    result["runs"].append(run)
    result["decision"] = decide(result, split)
    write_json(out_path, result)
    print(json.dumps(result["decision"], indent=1))


if __name__ == "__main__":
    main()
