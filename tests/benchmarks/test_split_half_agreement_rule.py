"""benchmarks/split_half_agreement_dev.py (rule R7): the verdict on rows whose answer is
known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("split_half_agreement_dev")


def _brain(initial, discovery):
    """``initial`` / ``discovery``: (motif ARI, split-half agreement)."""
    row = {m: {"motif_ari": a, "agreement": g}
           for m, (a, g) in zip(rule.METHODS, (initial, discovery), strict=True)}
    row["picked"] = rule.pick(row)
    return row


def test_agreement_that_follows_the_right_method_passes():
    rows = [_brain((1.0, 0.9), (0.6, 0.5)) for _ in range(3)]
    rows += [_brain((0.5, 0.4), (1.0, 0.95)) for _ in range(3)]
    verdict = rule.judge(rows)
    assert verdict["differ_by_more_than_gap"] == 6
    assert verdict["picked_the_better_where_they_differ"] == 6
    assert verdict["passes"]


def test_agreement_that_points_the_wrong_way_or_too_few_differing_brains_fails():
    wrong = [_brain((1.0, 0.5), (0.6, 0.9)) for _ in range(3)]
    wrong += [_brain((0.5, 0.4), (1.0, 0.95)) for _ in range(3)]
    verdict = rule.judge(wrong)
    assert verdict["picked_the_better_where_they_differ"] == 3
    assert not verdict["part_a"] and not verdict["passes"]
    few = [_brain((1.0, 0.9), (0.6, 0.5)) for _ in range(4)]
    assert not rule.judge(few)["part_a"]  # four differing brains: too few to judge


def test_ties_keep_the_initialisation():
    assert _brain((1.0, 0.7), (0.6, 0.7))["picked"] == "initial"
    rows = [_brain((0.9, 0.7), (0.9, 0.7)) for _ in range(6)]
    assert rule.judge(rows)["discovery_picked"] == 0
