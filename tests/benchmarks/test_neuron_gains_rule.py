"""benchmarks/neuron_gains_rule.py (rule R13): the criteria on rows whose verdicts are known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("neuron_gains_rule")

BASELINES = {"persistence": 2.0, "mean": 3.0, "ridge_var": 1.5, "connectome_linear": 1.2,
             "ar2_neuron": 1.1}


def _brain(seed, default, gains):
    """``default`` / ``gains``: (chosen, validation ratio reverted / trained, motif ARI,
    MSE) of the default fit and of the fit with neuron gains."""
    row = {"seed": seed, **{b: {"mse": m} for b, m in BASELINES.items()}}
    for name, (chosen, ratio, motif, mse) in (("model", default), ("model_gains", gains)):
        row[name] = {"assignment_chosen": chosen, "assignment_val_ratio": ratio,
                     "motif_ari": motif, "domain_ari": motif, "mse": mse, "moved": 10}
    row["init"] = {"motif_ari": 1.0, "domain_ari": 1.0}
    return row


def test_a_cheaper_reversion_at_no_cost_passes():
    brains = [
        _brain(0, ("reverted", 1.01, 1.0, 1.0), ("reverted", 1.00, 1.0, 0.98)),
        _brain(1, ("trained", 1.03, 0.7, 1.0), ("reverted", 1.01, 1.0, 1.01)),
        _brain(2, ("reverted", 0.99, 0.9, 1.0), ("reverted", 0.99, 0.9, 0.97)),
    ]
    result = rule.decide(brains)
    assert result["candidate"]["passes"], result["candidate"]
    assert result["candidate"]["changed"] == [1]
    assert result["candidate"]["median_reversion_ratio"] == [1.01, 1.0, 3]
    assert result["adopted"] is True


def test_a_reversion_no_cheaper_or_refused_more_often_fails_part_e():
    same = [_brain(0, ("reverted", 1.01, 1.0, 1.0), ("reverted", 1.01, 1.0, 0.99))]
    assert not rule.decide(same)["candidate"]["parts"]["e"]
    refused = [
        _brain(0, ("reverted", 1.015, 1.0, 1.0), ("trained", 1.025, 0.8, 0.99)),
        _brain(1, ("reverted", 1.01, 1.0, 1.0), ("reverted", 0.98, 1.0, 0.99)),
        _brain(2, ("reverted", 1.01, 1.0, 1.0), ("reverted", 0.98, 1.0, 0.99)),
    ]
    verdict = rule.decide(refused)["candidate"]
    assert verdict["refused"] == [0, 1]
    assert not verdict["parts"]["e"] and not verdict["parts"]["a"]
    assert rule.decide(refused)["adopted"] is False


def test_prediction_worse_on_the_median_fails_part_d():
    brains = [
        _brain(0, ("reverted", 1.01, 1.0, 1.0), ("reverted", 1.00, 1.0, 1.01)),
        _brain(1, ("reverted", 1.01, 1.0, 1.0), ("reverted", 1.00, 1.0, 1.02)),
    ]
    verdict = rule.decide(brains)["candidate"]
    assert verdict["parts"]["e"] and not verdict["parts"]["d"]
    assert verdict["mse_ratio_median"] == pytest.approx(1.015)


def _toy(seed, motif, mse, targets=True):
    row = {"motif_ari": motif, "mse_1": mse, "targets": {"all": targets}}
    return {"brain": {"seed": seed}, "model": {"default_connectome": row}}


def test_toy_part_keeps_every_seed_at_its_target_and_the_median_error():
    default = [_toy(0, 1.0, 1.0), _toy(1, 0.97, 1.0)]
    assert rule.toy_part(default, [_toy(0, 1.0, 0.9), _toy(1, 0.96, 1.0)])["passes"]
    below_target = rule.toy_part(default, [_toy(0, 1.0, 0.9), _toy(1, 0.94, 0.9)])
    assert below_target["parts"] == {"t1": True, "t2": False, "t3": True}
    worse = rule.toy_part(default, [_toy(0, 1.0, 1.1), _toy(1, 0.97, 1.1, targets=False)])
    assert worse["parts"] == {"t1": False, "t2": True, "t3": False}
    with pytest.raises(ValueError, match="seeds differ"):
        rule.toy_part(default, [_toy(0, 1.0, 1.0)])
