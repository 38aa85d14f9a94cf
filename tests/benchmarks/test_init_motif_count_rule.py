"""benchmarks/init_motif_count_rule.py (rule R14): the criteria on rows whose verdicts are
known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("init_motif_count_rule")


def _row(true_k, candidate, profile_cut, given):
    """Each method: (motifs found, motif ARI)."""
    row = {"seed": 0, "true_k": true_k}
    for name, (found, ari) in (("candidate", candidate), ("profile_cut", profile_cut),
                               ("given", given)):
        row[name] = {"n_motifs": found, "motif_ari": ari}
    return row


def _zoo():
    return [
        _row(3, (3, 0.95), (5, 0.85), (3, 0.97)),
        _row(3, (3, 0.96), (3, 0.90), (3, 0.98)),
        _row(4, (4, 1.00), (6, 0.80), (4, 1.00)),
    ]


def _toy(found=(4, 4, 5, 4), aris=(1.0, 0.98, 0.9, 1.0)):
    return [_row(4, (f, a), (6, 0.8), (4, 1.0)) for f, a in zip(found, aris, strict=True)]


def test_more_exact_counts_at_no_cost_pass():
    verdict = rule.judge({"plain": _zoo(), "heterogeneous": _zoo(), "toy": _toy()})
    assert verdict["passes"], verdict["parts"]
    summary = verdict["summary"]["plain"]
    assert (summary["candidate"]["exact"], summary["profile_cut"]["exact"]) == (3, 1)


def test_no_more_exact_counts_than_the_cut_fails_part_a():
    as_many = [  # both exact on the second brain only
        _row(3, (5, 0.95), (5, 0.85), (3, 0.97)),
        _row(3, (3, 0.96), (3, 0.90), (3, 0.98)),
        _row(4, (2, 1.00), (6, 0.80), (4, 1.00)),
    ]
    verdict = rule.judge({"plain": as_many, "heterogeneous": _zoo(), "toy": _toy()})
    assert not verdict["passes"]
    assert verdict["parts"]["a_plain"] is False
    assert verdict["parts"]["a_heterogeneous"] is True


def test_labels_worse_than_given_the_count_fail_part_c():
    zoo = [_row(3, (3, 0.85), (5, 0.80), (3, 0.99)) for _ in range(3)]
    verdict = rule.judge({"plain": _zoo(), "heterogeneous": zoo, "toy": _toy()})
    assert verdict["parts"]["b_heterogeneous"] is True
    assert verdict["parts"]["c_heterogeneous"] is False
    assert not verdict["passes"]


def test_the_toy_count_off_by_more_than_one_on_two_seeds_fails_part_d():
    verdict = rule.judge({"plain": _zoo(), "heterogeneous": _zoo(),
                          "toy": _toy(found=(4, 6, 2, 4))})
    assert verdict["parts"]["d_toy"] is False
    assert not verdict["passes"]
