"""Benchmark of the mesoscale model: accuracy against baselines, recovery, identifiability
ablations and cost. Writes ``benchmarks/results/model.json``.

Usage::

    python benchmarks/model.py            # full run (tens of minutes on a shared 2-core CPU)
    python benchmarks/model.py --quick    # a few minutes: fewer epochs, variants and sizes
    python benchmarks/model.py --accuracy-only --seeds 0 1 2 3   # accuracy over several brains

``--accuracy-only`` runs only the accuracy section (baselines and the two default fits, with and
without connectome; ``--ablations`` adds the ablation variants) for every toy-brain seed in
``--seeds`` and writes ``benchmarks/results/model_seeds.json`` after each seed: per-seed figures
and a summary (median / min / max over seeds, per-seed ratios model / baseline, and whether every
seed meets the issue's targets). It never touches ``model.json``. ``--input-lags-variants``
adds the two default fits with ``input_lags=2`` (the filters also see x[t-1]) beside them;
``--wiring-features W`` adds the connectome fit with ``wiring_features=W`` (the connectome's
wiring signature joins the initialisation's dynamics features) and ``--wiring-community``
beside it the same with ``wiring_scope="community"`` (whole communities relabelled by their
sub-circuit's wiring), ``--wiring-subcircuit`` the same after moving loop-wired neurons and
splitting communities into their connectome sub-circuits (``wiring_scope="subcircuit"``);
``--out`` writes the seeds
JSON elsewhere (default ``model_seeds.json``); ``--connectome-only`` leaves out the fits
without connectome.

Accuracy: the default toy brain (300 neurons, 500 frames, seed 0); contiguous 70/15/15 split;
every model scored on the same test frames (one-step and 8-step R², MSE; ratios of test MSE
model / baseline measured side by side in this run). Recovery: ARI of motif labels vs the true
motif types and of domain labels vs the true instances. Ablations: the identifiability remedies
of docs/design.md, each a full fit with one choice changed. Cost: training step time for
N = 1k, 10k (and 100k) neurons on synthetic data at the toy brain's density, each in its own
process (peak RSS), and training neuron-steps per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "model.json"
SEEDS_RESULTS = RESULTS.with_name("model_seeds.json")
DEFAULT_MODEL = "default_connectome"
ABLATIONS = {
    "random_init": (True, {"init": "random"}),
    "dynamics_init_no_groups": (True, {"group_init": False}),
    "shared_field_logits": (True, {"shared_field_logits": True}),
    "no_usage_balance": (True, {"lambda_balance": 0.0}),
    "strong_complexity": (True, {"lambda_complexity": 1.0}),
    "routing_all_pairs": (True, {"routing": "all"}),
    "final_reassign": (True, {"final_reassign": True}),
    "no_local_loss": (True, {"lambda_local": 0.0}),
}
# issue 5's targets on the default toy brain
TARGET_MOTIF_ARI = 0.9
TARGET_DOMAIN_ARI = 0.8


def _default(name: str) -> object:
    from napari_mesoscale.model.config import ModelConfig

    return getattr(ModelConfig(), name)


def _setup_threads() -> None:
    import torch

    torch.set_num_threads(1)


def _variants(
    ablations: bool,
    input_lags: bool = False,
    wiring: float = 0.0,
    connectome_only: bool = False,
    wiring_community: bool = False,
    wiring_subcircuit: bool = False,
    lambda_range: float = 0.0,
) -> dict:
    """The default fits (with and without connectome), plus the ablations, the
    ``input_lags=2`` fits and the fit with the wiring signature (``wiring_features=wiring``)
    when asked (``wiring_community``: also with ``wiring_scope="community"``,
    ``wiring_subcircuit``: also with ``wiring_scope="subcircuit"``, and with ``lambda_range`` >
    0 that fit with the out-of-range penalty); ``connectome_only`` leaves out the fits without
    connectome."""
    variants = {
        DEFAULT_MODEL: (True, {}),
        "default_no_connectome": (False, {}),
    }
    if wiring > 0:
        variants[f"{DEFAULT_MODEL}_wiring"] = (True, {"wiring_features": wiring})
    if wiring > 0 and wiring_community:
        options = {"wiring_features": wiring, "wiring_scope": "community"}
        variants[f"{DEFAULT_MODEL}_wiring_community"] = (True, options)
    if wiring > 0 and wiring_subcircuit:
        options = {"wiring_features": wiring, "wiring_scope": "subcircuit"}
        variants[f"{DEFAULT_MODEL}_wiring_subcircuit"] = (True, options)
        if lambda_range > 0:
            bounded = {**options, "lambda_range": lambda_range}
            variants[f"{DEFAULT_MODEL}_wiring_subcircuit_range"] = (True, bounded)
    if input_lags:
        variants[f"{DEFAULT_MODEL}_lag2"] = (True, {"input_lags": 2})
        variants["default_no_connectome_lag2"] = (False, {"input_lags": 2})
    if ablations:
        variants.update(ABLATIONS)
    if connectome_only:
        variants = {name: run for name, run in variants.items() if run[0]}
    return variants


def _score(pred: dict, x: np.ndarray, frames: slice) -> dict:
    from napari_mesoscale.evaluate import evaluate_forecast

    s = evaluate_forecast(pred, x, frames=frames)
    out = {}
    for h in pred:
        r = s[h]
        out[f"r2_{h}"] = r["r2"]
        out[f"mse_{h}"] = r["mse"]
        out[f"pearson_{h}"] = r["pearson_mean"]
    return out


def accuracy(seed: int, epochs: int, variants: dict, quick: bool) -> dict:
    from napari_mesoscale.baselines import default_baselines
    from napari_mesoscale.evaluate import forecast, recovery_scores
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(render=None, em=False, seed=seed)
    x, u = brain.activity, brain.stimulus
    t = x.shape[0]
    n_train = int(np.floor(0.7 * t))
    test0 = n_train + int(np.floor(0.15 * t))
    frames = slice(test0 + 1, t)  # targets inside the test block
    horizons = [1, 8]
    result: dict = {
        "brain": {
            "n_neurons": brain.n_neurons,
            "n_frames": t,
            "n_instances": brain.n_instances,
            "seed": seed,
            "n_synapse_pairs": int(brain.adjacency.nnz),
        },
        "test_frames": [frames.start, frames.stop],
    }
    # noise floor: the exact conditional mean of the toy dynamics
    floor = np.full_like(x, np.nan)
    floor[1:] = brain.one_step()[:-1]
    result["noise_floor"] = _score({1: floor}, x, frames)

    baselines = {}
    for name, model in default_baselines(brain.adjacency, seed=seed).items():
        t0 = time.perf_counter()
        model.fit(x[:n_train], stimulus=u[:n_train])
        sc = _score(forecast(model, x, horizons, u), x, frames)
        sc.update(n_params=model.n_params, seconds=time.perf_counter() - t0)
        baselines[name] = sc
        print(f"baseline {name}: {sc}", flush=True)
    result["baselines"] = baselines

    runs = {}
    for name, (use_connectome, options) in variants.items():
        t0 = time.perf_counter()
        fit = fit_mesoscale(
            x,
            brain.positions,
            connectome=brain.adjacency if use_connectome else None,
            stimulus=u,
            epochs=epochs,
            seed=seed,
            **options,
        )
        seconds = time.perf_counter() - t0
        sc = _score(forecast(fit, x, horizons, u), x, frames)
        rec = recovery_scores(fit, brain.motif, brain.instance)
        init_ari = None
        if fit.init_groups is not None:
            from sklearn.metrics import adjusted_rand_score

            init_ari = float(adjusted_rand_score(brain.motif, fit.init_groups))
        comparable = {
            k: v for k, v in baselines.items() if use_connectome or k != "connectome_linear"
        }
        sc.update(
            connectome=use_connectome,
            options=options,
            motif_ari=rec["motif_ari"],
            domain_ari=rec["domain_ari"],
            init_motif_ari=init_ari,
            n_domains=rec["n_domains"],
            n_params=fit.n_params,
            seconds=seconds,
            epochs_run=int(len(fit.history)),
            val_mse=float(fit.scores["val_mse"]),
            input_lags=fit.config.input_lags,
            assignment_chosen=(fit.assignment_choice or {}).get("chosen"),
            assignment_val_ratio=(fit.assignment_choice or {}).get("ratio"),
            assignment_restored=(fit.assignment_choice or {}).get("restored"),
            assignment_moved=(fit.assignment_choice or {}).get("moved"),
            stopped=fit.stopped,
            mse_ratio_vs={k: sc["mse_1"] / v["mse_1"] for k, v in baselines.items()},
            beats_every_baseline=bool(all(sc["mse_1"] < v["mse_1"] for v in comparable.values())),
            fewer_params_than_ridge=bool(fit.n_params < baselines["ridge_var"]["n_params"]),
            neuron_steps_per_s=float(
                brain.n_neurons * (n_train - 3) * len(fit.history) / max(seconds, 1e-9)
            ),
        )
        sc["targets"] = _targets(sc)
        runs[name] = sc
        print(
            f"model {name}: motif ARI {rec['motif_ari']:.3f} domain ARI {rec['domain_ari']:.3f} "
            f"mse1 {sc['mse_1']:.5f} r2_1 {sc['r2_1']:.3f} r2_8 {sc['r2_8']:.3f} "
            f"({seconds:.0f}s)",
            flush=True,
        )
    result["model"] = runs
    return result


def _targets(run: dict) -> dict:
    """Issue 5's targets for one fit scored by :func:`accuracy`."""
    out = {
        "motif_ari_ge_0.9": bool(run["motif_ari"] >= TARGET_MOTIF_ARI),
        "domain_ari_ge_0.8": bool(run["domain_ari"] >= TARGET_DOMAIN_ARI),
        "mse_below_every_baseline": run["beats_every_baseline"],
        "fewer_params_than_ridge": run["fewer_params_than_ridge"],
    }
    out["all"] = bool(all(out.values()))
    return out


def _spread(values: list[float]) -> dict:
    """Median, min and max of per-seed values."""
    a = np.asarray(values, dtype=float)
    return {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}


MODEL_KEYS = ("mse_1", "r2_1", "mse_8", "r2_8", "motif_ari", "domain_ari", "init_motif_ari")
BASELINE_KEYS = ("mse_1", "r2_1", "mse_8", "r2_8", "n_params")


def seeds_summary(per_seed: list[dict]) -> dict:
    """Summary over seeds of :func:`accuracy` results: median / min / max and per-seed targets."""
    seeds = [r["brain"]["seed"] for r in per_seed]
    models: dict = {}
    for name in per_seed[0]["model"]:
        runs = [r["model"][name] for r in per_seed if name in r["model"]]
        if len(runs) != len(per_seed):
            continue
        row = {k: _spread([m[k] for m in runs]) for k in MODEL_KEYS if runs[0][k] is not None}
        row["n_params"] = _spread([m["n_params"] for m in runs])
        row["mse_ratio_vs"] = {
            b: {
                "per_seed": [m["mse_ratio_vs"][b] for m in runs],
                **_spread([m["mse_ratio_vs"][b] for m in runs]),
            }
            for b in runs[0]["mse_ratio_vs"]
        }
        row["targets_per_seed"] = {str(s): m["targets"] for s, m in zip(seeds, runs, strict=True)}
        row["every_seed_meets_targets"] = bool(all(m["targets"]["all"] for m in runs))
        models[name] = row
    baselines = {
        b: {k: _spread([r["baselines"][b][k] for r in per_seed]) for k in BASELINE_KEYS}
        for b in per_seed[0]["baselines"]
    }
    best = {
        str(s): min(r["baselines"], key=lambda b, r=r: r["baselines"][b]["mse_1"])
        for s, r in zip(seeds, per_seed, strict=True)
    }
    return {
        "seeds": seeds,
        "targets": {
            "motif_ari": TARGET_MOTIF_ARI,
            "domain_ari": TARGET_DOMAIN_ARI,
            "model_mse_1": "below every baseline's (connectome_linear only when the model uses "
            "the connectome)",
            "n_params": "fewer than ridge_var",
        },
        "every_seed_meets_targets": models.get(DEFAULT_MODEL, {}).get("every_seed_meets_targets"),
        "noise_floor_mse_1": _spread([r["noise_floor"]["mse_1"] for r in per_seed]),
        "model": models,
        "baselines": baselines,
        "best_baseline_per_seed": best,
    }


def seeds_table(per_seed: list[dict]) -> str:
    """Markdown table of the default model and the baselines, one row per seed ('' when the
    default model was not run)."""
    if any(DEFAULT_MODEL not in r["model"] for r in per_seed):
        return ""
    base = list(per_seed[0]["baselines"])
    head = ["seed", "model MSE", "R² (1)", "R² (8)", "motif ARI", "domain ARI", "params"]
    head += [f"{b} MSE" for b in base] + ["best baseline: its MSE / model MSE", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in per_seed:
        m = r["model"][DEFAULT_MODEL]
        best = min(base, key=lambda b, r=r: r["baselines"][b]["mse_1"])
        cells = [str(r["brain"]["seed"]), f"{m['mse_1']:.5f}", f"{m['r2_1']:.3f}"]
        cells += [f"{m['r2_8']:.3f}", f"{m['motif_ari']:.3f}", f"{m['domain_ari']:.3f}"]
        cells += [f"{m['n_params']:,}"] + [f"{r['baselines'][b]['mse_1']:.5f}" for b in base]
        cells += [f"{best} {1 / m['mse_ratio_vs'][best]:.2f}×"]
        cells += [
            "all met"
            if m["targets"]["all"]
            else "MISSED: " + ", ".join(k for k, v in m["targets"].items() if k != "all" and not v)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_over_seeds(
    seeds: list[int],
    epochs: int,
    ablations: bool,
    quick: bool,
    input_lags: bool = False,
    out: Path = SEEDS_RESULTS,
    wiring: float = 0.0,
    connectome_only: bool = False,
    wiring_community: bool = False,
    wiring_subcircuit: bool = False,
    only: list[str] | None = None,
    freeze_assignment: bool = False,
    lambda_range: float = 0.0,
    probe_share: float | None = None,
    every_fit_lags: int | str | None = None,
    activity_assignment: str | None = None,
    linear_skip: str | None = None,
    restore_tolerance: float | None = None,
    neuron_gains: bool = False,
) -> dict:
    """Run :func:`accuracy` for each toy-brain seed; write ``out`` after each.

    ``only``: keep just these variants; ``freeze_assignment``: every fit keeps its initial
    assignment (``freeze_assignment_epochs=epochs``); ``probe_share``: every fit's
    ``range_probe_share`` (None: the default); ``every_fit_lags``: every fit's ``input_lags``
    (None: the default); ``activity_assignment``, ``linear_skip``, ``restore_tolerance``:
    every fit's (None: the default); ``neuron_gains``: every fit with ``neuron_gains=True``."""
    t0 = time.perf_counter()
    result: dict = {
        "quick": quick,
        "epochs": epochs,
        "ablations": ablations,
        "input_lags_variants": input_lags,
        "wiring_features_variant": wiring,
        "connectome_only": connectome_only,
        "wiring_community_variant": wiring_community,
        "wiring_subcircuit_variant": wiring_subcircuit,
        "only_variants": only,
        "freeze_assignment": freeze_assignment,
        "lambda_range_variant": lambda_range,
        "range_probe_share": probe_share or _default("range_probe_share"),
        "input_lags": every_fit_lags or _default("input_lags"),
        "activity_assignment": activity_assignment or _default("activity_assignment"),
        "linear_skip": linear_skip or _default("linear_skip"),
        "restore_tolerance": (
            _default("restore_tolerance") if restore_tolerance is None else restore_tolerance
        ),
        "neuron_gains": neuron_gains or _default("neuron_gains"),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": 1},
        "load_before": os.getloadavg(),
        "per_seed": [],
    }
    for seed in seeds:
        print(f"--- seed {seed}", flush=True)
        variants = _variants(
            ablations,
            input_lags,
            wiring,
            connectome_only,
            wiring_community,
            wiring_subcircuit,
            lambda_range,
        )
        if only:
            variants = {name: run for name, run in variants.items() if name in only}
        every_fit = {
            key: value
            for key, value in (
                ("freeze_assignment_epochs", epochs if freeze_assignment else None),
                ("range_probe_share", probe_share),
                ("input_lags", every_fit_lags),
                ("activity_assignment", activity_assignment),
                ("linear_skip", linear_skip),
                ("restore_tolerance", restore_tolerance),
                ("neuron_gains", True if neuron_gains else None),
            )
            if value is not None
        }
        variants = {name: (c, {**o, **every_fit}) for name, (c, o) in variants.items()}
        result["per_seed"].append(accuracy(seed, epochs, variants, quick))
        result["summary"] = seeds_summary(result["per_seed"])
        result["total_seconds"] = time.perf_counter() - t0
        result["cpu_seconds"] = time.process_time()
        result["load_after"] = os.getloadavg()
        write_json(out, result)
        print(f"wrote {out} ({len(result['per_seed'])} seeds)", flush=True)
    print(seeds_table(result["per_seed"]), flush=True)
    return result


def _cost_child(
    n: int,
    frames: int,
    steps: int,
    batch: int,
    range_off: int = 0,
    probe_share: float = 0.0,
    input_lags: int = 1,
) -> dict:
    """Runs in a subprocess: time `steps` training steps at N neurons (``range_off``: with
    ``lambda_range=0`` instead of the default; ``probe_share`` > 0: that
    ``range_probe_share``, else the default; ``input_lags``: 2 adds x[t-1] to the filters'
    inputs)."""
    _setup_threads()
    from napari_mesoscale.model import fit_mesoscale

    rng = np.random.default_rng(0)
    side = 128.0 * (n / 300.0) ** (1 / 3)  # the toy brain's density
    pos = rng.uniform(0, side, (n, 3))
    x = np.zeros((frames, n), dtype=np.float32)
    for t in range(1, frames):
        x[t] = 0.8 * x[t - 1] + rng.normal(0, 0.3, n).astype(np.float32)
    stamps: list[float] = []

    def cb(info: dict) -> bool:
        if info["stage"] == "train":
            stamps.append(time.perf_counter())
        return len(stamps) < steps + 1

    t0 = time.perf_counter()
    fit_mesoscale(
        x,
        pos,
        epochs=1,
        init="random",
        batch_frames=batch,
        rollout=1,
        split=(0.9, 0.05, 0.05),
        callback=cb,
        device="cpu",
        **({"lambda_range": 0.0} if range_off else {}),
        **({"range_probe_share": probe_share} if probe_share > 0 else {}),
        input_lags=input_lags,
    )
    total = time.perf_counter() - t0
    step = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")
    return {
        "n_neurons": n,
        "batch_frames": batch,
        "median_step_s": step,
        "neuron_steps_per_s": n * batch / step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "setup_and_steps_s": total,
    }


def _run_cost_child(
    n: int, steps: int, batch: int, range_off: bool, probe_share: float = 0.0, input_lags: int = 1
) -> dict:
    frames = max(100, batch * (steps + 3) * 2)
    cmd = [sys.executable, __file__, "--cost-child", str(n), str(frames), str(steps), str(batch)]
    cmd += [str(int(range_off)), str(probe_share), str(input_lags)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3000)
    if out.returncode != 0:
        print(f"cost N={n}: failed\n{out.stderr[-2000:]}", flush=True)
        return {"n_neurons": n, "error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def cost(
    sizes: list[int],
    steps: int,
    batch: int,
    compare_range_off: bool = False,
    probe_share: float | None = None,
    compare_input_lags: bool = False,
) -> dict:
    """Step time per N; ``compare_range_off``: also, right after each, the same step with
    ``lambda_range=0`` (the out-of-range penalty's share, side by side) and, with
    ``probe_share``, with ``range_probe_share=probe_share``; ``compare_input_lags``: also the
    same step with ``input_lags=2`` (the second lag's share, side by side)."""
    rows = []
    for n in sizes:
        row = _run_cost_child(n, steps, batch, range_off=False)
        if compare_input_lags and "median_step_s" in row:
            lag2 = _run_cost_child(n, steps, batch, False, input_lags=2)
            row["input_lags2_median_step_s"] = lag2.get("median_step_s")
            lag2_s = lag2.get("median_step_s", float("nan"))
            row["input_lags2_cost_ratio"] = lag2_s / row["median_step_s"]
        if compare_range_off and "median_step_s" in row:
            off = _run_cost_child(n, steps, batch, range_off=True)
            if "median_step_s" in off:
                row["range_off_median_step_s"] = off["median_step_s"]
                row["range_cost_ratio"] = row["median_step_s"] / off["median_step_s"]
            if probe_share is not None and "median_step_s" in off:
                share = _run_cost_child(n, steps, batch, False, probe_share)
                row["probe_share"] = probe_share
                row["probe_share_median_step_s"] = share.get("median_step_s")
                step_s = share.get("median_step_s", float("nan"))
                row["probe_share_cost_ratio"] = step_s / off["median_step_s"]
        rows.append(row)
        print(f"cost N={n}: {row}", flush=True)
    ok = [r for r in rows if "median_step_s" in r]
    growth = []
    for a, b in zip(ok[:-1], ok[1:], strict=False):
        growth.append(
            {
                "from": a["n_neurons"],
                "to": b["n_neurons"],
                "n_ratio": b["n_neurons"] / a["n_neurons"],
                "step_time_ratio": b["median_step_s"] / a["median_step_s"],
            }
        )
    return {"steps": rows, "growth": growth}


def large_brain(n: int, frames: int, epochs: int, seed: int) -> dict:
    """Wall time for a full fit of an n-neuron, `frames`-frame toy brain, with its accuracy."""
    from napari_mesoscale.baselines import RidgeVAR
    from napari_mesoscale.evaluate import forecast, recovery_scores
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(
        n_neurons=n, n_frames=frames, shape=None, render=None, em=False, seed=seed
    )
    x, u = brain.activity, brain.stimulus
    t0 = time.perf_counter()
    fit = fit_mesoscale(
        x, brain.positions, connectome=brain.adjacency, stimulus=u, epochs=epochs, seed=seed
    )
    seconds = time.perf_counter() - t0
    n_train = int(0.7 * frames)
    test0 = n_train + int(0.15 * frames)
    frames_sl = slice(test0 + 1, frames)
    sc = _score(forecast(fit, x, [1, 8], u), x, frames_sl)
    ridge = RidgeVAR().fit(x[:n_train], stimulus=u[:n_train])
    rsc = _score(forecast(ridge, x, [1], u), x, frames_sl)
    rec = recovery_scores(fit, brain.motif, brain.instance)
    return {
        "n_neurons": n,
        "n_frames": frames,
        "epochs": epochs,
        "fit_seconds": seconds,
        "under_10_min": seconds < 600,
        **sc,
        "ridge_mse_1": rsc["mse_1"],
        "motif_ari": rec["motif_ari"],
        "domain_ari": rec["domain_ari"],
        "neuron_steps_per_s": float(n * (n_train - 3) * len(fit.history) / seconds),
    }


def _lags_argument(value: str | None) -> int | str | None:
    """``--input-lags``: an integer, 'auto' or None."""
    return int(value) if value is not None and value != "auto" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument(
        "--cost-only", action="store_true", help="re-measure cost, update the existing JSON"
    )
    parser.add_argument(
        "--accuracy-only",
        action="store_true",
        help="only the accuracy section, for every seed in --seeds; writes model_seeds.json",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="toy-brain seeds for --accuracy-only (default --seed)"
    )
    parser.add_argument(
        "--ablations", action="store_true", help="with --accuracy-only: also the ablation variants"
    )
    parser.add_argument(
        "--input-lags-variants",
        action="store_true",
        help="with --accuracy-only: also the default fits with input_lags=2",
    )
    parser.add_argument(
        "--wiring-features",
        type=float,
        default=0.0,
        help="with --accuracy-only and > 0: also the default fit with the connectome's wiring "
        "signature at this weight (ModelConfig.wiring_features)",
    )
    parser.add_argument(
        "--wiring-community",
        action="store_true",
        help="with --wiring-features: also that fit with wiring_scope='community'",
    )
    parser.add_argument(
        "--wiring-subcircuit",
        action="store_true",
        help="with --wiring-features: also that fit with wiring_scope='subcircuit'",
    )
    parser.add_argument(
        "--lambda-range",
        type=float,
        default=0.0,
        help="with --wiring-subcircuit and > 0: also that fit with the out-of-range penalty at "
        "this weight (ModelConfig.lambda_range)",
    )
    parser.add_argument(
        "--only", nargs="+", help="with --accuracy-only: run just these variants (by name)"
    )
    parser.add_argument(
        "--freeze-assignment",
        action="store_true",
        help="with --accuracy-only: every fit keeps its initial assignment",
    )
    parser.add_argument(
        "--input-lags",
        default=None,
        help="with --accuracy-only: every fit's ModelConfig.input_lags (1, 2 or 'auto'; "
        "default: the ModelConfig default)",
    )
    parser.add_argument(
        "--linear-skip",
        choices=("none", "ridge"),
        default=None,
        help="with --accuracy-only: every fit's ModelConfig.linear_skip",
    )
    parser.add_argument(
        "--activity-assignment",
        choices=(
            "trained", "motifs", "initial", "validated", "restored", "motifs_moved", "reverted"
        ),
        default=None,
        help="with --accuracy-only: every fit's ModelConfig.activity_assignment",
    )
    parser.add_argument(
        "--restore-tolerance",
        type=float,
        default=None,
        help="with --accuracy-only: every fit's ModelConfig.restore_tolerance",
    )
    parser.add_argument(
        "--neuron-gains",
        action="store_true",
        help="with --accuracy-only: every fit with ModelConfig.neuron_gains=True",
    )
    parser.add_argument(
        "--connectome-only",
        action="store_true",
        help="with --accuracy-only: leave out the fits without connectome",
    )
    parser.add_argument(
        "--out", type=Path, default=SEEDS_RESULTS, help="with --accuracy-only: the JSON to write"
    )
    parser.add_argument(
        "--cost-range-off",
        action="store_true",
        help="with --cost-only: also time each N with lambda_range=0, side by side",
    )
    parser.add_argument(
        "--range-probe-share",
        type=float,
        default=None,
        help="ModelConfig.range_probe_share of every --accuracy-only fit (default: the "
        "ModelConfig default); with --cost-range-off: also time each N with this share",
    )
    parser.add_argument(
        "--cost-batch", type=int, default=2, help="with --cost-only: frames a step (default 2)"
    )
    parser.add_argument(
        "--cost-input-lags",
        action="store_true",
        help="with --cost-only: also time each N with input_lags=2, side by side",
    )
    parser.add_argument("--cost-child", nargs=7, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_child:
        *sizes, share, lags = args.cost_child
        print(json.dumps(_cost_child(*(int(v) for v in sizes), share, int(lags))))
        return
    if (args.seeds or args.ablations) and not args.accuracy_only:
        parser.error("--seeds and --ablations go with --accuracy-only (the full run is one seed)")
    _setup_threads()
    epochs = 15 if args.quick else 30
    if args.accuracy_only:
        accuracy_over_seeds(
            args.seeds or [args.seed],
            epochs,
            args.ablations,
            args.quick,
            args.input_lags_variants,
            args.out,
            args.wiring_features,
            args.connectome_only,
            args.wiring_community,
            args.wiring_subcircuit,
            args.only,
            args.freeze_assignment,
            args.lambda_range,
            args.range_probe_share,
            _lags_argument(args.input_lags),
            args.activity_assignment,
            args.linear_skip,
            args.restore_tolerance,
            args.neuron_gains,
        )
        return
    if args.cost_only:
        result = json.loads(RESULTS.read_text())
        sizes = [1000, 10000] if args.quick else [1000, 10000, 100000]
        share, batch = args.range_probe_share, args.cost_batch
        measured = cost(sizes, 4, batch, args.cost_range_off, share, args.cost_input_lags)
        # a share < 1, another batch or the second lag is a side study: its own key, the cost
        # table stays
        key = "cost" if share is None and batch == 2 else "cost_probe_share"
        key = "cost_input_lags" if args.cost_input_lags else key
        key += "" if batch == 2 else f"_batch{batch}"
        who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        own, children = (resource.getrusage(w) for w in who)
        cpu = sum(r.ru_utime + r.ru_stime for r in (own, children))
        result[key] = {**measured, "load": os.getloadavg(), "cpu_seconds": cpu}
        write_json(RESULTS, result)
        print(f"updated cost in {RESULTS}")
        return
    t0 = time.perf_counter()
    result = {
        "quick": args.quick,
        "epochs": epochs,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": 1},
        "accuracy": accuracy(args.seed, epochs, _variants(not args.quick), args.quick),
    }
    sizes = [1000, 10000] if args.quick else [1000, 10000, 100000]
    result["cost"] = cost(sizes, steps=4, batch=2)
    if not args.skip_large and not args.quick:
        result["large_2000x2000"] = large_brain(2000, 2000, epochs=8, seed=args.seed)
        print(f"large: {result['large_2000x2000']}", flush=True)
    result["total_seconds"] = time.perf_counter() - t0
    write_json(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
