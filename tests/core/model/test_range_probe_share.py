"""``range_probe_share``: the range probe on a random share of the rollout windows.

Ground truth: the penalty of every window (share 1, today's loss). A share < 1 draws the same
windows for the same step seed, and over many steps its scaled penalty averages to the full one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_range_penalty import _chain_net, _pulses

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.training import _range_penalty, _training_range, probe_windows


def _penalty(rows=None) -> float:
    net = _chain_net()
    z = _pulses(120)
    bounds = _training_range(z, torch.ones_like(z, dtype=torch.bool))
    slots, pi = net.routed(1.0, "hard")
    cfg = ModelConfig(lambda_range=1.0)
    n = len(z)
    with torch.no_grad():
        value = _range_penalty(net, (z, None, None), pi, slots, cfg, n, 1.0 / n, bounds, rows)
    return float(value)


def test_share_one_is_every_window_exactly():
    assert probe_windows(120, 1.0, seed=3) is None
    everything = (torch.arange(120), 1.0)
    assert _penalty(None) == _penalty(everything)


def test_share_draw_is_deterministic_per_seed():
    a, wa = probe_windows(64, 0.25, seed=11)
    b, wb = probe_windows(64, 0.25, seed=11)
    c, _ = probe_windows(64, 0.25, seed=12)
    assert np.array_equal(a, b) and wa == wb == 4.0
    assert len(a) == 16 and len(np.unique(a)) == 16 and a.max() < 64
    assert not np.array_equal(a, c)
    assert _penalty((torch.as_tensor(a), wa)) == _penalty((torch.as_tensor(b), wb))


def test_share_draw_splits_over_ranks():
    chosen, _ = probe_windows(30, 0.4, seed=5)
    merged = []
    for rank in range(3):
        local, weight = probe_windows(30, 0.4, seed=5, rank=rank, world=3)
        merged += list(local * 3 + rank)
        assert weight == 30 / 12
    assert sorted(merged) == sorted(chosen)


def test_share_penalty_expectation_matches_the_full_penalty():
    full = _penalty(None)
    assert full > 0.01
    draws = []
    for seed in range(300):
        rows, weight = probe_windows(120, 0.25, seed=seed)
        draws.append(_penalty((torch.as_tensor(rows), weight)))
    assert np.mean(draws) == pytest.approx(full, rel=0.05)
    assert np.std(draws) > 0  # the draws differ: it is a sample, not the full sum


def test_share_is_validated():
    with pytest.raises(ValueError, match="range_probe_share"):
        ModelConfig(range_probe_share=0.0).validate()
