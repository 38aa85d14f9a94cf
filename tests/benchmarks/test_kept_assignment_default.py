"""benchmarks/kept_assignment_default.py applies the rule of ea7532f as written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import kept_assignment_default as judge  # noqa: E402

BASELINE_MSE = {"persistence": 2.0, "mean": 3.0, "ridge_var": 1.5, "connectome_linear": 1.2,
                "ar2_neuron": 1.1}


def _brain(seed: int, default: float, candidate: float, motif=(0.9, 1.0, 1.0)) -> dict:
    rows = {name: {"mse": mse} for name, mse in BASELINE_MSE.items()}
    for name, mse, ari in (("model", default, motif[0]), ("cand", candidate, motif[1]),
                           ("init", 1.5, motif[2])):
        rows[name] = {"mse": mse, "motif_ari": ari, "domain_ari": ari}
    return {"seed": seed, **rows}


def test_zoo_part_counts_brains_below_every_baseline_and_within_the_bar() -> None:
    brains = [_brain(s, 1.0, 1.0) for s in range(6)]
    brains += [_brain(6, 1.0, 1.15), _brain(7, 1.0, 1.03)]  # one above AR(2), two over 1.02
    result = judge.judge_zoo(brains, "cand")
    assert result["candidate_below_every_baseline"][:2] == [7, 8]
    assert result["within_bar"] == 6
    assert result["checks"] == {"a_motif_ari": True, "b_below_every_baseline": True,
                                "c_mse_within_bar": False}
    assert not result["passes"]


def test_zoo_part_needs_the_motifs_of_the_initialisation() -> None:
    brains = [_brain(s, 1.0, 1.0, motif=(0.9, 0.95, 1.0)) for s in range(8)]
    result = judge.judge_zoo(brains, "cand")
    assert not result["checks"]["a_motif_ari"]  # 0.95 < 1.0 - 0.01


def _toy(ratios: list[float], motif: float = 1.0) -> tuple[dict, dict]:
    def run(values, ari):
        return {"per_seed": [{"brain": {"seed": 4 + i},
                              "model": {"default_connectome": {"mse_1": v, "motif_ari": ari}}}
                             for i, v in enumerate(values)]}
    return run([1.0] * len(ratios), 1.0), run(ratios, motif)


@pytest.mark.parametrize(
    ("ratios", "passes"),
    [
        ([1.0] * 7 + [1.09], True),  # one over the bar, under the ceiling
        ([1.0] * 7 + [1.11], False),  # over the 1.10 ceiling
        ([1.0] * 6 + [1.03, 1.03], False),  # 6 of 8 within 1.02
    ],
)
def test_toy_part_bar_and_ceiling(ratios: list[float], passes: bool) -> None:
    default, candidate = _toy(ratios)
    assert judge.judge_toy(default, candidate)["passes"] is passes


def test_toy_part_needs_eight_seeds_and_the_motifs() -> None:
    assert not judge.judge_toy(*_toy([1.0] * 7))["passes"]
    assert not judge.judge_toy(*_toy([1.0] * 8, motif=0.98))["passes"]
