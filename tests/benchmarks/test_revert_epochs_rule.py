"""benchmarks/revert_epochs_rule.py (rule R6): the five criteria on rows whose verdicts are
known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("revert_epochs_rule")

BASELINES = {"persistence": 2.0, "mean": 3.0, "ridge_var": 1.5, "connectome_linear": 1.2,
             "ar2_neuron": 1.1}


def _brain(seed, default, longer):
    """``default`` / ``longer``: (chosen, motif ARI, domain ARI, MSE) with 10 and 20 epochs
    after the reversion."""
    row = {"seed": seed, **{b: {"mse": m} for b, m in BASELINES.items()}}
    for name, (chosen, motif, domain, mse) in (("model", default),
                                               ("model_reverted_long", longer)):
        row[name] = {"assignment_chosen": chosen, "motif_ari": motif, "domain_ari": domain,
                     "mse": mse, "moved": 10, "assignment_val_ratio": 1.0}
    row["init"] = {"motif_ari": 1.0, "domain_ari": 1.0}
    return row


def test_a_longer_reversion_that_keeps_motifs_at_little_cost_is_adopted():
    brains = [
        _brain(0, ("reverted", 1.0, 1.0, 1.0), ("reverted", 1.0, 1.0, 0.99)),
        _brain(1, ("trained", 0.6, 0.8, 1.0), ("reverted", 1.0, 1.0, 1.02)),
    ]
    result = rule.decide(brains)
    assert result["candidate"]["changed"] == [1]
    assert result["candidate"]["passes"]
    assert result["adopted"] == rule.CANDIDATE


def test_a_brain_that_costs_over_three_percent_or_nothing_changed_keeps_the_default():
    costly = [_brain(0, ("trained", 0.6, 0.8, 1.0), ("reverted", 1.0, 1.0, 1.031))]
    verdict = rule.decide(costly)["candidate"]
    assert verdict["parts"] == {"a": True, "b": True, "c": True, "d": False, "e": True}
    assert rule.decide(costly)["adopted"] == rule.DEFAULT
    quiet = [_brain(0, ("reverted", 1.0, 1.0, 1.0), ("reverted", 1.0, 1.0, 1.0))]
    assert rule.decide(quiet)["adopted"] == rule.DEFAULT  # part (e): nothing to judge


def test_a_motif_lost_on_one_brain_or_a_baseline_lost_fails():
    lost = [
        _brain(0, ("trained", 1.0, 1.0, 1.0), ("reverted", 0.97, 1.0, 1.0)),
        _brain(1, ("trained", 0.5, 0.8, 1.0), ("reverted", 1.0, 1.0, 1.0)),
    ]
    assert not rule.decide(lost)["candidate"]["parts"]["a"]
    baseline = [_brain(0, ("trained", 1.0, 1.0, 1.0), ("reverted", 1.0, 1.0, 1.15))]
    assert not rule.decide(baseline)["candidate"]["parts"]["c"]
