"""Benchmark of the mesoscopic GIF populations (René et al. 2020, issue 8 item 1).

Measures, side by side in one run:

* firing rates of the two-population E/I network (microscopic and mesoscopic) under the
  paper's sine-modulated input, against the paper's 5.9 Hz (E) and 8.4 Hz (I);
* recovery of the four connection weights from 10 s of mesoscopic data (several data
  seeds): Adam with clipping and restarts, then Fisher-scoring polish; relative errors,
  Cramer-Rao standard errors, log-likelihood at the fit vs at the truth;
* log-likelihood at the true parameters vs perturbed ones;
* a fit of the mesoscopic model to *microscopic* data (the paper's section 2.2 setting);
* the mesoscopic model as a one-step forecast baseline against persistence and the mean;
* speed: microscopic steps and neuron-steps per second, mesoscopic steps per second,
  likelihood + gradient time per second of data, for K=100 and the default K.

Usage: ``python benchmarks/populations.py [--quick]``; writes
``benchmarks/results/populations.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import write_json
from napari_mesoscale.reproductions.populations import (
    MesoscopicBaseline,
    MesoscopicModel,
    fit_mesoscopic,
    history_length,
    simulate_gif_network,
    sine_modulated_input,
    two_population_params,
)

K_FAST = 100


def rates_section(quick: bool) -> dict:
    p = two_population_params()
    paper = np.array(p.extra["reported_rates_hz"])
    dur_micro = 4.0 + 2 * np.pi if quick else 2.0 + 4 * np.pi
    I_ext = sine_modulated_input(dur_micro, 1e-3, **p.extra["input"], seed=3)
    trials = 1 if quick else 2
    t0 = time.perf_counter()
    micro = simulate_gif_network(p, dur_micro, 2e-4, I_ext, seed=1, n_trials=trials)
    wall_micro = time.perf_counter() - t0
    burn = dur_micro - (2 * np.pi if quick else 4 * np.pi)
    r_micro = micro.rates(burn)
    out = {
        "paper_hz": paper,
        "input": "B sin(omega t) + q sqrt(1 ms) xi_k (eq. 4.28 reconstructed; see "
        "microscopic.sine_modulated_input)",
        "micro": {
            "rates_hz": r_micro,
            "relative_to_paper": r_micro / paper - 1,
            "duration_s": dur_micro,
            "burn_in_s": burn,
            "trials": trials,
            "wall_s": wall_micro,
        },
        "meso": {},
    }
    dur_meso = 5.0 + 4 * np.pi
    I_m = sine_modulated_input(dur_meso, 1e-3, **p.extra["input"], seed=3)
    for K in (None, K_FAST):
        model = MesoscopicModel(p, 1e-3, K=K)
        seeds = 2 if quick else 4
        t0 = time.perf_counter()
        rs = [model.simulate(I_m, seed=s).rates(5.0) for s in range(seeds)]
        wall = (time.perf_counter() - t0) / seeds
        r = np.mean(rs, axis=0)
        out["meso"][f"K={model.K}"] = {
            "rates_hz": r,
            "sd_over_seeds_hz": np.std(rs, axis=0),
            "relative_to_paper": r / paper - 1,
            "relative_to_micro": r / r_micro - 1,
            "seeds": seeds,
            "duration_s": dur_meso,
            "sim_steps_per_s": dur_meso / 1e-3 / wall,
        }
    print("rates", json.dumps(out, default=lambda o: np.round(np.asarray(o), 3).tolist()))
    return out


def likelihood_section() -> dict:
    p = two_population_params()
    model = MesoscopicModel(p, 1e-3, K=K_FAST)
    I_ext = sine_modulated_input(10.0, 1e-3, **p.extra["input"], seed=3)
    sim = model.simulate(I_ext, seed=11)
    start = model.K + 300

    def ll(**ov):
        tens = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in ov.items()}
        with torch.no_grad():
            return float(model.log_likelihood(sim.counts, I_ext, start=start, overrides=tens))

    ll_true = ll()
    rows = []
    names = ["w_EE", "w_EI", "w_IE", "w_II"]
    for k, name in enumerate(names):
        for f in (0.95, 1.05, 0.9, 1.1):
            w = p.w.copy()
            w.flat[k] *= f
            rows.append({"perturbation": f"{name} x{f}", "delta_ll": ll(w=w) - ll_true})
    for name, f in (("c", 1.1), ("tau_m", 0.9), ("delta_u", 1.1), ("J_theta", 1.2), ("tau_s", 1.2)):
        rows.append(
            {
                "perturbation": f"{name} x{f}",
                "delta_ll": ll(**{name: getattr(p, name) * f}) - ll_true,
            }
        )
    rng = np.random.default_rng(0)
    for j in range(5):
        w = p.w * (1 + rng.uniform(-0.1, 0.1, (2, 2)))
        rows.append({"perturbation": f"w random +-10% #{j}", "delta_ll": ll(w=w) - ll_true})
    out = {
        "data_s": 10.0,
        "K": model.K,
        "ll_true": ll_true,
        "perturbed": rows,
        "all_lower": bool(all(r["delta_ll"] < 0 for r in rows)),
    }
    print("likelihood", json.dumps(out)[:400])
    return out


def fit_section(quick: bool) -> dict:
    p = two_population_params()
    runs = []
    seeds = [1, 2] if quick else [1, 2, 3, 4]
    for ds in seeds:
        model = MesoscopicModel(p, 1e-3, K=K_FAST)
        I_ext = sine_modulated_input(10.0, 1e-3, **p.extra["input"], seed=3 + ds)
        sim = model.simulate(I_ext, seed=ds)
        t0 = time.perf_counter()
        fit = fit_mesoscopic(
            sim.counts,
            I_ext,
            params=p,
            fit=("w",),
            K=K_FAST,
            n_restarts=3,
            n_iter=60,
            lr=0.05,
            lr_final=0.005,
            polish_steps=4,
            seed=ds,
        )
        wall = time.perf_counter() - t0
        with torch.no_grad():
            ll_true = float(model.log_likelihood(sim.counts, I_ext, start=fit.score_start))
        best = max(fit.restarts, key=lambda r: r["log_likelihood"])
        runs.append(
            {
                "data_seed": ds,
                "w_true": p.w,
                "w_fit": fit.params.w,
                "relative_error": fit.relative_error(p, "w"),
                "max_relative_error": float(fit.relative_error(p, "w").max()),
                "cramer_rao_sd_relative": fit.stderr["w"] / np.abs(p.w),
                "adam_only_relative_error": np.abs(best["final"]["w"] / p.w - 1),
                "init_relative_offsets": [np.abs(r["init"]["w"] / p.w - 1) for r in fit.restarts],
                "ll_fit_minus_truth": fit.log_likelihood - ll_true,
                "wall_s": wall,
                "rates_hz": sim.rates(1.0),
            }
        )
        print(
            "fit seed",
            ds,
            "rel err",
            np.round(runs[-1]["relative_error"].ravel(), 3),
            "adam only",
            np.round(runs[-1]["adam_only_relative_error"].ravel(), 3),
            "CRLB",
            np.round(runs[-1]["cramer_rao_sd_relative"].ravel(), 3),
            f"{wall:.1f}s",
            flush=True,
        )
    return {
        "setting": "10 s of mesoscopic data (K=100), sine input; fit w only; 3 restarts from "
        "+-30 %, Adam lr 0.05->0.005 (60 iterations of 1 s minibatches, burn-in 0.3 s, "
        "clip 100), then 4 Fisher-scoring steps on the full data",
        "runs": runs,
        "all_within_10_percent": bool(all(r["max_relative_error"] < 0.10 for r in runs)),
    }


def micro_fit_section() -> dict:
    """Fit the mesoscopic model to microscopic data (René et al. 2020, section 2.2 setting)."""
    p = two_population_params()
    dur = 11.0
    I_ext = sine_modulated_input(dur, 1e-3, **p.extra["input"], seed=3)
    t0 = time.perf_counter()
    micro = simulate_gif_network(p, dur, 2e-4, I_ext, seed=5)
    wall_sim = time.perf_counter() - t0
    counts = micro.binned_counts(1e-3)
    t0 = time.perf_counter()
    fit = fit_mesoscopic(
        counts,
        I_ext,
        params=p,
        fit=("w",),
        K=K_FAST,
        n_restarts=2,
        n_iter=60,
        lr=0.05,
        lr_final=0.005,
        polish_steps=4,
        seed=0,
        data_burnin_steps=1000,
    )
    out = {
        "data": "11 s microscopic simulation (438 E + 109 I GIF neurons, dt 0.2 ms) binned to "
        "1 ms; first 1 s not scored",
        "w_micro": p.w,
        "w_fit": fit.params.w,
        "relative_difference": fit.relative_error(p, "w"),
        "cramer_rao_sd": fit.stderr["w"],
        "wall_sim_s": wall_sim,
        "wall_fit_s": time.perf_counter() - t0,
    }
    print(
        "micro fit",
        np.round(fit.params.w.ravel(), 3),
        np.round(out["relative_difference"].ravel(), 3),
    )
    return out


def baseline_section() -> dict:
    p = two_population_params()
    model = MesoscopicModel(p, 1e-3, K=K_FAST)
    I_ext = sine_modulated_input(10.0, 1e-3, **p.extra["input"], seed=21)
    sim = model.simulate(I_ext, seed=21)
    A = sim.activity
    base = MesoscopicBaseline(
        p, fit=("w",), K=K_FAST, n_restarts=2, n_iter=40, lr=0.05, lr_final=0.005, polish_steps=3
    )
    base.fit(A[:6000], stimulus=I_ext[:6000])
    pred = base.predict(A[6000:], steps=1, stimulus=I_ext[6000:])[1:]
    tgt = A[6001:]
    sl = slice(300, None)
    mse = lambda x: float(np.mean((x[sl] - tgt[sl]) ** 2))  # noqa: E731
    out = {
        "setting": "train 6 s, test 4 s (first 0.3 s of test as burn-in), population rates in "
        "Hz at 1 ms",
        "mse_mesoscopic": mse(pred),
        "mse_persistence": mse(A[6000:-1]),
        "mse_train_mean": mse(np.broadcast_to(A[:6000].mean(0), tgt.shape)),
        "mse_expected_at_truth": mse(sim.expected[6001:] / (p.N * 1e-3)),
    }
    print("baseline", out)
    return out


def speed_section() -> dict:
    p = two_population_params()
    out: dict = {}
    I1 = sine_modulated_input(1.0, 1e-3, **p.extra["input"], seed=0)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        simulate_gif_network(p, 1.0, 2e-4, I1, seed=0)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    out["micro"] = {
        "neurons": int(p.N.sum()),
        "dt_s": 2e-4,
        "median_wall_per_simulated_s": med,
        "steps_per_s": 5000 / med,
        "neuron_steps_per_s": 5000 * int(p.N.sum()) / med,
    }
    I10 = sine_modulated_input(10.0, 1e-3, **p.extra["input"], seed=0)
    for K in (K_FAST, history_length(p, 1e-3)):
        model = MesoscopicModel(p, 1e-3, K=K)
        t0 = time.perf_counter()
        sim = model.simulate(I10, seed=0)
        t_sim = time.perf_counter() - t0
        w = torch.tensor(p.w, requires_grad=True)
        window = []
        for rep in range(3):
            st = 2000 + 1000 * rep
            t0 = time.perf_counter()
            ll = model.log_likelihood(
                sim.counts, I10, start=st, stop=st + 1000, init_at=st - 300, overrides={"w": w}
            )
            ll.backward()
            window.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ll = model.log_likelihood(sim.counts, I10, start=K + 300, overrides={"w": w})
        ll.backward()
        t_full = time.perf_counter() - t0
        out[f"meso_K={K}"] = {
            "sim_steps_per_s": 10000 / t_sim,
            "ll_grad_1s_window_median_s": float(np.median(window)),
            "ll_grad_full_10s_s": t_full,
        }
    print("speed", out)
    return out


def _patch(section: str, path: Path) -> None:
    """Recompute one deterministic section and update it in an existing results file."""
    res = json.loads(path.read_text())
    res[section] = {"likelihood": likelihood_section}[section]()
    write_json(path, res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer seeds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "populations.json"))
    ap.add_argument("--only", choices=["likelihood"], help="recompute one section in --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        _patch(args.only, Path(args.out))
        return
    t_all = time.perf_counter()
    res = {
        "benchmark": "populations",
        "quick": args.quick,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "threads": args.threads,
    }
    res["rates"] = rates_section(args.quick)
    res["likelihood"] = likelihood_section()
    res["fit_meso_data"] = fit_section(args.quick)
    res["baseline"] = baseline_section()
    if not args.quick:
        res["fit_micro_data"] = micro_fit_section()
    res["speed"] = speed_section()
    res["total_wall_s"] = time.perf_counter() - t_all
    write_json(Path(args.out), res)
    print(f"wrote {args.out} in {res['total_wall_s']:.0f} s")


if __name__ == "__main__":
    main()
