"""benchmarks/motif_zoo_mse_diagnosis.py --summarise: counts against the zoo's baselines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
diagnosis = pytest.importorskip("motif_zoo_mse_diagnosis")


def _write(path: Path, obj: dict) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def test_summarise_counts_below_every_baseline_and_merges_rows(tmp_path):
    zoo = {
        "brains": [
            {"seed": 1000, "connectome_linear": {"mse": 1.0}, "gru": {"mse": 2.0}},
            {"seed": 1001, "connectome_linear": {"mse": 1.0}, "gru": {"mse": 0.5}},
        ]
    }

    def brain(seed: int, **fits: float) -> dict:
        rows = {name: {"mse": mse, "stopped": "completed"} for name, mse in fits.items()}
        rows["connectome_linear"] = {"mse": 1.0}
        rows["ar2_neuron"] = {"mse": 1.2}
        return {"seed": seed, "rows": rows}

    a = _write(
        tmp_path / "a.json", {"brains": [brain(1000, epochs_5=1.1), brain(1001, epochs_5=0.4)]}
    )
    b = _write(tmp_path / "b.json", {"brains": [brain(1000, epochs_60=0.9)]})
    out = diagnosis.summarise([a, b], _write(tmp_path / "zoo.json", zoo))
    # brain 1001's best baseline is the zoo's GRU (0.5), taken from the zoo result
    assert out["epochs_5"]["below_every_baseline"] == 1
    assert out["epochs_5"]["brains"] == 2
    assert out["epochs_5"]["ratio"][1001] == [0.8, "gru"]
    assert out["epochs_60"]["below_every_baseline"] == 1  # brain 1000's rows from both files
    assert out["epochs_60"]["brains"] == 1


def test_summarise_refuses_another_brain(tmp_path):
    zoo = {"brains": [{"seed": 1000, "connectome_linear": {"mse": 2.0}}]}
    rows = {"epochs_5": {"mse": 1.0, "stopped": "completed"}, "connectome_linear": {"mse": 1.0}}
    a = _write(tmp_path / "a.json", {"brains": [{"seed": 1000, "rows": rows}]})
    with pytest.raises(RuntimeError, match="not the brain"):
        diagnosis.summarise([a], _write(tmp_path / "zoo.json", zoo))
