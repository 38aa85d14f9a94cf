"""Pieces of benchmarks/motif_zoo.py that need no fit: seeds, the baseline counts, merging."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
motif_zoo = pytest.importorskip("motif_zoo")


def test_seed_base_defaults_to_the_families_seeds():
    assert motif_zoo._seed0({"families": "test"}) == 2000
    assert motif_zoo._seed0({"families": "dev", "seed_base": None}) == 1000
    assert motif_zoo._seed0({"families": "test", "seed_base": 4000}) == 4000
    assert motif_zoo._seed0({}) == 2000  # results written before --seed-base


def _brain(seed: int, model: float, **baselines: float) -> dict:
    row = {"seed": seed, "model": {"mse": model, "motif_ari": 1.0}}
    row.update({name: {"mse": mse} for name, mse in baselines.items()})
    return row


def test_below_every_baseline_counts_only_baselines_every_brain_has():
    brains = [
        _brain(0, 1.0, persistence=2.0, ridge_var=1.5, ar2_neuron=0.9),  # above ar2
        _brain(1, 1.0, persistence=2.0, ridge_var=1.5, ar2_neuron=1.1),
        _brain(2, 1.0, persistence=2.0, ridge_var=1.0),  # tied with ridge: not below
    ]
    out = motif_zoo._below_baselines(brains, "model")
    # "every" is every baseline all the fit's brains have (a brain from before a baseline
    # existed lacks it): brain 0's lower AR(2) row is left out; brain 2 only ties ridge VAR
    assert out["below_every_baseline"] == [2, 3, ["persistence", "ridge_var"]]
    assert out["below_baseline"] == {
        "persistence": [3, 3],
        "ridge_var": [2, 3],
        "ar2_neuron": [1, 2],
    }
    summary = motif_zoo.summarise(brains)
    assert summary["model"]["below_every_baseline"][0] == 2
    assert summary["ar2_neuron"]["median_mse"] == pytest.approx(1.0)


def test_merge_refuses_different_seed_bases():
    args = {"neurons": 240, "frames": 1500, "epochs": 5, "families_per_brain": 4}
    args.update(n_filters=None, families="test")
    run = {"seconds": 1.0, "load_before": [0, 0, 0], "load_after": [0, 0, 0]}
    a = {**run, "args": {**args, "seed_base": 4000}, "brains": [_brain(4000, 1.0, persistence=2)]}
    b = {**run, "args": {**args, "seed_base": 4000}, "brains": [_brain(4010, 1.0, persistence=2)]}
    merged = motif_zoo.merge([a, b])
    assert [r["seed"] for r in merged["brains"]] == [4000, 4010]
    old = {**run, "args": dict(args), "brains": [_brain(2000, 1.0, persistence=2)]}
    with pytest.raises(ValueError, match="different settings"):
        motif_zoo.merge([a, old])
    np.testing.assert_equal(merged["summary"]["model"]["below_every_baseline"][:2], [2, 2])


def test_above_peers_not_below_init_and_the_report():
    def brain(seed, fit, init, peer, em):
        row = _brain(seed, 1.0, persistence=2.0, ridge_var=1.5)
        row["model"]["motif_ari"], row["model"]["domain_ari"] = fit, 0.9
        row["init"] = {"motif_ari": init, "domain_ari": 0.9, "mse": 3.0}
        row["em_random"] = {"motif_ari": em, "domain_ari": 0.9, "mse": 1.6}
        row.update({p: {"motif_ari": peer, "domain_ari": 0.5} for p in motif_zoo.PEERS})
        return row

    brains = [
        brain(0, 1.0, 1.0, 0.5, 1.0),  # tied with init, above the peers: counts
        brain(1, 0.8, 0.9, 0.5, 0.9),  # below init
        brain(2, 0.5, 0.5, 0.5, 0.95),  # tied with a peer: not strictly above
    ]
    assert motif_zoo._above_peers_not_below_init(brains, "model") == [1, 3]
    assert motif_zoo._above_peers_not_below_init(brains, "em_random") == [3, 3]
    assert motif_zoo._above_peers_not_below_init(brains, "init") == [2, 3]
    table = motif_zoo.report({"brains": brains}).splitlines()
    model = next(line for line in table if line.startswith("| model "))
    # motif ARI >= 0.9 on 1 of 3, 1 of 3 above peers, MSE below both baselines on 3 of 3
    assert model.split(" | ")[3:6] == ["1 / 3", "1 / 3", "3 / 3"]
    em = next(line for line in table if line.startswith("| em_random "))
    assert em.split(" | ")[-3:-1] == ["0 / 3", "0 / 3"]  # 1.6 > ridge VAR's 1.5 everywhere
