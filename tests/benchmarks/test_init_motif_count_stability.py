"""benchmarks/init_motif_count_stability_dev.py: the count read from stability and shares,
and its tally, on rows whose answers are known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
study = pytest.importorskip("init_motif_count_stability_dev")


def _row(true_k: int, per_k: dict[int, tuple[float, float, float]]) -> dict:
    """Each k: (smallest share, stability, motif ARI), keys as JSON gives them back."""
    return {"true_k": true_k, "k": {str(k): {"share": s, "stability": b, "motif_ari": a}
                                    for k, (s, b, a) in per_k.items()}}


def test_the_largest_stable_k_whose_motifs_keep_their_share_is_the_count():
    row = _row(3, {2: (0.4, 1.0, 0.5), 3: (0.3, 0.97, 0.9), 4: (0.02, 1.0, 0.8),
                   5: (0.2, 0.6, 0.7)})
    assert study.stable_count(row, share=0.08, bar=0.95) == (3, 0.9)
    assert study.stable_count(row, share=0.01, bar=0.95) == (4, 0.8)  # the share let k=4 in
    assert study.stable_count(row, share=0.08, bar=0.98) == (2, 0.5)  # k=3 not stable enough
    assert study.stable_count(row, share=0.5, bar=0.5) == (1, 0.0)  # nothing qualifies


def test_the_tally_counts_exact_over_and_under():
    assert study.tally([3, 4, 2, 3], [3, 3, 3, 3], [1.0, 0.8, 0.4, 0.9]) == {
        "exact": 2, "over": 1, "under": 1, "median_motif_ari": pytest.approx(0.85)}


def test_the_summary_sets_r14_beside_every_grid_point():
    rows = {"plain": [_row(2, {2: (0.4, 1.0, 1.0)}) | {"r14": {"n_motifs": 2,
                                                              "motif_ari": 1.0}}]}
    summary = study.summarise(rows)
    assert summary["r14"]["plain"]["exact"] == 1
    assert len(summary["grid"]) == len(study.SHARES) * len(study.BARS)
    assert summary["grid"]["0.08_0.95"]["plain"] == {"exact": 1, "over": 0, "under": 0,
                                                     "median_motif_ari": 1.0}
