"""The noise ceiling of benchmarks/signal_propagation_ceiling.py on trials with a known truth."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
ceiling = pytest.importorskip("signal_propagation_ceiling")


def _pairs(n_pairs=4000, true_sd=0.1, noise_sd=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = true_sd * rng.normal(size=n_pairs)
    n = rng.integers(1, 9, size=n_pairs)
    trials = [t + noise_sd * rng.normal(size=k) for t, k in zip(truth, n, strict=True)]
    pairs = {
        "responder": rng.integers(0, 50, size=n_pairs),
        "stimulated": rng.integers(0, 40, size=n_pairs),
        "n": n,
        "mean": np.array([t.mean() for t in trials]),
        "variance": np.array([t.var(ddof=1) if t.size > 1 else np.nan for t in trials]),
        "trials": trials,
    }
    return pairs, truth


def test_ceilings_match_the_correlation_of_the_measured_means_with_the_truth():
    pairs, truth = _pairs()
    exact = np.corrcoef(pairs["mean"], truth)[0, 1]  # the best any prediction can do
    figures = ceiling.ceilings(pairs, ceiling.noise_variance(pairs), 10, np.random.default_rng(1))
    assert figures["true_variance_half_covariance"] == pytest.approx(0.01, rel=0.2)
    assert figures["ceiling_half_covariance"] == pytest.approx(exact, abs=0.04)
    # homoscedastic Gaussian noise: the pooled-variance decomposition is right too
    assert figures["ceiling_decomposition_pooled_noise"] == pytest.approx(exact, abs=0.04)
    repeated = pairs["n"] >= 2
    exact_repeated = np.corrcoef(pairs["mean"][repeated], truth[repeated])[0, 1]
    assert figures["ceiling_decomposition_pairs_with_2_or_more_trials"] == pytest.approx(
        exact_repeated, abs=0.04
    )


def test_spearman_brown_and_odd_even_halves():
    assert ceiling.spearman_brown(0.5) == pytest.approx(2 / 3)
    halves = ceiling.half_means([np.array([1.0, 3.0, 5.0]), np.array([2.0, 4.0])], None)
    np.testing.assert_allclose(halves, [[3.0, 2.0], [3.0, 4.0]])  # odd / even trials


@pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in ("wormneuroatlas", "c302", "cect", "h5py")),
    reason="the worm data packages are not installed (pip install 'napari-mesoscale[worm]')",
)
def test_real_atlas_pairs_hold_their_trials_and_the_diagonal_is_left_out():
    from napari_mesoscale.datasets import celegans

    names = celegans.neurons()["id"].tolist()
    columns = np.arange(len(names))
    pairs = ceiling.pair_table(names, "unc31", columns)
    np.testing.assert_allclose([t.mean() for t in pairs["trials"]], pairs["mean"])
    assert np.all(pairs["responder"] != pairs["stimulated"])
    assert pairs["n"].min() >= 1 and (pairs["n"] == 1).mean() > 0.4  # unc-31: mostly 1 trial
    repeated = np.isfinite(pairs["variance"])
    np.testing.assert_array_equal(repeated, pairs["n"] >= 2)
