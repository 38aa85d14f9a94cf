"""Diagnosis: when and why training the assignment moves the motif labels (dev brains only).

Issue #13. On the zoo's dev brains (``make_zoo_brain(N, T, "dev", n_families=4, seed=SEED)``,
the brains of ``benchmarks/motif_zoo.py --families dev``) every fit below is run for
``--epochs`` epochs (20) side by side, and after **every epoch** the script records, from the
net as it is then (not the best-validation state the fit returns):

``motif_ari`` / ``domain_ari``
    ``recovery_scores`` of the hard assignment (``net.choice()``: filter = motif label,
    (field, filter) pair = domain), as the fit's ``motif_labels`` / ``domain_labels`` are made.
``test_mse_z``
    Held-out hard one-step MSE on the test block (last 15 %), normalised units (the scoring
    of ``MesoscaleFit``: ``model/result.py _block_errors``).
``moved_since_init``
    The fraction of neurons whose filter (matched to the reference's by the Hungarian
    method, so that a permutation of filter indices is no move) differs from the default
    fit's labels after epoch 5
    (``freeze_assignment_epochs``: the assignment is frozen until then, so these are the
    dynamics initialisation's labels; every fit starts from the same initialisation, seed 0).
    For the returned labels also per true family, and where the movers went: to a filter
    whose initial majority family is the mover's own, another family's, or an unused filter.
    ``model`` must come first in ``--fits`` for the others to be counted from its labels.

At the end of each fit: the returned labels' ARI, the held-out one-step MSE in activity units
(``fit.predict``, as in motif_zoo.py), the epoch of the returned (best-validation) state
and the per-family move table of the returned labels. Fits (``--fits``):

``model``
    The defaults (assignment frozen for 5 epochs, then ``lr_assignment=0.05``, tau annealed).
``freeze``
    ``freeze_assignment_epochs=epochs``: the initialisation's assignment kept for the whole fit.
``lr_small``
    ``lr_assignment=0.01``.
``alternating``
    ``assignment="alternating"`` from the dynamics initialisation (communities reassigned to
    the filter that predicts them best on held-in frames after every epoch).

Usage (two processes, one thread each)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/motif_zoo_label_drift.py \\
        --seeds 1000 1001 1002 1003 --out benchmarks/results/motif_zoo_label_drift_a.json
    python benchmarks/motif_zoo_label_drift.py --summarise a.json b.json --out summary.json
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from motif_zoo import _blocks
from napari_mesoscale import fit_mesoscale
from napari_mesoscale.evaluate import recovery_scores
from napari_mesoscale.model import training
from napari_mesoscale.model.result import _block_errors
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

HERE = Path(__file__).resolve().parent
FIT_OPTIONS = {
    "model": {},
    "freeze": {"freeze_assignment_epochs": None},  # None: the number of epochs
    "lr_small": {"lr_assignment": 0.01},
    "alternating": {"assignment": "alternating"},
}


def _matched(filt: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``filt`` relabelled so that it overlaps ``ref`` most (Hungarian matching of filters: a
    mere permutation of the filters' indices is no move)."""
    from scipy.optimize import linear_sum_assignment

    k = int(max(filt.max(), ref.max())) + 1
    table = np.zeros((k, k))
    np.add.at(table, (filt, ref), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    return np.array([mapping[int(f)] for f in filt])


def _moves(filt: np.ndarray, ref: np.ndarray, brain) -> dict:
    """Fraction of neurons whose filter (matched to ``ref``'s, :func:`_matched`) differs from
    ``ref``, overall and per family, and where the movers went (by the initial majority family
    of their new filter)."""
    filt = _matched(filt, ref)
    majority = {}
    for f in np.unique(ref):
        fam = np.bincount(brain.motif[ref == f], minlength=len(brain.motif_names))
        majority[int(f)] = int(fam.argmax())
    moved = filt != ref
    out: dict = {"all": float(moved.mean()), "families": {}}
    for k, name in enumerate(brain.motif_names):
        sel = brain.motif == k
        if not sel.any():
            continue
        dest = {"own": 0, "other_family": {}, "unused_filter": 0}
        for f in filt[sel & moved]:
            m = majority.get(int(f))
            if m is None:
                dest["unused_filter"] += 1
            elif m == k:
                dest["own"] += 1
            else:
                other = brain.motif_names[m]
                dest["other_family"][other] = dest["other_family"].get(other, 0) + 1
        out["families"][name] = {
            "neurons": int(sel.sum()),
            "moved": float(moved[sel].mean()),
            "to": dest,
        }
    return out


def run_fit(brain, name: str, args: argparse.Namespace, ref: np.ndarray | None = None) -> dict:
    """One fit with per-epoch labels and held-out error (``training._end_epoch`` wrapped).

    ``ref``: the labels moves are counted from (the default fit's after epoch 5, i.e. the
    initialisation's); None: this fit's own after epoch 5."""
    act, stim = brain.activity, brain.stimulus
    blocks = _blocks(act.shape[0])
    te0, te1 = blocks["test"]
    options = dict(FIT_OPTIONS[name])
    if "freeze_assignment_epochs" in options:
        options["freeze_assignment_epochs"] = args.epochs
    epochs: list[dict] = []
    labels: list[np.ndarray] = []
    original = training._end_epoch

    def end_epoch(net, tensors, state, cfg, epoch, sums, seconds):  # noqa: ANN001
        original(net, tensors, state, cfg, epoch, sums, seconds)
        _, field, filt = net.choice()
        field, filt = field.cpu().numpy(), filt.cpu().numpy()
        pair = field.astype(np.int64) * cfg.n_filters + filt
        domain = np.unique(pair, return_inverse=True)[1]
        t = SimpleNamespace(z=tensors.z, m=tensors.mask, u=tensors.u)
        with torch.no_grad():
            _, mse = _block_errors(net, t, te0, te1)
        scores = recovery_scores(filt, brain.motif, brain.instance, domain_labels=domain)
        labels.append(filt)
        epochs.append(
            {
                "epoch": epoch,
                "motif_ari": scores["motif_ari"],
                "domain_ari": scores["domain_ari"],
                "n_motifs": scores["n_motifs"],
                "test_mse_z": mse,
                "val_loss": state.history[-1]["val_loss"],
                "tau": state.history[-1]["tau"],
                "mode": state.history[-1]["mode"],
            }
        )

    training._end_epoch = end_epoch
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        fit = fit_mesoscale(
            act,
            brain.positions,
            connectome=brain.connectome(),
            stimulus=stim,
            n_filters=len(brain.motif_names),
            seed=0,
            device="cpu",
            epochs=args.epochs,
            **options,
        )
    finally:
        training._end_epoch = original
    if fit.blocks != blocks:
        raise RuntimeError(f"fit {name} split the frames as {fit.blocks}, not {blocks}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ref_epoch = min(5, args.epochs) - 1  # labels after the default's frozen epochs
    if ref is None:
        ref = labels[ref_epoch]
    for row, filt in zip(epochs, labels, strict=True):
        row["moved_since_init"] = float((_matched(filt, ref) != ref).mean())
    final = recovery_scores(fit, brain.motif, brain.instance)
    pred = fit.predict(act, stimulus=stim)
    final["mse"] = float(np.nanmean((pred[te0 + 1 : te1] - act[te0 + 1 : te1]) ** 2))
    final_filt = np.asarray(fit.motif_labels)
    same = [e for e, f in enumerate(labels) if np.array_equal(f, final_filt)]
    out = {
        "options": options,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "stopped": fit.stopped,
        "final": final,
        "returned_state_matches_epochs": same,
        "epochs": epochs,
        "moves_final_vs_init": _moves(final_filt, ref, brain),
        "moves_last_epoch_vs_init": _moves(labels[-1], ref, brain),
        "labels_init": ref.tolist(),
        "labels_final": final_filt.tolist(),
    }
    print(
        f"{name}: motif "
        f"{final['motif_ari']:.3f} (epoch 5 {epochs[ref_epoch]['motif_ari']:.3f}) "
        f"domain {final['domain_ari']:.3f} mse {final['mse']:.5f} moved "
        f"{out['moves_final_vs_init']['all']:.3f} {seconds:.0f} s",
        flush=True,
    )
    return out


def summarise(paths: list[str]) -> dict:
    """Per fit: median motif / domain ARI of the returned labels, the default fit's labels
    after epoch 5 (the initialisation's), per-brain MSE over the default 20-epoch fit's, and
    the rule fixed before the run (see the module's commit message)."""
    import json

    brains: dict[int, dict] = {}
    for p in paths:
        for b in json.loads(Path(p).read_text())["brains"]:
            brains.setdefault(b["seed"], {}).update(b)
    seeds = sorted(brains)
    init = [brains[s]["fits"]["model"]["epochs"][4] for s in seeds]
    out: dict = {
        "seeds": seeds,
        "epoch_5_labels": {
            "median_motif_ari": float(np.median([r["motif_ari"] for r in init])),
            "median_domain_ari": float(np.median([r["domain_ari"] for r in init])),
        },
        "fits": {},
    }
    ref_ari = out["epoch_5_labels"]["median_motif_ari"]
    names = [n for n in FIT_OPTIONS if all(n in brains[s]["fits"] for s in seeds)]
    for name in names:
        rows = [brains[s]["fits"][name] for s in seeds]
        ratio = {
            s: r["final"]["mse"] / brains[s]["fits"]["model"]["final"]["mse"]
            for s, r in zip(seeds, rows, strict=True)
        }
        med = float(np.median([r["final"]["motif_ari"] for r in rows]))
        within = sum(v <= 1.01 for v in ratio.values())
        out["fits"][name] = {
            "median_motif_ari": med,
            "median_domain_ari": float(np.median([r["final"]["domain_ari"] for r in rows])),
            "motif_ari": {s: r["final"]["motif_ari"] for s, r in zip(seeds, rows, strict=True)},
            "mse_over_default": ratio,
            "mse_within_1pct_of_default": [int(within), len(seeds)],
            "median_moved_since_init": float(
                np.median([r["moves_final_vs_init"]["all"] for r in rows])
            ),
            "median_seconds": float(np.median([r["seconds"] for r in rows])),
            "promising": bool(
                name != "model" and med >= ref_ari - 0.01 and within >= len(seeds) - 1
            ),
            "per_epoch": _per_epoch(brains, seeds, name),
            "moves_by_family": _moves_by_family(brains, seeds, name),
        }
    return out


def _per_epoch(brains: dict, seeds: list[int], name: str) -> list[dict]:
    """Medians over brains after every epoch (the net then, not the returned state): motif /
    domain ARI, fraction moved, held-out MSE (normalised) and its ratio to ``freeze``'s at the
    same epoch (what moving the labels gained), where ``freeze`` was run."""
    rows = []
    n_epochs = min(len(brains[s]["fits"][name]["epochs"]) for s in seeds)
    for e in range(n_epochs):
        at = [brains[s]["fits"][name]["epochs"][e] for s in seeds]
        row = {"epoch": e + 1}
        for key in ("motif_ari", "domain_ari", "moved_since_init", "test_mse_z"):
            row[f"median_{key}"] = float(np.median([r[key] for r in at]))
        if all("freeze" in brains[s]["fits"] for s in seeds):
            ratio = [
                r["test_mse_z"] / brains[s]["fits"]["freeze"]["epochs"][e]["test_mse_z"]
                for s, r in zip(seeds, at, strict=True)
            ]
            row["test_mse_z_over_freeze"] = [float(v) for v in ratio]
        rows.append(row)
    return rows


def _moves_by_family(brains: dict, seeds: list[int], name: str) -> dict:
    """The returned labels' moves from the initialisation's, summed over brains per family."""
    out: dict = {}
    for s in seeds:
        for fam, row in brains[s]["fits"][name]["moves_final_vs_init"]["families"].items():
            acc = out.setdefault(fam, {"neurons": 0, "moved": 0, "own": 0, "unused_filter": 0})
            acc["neurons"] += row["neurons"]
            acc["moved"] += int(round(row["moved"] * row["neurons"]))
            acc["own"] += row["to"]["own"]
            acc["unused_filter"] += row["to"]["unused_filter"]
            for other, n in row["to"]["other_family"].items():
                acc.setdefault("other_family", {})
                acc["other_family"][other] = acc["other_family"].get(other, 0) + n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[])
    parser.add_argument("--summarise", nargs="+", default=None)
    parser.add_argument("--fits", nargs="+", default=list(FIT_OPTIONS), choices=FIT_OPTIONS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json

    if args.summarise:
        write_json(args.out, summarise(args.summarise))
        print(Path(args.out).read_text())
        return
    if not args.seeds:
        parser.error("--seeds is required")
    if any(s < 1000 for s in args.seeds):
        parser.error("dev brains are seeds 1000+")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    t0, cpu0, load_before = time.perf_counter(), time.process_time(), os.getloadavg()
    out: dict = {"args": vars(args), "commit": commit, "machine": platform.platform()}
    out["torch_threads"] = torch.get_num_threads()
    out["brains"] = []
    for seed in args.seeds:
        brain = make_zoo_brain(args.neurons, args.frames, "dev", n_families=4, seed=seed)
        row = {"seed": seed, "families": list(brain.motif_names), "fits": {}}
        ref = None
        for name in args.fits:
            row["fits"][name] = run_fit(brain, name, args, ref)
            if name == "model":
                ref = np.asarray(row["fits"]["model"]["labels_init"])
        out["brains"].append(row)
        out.update(run_record(t0, cpu0, load_before))
        write_json(args.out, out)


if __name__ == "__main__":
    main()
