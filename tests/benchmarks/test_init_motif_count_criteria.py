"""benchmarks/init_motif_count_criteria_dev.py: each count criterion on communities whose
number of groups is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
study = pytest.importorskip("init_motif_count_criteria_dev")


def _blobs(groups: int, per_group: int = 5, dims: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = 10.0 * rng.standard_normal((groups, dims))
    x = np.repeat(centres, per_group, axis=0) + 0.3 * rng.standard_normal((groups * per_group,
                                                                           dims))
    size = rng.integers(10, 30, x.shape[0]).astype(float)
    return x, size


def test_within_sum_weighs_every_community_by_its_size():
    x = np.array([[0.0], [2.0], [10.0]])
    size = np.array([1.0, 3.0, 2.0])
    labels = np.array([0, 0, 1])
    # weighted mean of the first group 1.5: 1 * 1.5^2 + 3 * 0.5^2
    assert study.within_sum(x, labels, size) == pytest.approx(3.0)


@pytest.mark.parametrize("groups", [2, 3, 4])
def test_every_criterion_counts_well_separated_groups(groups):
    figures = study.brain_figures(*_blobs(groups))
    assert figures["within"][groups] < 0.05 * figures["within"][1]
    # the largest gap and the jumps run past the groups when W_k nears 0 with k close to the
    # number of communities (10-20 here); they are kept as the literature has them
    overshooting = {"gap_max", "jump y=P/2", "jump y=1"}
    for name, criterion in study.CRITERIA.items():
        if name not in overshooting:
            assert criterion(figures) == groups, name


def test_the_share_guard_keeps_a_tiny_group_from_counting():
    x, size = _blobs(3)
    size[:5] = 0.5  # the first group holds under 1 % of the neurons
    figures = study.brain_figures(x, size)
    assert figures["share"][3] < study.SHARE
    assert study.r14(figures) == 2
    assert study.calinski_harabasz(figures) == 2
    assert study.gap(figures, share=0.0) == 3


def test_the_summary_counts_exact_over_and_under_per_set():
    rows = {"a": [{"true_k": 3, "criteria": {name: {"n_motifs": 3, "motif_ari": 1.0}
                                            for name in study.CRITERIA}},
                  {"true_k": 2, "criteria": {name: {"n_motifs": 4, "motif_ari": 0.5}
                                            for name in study.CRITERIA}}]}
    summary = study.summarise(rows)
    assert summary["r14"]["a"] == {"exact": 1, "over": 1, "under": 0, "median_motif_ari": 0.75}
    assert summary["gap"]["exact_of_all"] == 1
