"""Pieces of benchmarks/signal_propagation.py that need no atlas: the drive adjacency the fitted
models share and the resampled correlation of the paper's in-sample metric."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
signal_propagation = pytest.importorskip("signal_propagation")


def test_drive_adjacency_as_wired_or_both_directions():
    A = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]])  # [post, pre]
    np.testing.assert_array_equal(signal_propagation.drive_adjacency(A, "as_wired"), A)
    both = signal_propagation.drive_adjacency(A, "both_directions")
    np.testing.assert_array_equal(both, A + A.T)
    assert both[1, 0] == 2.0 and both[1, 2] == 3.0  # the reversed chemical edges
    with pytest.raises(ValueError, match="drive_edges"):
        signal_propagation.drive_adjacency(A, "reversed")


def test_column_bootstrap_brackets_the_pooled_correlation():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(60, 40))
    Y = 0.3 * P + rng.normal(size=P.shape)
    Y[rng.random(Y.shape) < 0.3] = np.nan  # unobserved pairs
    Y[:, 5] = np.nan  # a neuron never stimulated is never drawn
    r = signal_propagation.pearson(P, Y)
    draws = signal_propagation._column_bootstrap_r(P, Y, np.random.default_rng(1), n=300)
    assert np.isfinite(draws).all()
    assert np.percentile(draws, 2.5) < r < np.percentile(draws, 97.5)
    assert 0.2 < r < 0.4  # the true correlation is 0.3 / sqrt(1.09) = 0.287
