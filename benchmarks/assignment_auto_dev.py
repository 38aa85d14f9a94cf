"""Development study for ``assignment="auto"``: can the data choose between the two
assignment routes without the truth?

For every brain two candidate fits run with the same epochs and options:

``dynamics``
    ``assignment="gradient"`` from the dynamics initialisation (the default route), with
    ``wiring_features=2, wiring_scope="subcircuit", lambda_range=1`` unless ``--plain``;
``em``
    ``assignment="em", init="random"``: the prediction-loss discovery from a random start
    (model/reassign.py), with the same options.

Per candidate: motif / domain ARI against the truth (to judge the criterion only), the fit's
held-out validation one-step MSE (``fit.scores["val_mse"]``, normalised units: the candidate
criterion, no truth), the validation loss after every epoch (``fit.history["val_loss"]``: a
shorter fit's criterion), the 1- and 8-step free-running validation error (``val_rollout1/8``),
the criteria of the discovery's linearised filters (:func:`linearised_criteria`) and the
test-block MSE. A criterion is "right" on a brain when the
candidate with the lower value has the higher motif ARI (ties in ARI count as right).

Brains: ``--zoo`` dev-family zoo brains (seeds 1000 + b; 240 neurons, 1,500 frames, 4 families,
``n_filters`` = the true count, 5 epochs) and ``--toy`` toy-brain seeds (300 neurons, 500
frames, connectome, 30 epochs). Development data only.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/assignment_auto_dev.py --zoo 1000 1001 --toy 44 47 \
        --out benchmarks/results/assignment_auto_dev.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OPTIONS = {"wiring_features": 2.0, "wiring_scope": "subcircuit", "lambda_range": 1.0}
ROLLOUT_STEPS = (1, 8)
CANDIDATES = {"dynamics": {}, "em": {"assignment": "em", "init": "random"}}


def _mse(pred: np.ndarray, activity: np.ndarray, block: tuple[int, int]) -> float:
    start, stop = block
    return float(np.nanmean((pred[start + 1 : stop] - activity[start + 1 : stop]) ** 2))


def _val_rollout(fit, brain: dict, steps: int) -> float:
    """Mean over neurons of the ``steps``-step free-running error on the validation block,
    each neuron's squared error over its training-block variance (no truth needed)."""
    x = brain["activity"]
    v0, v1 = fit.blocks["val"]
    t0, t1 = fit.blocks["train"]
    pred = fit.predict(x, steps=steps, stimulus=brain["stimulus"])
    err = np.nanmean((pred[v0 + steps : v1] - x[v0 + steps : v1]) ** 2, axis=0)
    return float(np.nanmean(err / np.maximum(np.nanvar(x[t0:t1], axis=0), 1e-12)))


def _fit_candidate(name: str, brain: dict, options: dict) -> dict:
    import torch

    from napari_mesoscale import fit_mesoscale
    from napari_mesoscale.evaluate import recovery_scores

    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    fit = fit_mesoscale(
        brain["activity"],
        brain["positions"],
        connectome=brain["connectome"],
        stimulus=brain["stimulus"],
        device="cpu",
        **{**brain["fit"], **options, **CANDIDATES[name]},
    )
    row = recovery_scores(fit, brain["motif"], brain["instance"])
    pred = fit.predict(brain["activity"], stimulus=brain["stimulus"])
    for steps in ROLLOUT_STEPS:
        row[f"val_rollout{steps}"] = _val_rollout(fit, brain, steps)
    row.update(
        val_mse=float(fit.scores["val_mse"]),
        test_mse_normalised=float(fit.scores["test_mse"]),
        test_mse=_mse(pred, brain["activity"], fit.blocks["test"]),
        val_loss_per_epoch=[float(v) for v in fit.history["val_loss"]],
        motif_labels=np.asarray(fit.motif_labels).tolist(),
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - cpu0,
    )
    return row


def linearised_criteria(brain: dict, options: dict, labels: dict[str, np.ndarray]) -> dict:
    """Criteria of the discovery's linearised filters for every candidate's motif labels.

    The features are those of the ``em`` route's network (its drive weights, its
    communities' fields and unit contexts); its units are split so that every candidate's
    labels are constant on each. Per candidate: one pooled ridge filter per motif, fitted on
    random frames of the training block, scored on the validation block (``lin_val``, mean log
    error over neurons) and on the other half of the training frames (``lin_heldin``); and
    the mean silhouette of the units' cross-prediction profile distances under the
    candidate's grouping (``profile_silhouette``, higher = better).
    """
    import torch
    from scipy.spatial.distance import pdist, squareform

    from napari_mesoscale.model import reassign as ra
    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data

    fit_options = {k: v for k, v in brain["fit"].items() if k != "seed"}
    cfg = ModelConfig().merged(**{**fit_options, **options, **CANDIDATES["em"]})
    data = prepare_data(brain["activity"], brain["positions"], brain["stimulus"], cfg)
    init = initialise_model(data, cfg, brain["connectome"], brain["fit"]["seed"])
    net, units = init.net, init.units
    key = np.stack([units.unit, *labels.values()], 1)
    _, refined = np.unique(key, axis=0, return_inverse=True)
    refined = refined.ravel()
    slot = np.zeros(int(refined.max()) + 1, dtype=np.int64)
    slot[refined] = units.slot
    parts = ra.AssignmentUnits(refined, units.slot)
    z = torch.as_tensor(data.z32)
    mask = torch.as_tensor(data.finite).float()
    u = None if data.u32 is None else torch.as_tensor(data.u32)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        fit_d = ra._em_data(net, (z, mask, u), units, data.blocks["train"], 1024, rng)
        val_d = ra._em_data(net, (z, mask, u), units, data.blocks["val"], 1024, rng)
        f = fit_d.feats.shape[-1]
        proj = torch.randn(f, 32, generator=gen) / f**0.5
        bias = 0.5 * torch.randn(32, generator=gen)
        phi_fit = ra._expand(fit_d.feats, proj, bias)
        phi_val = ra._expand(val_d.feats, proj, bias)
        rows = (torch.arange(0, phi_fit.shape[0], 2), torch.arange(1, phi_fit.shape[0], 2))
        normal = ra._unit_normal_equations(phi_fit, fit_d, rows[0], parts)
        own = ra._ridge_solve(normal, np.arange(parts.n_units), 1e-3)
        cost = ra._unit_cost(ra._cross_errors(phi_fit, fit_d, rows[1], own), parts)
        rel = cost - np.diag(cost)[:, None]
        dist = squareform(np.nan_to_num(pdist(np.hstack([rel, rel.T]), "correlation"), nan=1.0))
        out: dict = {}
        for name, lab in labels.items():
            unit_label = np.zeros(parts.n_units, dtype=np.int64)
            unit_label[refined] = np.unique(lab, return_inverse=True)[1]
            coef = ra._ridge_solve(normal, unit_label, 1e-3)
            per = unit_label[refined]
            scores = {}
            for tag, phi, d, r in (
                ("lin_val", phi_val, val_d, torch.arange(phi_val.shape[0])),
                ("lin_heldin", phi_fit, fit_d, rows[1]),
            ):
                err = ra._cross_errors(phi, d, r, coef).double().numpy()
                scores[tag] = float(np.log(err[np.arange(len(per)), per] + 1e-6).mean())
            scores["profile_silhouette"] = _silhouette(dist, unit_label)
            out[name] = scores
    return out


def _silhouette(dist: np.ndarray, label: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(label)) < 2 or len(np.unique(label)) >= len(label):
        return 0.0
    return float(silhouette_score(dist, label, metric="precomputed"))


def _zoo_brain(seed: int, args: argparse.Namespace) -> dict:
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(args.neurons, args.frames, "dev", n_families=4, seed=seed)
    return {
        "kind": "zoo_dev",
        "activity": brain.activity,
        "positions": brain.positions,
        "connectome": brain.connectome(),
        "stimulus": brain.stimulus,
        "motif": brain.motif,
        "instance": brain.instance,
        "fit": {"n_filters": len(brain.motif_names), "epochs": args.zoo_epochs, "seed": 0},
    }


def _toy_brain(seed: int, args: argparse.Namespace) -> dict:
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(render=None, em=False, seed=seed)
    return {
        "kind": "toy",
        "activity": brain.activity,
        "positions": brain.positions,
        "connectome": brain.adjacency,
        "stimulus": brain.stimulus,
        "motif": brain.motif,
        "instance": brain.instance,
        "fit": {"epochs": args.toy_epochs, "seed": seed},
    }


def judge(rows: dict) -> dict:
    """Which candidate each criterion picks, and what the pick costs in motif ARI."""
    ari = {name: rows[name]["motif_ari"] for name in CANDIDATES}
    best = max(ari.values())
    out: dict = {"better": max(ari, key=ari.get) if len(set(ari.values())) > 1 else "tie"}
    n_epochs = min(len(rows[name]["val_loss_per_epoch"]) for name in CANDIDATES)
    criteria = {
        key: {name: sign * rows[name][key] for name in CANDIDATES}
        for key, sign in (
            ("val_mse", 1), ("val_rollout1", 1), ("val_rollout8", 1), ("lin_val", 1),
            ("lin_heldin", 1), ("profile_silhouette", -1)
        )
    }
    for e in sorted({1, 2, n_epochs}):
        if e <= n_epochs:
            criteria[f"val_loss_epoch{e}"] = {
                name: rows[name]["val_loss_per_epoch"][e - 1] for name in CANDIDATES
            }
    for key, values in criteria.items():
        pick = min(values, key=values.get)
        out[key] = {"pick": pick, "right": bool(ari[pick] >= best - 1e-9),
                    "cost": float(best - ari[pick]), "motif_ari": float(ari[pick])}
    return out


def summarise(brains: list[dict]) -> dict:
    keys = [k for k in brains[0]["judge"] if k != "better"] if brains else []
    out = {}
    for kind in sorted({b["kind"] for b in brains}) + ["all"]:
        rows = [b for b in brains if kind in ("all", b["kind"])]
        out[kind] = {"brains": len(rows)}
        for name in CANDIDATES:
            out[kind][f"{name}_median_motif_ari"] = float(
                np.median([b[name]["motif_ari"] for b in rows])
            )
        for key in keys:
            judged = [b["judge"][key] for b in rows if key in b["judge"]]
            if not judged:
                continue
            out[kind][key] = {
                "right": int(sum(j["right"] for j in judged)),
                "of": len(judged),
                "max_cost": float(max(j["cost"] for j in judged)),
                "median_motif_ari": float(np.median([j["motif_ari"] for j in judged])),
            }
    return out


def main() -> None:
    from _results import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", type=int, nargs="*", default=[], help="dev zoo seeds (1000+)")
    parser.add_argument("--toy", type=int, nargs="*", default=[], help="toy-brain dev seeds")
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--zoo-epochs", type=int, default=5)
    parser.add_argument("--toy-epochs", type=int, default=30)
    parser.add_argument("--plain", action="store_true", help="without the three options")
    parser.add_argument("--out", default=str(HERE / "results" / "assignment_auto_dev.json"))
    args = parser.parse_args()
    if any(s < 1000 for s in args.zoo) or any(s < 4 for s in args.toy):
        raise SystemExit("development data only: zoo seeds >= 1000, toy seeds >= 4")
    options = {} if args.plain else OPTIONS
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {"brains": []}
    done = {(b["kind"], b["seed"]) for b in result["brains"]}
    result.setdefault("runs", [])
    run = {"args": vars(args), "options": options, "load_before": os.getloadavg(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    t0, cpu0 = time.perf_counter(), time.process_time()
    todo = [("zoo_dev", s, _zoo_brain) for s in args.zoo]
    todo += [("toy", s, _toy_brain) for s in args.toy]
    for kind, seed, make in todo:
        if (kind, seed) in done:
            continue
        brain = make(seed, args)
        row: dict = {"kind": kind, "seed": seed}
        for name in CANDIDATES:
            row[name] = _fit_candidate(name, brain, options)
        labels = {name: np.asarray(row[name]["motif_labels"]) for name in CANDIDATES}
        lin = linearised_criteria(brain, options, labels)
        for name in CANDIDATES:
            row[name].update(lin[name])
        row["judge"] = judge(row)
        row["load"] = os.getloadavg()
        result["brains"].append(row)
        result["summary"] = summarise(result["brains"])
        write_json(out_path, result)  # after every brain
        print(
            f"{kind} {seed}: dynamics {row['dynamics']['motif_ari']:.3f} "
            f"(val {row['dynamics']['val_mse']:.5f}) em {row['em']['motif_ari']:.3f} "
            f"(val {row['em']['val_mse']:.5f}) pick {row['judge']['val_mse']['pick']}",
            flush=True,
        )
    run.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0,
               load_after=os.getloadavg())
    result["runs"].append(run)
    result["summary"] = summarise(result["brains"])
    write_json(out_path, result)


if __name__ == "__main__":
    main()
