"""benchmarks/revert_tolerance_rule.py (rule R5) and the dev brains it is judged on
(benchmarks/_zoo_osc.py): each bar's choice, the five criteria, and the oscillator brains."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("revert_tolerance_rule")

BASELINES = {"persistence": 2.0, "mean": 3.0, "ridge_var": 1.5, "connectome_linear": 1.2,
             "ar2_neuron": 1.1}


def _brain(seed, ratio, moved, default, always):
    """``default`` / ``always``: (motif ARI, domain ARI, MSE) of the 1 % bar's fit and of the
    fit with the reversion always kept."""
    row = {"seed": seed, **{b: {"mse": m} for b, m in BASELINES.items()}}
    for name, (motif, domain, mse) in (("model", default), ("model_revert_always", always)):
        row[name] = {"motif_ari": motif, "domain_ari": domain, "mse": mse, "moved": moved,
                     "assignment_val_ratio": ratio}
    row["init"] = {"motif_ari": always[0], "domain_ari": always[1]}
    return row


def _brains():
    return [
        _brain(0, 1.004, 10, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),  # kept under every bar
        _brain(1, 1.015, 20, (0.8, 0.9, 1.0), (1.0, 1.0, 1.01)),  # kept from 0.02
        _brain(2, 1.025, 30, (0.6, 0.8, 1.0), (1.0, 1.0, 1.04)),  # from 0.03, at 1.04 x MSE
        _brain(3, None, 0, (0.9, 0.9, 1.0), (0.9, 0.9, 1.0)),  # nothing moved
    ]


def test_each_bar_keeps_the_reverted_fit_up_to_its_ratio():
    brains = _brains()
    assert rule._chosen(brains[1], 0.01) is brains[1]["model"]
    assert rule._chosen(brains[1], 0.02) is brains[1]["model_revert_always"]
    assert rule._chosen(brains[2], 0.02) is brains[2]["model"]
    assert rule._chosen(brains[3], 0.05) is brains[3]["model"]


def test_the_largest_bar_that_passes_every_part_is_adopted():
    result = rule.decide(_brains())
    by_bar = {v["tolerance"]: v for v in result["candidates"]}
    assert by_bar[0.02]["passes"] and by_bar[0.02]["changed"] == [1]
    assert by_bar[0.03]["changed"] == [1, 2]
    assert by_bar[0.03]["parts"] == {"a": True, "b": True, "c": True, "d": False, "e": True}
    assert by_bar[0.03]["mse_ratio_max"] == pytest.approx(1.04)
    assert result["adopted"] == 0.02


def test_a_bar_that_changes_nothing_or_costs_labels_is_not_adopted():
    quiet = [b for b in _brains() if b["seed"] in (0, 3)]
    assert rule.decide(quiet)["adopted"] == rule.DEFAULT  # part (e): nothing to judge
    worse = _brains()[:2]
    worse[1]["model_revert_always"]["motif_ari"] = 0.7  # reverting loses labels
    verdict = rule.judge(worse, 0.02)
    assert not verdict["parts"]["a"] and not verdict["passes"]


def test_fits_that_disagree_on_the_ratio_are_refused():
    brains = _brains()
    brains[1]["model_revert_always"]["assignment_val_ratio"] = 1.2
    with pytest.raises(RuntimeError, match="ratios"):
        rule.decide(brains)


def test_oscillator_brain_is_the_lag_studys_case_with_its_own_family(monkeypatch):
    import input_lags_auto_dev
    from _zoo_osc import OSCILLATOR_FAMILY, with_oscillators
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(120, 300, "dev", n_families=3, seed=5)
    osc = with_oscillators(brain, 5)
    monkeypatch.setattr(input_lags_auto_dev, "_zoo", lambda seed, args: brain)
    args = SimpleNamespace(zoo_epochs=1)
    case = input_lags_auto_dev._zoo_osc_case(5, args)  # the lag study's zoo_osc case
    np.testing.assert_array_equal(osc.activity, case["activity"].astype(np.float32))
    members = brain.instance == 0
    untouched = ~members
    np.testing.assert_array_equal(osc.activity[:, untouched], brain.activity[:, untouched])
    names = np.asarray(osc.motif_names)[osc.motif]
    assert set(names[members]) == {OSCILLATOR_FAMILY}
    assert OSCILLATOR_FAMILY not in set(names[untouched])
    assert list(osc.neurons["motif_name"]) == list(names)
    assert np.array_equal(osc.instance, brain.instance)
    assert osc.adjacency[members].nnz == 0 and osc.adjacency[:, members].nnz == 0
    ids = set(np.flatnonzero(members).tolist())
    assert not (set(osc.synapses["pre"]) | set(osc.synapses["post"])) & ids
    # the expected update leaves only the oscillators' noise (small against their swing)
    residual = osc.activity[2:, members] - osc.expected[2:, members]
    assert residual.std() < 0.2 * osc.activity[:, members].std()
