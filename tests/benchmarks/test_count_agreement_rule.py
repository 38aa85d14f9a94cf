"""benchmarks/count_agreement_dev.py (rule R9): the count and the verdict on rows whose answer
is known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("count_agreement_dev")


def test_the_count_is_the_highest_agreement_and_the_smaller_k_on_ties():
    assert rule.agreement_count({2: 0.3, 3: 0.9, 4: 0.5}) == 3
    assert rule.agreement_count({2: 0.4, 3: 0.8, 4: 0.8}) == 3


def _row(true, count, ari, cut, cut_ari):
    return {"true_count": true, "agreement_count": count, "agreement_count_ari": ari,
            "profile_cut_count": cut, "profile_cut_ari": cut_ari,
            "discovery_true_count_ari": 1.0, "initial_true_count_ari": 1.0}


def test_more_exact_counts_at_no_loss_of_motifs_pass_and_otherwise_fail():
    better = [_row(3, 3, 0.9, 5, 0.9), _row(4, 4, 0.95, 4, 0.95)]
    verdict = rule.judge(better)
    assert verdict["counts"]["agreement"]["exact"] == 2
    assert verdict["counts"]["profile_cut"] == {"exact": 1, "over": 1, "under": 0}
    assert verdict["passes"]
    costly = [_row(3, 3, 0.5, 5, 0.9), _row(4, 4, 0.5, 4, 0.95)]
    assert not rule.judge(costly)["part_b"]
    same = [_row(3, 2, 0.9, 3, 0.9)]
    assert not rule.judge(same)["part_a"]


def test_rule_r10_judges_the_smaller_count():
    rows = [{**_row(3, 5, 0.7, 4, 0.8), "smaller_count": 3, "smaller_count_ari": 0.95},
            {**_row(4, 4, 0.9, 6, 0.8), "smaller_count": 4, "smaller_count_ari": 0.9}]
    verdict = rule.judge_smaller(rows)
    assert verdict["counts"]["smaller"]["exact"] == 2
    assert verdict["counts"]["profile_cut"]["over"] == 2
    assert verdict["median_motif_ari"]["smaller"] == pytest.approx(0.925)
    assert verdict["passes"]
