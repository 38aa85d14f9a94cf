"""benchmarks/init_motif_count_r15.py (rule R15) and init_motif_count="consensus": the count
against the criteria study's own implementation, and the judge on rows whose verdicts are
known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_mesoscale.model.initialise import community_descriptors, community_motif_count

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
rule = pytest.importorskip("init_motif_count_r15")
study = pytest.importorskip("init_motif_count_criteria_dev")


def _neurons(centres: np.ndarray, per_motif: int, spread: float, seed: int):
    """Neuron features of ``per_motif`` communities around each centre (8-30 neurons each)."""
    rng = np.random.default_rng(seed)
    feats, comm = [], []
    for c, centre in enumerate(np.repeat(centres, per_motif, axis=0)):
        middle = centre + spread * rng.standard_normal(centre.size)
        n = int(rng.integers(8, 30))
        feats.append(middle + 0.05 * rng.standard_normal((n, centre.size)))
        comm.append(np.full(n, c))
    return np.vstack(feats), np.concatenate(comm)


@pytest.mark.parametrize("seed", range(6))
def test_consensus_is_the_median_of_the_studys_three_counts(seed):
    # motifs at random distances, some close: the three criteria do not always agree
    rng = np.random.default_rng(100 + seed)
    centres = rng.uniform(-3, 3, size=(int(rng.integers(2, 6)), 4))
    feats, comm = _neurons(centres, 4, spread=0.8, seed=seed)
    signature = np.zeros((comm.max() + 1, 3))
    k, labels = community_motif_count(feats, comm, signature, 0.0, 8, 0.08, 0.02,
                                      criterion="consensus")
    x, size = community_descriptors(feats, comm, signature, 0.0)
    figures = study.brain_figures(x, size)
    three = sorted((study.r14(figures), study.calinski_harabasz(figures),
                    study.hartigan(figures)))
    assert k == three[1]
    assert np.unique(labels).size == k
    # and the default criterion is still R14's silhouette count alone
    assert community_motif_count(feats, comm, signature, 0.0, 8, 0.08, 0.02)[0] == study.r14(
        figures)


def test_the_three_criteria_disagree_on_some_of_these_brains():
    """Else the test above could not tell the median from any one criterion."""
    disagree = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        centres = rng.uniform(-3, 3, size=(int(rng.integers(2, 6)), 4))
        feats, comm = _neurons(centres, 4, spread=0.8, seed=seed)
        x, size = community_descriptors(feats, comm, np.zeros((comm.max() + 1, 3)), 0.0)
        figures = study.brain_figures(x, size)
        counts = {study.r14(figures), study.calinski_harabasz(figures),
                  study.hartigan(figures)}
        disagree += len(counts) > 1
    assert disagree >= 2


def _row(true_k, candidate, r14, given):
    """Each method: (motifs found, motif ARI)."""
    row = {"seed": 0, "true_k": true_k}
    for name, (found, ari) in (("candidate", candidate), ("r14", r14), ("given", given)):
        row[name] = {"n_motifs": found, "motif_ari": ari}
    return row


def _zoo(candidate_ari=0.95):
    return [
        _row(3, (3, candidate_ari), (2, 0.60), (3, 0.97)),
        _row(3, (3, 0.96), (3, 0.90), (3, 0.98)),
        _row(4, (5, 0.92), (4, 1.00), (4, 1.00)),
    ]


def _toy(found=(4, 4, 5, 4), aris=(1.0, 0.98, 0.9, 1.0)):
    return [_row(4, (f, a), (3, 0.7), (4, 1.0)) for f, a in zip(found, aris, strict=True)]


def test_a_higher_ari_above_the_target_with_as_many_exact_counts_passes():
    verdict = rule.judge({"plain": _zoo(), "heterogeneous": _zoo(), "toy": _toy()})
    assert verdict["passes"], verdict["parts"]
    assert verdict["summary"]["plain"]["candidate"]["median_motif_ari"] == pytest.approx(0.95)


def test_a_median_below_the_target_fails_part_a_even_above_r14():
    rows = [_row(3, (3, 0.89), (2, 0.5), (3, 1.0)) for _ in range(3)]
    verdict = rule.judge({"plain": rows, "heterogeneous": _zoo(), "toy": _toy()})
    assert not verdict["passes"]
    assert not verdict["parts"]["a_plain"] and verdict["parts"]["b_plain"]


def test_fewer_exact_counts_than_r14_fail_part_c():
    rows = [_row(3, (4, 0.97), (3, 0.95), (3, 1.0)) for _ in range(3)]
    verdict = rule.judge({"plain": rows, "heterogeneous": rows, "toy": _toy()})
    assert verdict["parts"]["a_plain"] and verdict["parts"]["b_plain"]
    assert not verdict["parts"]["c_zoo"] and not verdict["passes"]


def test_the_toy_count_far_from_four_fails_part_d():
    verdict = rule.judge({"plain": _zoo(), "heterogeneous": _zoo(),
                          "toy": _toy(found=(2, 4, 7, 4))})
    assert not verdict["parts"]["d_toy"] and not verdict["passes"]
