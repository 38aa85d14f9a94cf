"""Benchmark: motif and domain discovery on zoo brains from the test-only families.

Every brain is ``make_zoo_brain(families="test", n_families=F, seed=SEED0 + b)`` (seeds fixed,
nothing tuned per brain). Methods:

``model``
    ``fit_mesoscale(activity, positions, connectome=brain.connectome(), stimulus=...,
    n_filters=K, epochs=E)`` with the dynamics initialisation (the default).
``init``
    The same with ``epochs=1``: the assignment is frozen during the first
    ``freeze_assignment_epochs`` (5) epochs, so its labels are the initialisation's.
``random``
    ``init="random"``, ``epochs=E``.
``alternating`` / ``alternating_random``
    ``assignment="alternating"`` (communities reassigned to the filter that predicts them best
    after every epoch), from the dynamics / a random initialisation.
``em_random``
    ``assignment="em"`` from a random initialisation: the motifs are found before training by
    the cross-prediction profiles of per-community linearised filters and hard EM
    (model/reassign.py, ``discover_grouping="profile"``).
``em_random_loss``
    The same with ``discover_grouping="loss"`` (the starts compete by pooled held-in loss; the
    only grouping before the profile one, whose rows were measured as ``em_random``).
``em_random_count``
    The same with the number of motifs from the data: ``discover_motif_count="profile_cut"``
    with ``n_filters`` = 8 as the upper bound (the cut distance was chosen on dev brains,
    ``benchmarks/motif_count.py``); the peers still get the true k.
``model_frozen``
    The default fit with the initialisation's assignment kept for the whole fit
    (``freeze_assignment_epochs`` = ``--epochs``; the default frees it after 5 epochs).
    ``model_frozen_auto``: the same with ``input_lags="auto"``.
``model_kept_auto``
    ``activity_assignment="initial"`` (the assignment logits kept at the initialisation while
    the temperature anneals as in the default, so the filters train against the hard labels
    the fit ends with) and ``input_lags="auto"``. ``model_motifs_auto``: the same with
    ``activity_assignment="motifs"`` (each neuron keeps its initial filter, its field learns).
    ``model_validated_auto``: ``activity_assignment="validated"`` (both the trained and the
    kept-motif fit; the trained one is kept only when its validation error is more than 5 %
    lower; ``assignment_chosen`` and ``assignment_val_ratio`` record the choice).
    ``model_validated_skip_auto``: the same with ``linear_skip="ridge"``.
``model_trained``
    ``activity_assignment="trained"``: the former default (until the reverted mode was
    adopted), the assignment logits free after the frozen epochs.
``model_restored``
    ``activity_assignment="restored"``: the trained fit, then every neuron training moved off
    its initial filter gets it back where its validation error rises by at most 5 %
    (``moved``, ``restored``, ``restore_undone`` and ``restore_val_ratio`` record it).
    ``model_restored_wide``: the same at ``restore_tolerance=0.25`` (25 % per neuron).
``model_motifs_moved``
    ``activity_assignment="motifs_moved"``: trained with every neuron's initial filter kept,
    then a neuron moves to another filter where its validation error falls by more than 25 %
    (``moved``, ``move_undone`` and ``move_val_ratio`` record it).
``model_reverted``
    ``activity_assignment="reverted"`` (the default, as ``model``): the trained fit; if it
    moved neurons off their initial filter, every one gets it back and the filters train 10
    more epochs with the motifs kept, that fit kept when its validation error is at most
    ``revert_tolerance`` (2 %; 1 % before rule R5) above the trained fit's
    (``moved``, ``assignment_chosen`` and ``assignment_val_ratio``, reverted / trained).
    ``model_reverted_long``: the same with 20 epochs after the reversion.
``model_skip``
    ``model`` with ``linear_skip="ridge"``: a per-neuron linear path (own state, linear drive,
    stimulus drive, constant) added to the filters' prediction, started at a linear per-neuron
    ridge with the filters' output at zero (the untrained fit is that ridge's prediction);
    the untrained state is the first best-validation candidate (``start_kept``: no later
    epoch validated better).
``em_random_lag2``
    ``em_random`` with ``input_lags=2``: the filters (and the discovery's linearised filters)
    also see the neuron's previous state x[t-1] (second-order units such as resonators).
``em_init_start``
    ``assignment="em"`` from the dynamics initialisation with ``discover_initial_start``: the
    discovery's EM also starts from the initialisation's grouping, lowest held-in loss wins
    (``discover_from_initial`` records whether that start won).
``model_split_half``
    ``model`` with ``motif_choice="split_half"``: the default fit, or ``em_random`` where the
    discovery's labels agree better between the two halves of the training block than the
    initialisation's (``motif_choice`` records both agreements). Where it keeps the
    initialisation it is the default fit bit for bit, so with ``model`` in ``--fits`` before it
    its row is ``model``'s (``reused``), read after a one-epoch fit that makes the choice.
``model_gains``
    ``model`` with ``neuron_gains=True``: every neuron scales its own past (x[t], x[t-1]) into
    its filter by a trainable gain (rule R13, ``benchmarks/neuron_gains_rule.py``).
``ar_kmeans`` / ``ar_kmeans_k``
    Per-neuron AR(2) + stimulus coefficients, k-means, k by silhouette / k = K.
``corr_spectral_k`` / ``corr_hierarchical``
    Spectral clustering of the correlation matrix with k = K / average-linkage hierarchical
    clustering with k by silhouette.

K (``n_filters`` and the peers' given k) is the true number of families in the brain unless
``--n-filters`` fixes it. Domains of the peers are their labels split into spatially connected
pieces (``spatial_domains``). Held-out one-step MSE is on the fit's test block (last 15 % of the
frames), in activity units, for the fitted models and the baselines, every baseline fitted on
the fit's training block (first 70 %) with the brain's stimulus (``napari_mesoscale.baselines``,
none tuned here):

``persistence``, ``mean``, ``ridge_var``
    x(t+1) = x(t); the neuron's training mean; ridge VAR over all neurons (x(t), stimulus,
    intercept; its ridge strength chosen on the end of the training block).
``connectome_linear``
    One ridge regression per neuron on the states of its presynaptic partners in the brain's
    connectome (the one the fits get) and its own, the stimulus and an intercept (as in
    benchmarks/model.py).
``ar2_neuron``
    ``NeuronAR2``: one ridge regression per neuron on its own x[t] and x[t-1], the stimulus and
    an intercept (no other neuron): the naive forecaster for second-order units (resonators).
``gru``
    ``GRUBaseline`` (a GRU over all neurons, 64 hidden units, early-stopped on the end of the
    training block); ``--no-gru`` leaves it out. Kept because it cost 12 s on dev brain 1000 at
    240 neurons / 1,500 frames (load 1), under the 30 s a brain set for it beforehand
    (benchmarks/results/motif_zoo_gru_cost.json); at load 5-7 it took 7-85 s a brain (median
    19 s, benchmarks/results/motif_zoo_fresh_4000.json).

``noise_floor`` is the MSE of the generator's own pre-noise update (not a baseline). The
summary counts, per fit, the brains where its MSE is below every baseline (``below_every_
baseline``: [brains, brains with every baseline row, those baselines]) and below each one
(``below_baseline``). Figures per brain and medians per method go to
benchmarks/results/motif_zoo.json.

Seeds: brain b is ``--seed-base`` + b (default 2000 for the test families, 1000 for dev).
``--update --baselines-only`` adds the baseline rows (and nothing else) to the brains already in
``--out``, after checking that the recomputed persistence and ridge VAR rows equal the stored
ones (same brain, same blocks).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/motif_zoo.py                      # 20 brains (full)
    OMP_NUM_THREADS=1 python benchmarks/motif_zoo.py --families dev --brains 6 \
        --fits em_random em_random_lag2 --out dev.json   # development brains (seeds 1000 + b)
    OMP_NUM_THREADS=1 python benchmarks/motif_zoo.py --brains 5 --neurons 240 --frames 1500 \\
        --epochs 10
    OMP_NUM_THREADS=1 python benchmarks/motif_zoo.py --neurons 240 --frames 1500 --epochs 5 \\
        --update --baselines-only --out benchmarks/results/motif_zoo_lags_auto.json
    OMP_NUM_THREADS=1 python benchmarks/motif_zoo.py --seed-base 4000 --neurons 240 \\
        --frames 1500 --epochs 5 --fits model init em_random model_auto em_random_auto \\
        --brains 10 --out fresh_a.json   # fresh test-family brains 4000-4009
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from napari_mesoscale import baselines, fit_mesoscale
from napari_mesoscale.evaluate import recovery_scores
from napari_mesoscale.evaluate.motif_peers import (
    ar_kmeans_labels,
    correlation_labels,
    spatial_domains,
)
from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.prepare import split_blocks
from napari_mesoscale.synth.motif_zoo import DEV_FAMILIES, TEST_FAMILIES, make_zoo_brain

HERE = Path(__file__).resolve().parent
SEED0 = 2000
DEV_SEED0 = 1000  # --families dev: the development brains of benchmarks/motif_discovery_dev.py
# every baseline row (GRU not with --no-gru); "below every baseline" counts those all brains have
BASELINES = ("persistence", "mean", "ridge_var", "connectome_linear", "ar2_neuron", "gru")
PEERS = ("ar_kmeans", "ar_kmeans_k", "corr_spectral_k", "corr_hierarchical")
FITS = (
    "model",
    "init",
    "random",
    "alternating",
    "alternating_random",
    "em_random",
    "em_random_loss",
    "em_random_count",
    "em_random_lag2",
    "em_init_start",
    "model_auto",
    "em_random_auto",
    "model_skip",
    "model_frozen",
    "model_frozen_auto",
    "model_kept_auto",
    "model_motifs_auto",
    "model_validated_auto",
    "model_validated_skip_auto",
    "model_trained",
    "model_restored",
    "model_restored_wide",
    "model_motifs_moved",
    "model_reverted",
    "model_reverted_long",
    "model_revert_always",
    "model_split_half",
    "model_gains",
)
COUNT_UPPER_BOUND = 8  # n_filters of em_random_count: the number of motifs is found below it
FIT_OPTIONS = {
    "init": {"epochs": 1},
    "random": {"init": "random"},
    "alternating": {"assignment": "alternating"},
    "alternating_random": {"assignment": "alternating", "init": "random"},
    "em_random": {"assignment": "em", "init": "random"},
    "em_random_loss": {"assignment": "em", "init": "random", "discover_grouping": "loss"},
    "em_random_count": {
        "assignment": "em",
        "init": "random",
        "discover_motif_count": "profile_cut",
        "n_filters": COUNT_UPPER_BOUND,
    },
    "em_random_lag2": {"assignment": "em", "init": "random", "input_lags": 2},
    "em_init_start": {"assignment": "em", "discover_initial_start": True},
    "model_auto": {"input_lags": "auto"},
    "em_random_auto": {"assignment": "em", "init": "random", "input_lags": "auto"},
    "model_skip": {"linear_skip": "ridge"},
    "model_frozen": {"freeze_assignment_epochs": None},  # None: every epoch of the fit
    "model_frozen_auto": {"freeze_assignment_epochs": None, "input_lags": "auto"},
    "model_kept_auto": {"activity_assignment": "initial", "input_lags": "auto"},
    "model_motifs_auto": {"activity_assignment": "motifs", "input_lags": "auto"},
    "model_validated_auto": {"activity_assignment": "validated", "input_lags": "auto"},
    "model_trained": {"activity_assignment": "trained"},
    "model_restored": {"activity_assignment": "restored"},
    "model_restored_wide": {"activity_assignment": "restored", "restore_tolerance": 0.25},
    "model_motifs_moved": {"activity_assignment": "motifs_moved"},
    "model_reverted": {"activity_assignment": "reverted"},
    "model_reverted_long": {"activity_assignment": "reverted", "revert_epochs": 20},
    "model_revert_always": {"revert_tolerance": 1e6},  # the reverted fit whatever it costs
    "model_split_half": {"motif_choice": "split_half"},
    "model_gains": {"neuron_gains": True},
    "model_validated_skip_auto": {
        "activity_assignment": "validated",
        "input_lags": "auto",
        "linear_skip": "ridge",
    },
}


def _mse(pred: np.ndarray, activity: np.ndarray, start: int, stop: int) -> float:
    return float(np.nanmean((pred[start + 1 : stop] - activity[start + 1 : stop]) ** 2))


def _family_mse(pred: np.ndarray, brain, start: int, stop: int) -> dict[str, float]:
    """Held-out one-step MSE over each family's neurons (frames start+1 .. stop-1)."""
    act = brain.activity
    per_neuron = np.nanmean((pred[start + 1 : stop] - act[start + 1 : stop]) ** 2, axis=0)
    return {
        name: float(per_neuron[brain.motif == f].mean())
        for f, name in enumerate(brain.motif_names)
        if (brain.motif == f).any()
    }


def _start_kept(fit) -> bool | None:
    """With ``linear_skip``: whether the fit returned its untrained (linear) start, i.e. no
    epoch eligible for the best state validated better (None without the linear path)."""
    from napari_mesoscale.model.training import _hard_start

    start = fit._p.get("start_val_loss")
    if start is None:
        return None
    cfg, hist = fit.config, fit.history
    eligible = [
        v
        for e, v in zip(hist["epoch"], hist["val_loss"], strict=True)
        if e >= _hard_start(cfg) - 1 or e + 1 >= cfg.epochs
    ]
    return not any(v < start - 1e-6 for v in eligible)


def _peer_labels(name: str, brain, k: int) -> np.ndarray:
    if name == "ar_kmeans":
        return ar_kmeans_labels(brain.activity, brain.stimulus)
    if name == "ar_kmeans_k":
        return ar_kmeans_labels(brain.activity, brain.stimulus, n_clusters=k)
    if name == "corr_spectral_k":
        return correlation_labels(brain.activity, n_clusters=k)
    return correlation_labels(brain.activity, method="hierarchical")


def _blocks(n_frames: int) -> dict:
    """The train / val / test frame ranges of a default fit (what ``fit.blocks`` holds)."""
    cfg = ModelConfig()
    return split_blocks(n_frames, cfg.split, max(1, cfg.rollout))


def _baseline_models(brain, gru: bool) -> dict:
    out = {
        "persistence": baselines.Persistence(),
        "mean": baselines.MeanBaseline(),
        "ridge_var": baselines.RidgeVAR(),
        "connectome_linear": baselines.ConnectomeLinear(brain.connectome()),
        "ar2_neuron": baselines.NeuronAR2(),
    }
    if gru:
        out["gru"] = baselines.GRUBaseline(seed=0)
    return out


def baseline_rows(brain, blocks: dict, gru: bool = False) -> dict:
    """Held-out one-step MSE (and fit seconds) of every baseline, fitted on the training block."""
    act, stim = brain.activity, brain.stimulus
    tr0, tr1 = blocks["train"]
    te0, te1 = blocks["test"]
    out = {}
    for name, model in _baseline_models(brain, gru).items():
        t0 = time.perf_counter()
        model.fit(act[tr0:tr1], stimulus=stim[tr0:tr1])
        pred = model.predict(act, stimulus=stim)
        mse = _mse(pred, act, te0, te1)
        out[name] = {"mse": mse, "seconds": time.perf_counter() - t0}
        out[name]["family_mse"] = _family_mse(pred, brain, te0, te1)
    return out


def _make_brain(seed: int, args: argparse.Namespace):
    """Brain ``seed``; with ``--oscillators``, instance 0 (or ``--oscillator-instances``)
    replaced by damped oscillators;
    with ``--chain-delay3``, a dev chain of 3 frames per link and three other dev families."""
    families, n_families = args.families, args.families_per_brain
    if getattr(args, "chain_delay3", False):
        from _zoo_chain import chain3_families, register_chain3

        register_chain3()
        families, n_families = chain3_families(seed), None
    brain = make_zoo_brain(
        args.neurons, args.frames, families, n_families=n_families, seed=seed,
        heterogeneity=getattr(args, "heterogeneity", 0.0),
    )
    if getattr(args, "oscillators", False):
        from _zoo_osc import with_oscillators

        brain = with_oscillators(brain, seed, getattr(args, "oscillator_instances", 1))
    return brain


def _keep_discovery(into: dict):
    """A progress callback that keeps the discovery's figures (never cancels)."""

    def callback(info: dict) -> bool:
        if "discover_loss" in info:
            into.update(info)
        return True

    return callback


def _split_half_as_model(brain, common: dict, model_row: dict, device: str) -> dict | None:
    """``model_split_half`` where it keeps the initialisation: that fit *is* the default fit
    (bit for bit, tests/core/model/test_split_half_choice.py), so its row is ``model``'s with
    the choice added, not a second training; None where it takes the discovery (then it runs).
    The choice is read from a one-epoch fit with the option (the choice comes before
    training)."""
    probe = fit_mesoscale(brain.activity, brain.positions, device=device, epochs=1,
                          motif_choice="split_half", **common)
    if probe.motif_choice["chosen"] != "initial":
        return None
    return {**model_row, "motif_choice": dict(probe.motif_choice), "reused": "model"}


def run_brain(seed: int, args: argparse.Namespace) -> dict:
    brain = _make_brain(seed, args)
    k = args.n_filters or len(brain.motif_names)
    act, stim = brain.activity, brain.stimulus
    out: dict = {"seed": seed, "families": list(brain.motif_names), "k": k}
    common = {"connectome": brain.connectome(), "stimulus": stim, "n_filters": k, "seed": 0}
    blocks = _blocks(act.shape[0])
    te0, te1 = blocks["test"]
    for name in args.fits:
        options = {"epochs": args.epochs, **FIT_OPTIONS.get(name, {})}
        if name == "model_split_half" and "model" in out:
            reused = _split_half_as_model(brain, common, out["model"], args.device)
            if reused is not None:
                out[name] = reused
                continue
        if "freeze_assignment_epochs" in options and options["freeze_assignment_epochs"] is None:
            options["freeze_assignment_epochs"] = args.epochs
        t0 = time.perf_counter()
        discovered: dict = {}  # the discovery's figures ("em"), from its progress report
        fit = fit_mesoscale(
            act, brain.positions, device=args.device, callback=_keep_discovery(discovered),
            **{**common, **options},
        )
        if fit.blocks != blocks:
            raise RuntimeError(f"fit {name} split the frames as {fit.blocks}, not {blocks}")
        scores = recovery_scores(fit, brain.motif, brain.instance)
        pred = fit.predict(act, stimulus=stim)
        scores["mse"] = _mse(pred, act, te0, te1)
        scores["val_mse"] = float(fit.scores["val_mse"])  # the fit's own validation block
        scores["seconds"] = time.perf_counter() - t0
        scores["family_mse"] = _family_mse(pred, brain, te0, te1)
        if fit._p.get("start_val_loss") is not None:  # linear_skip: did training beat the start?
            scores["start_val_loss"] = float(fit._p["start_val_loss"])
            scores["start_kept"] = _start_kept(fit)
        if fit.lag_probe is not None:  # input_lags="auto": what the probe picked, and why
            probe = fit.lag_probe
            scores.update(input_lags=probe["lags"], lag_probe_gain=probe["gain"])
            scores["lag_probe_share"] = probe["share"]
        if fit.motif_choice is not None:  # motif_choice="split_half": the start it took
            scores["motif_choice"] = dict(fit.motif_choice)
        if "discover_from_initial" in discovered:
            scores["discover_from_initial"] = bool(discovered["discover_from_initial"])
        choice = fit.assignment_choice
        if choice is not None and "chosen" in choice:  # "validated": which fit was kept, and why
            scores["assignment_chosen"] = choice["chosen"]
            scores["assignment_val_ratio"] = choice.get("ratio")
        if choice is not None and "restored" in choice:  # "restored": what was given back
            scores.update(moved=choice["moved"], restored=choice["restored"])
            scores["restore_undone"] = choice["undone"]
            scores["restore_val_ratio"] = choice["val_after"] / max(choice["val_before"], 1e-30)
        if choice is not None and choice.get("mode") == "reverted":  # what training had moved
            scores["moved"] = choice["moved"]
        if choice is not None and choice.get("mode") == "motifs_moved":  # the moves that paid
            scores.update(moved=choice["moved"], move_undone=choice["undone"])
            scores["move_val_ratio"] = choice["val_after"] / max(choice["val_before"], 1e-30)
        out[name] = scores
    out.update(baseline_rows(brain, blocks, gru=args.gru))
    out["noise_floor"] = {
        "mse": _mse(brain.expected, act, te0, te1),
        "family_mse": _family_mse(brain.expected, brain, te0, te1),
    }
    _ratios(out)
    if args.update:
        return out
    for name in PEERS:
        t0 = time.perf_counter()
        labels = _peer_labels(name, brain, k)
        domains = spatial_domains(labels, brain.positions)
        out[name] = recovery_scores(labels, brain.motif, brain.instance, domain_labels=domains)
        out[name]["seconds"] = time.perf_counter() - t0
    return out


def _ratios(brain: dict) -> None:
    """``mse_ratio_persistence`` on every row with an MSE but persistence's."""
    persistence = brain["persistence"]["mse"]
    for name, row in brain.items():
        if name != "persistence" and isinstance(row, dict) and "mse" in row:
            row["mse_ratio_persistence"] = row["mse"] / persistence


def _below_baselines(brains: list[dict], name: str) -> dict:
    """Brains where fit ``name``'s held-out MSE is strictly below every baseline (of those all
    its brains have: [count, brains, baselines]) and below each one ({baseline: [count,
    brains]})."""
    rows = [b for b in brains if name in b]
    present = [n for n in BASELINES if rows and all(n in b for b in rows)]
    every = sum(all(b[name]["mse"] < b[n]["mse"] for n in present) for b in rows)
    each = {}
    for n in BASELINES:
        have = [b for b in rows if n in b]
        if have:
            each[n] = [int(sum(b[name]["mse"] < b[n]["mse"] for b in have)), len(have)]
    return {"below_every_baseline": [int(every), len(rows), present], "below_baseline": each}


def _above_every_peer(brains: list[dict], name: str) -> list[int]:
    """[brains where ``name``'s motif ARI is strictly above every naive peer and the
    initialisation alone, brains where it is above or tied, brains that have all of them]."""
    rivals = (*PEERS, "init")
    rows = [b for b in brains if name in b and all(r in b for r in rivals)]
    best = [max(b[r]["motif_ari"] for r in rivals) for b in rows]
    wins = sum(b[name]["motif_ari"] > m for b, m in zip(rows, best, strict=True))
    ties = sum(b[name]["motif_ari"] >= m - 1e-9 for b, m in zip(rows, best, strict=True))
    return [int(wins), int(ties), len(rows)]


def _above_peers_not_below_init(brains: list[dict], name: str) -> list[int]:
    """[brains where ``name``'s motif ARI is strictly above every naive peer's and not below
    the initialisation's, brains that have all of them] (for ``init``: above every peer)."""
    rows = [b for b in brains if name in b and all(r in b for r in (*PEERS, "init"))]
    wins = sum(
        b[name]["motif_ari"] > max(b[p]["motif_ari"] for p in PEERS)
        and b[name]["motif_ari"] >= b["init"]["motif_ari"] - 1e-9
        for b in rows
    )
    return [int(wins), len(rows)]


def summarise(brains: list[dict]) -> dict:
    summary = {}
    for name in (*FITS, *PEERS, *BASELINES, "noise_floor"):
        rows = [b[name] for b in brains if name in b]
        if not rows:
            continue
        summary[name] = {
            f"median_{key}": float(np.median(values))
            for key in rows[0]
            # a figure some fits lack (None: e.g. no validation ratio where nothing moved)
            if (values := [r[key] for r in rows if isinstance(r.get(key), (int, float))])
        }
        if name in FITS and name != "init":
            summary[name]["above_every_peer"] = _above_every_peer(brains, name)
        if name in FITS:
            summary[name].update(_below_baselines(brains, name))
            summary[name]["above_peers_not_below_init"] = _above_peers_not_below_init(brains, name)
        if "n_motifs" in rows[0]:
            summary[name]["motifs_found_vs_true"] = [
                [r["n_motifs"], r["n_true_motifs"]] for r in rows
            ]
    return summary


def report(result: dict) -> str:
    """A markdown table of a result's per-fit figures (``--report``): median motif / domain
    ARI, brains with motif ARI >= 0.9, strictly above every peer and not below ``init``,
    held-out MSE below each baseline and below all of them, median MSE over persistence's."""
    brains = result["brains"]
    summary = summarise(brains)  # the counts of this version, whatever wrote the file
    fits = [f for f in FITS if f in summary]
    names = [b for b in BASELINES if b in summary]
    head = ["fit", "motif ARI", "domain ARI", "motif >= 0.9", "> peers, >= init"]
    head += [f"MSE < {b}" for b in names] + ["MSE < all", "MSE / persistence"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

    def ratio(name: str) -> str:  # median over brains of MSE / persistence's MSE
        r = [b[name]["mse"] / b["persistence"]["mse"] for b in brains if name in b]
        return f"{np.median(r):.3f}"

    for f in fits:
        row, n = summary[f], sum(f in b for b in brains)
        good = sum(b[f]["motif_ari"] >= 0.9 for b in brains if f in b)
        peers = row["above_peers_not_below_init"]
        cells = [f, f"{row['median_motif_ari']:.3f}", f"{row['median_domain_ari']:.3f}"]
        cells += [f"{good} / {n}", f"{peers[0]} / {peers[1]}"]
        cells += [f"{row['below_baseline'][b][0]} / {row['below_baseline'][b][1]}" for b in names]
        every = row["below_every_baseline"]
        cells += [f"{every[0]} / {every[1]}", ratio(f)]
        lines.append("| " + " | ".join(cells) + " |")
    others = [b for b in (*names, "noise_floor") if b in summary and b != "persistence"]
    ratios = [f"{b} {ratio(b)}" for b in others]
    lines.append("")
    lines.append("median MSE / persistence's: " + ", ".join(ratios))
    return "\n".join(lines)


def merge(results: list[dict]) -> dict:
    """One result from runs over different brains or fits with the same settings."""
    keys = ("neurons", "frames", "epochs", "families_per_brain", "n_filters", "families")
    settings = {(*(r["args"].get(k, "test") for k in keys), _seed0(r["args"])) for r in results}
    if len(settings) != 1:
        raise ValueError(f"results have different settings {sorted(settings)}; cannot merge")
    by_seed: dict[int, dict] = {}
    for r in results:  # a brain in several files: the union of its rows, later files win
        for b in r["brains"]:
            by_seed.setdefault(b["seed"], {}).update(b)
    brains = [by_seed[s] for s in sorted(by_seed)]
    merged = dict(results[0])
    merged["args"] = dict(results[0]["args"], brains=len(brains), start=0)
    merged["runs"] = [
        {k: r[k] for k in ("seconds", "cpu_seconds", "load_before", "load_after", "args") if k in r}
        for r in results
    ]
    merged["seconds"] = sum(r["seconds"] for r in results)
    merged["summary"], merged["brains"] = summarise(brains), brains
    return merged


def update(result: dict, args: argparse.Namespace) -> dict:
    """Add the ``args.fits`` rows to the brains of ``result`` (same settings), re-summarise."""
    from _results import write_json

    keys = ("neurons", "frames", "epochs", "families_per_brain", "n_filters", "families")
    if any(result["args"].get(k, "test") != getattr(args, k) for k in keys) or _seed0(
        result["args"]
    ) != _seed0(vars(args)):
        raise ValueError(f"--update needs the settings of {args.out}: {result['args']}")
    done = {b["seed"]: b for b in result["brains"]}
    t0, load_before = time.perf_counter(), os.getloadavg()
    cpu0 = time.process_time()
    seed0 = _seed0(vars(args))
    for b in range(args.start, args.start + args.brains):
        if seed0 + b not in done:
            continue
        if args.baselines_only:
            _add_baselines(done[seed0 + b], args)
            print(f"brain {b}: baselines", flush=True)
        else:
            new = run_brain(seed0 + b, args)
            done[seed0 + b].update({name: new[name] for name in args.fits})
            print(
                f"brain {b}: "
                + ", ".join(
                    f"{m} {new[m]['motif_ari']:.2f}/{new[m]['domain_ari']:.2f}" for m in args.fits
                ),
                flush=True,
            )
        result["summary"] = summarise(result["brains"])
        write_json(args.out, result)  # after every brain: a long run keeps what it measured
    result.setdefault("updates", []).append(
        {
            "fits": ["baselines"] if args.baselines_only else list(args.fits),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
    )
    result["summary"] = summarise(result["brains"])
    return result


def _add_baselines(row: dict, args: argparse.Namespace) -> None:
    """Add the baseline rows a brain of a stored result lacks (``--baselines-only``).

    The brain is generated again from its seed; the recomputed persistence and ridge VAR MSE
    must equal the stored ones (same brain, same blocks) or nothing is written. Stored rows
    are kept as they are.
    """
    brain = _make_brain(row["seed"], args)
    if list(brain.motif_names) != row["families"]:
        raise RuntimeError(f"brain {row['seed']} has families {brain.motif_names}, not {row}")
    new = baseline_rows(brain, _blocks(brain.n_frames), gru=args.gru)
    for name in ("persistence", "ridge_var"):
        if name in row and not np.isclose(new[name]["mse"], row[name]["mse"], rtol=1e-6):
            raise RuntimeError(
                f"brain {row['seed']}: {name} MSE {new[name]['mse']} differs from the stored "
                f"{row[name]['mse']}: not the same brain or blocks"
            )
    for name, values in new.items():
        row.setdefault(name, values)
    _ratios(row)


def _seed0(args: dict) -> int:
    """Seed of brain 0: ``seed_base``, else 1000 for the dev families and 2000 for test."""
    if args.get("seed_base") is not None:
        return int(args["seed_base"])
    return DEV_SEED0 if args.get("families", "test") == "dev" else SEED0


def _result(args: argparse.Namespace, brains: list[dict], t0: float, load_before) -> dict:
    return {
        "args": vars(args),
        "test_families": list(TEST_FAMILIES),
        "families": list(DEV_FAMILIES if args.families == "dev" else TEST_FAMILIES),
        "n_filters": "true number of families" if args.n_filters is None else args.n_filters,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.platform(),
        "summary": summarise(brains),
        "brains": brains,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brains", type=int, default=20)
    parser.add_argument(
        "--start", type=int, default=0, help="first brain (seed --seed-base + start)"
    )
    parser.add_argument(
        "--seed-base",
        type=int,
        default=None,
        help="seed of brain 0 (default: 2000 for the test families, 1000 for dev)",
    )
    parser.add_argument(
        "--merge", nargs="+", default=None, help="only combine these result files into --out"
    )
    parser.add_argument(
        "--rename",
        nargs=2,
        metavar=("OLD", "NEW"),
        default=None,
        help="only rename the rows of fit OLD to NEW in --out (rows from an earlier code version)",
    )
    parser.add_argument("--neurons", type=int, default=480)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--families-per-brain", type=int, default=4)
    parser.add_argument(
        "--families",
        default="test",
        choices=("test", "dev"),
        help="test-only families (seeds 2000 + b) or development families (seeds 1000 + b)",
    )
    parser.add_argument(
        "--chain-delay3",
        action="store_true",
        help="with --families dev: every brain holds a dev chain of 3 frames per link and three "
        "other dev families (benchmarks/_zoo_chain.py; a construction for the refusals)",
    )
    parser.add_argument(
        "--oscillators",
        action="store_true",
        help="with --families dev: instance 0 of every brain replaced by damped oscillators, "
        "a second-order family of its own (benchmarks/_zoo_osc.py)",
    )
    parser.add_argument(
        "--oscillator-instances",
        type=int,
        default=1,
        help="with --oscillators: how many instances (0, 1, ...) become damped oscillators",
    )
    parser.add_argument(
        "--heterogeneity",
        type=float,
        default=0.0,
        help="every neuron's own speed and gain (make_zoo_brain's heterogeneity, neuron scope)",
    )
    parser.add_argument("--n-filters", type=int, default=None, help="fixed K (default: true)")
    parser.add_argument(
        "--fits", nargs="+", default=list(FITS), choices=FITS, help="which fits to run"
    )
    parser.add_argument("--out", default=str(HERE / "results" / "motif_zoo.json"))
    parser.add_argument(
        "--update",
        action="store_true",
        help="add the --fits rows to the brains of the same seeds already in --out",
    )
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="with --update: add only the baseline rows the brains in --out lack (no fits)",
    )
    parser.add_argument("--no-gru", dest="gru", action="store_false", help="no GRU baseline")
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the fits train (cpu, cuda, auto); the baselines run on the CPU",
    )
    parser.add_argument(
        "--report", action="store_true", help="only print the table of the figures in --out"
    )
    args = parser.parse_args()
    from _results import write_json

    if args.report:
        print(report(json.loads(Path(args.out).read_text())))
        return
    if args.rename:
        result = json.loads(Path(args.out).read_text())
        old, new = args.rename
        for brain in result["brains"]:
            if old in brain:
                brain[new] = brain.pop(old)
        result["summary"] = summarise(result["brains"])
        write_json(args.out, result)
        return
    if args.merge:
        write_json(args.out, merge([json.loads(Path(p).read_text()) for p in args.merge]))
        return
    if args.baselines_only and not args.update:
        parser.error("--baselines-only needs --update (it adds rows to the brains in --out)")
    if args.update:
        write_json(args.out, update(json.loads(Path(args.out).read_text()), args))
        return
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    brains: list[dict] = []
    for b in range(args.start, args.start + args.brains):
        brains.append(run_brain(_seed0(vars(args)) + b, args))
        # after every brain: a run cut short keeps what it measured
        write_json(args.out, _result(args, brains, t0, load_before))
        print(
            f"brain {b}: "
            + ", ".join(
                f"{m} {brains[-1][m]['motif_ari']:.2f}/{brains[-1][m]['domain_ari']:.2f}"
                for m in (*args.fits, *PEERS)
            ),
            flush=True,
        )
    result = _result(args, brains, t0, load_before)
    write_json(args.out, result)
    for name, row in result["summary"].items():
        print(name, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
