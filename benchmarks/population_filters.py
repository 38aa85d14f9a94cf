"""Benchmark of population filters (René et al. 2020) inside the mesoscale model.

Writes ``benchmarks/results/population_filters.json`` and prints a markdown table.

Usage::

    python benchmarks/population_filters.py              # 2 brains x 30 s, 30 epochs (~8 min)
    python benchmarks/population_filters.py --quick      # 1 brain x 12 s, 8 epochs
    python benchmarks/population_filters.py --former-defaults --out FILE.json
        # every model row also fitted with the former ModelConfig defaults (FORMER_DEFAULTS)
    python benchmarks/population_filters.py --fit-option wiring_scope=neuron --out FILE.json
        # a fit_mesoscale option on top of every model row's own

Ground truth: :func:`napari_mesoscale.reproductions.populations.make_population_brain` — the
two-population GIF network of René et al. 2020 (438 excitatory + 109 inhibitory neurons, sine-
modulated input), each population laid out as one compact 3D domain, spikes binned at 20
frames/s into calcium traces (tau_decay 0.5 s). The model sees the clean calcium traces (T, N),
the soma positions, the connectome and the frame-averaged input as stimulus.

Rows, all on the same contiguous test block (last 15 %):

* ``configurable`` — ``n_filters=2``, the default configurable networks;
* ``population`` — ``n_filters=2, population_filters=2``: both filters are the one-step
  escape-rate population model (:mod:`napari_mesoscale.model.population_filter`);
* the same two with the connectome kernels frozen as drive weights (``edge_init="connectome",
  freeze_edges=True``: 21k fewer trainable numbers), and the population row once more with the
  assignment kept at its initialisation (``freeze_assignment_epochs=epochs``);
* the baselines of :mod:`napari_mesoscale.baselines` (persistence, mean, ridge VAR,
  connectome-constrained linear);
* with ``--former-defaults``, every model row once more as ``<row> [former defaults]``, fitted
  with :data:`~napari_mesoscale.model.config.FORMER_DEFAULTS` passed explicitly (the
  defaults before 2026-11-29: no wiring features, no range penalty), so both configurations
  are compared on the same brains in one run;
* ``oracle`` — a linear reference that knows the realised population activity of the next
  frame: per population, x(t+1) regressed on x(t) and A(t+1) with shared coefficients (least
  squares on all frames). It is not a bound: it has no neuron-specific terms, and the models
  can beat it.

Scores: neuron-level one-step MSE and R²; population-level R² of the domain means (the
population activity each domain's filter is meant to forecast); ARI of the filter labels and
of the domain labels against the true populations; trainable parameters in all and in the
filter bank alone; the learned ``leak`` of the population filters against the calcium decay
per frame exp(-1 / (frame_rate tau_decay)).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS_DIR = Path(__file__).parent / "results"
FRAME_RATE = 20.0
TAU_DECAY = 0.5
FROZEN_KERNELS = {"edge_init": "connectome", "freeze_edges": True}
ROWS = {
    "configurable": {"n_filters": 2},
    "population": {"n_filters": 2, "population_filters": 2},
    "configurable, frozen kernels": {"n_filters": 2, **FROZEN_KERNELS},
    "population, frozen kernels": {"n_filters": 2, "population_filters": 2, **FROZEN_KERNELS},
    "population, frozen kernels, assignment kept": {
        "n_filters": 2,
        "population_filters": 2,
        **FROZEN_KERNELS,
        "freeze_assignment_epochs": None,  # = epochs: the initial assignment is kept
    },
}
BASELINES = ("persistence", "mean", "ridge_var", "connectome_linear")
FORMER_SUFFIX = " [former defaults]"


def model_rows(former_defaults: bool) -> dict[str, dict]:
    """The model rows to fit: :data:`ROWS`, and with ``former_defaults`` each once more with
    :data:`~napari_mesoscale.model.config.FORMER_DEFAULTS` on top of its options."""
    from napari_mesoscale.model.config import FORMER_DEFAULTS

    rows = dict(ROWS)
    if former_defaults:
        rows |= {name + FORMER_SUFFIX: {**FORMER_DEFAULTS, **opts} for name, opts in ROWS.items()}
    return rows


def fit_options(options: list[str]) -> dict:
    """``NAME=VALUE`` strings (VALUE read as JSON, else kept as a string) as a dictionary."""
    out = {}
    for option in options:
        name, _, value = option.partition("=")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def frame_input(brain, burn_in: float) -> np.ndarray:
    """The simulation's external input averaged over every imaging frame: (T_frames, M)."""
    sim = brain.simulation
    steps = int(round(1.0 / (brain.frame_rate * sim.dt)))
    k0 = int(round(burn_in / sim.dt))
    t = brain.calcium.shape[0]
    return sim.input[k0 : k0 + t * steps].reshape(t, steps, -1).mean(1)


def scores(pred: np.ndarray, x: np.ndarray, population: np.ndarray, test: slice) -> dict:
    """Neuron-level MSE / R² and population-level R² (domain means) on the test frames."""
    p, y = pred[test], x[test]
    ok = np.isfinite(p).all(1)
    p, y = p[ok], y[ok]
    mse = float(np.mean((p - y) ** 2))
    r2 = float(1 - ((p - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    pop_r2 = []
    for a in np.unique(population):
        pa, ya = p[:, population == a].mean(1), y[:, population == a].mean(1)
        pop_r2.append(float(1 - ((pa - ya) ** 2).sum() / ((ya - ya.mean()) ** 2).sum()))
    return {"mse": mse, "r2": r2, "population_r2": pop_r2}


def oracle_prediction(x: np.ndarray, population: np.ndarray) -> np.ndarray:
    """x(t+1) from x(t) and the realised population activity A(t+1), per population."""
    pred = np.full_like(x, np.nan)
    for a in np.unique(population):
        xa = x[:, population == a]
        act = xa.mean(1)
        design = np.stack(
            [xa[:-1].ravel(), np.repeat(act[1:], xa.shape[1]), np.ones(xa[:-1].size)], 1
        )
        coef, *_ = np.linalg.lstsq(design, xa[1:].ravel(), rcond=None)
        pred[1:, population == a] = (design @ coef).reshape(xa[1:].shape)
    return pred


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from napari_mesoscale.baselines import default_baselines
    from napari_mesoscale.evaluate import forecast
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.reproductions.populations import make_population_brain

    t0 = time.perf_counter()
    brain = make_population_brain(
        duration=args.duration, burn_in=1.0, seed=seed, frame_rate=FRAME_RATE, tau_decay=TAU_DECAY
    )
    x = (brain.calcium if args.signal == "calcium" else brain.spikes).astype(np.float64)
    u = frame_input(brain, burn_in=1.0)
    pop = brain.population
    t = x.shape[0]
    n_train = int(np.floor(0.7 * t))
    test = slice(n_train + int(np.floor(0.15 * t)) + 1, t)
    out: dict = {
        "seed": seed,
        "n_neurons": int(x.shape[1]),
        "n_frames": t,
        "n_synapses": int(brain.adjacency.nnz),
        "simulation_seconds": time.perf_counter() - t0,
        "rows": {},
    }
    for name, model in default_baselines(brain.adjacency, seed=seed).items():
        if name not in BASELINES:
            continue
        model.fit(x[:n_train], stimulus=u[:n_train])
        pred = forecast(model, x, [1], u)[1]
        out["rows"][name] = {**scores(pred, x, pop, test), "n_params": int(model.n_params)}
    out["rows"]["oracle"] = scores(oracle_prediction(x, pop), x, pop, test)
    for name, options in model_rows(args.former_defaults).items():
        t1 = time.perf_counter()
        fit = fit_mesoscale(
            x,
            brain.positions,
            connectome=brain.adjacency,
            stimulus=u,
            epochs=args.epochs,
            seed=seed,
            rf_diameter=args.rf_diameter,
            **{
                k: args.epochs if v is None else v
                for k, v in {**options, **fit_options(args.fit_option)}.items()
            },
        )
        row = scores(fit.predict(x, stimulus=u), x, pop, test)
        bank = fit.net.bank
        row.update(
            motif_ari=float(adjusted_rand_score(pop, fit.motif_labels)),
            domain_ari=float(adjusted_rand_score(pop, fit.domain_labels)),
            n_params=int(fit.n_params),
            filter_params=int(sum(p.numel() for p in bank.parameters())),
            seconds=time.perf_counter() - t1,
            epochs_run=len(fit.history),
        )
        population_bank = getattr(bank, "population", None)
        if population_bank is not None:
            row["leak"] = population_bank.leak.detach().tolist()
        out["rows"][name] = row
        print(f"seed {seed} {name}: {row}", flush=True)
    out["seconds"] = time.perf_counter() - t0
    return out


def summarise(seeds: list[dict]) -> dict:
    names = list(seeds[0]["rows"])
    fitted = [name for name in names if "motif_ari" in seeds[0]["rows"][name]]
    summary = {}
    for name in names:
        rows = [s["rows"][name] for s in seeds]
        entry = {
            key: float(np.median([r[key] for r in rows]))
            for key in rows[0]
            if isinstance(rows[0][key], (int, float))
        }
        entry["population_r2"] = np.median([r["population_r2"] for r in rows], axis=0).tolist()
        entry["mse_per_seed"] = [r["mse"] for r in rows]
        summary[name] = entry
    for name in fitted:
        summary[name]["mse_ratio_vs"] = {
            other: float(
                np.median([s["rows"][name]["mse"] / s["rows"][other]["mse"] for s in seeds])
            )
            for other in names
            if other != name
        }
    return summary


def markdown(summary: dict, decay: float) -> str:
    lines = [
        "| row | test MSE | R² | population R² (E, I) | filter ARI | domain ARI | params "
        "(filters) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in summary.items():
        pr = ", ".join(f"{v:.3f}" for v in r["population_r2"])
        ari = f"{r['motif_ari']:.3f} | {r['domain_ari']:.3f}" if "motif_ari" in r else "– | –"
        params = r.get("n_params", "–")
        if "filter_params" in r:
            params = f"{int(r['n_params']):,} ({int(r['filter_params'])})"
        lines.append(f"| {name} | {r['mse']:.3g} | {r['r2']:.3f} | {pr} | {ari} | {params} |")
    lines.append(f"\ncalcium decay per frame exp(-1/(f tau)) = {decay:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--duration", type=float, default=30.0, help="recorded seconds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--rf-diameter", type=float, default=250.0, help="µm; must enclose one population"
    )
    parser.add_argument(
        "--signal",
        choices=("calcium", "spikes"),
        default="calcium",
        help="what the models see per neuron: calcium traces or spike counts per frame",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--former-defaults",
        action="store_true",
        help="also fit every model row with the former ModelConfig defaults (FORMER_DEFAULTS)",
    )
    parser.add_argument(
        "--fit-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fit_mesoscale option for every model row, on top of the row's own (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default results/population_filters_<signal>.json)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.duration, args.epochs = args.seeds[:1], 12.0, 8
    import torch

    torch.set_num_threads(args.threads)
    decay = float(np.exp(-1.0 / (FRAME_RATE * TAU_DECAY)))
    result = {
        "benchmark": "population_filters",
        "settings": {
            "seeds": args.seeds,
            "duration_s": args.duration,
            "frame_rate": FRAME_RATE,
            "epochs": args.epochs,
            "rf_diameter": args.rf_diameter,
            "signal": args.signal,
            "threads": args.threads,
            "quick": args.quick,
            "former_defaults": args.former_defaults,
            "fit_options": fit_options(args.fit_option),
            "command": " ".join(sys.argv),
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "calcium_decay_per_frame": decay,
        "seeds": [],
    }
    t0, c0 = time.perf_counter(), time.process_time()
    for seed in args.seeds:
        result["seeds"].append(run_seed(seed, args))
        result["summary"] = summarise(result["seeds"])
        result["machine"]["loadavg_now"] = os.getloadavg()
        result["seconds"] = time.perf_counter() - t0
        result["cpu_seconds"] = time.process_time() - c0
        write_json(args.out or RESULTS_DIR / f"population_filters_{args.signal}.json", result)
    print(markdown(result["summary"], decay))


if __name__ == "__main__":
    main()
