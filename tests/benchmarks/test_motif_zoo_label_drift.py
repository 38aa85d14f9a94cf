"""benchmarks/motif_zoo_label_drift.py: matched moves, per-epoch records and the rule."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
drift = pytest.importorskip("motif_zoo_label_drift")


def test_matched_ignores_a_permutation_of_filter_indices():
    ref = np.array([0, 0, 1, 1, 2, 2])
    assert np.array_equal(drift._matched(np.array([2, 2, 0, 0, 1, 1]), ref), ref)
    moved = drift._matched(np.array([2, 2, 0, 1, 1, 1]), ref)
    assert (moved != ref).sum() == 1


def test_moves_counts_destination_by_initial_majority_family():
    brain = argparse.Namespace(motif=np.array([0, 0, 0, 1, 1, 1]), motif_names=["a", "b"])
    ref = np.array([0, 0, 0, 1, 1, 1])
    out = drift._moves(np.array([0, 0, 1, 1, 1, 1]), ref, brain)
    assert out["all"] == pytest.approx(1 / 6)
    assert out["families"]["a"]["moved"] == pytest.approx(1 / 3)
    assert out["families"]["a"]["to"]["other_family"] == {"b": 1}
    assert out["families"]["b"]["moved"] == 0.0


def test_run_fit_records_every_epoch_and_freeze_keeps_the_labels():
    from napari_mesoscale.synth.motif_zoo import make_zoo_brain

    brain = make_zoo_brain(60, 300, "dev", n_families=3, seed=1000)
    args = argparse.Namespace(epochs=6)
    model = drift.run_fit(brain, "model", args)
    assert [e["epoch"] for e in model["epochs"]] == list(range(6))
    assert all(np.isfinite(e["test_mse_z"]) for e in model["epochs"])
    ref = np.asarray(model["labels_init"])
    frozen = drift.run_fit(brain, "freeze", args, ref)
    assert frozen["options"]["freeze_assignment_epochs"] == 6
    assert all(e["moved_since_init"] == 0.0 for e in frozen["epochs"])
    assert frozen["moves_final_vs_init"]["all"] == 0.0
    assert drift.training._end_epoch.__name__ == "_end_epoch"  # the wrapper was removed


def test_summarise_applies_the_rule(tmp_path):
    def fit(ari: float, mse: float, init_ari: float = 0.99) -> dict:
        epochs = [
            {"motif_ari": init_ari, "domain_ari": 0.9, "moved_since_init": 0.0, "test_mse_z": 1.0}
        ] * 5
        return {
            "final": {"motif_ari": ari, "domain_ari": 0.9, "mse": mse},
            "epochs": epochs,
            "moves_final_vs_init": {"all": 0.0, "families": {}},
            "seconds": 1.0,
        }

    brains = [
        {"seed": 1000 + i, "fits": {"model": fit(0.8, 1.0), "lr_small": fit(0.985, 1.0 + d)}}
        for i, d in enumerate([0.0, 0.0, 0.0, 0.02])
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"brains": brains}))
    out = drift.summarise([str(path)])
    assert out["epoch_5_labels"]["median_motif_ari"] == pytest.approx(0.99)
    assert out["fits"]["lr_small"]["mse_within_1pct_of_default"] == [3, 4]
    assert out["fits"]["lr_small"]["promising"]  # within 0.01 of 0.99, all but one brain
    assert not out["fits"]["model"]["promising"]
