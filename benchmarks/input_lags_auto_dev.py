"""Development study for ``input_lags="auto"``: does the linear probe pick the lag that trains
better?

For every case: the probe's figures (:func:`napari_mesoscale.model.lag_probe.probe_input_lags`
on the data exactly as ``fit_mesoscale`` prepares them: training block only, no truth) and two
default fits, ``input_lags=1`` and ``input_lags=2`` (same seed, epochs and options), with their
held-out (test-block) one-step MSE in normalised units (``fit.scores["test_mse"]``). The probe
is **right** on a case when it picks 2 where lag 2's test MSE is lower by >= 5 %, picks 1 where
it is higher by >= 2 %, and either otherwise (the brief's rule, fixed before measuring).

Cases (development data only):

``zoo_dev``
    dev-family zoo brains (seeds 1000 + b; 240 neurons, 1,500 frames, 4 families,
    ``n_filters`` = the true count, 5 epochs): first-order units.
``zoo_osc``
    the same brains with the neurons of one instance (instance 0) replaced by damped
    oscillators (x[t+1] = c1_i x[t] - 0.81 x[t-1] + kicks, per-neuron periods 9-11 frames,
    kicked by the brain's first stimulus channel; their synapses removed): second-order
    positives built here, not the zoo's test families.
``resonators``
    a population of 48 such oscillators alone (one filter, 15 epochs; the population of
    ``tests/core/model/test_input_lags.py`` with other seeds).
``toy``
    toy-brain dev seeds (300 neurons, 500 frames, connectome, 30 epochs).
``calcium``
    the calcium path's realistic (dev) preset: cells detected on the rendered movie, fitted
    with ``run_pipeline``'s configuration and ``observation="calcium"`` (``--calcium-epochs``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/input_lags_auto_dev.py --zoo 1000 1001 --osc 1000 \
        --resonators 10 --toy 44 --calcium 0 --out benchmarks/results/input_lags_auto_dev.json

Cases already in ``--out`` are not refitted; ``--probe-only`` recomputes only the probe's
figures of the cases there (cheap) and the judgement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LOWER = 0.05  # lag 2 "clearly better": test MSE lower by >= 5 %
HIGHER = 0.02  # lag 2 "worse": test MSE higher by >= 2 %
#: Candidate rules (rule_table): pooled gain thresholds, per-neuron gains, shares of neurons.
POOLED = (0.003, 0.005, 0.01, 0.02, 0.03, 0.05, float("inf"))
NEURON_GAINS = (0.1, 0.25, 0.5)
SHARES = (0.01, 0.02, 0.05, 0.1, float("inf"))


OSCILLATOR_C2 = -0.81  # the oscillators' second-lag coefficient (radius 0.9)


def oscillator_c1(rng: np.random.Generator, n: int) -> np.ndarray:
    """First-lag coefficients of ``n`` oscillators of periods 9-11 frames (the first draw
    :func:`oscillators` makes from its generator)."""
    return 1.8 * np.cos(2 * np.pi / rng.uniform(9.0, 11.0, n))


def oscillators(
    n: int, t: int, kicks: np.ndarray, seed: int, burn: int = 100
) -> np.ndarray:
    """Damped oscillators of per-neuron periods 9-11 frames kicked by ``kicks`` (t,)."""
    rng = np.random.default_rng(seed)
    c1, c2 = oscillator_c1(rng, n), OSCILLATOR_C2
    pulses = np.r_[np.zeros(burn), kicks]
    x = np.zeros((t + burn, n))
    for k in range(2, t + burn):
        x[k] = c1 * x[k - 1] + c2 * x[k - 2] + pulses[k - 1] + 0.05 * rng.normal(size=n)
    return x[burn:]


def _resonator_case(seed: int, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(seed)
    n, t = 48, 600
    kicks = (rng.random(t) < 0.05) * rng.normal(0.0, 1.0, t)
    x = oscillators(n, t, kicks, seed + 1)
    positions = np.c_[np.zeros(n), rng.uniform(0, 60, n), rng.uniform(0, 60, n)]
    return {
        "activity": x, "positions": positions, "connectome": None, "stimulus": kicks,
        "fit": {"n_filters": 1, "epochs": 15, "seed": 0}, "config": None,
    }


def _zoo(seed: int, args: argparse.Namespace):
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    return make_zoo_brain(args.neurons, args.frames, "dev", n_families=4, seed=seed)


def _zoo_case(seed: int, args: argparse.Namespace) -> dict:
    brain = _zoo(seed, args)
    return {
        "activity": brain.activity, "positions": brain.positions,
        "connectome": brain.connectome(), "stimulus": brain.stimulus,
        "fit": {"n_filters": len(brain.motif_names), "epochs": args.zoo_epochs, "seed": 0},
        "config": None,
    }


def _zoo_osc_case(seed: int, args: argparse.Namespace) -> dict:
    brain = _zoo(seed, args)
    members = np.flatnonzero(brain.instance == 0)
    activity = np.array(brain.activity, dtype=np.float64)
    stim = np.asarray(brain.stimulus, dtype=np.float64)[:, 0]
    kicks = (stim - stim.mean()) / max(stim.std(), 1e-12)
    osc = oscillators(len(members), activity.shape[0], 0.3 * kicks, seed)
    scale = np.median(activity.std(0)) / max(osc.std(), 1e-12)
    activity[:, members] = activity[:, members].mean(0) + scale * osc
    adjacency = brain.adjacency.tolil(copy=True)
    adjacency[members, :] = 0
    adjacency[:, members] = 0
    return {
        "activity": activity, "positions": brain.positions,
        "connectome": adjacency.tocsr(), "stimulus": brain.stimulus,
        "fit": {"n_filters": len(brain.motif_names), "epochs": args.zoo_epochs, "seed": 0},
        "config": None, "oscillator_neurons": int(len(members)),
    }


def _toy_case(seed: int, args: argparse.Namespace) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(render=None, em=False, seed=seed)
    return {
        "activity": brain.activity, "positions": brain.positions,
        "connectome": brain.adjacency, "stimulus": brain.stimulus,
        "fit": {"epochs": args.toy_epochs, "seed": seed}, "config": None,
    }


def _calcium_case(seed: int, args: argparse.Namespace) -> dict:
    import scipy.sparse as sp

    from napari_mesoscale.connectome import register_point_sources
    from napari_mesoscale.segment import detect_point_sources
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.workflow import pipeline_config, restrict_adjacency
    from pipeline_calcium import _sample_parameters

    params = {**_sample_parameters(), "n_frames": args.calcium_frames}
    brain = make_toy_brain(
        **params, render="eager", em=False, seed=seed, calcium_preset="realistic"
    )
    sources = detect_point_sources(
        brain.movie, voxel_size=brain.voxel_size, cell_diameter=8.0, frame_rate=brain.frame_rate
    )
    reg = register_point_sources(sources.positions, brain.positions)
    dff = np.asarray(sources.dff, dtype=float)
    adjacency = sp.csr_matrix(restrict_adjacency(brain.adjacency, reg.matches, dff.shape[1]))
    return {
        "activity": dff, "positions": sources.positions, "connectome": adjacency,
        "stimulus": brain.stimulus.astype(float),
        "fit": {"epochs": args.calcium_epochs, "seed": 0, "observation": "calcium"},
        "config": pipeline_config(),
    }


MAKERS = {
    "zoo_dev": _zoo_case, "zoo_osc": _zoo_osc_case, "resonators": _resonator_case,
    "toy": _toy_case, "calcium": _calcium_case,
}


def probe(case: dict) -> dict:
    """The probe on the data as ``fit_mesoscale`` prepares them (calcium: its latent)."""
    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.fit import _calcium_latent
    from napari_mesoscale.model.lag_probe import probe_errors, probe_input_lags
    from napari_mesoscale.model.observation import calcium_config
    from napari_mesoscale.model.prepare import prepare_data

    options = {k: v for k, v in case["fit"].items() if k != "seed"}
    cfg = (case["config"] or ModelConfig()).merged(**options)
    activity = case["activity"]
    if cfg.observation == "calcium":
        cfg = calcium_config(cfg)
        activity = _calcium_latent(activity)[0]
    data = prepare_data(activity, case["positions"], case["stimulus"], cfg)
    out = probe_input_lags(data, case["connectome"]).to_dict()
    mse = probe_errors(data, case["connectome"])[0]
    per_gain = 1.0 - mse[1] / np.maximum(mse[0], 1e-300)
    out["neuron_gain_shares"] = {f"{g:g}": float(np.mean(per_gain >= g)) for g in NEURON_GAINS}
    out["neuron_gain_quantiles"] = {
        f"{q:g}": float(np.quantile(per_gain, q)) for q in (0.5, 0.9, 0.95, 0.99)
    }
    return out


def rule_table(cases: list[dict]) -> list[dict]:
    """How many cases every candidate rule gets right: 2 when the pooled gain >= g or the
    share of neurons with their own gain >= h is >= s (inf: that part off)."""
    rows = []
    for g in POOLED:
        for h in NEURON_GAINS:
            for s in SHARES:
                right = []
                for c in cases:
                    shares = c["probe"]["neuron_gain_shares"]
                    pick = 2 if c["probe"]["gain"] >= g or shares[f"{h:g}"] >= s else 1
                    needed = c["judge"]["needed"]
                    right.append(needed is None or needed == pick)
                off = float("inf")
                rows.append({"pooled_gain": None if g == off else g, "neuron_gain": h,
                             "share": None if s == off else s,
                             "right": int(sum(right)), "of": len(right),
                             "wrong": [f"{c['kind']} {c['seed']}"
                                       for c, r in zip(cases, right, strict=True) if not r]})
    return sorted(rows, key=lambda r: -r["right"])


def fit_lags(case: dict, lags: int, seed: int | None = None) -> dict:
    import torch

    from napari_mesoscale import fit_mesoscale

    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    fit = fit_mesoscale(
        case["activity"], case["positions"], connectome=case["connectome"],
        stimulus=case["stimulus"], config=case["config"], device="cpu",
        input_lags=lags, **{**case["fit"], **({} if seed is None else {"seed": seed})},
    )
    return {
        "test_mse": float(fit.scores["test_mse"]),
        "val_mse": float(fit.scores["val_mse"]),
        "epochs_run": int(len(fit.history)),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }


def judge(row: dict) -> dict:
    """Whether the probe's pick is right by the brief's rule."""
    ratio = row["lag2"]["test_mse"] / row["lag1"]["test_mse"]
    if ratio <= 1 - LOWER:
        needed = 2
    elif ratio >= 1 + HIGHER:
        needed = 1
    else:
        needed = None  # either is right
    pick = row["probe"]["lags"]
    return {"lag2_over_lag1": ratio, "needed": needed, "pick": pick,
            "right": needed is None or pick == needed}


def summarise(cases: list[dict]) -> dict:
    out: dict = {}
    for kind in sorted({c["kind"] for c in cases}) + ["all"]:
        rows = [c for c in cases if kind in ("all", c["kind"])]
        out[kind] = {
            "cases": len(rows),
            "right": int(sum(c["judge"]["right"] for c in rows)),
            "picked_2": int(sum(c["probe"]["lags"] == 2 for c in rows)),
            "needed_2": int(sum(c["judge"]["needed"] == 2 for c in rows)),
            "needed_1": int(sum(c["judge"]["needed"] == 1 for c in rows)),
            "probe_gain": {f"{c['kind']} {c['seed']}": c["probe"]["gain"] for c in rows},
            "max_probe_seconds_over_lag1_fit": float(
                max(c["probe"]["seconds"] / c["lag1"]["seconds"] for c in rows)
            ),
        }
    return out


def main() -> None:
    from _results import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", type=int, nargs="*", default=[], help="dev zoo seeds (1000+)")
    parser.add_argument("--osc", type=int, nargs="*", default=[],
                        help="dev zoo seeds with one instance replaced by oscillators")
    parser.add_argument("--resonators", type=int, nargs="*", default=[],
                        help="seeds of oscillator populations")
    parser.add_argument("--toy", type=int, nargs="*", default=[], help="toy-brain dev seeds")
    parser.add_argument("--calcium", type=int, nargs="*", default=[],
                        help="realistic-preset (dev) calcium seeds")
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--zoo-epochs", type=int, default=5)
    parser.add_argument("--toy-epochs", type=int, default=30)
    parser.add_argument("--calcium-frames", type=int, default=600)
    parser.add_argument("--calcium-epochs", type=int, default=20)
    parser.add_argument("--probe-only", action="store_true",
                        help="recompute the probe of the cases in --out (no fits)")
    parser.add_argument("--spread", nargs="*", default=[],
                        help="KIND:SEED cases in --out that get one more input_lags=1 fit with "
                             "fit seed +1 (the training noise the rule has to see through)")
    parser.add_argument("--merge", nargs="*", default=[],
                        help="JSON files of other runs whose cases (and runs) join --out")
    parser.add_argument("--out", default=str(HERE / "results" / "input_lags_auto_dev.json"))
    args = parser.parse_args()
    if any(s < 1000 for s in args.zoo + args.osc) or any(s < 4 for s in args.toy):
        raise SystemExit("development data only: zoo seeds >= 1000, toy seeds >= 4")
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {"cases": []}
    result.setdefault("runs", [])
    for other in args.merge:
        extra = json.loads(Path(other).read_text())
        known = {(c["kind"], c["seed"]) for c in result["cases"]}
        result["cases"] += [c for c in extra["cases"] if (c["kind"], c["seed"]) not in known]
        result["runs"] += extra.get("runs", [])
    result["rule"] = {"lag2_clearly_better": LOWER, "lag2_worse": HIGHER}
    run = {"args": vars(args), "load_before": os.getloadavg(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    t0, cpu0 = time.perf_counter(), time.process_time()
    if args.probe_only:
        todo = [(c["kind"], c["seed"]) for c in result["cases"]]
    else:
        todo = [("zoo_dev", s) for s in args.zoo] + [("zoo_osc", s) for s in args.osc]
        todo += [("resonators", s) for s in args.resonators] + [("toy", s) for s in args.toy]
        todo += [("calcium", s) for s in args.calcium]
    by_key = {(c["kind"], c["seed"]): c for c in result["cases"]}
    for kind, seed in todo:
        row = by_key.get((kind, seed))
        if row is not None and not args.probe_only:
            continue
        case = MAKERS[kind](seed, args)
        if row is None:
            row = {"kind": kind, "seed": seed}
            for lags in (1, 2):
                row[f"lag{lags}"] = fit_lags(case, lags)
            result["cases"].append(row)
        row["probe"] = probe(case)
        row["judge"] = judge(row)
        row["load"] = os.getloadavg()
        result["summary"] = summarise(result["cases"])
        write_json(out_path, result)  # after every case
        print(
            f"{kind} {seed}: probe gain {row['probe']['gain']:+.3f} -> {row['probe']['lags']}; "
            f"test MSE lag1 {row['lag1']['test_mse']:.5f} lag2 {row['lag2']['test_mse']:.5f} "
            f"(x{row['judge']['lag2_over_lag1']:.3f}); right {row['judge']['right']}",
            flush=True,
        )
    for key in args.spread:
        kind, seed = key.split(":")
        row = by_key.get((kind, int(seed)))
        if row is None or "lag1_other_seed" in row:
            continue
        case = MAKERS[kind](int(seed), args)
        row["lag1_other_seed"] = fit_lags(case, 1, seed=case["fit"]["seed"] + 1)
        row["lag1_other_seed_over_lag1"] = (
            row["lag1_other_seed"]["test_mse"] / row["lag1"]["test_mse"]
        )
        write_json(out_path, result)
        print(f"{kind} {seed}: lag 1, fit seed + 1: x{row['lag1_other_seed_over_lag1']:.3f}",
              flush=True)
    run.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0,
               load_after=os.getloadavg())
    result["runs"].append(run)
    result["summary"] = summarise(result["cases"])
    result["rules"] = rule_table(result["cases"])
    write_json(out_path, result)


if __name__ == "__main__":
    main()
