"""stimulus_features="sorted": followers of different stimulus channels get one description,
while the default keeps the channels apart."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.model.initialise import dynamics_features, per_neuron_ridge

FOLLOW_0, FOLLOW_1, IGNORE = slice(0, 4), slice(4, 8), slice(8, 12)


def _neurons(seed=0, t=800):
    """Neurons 0-3 follow channel 0, 4-7 the same way channel 1 (one motif, two inputs),
    8-11 are AR(1) noise that follows nothing."""
    rng = np.random.default_rng(seed)
    u = (rng.random((t, 2)) < 0.1).astype(float)
    z = np.zeros((t, 12))
    for k in range(1, t):
        z[k] = 0.6 * z[k - 1] + 0.05 * rng.normal(size=12)
        z[k, FOLLOW_0] += u[k - 1, 0]
        z[k, FOLLOW_1] += u[k - 1, 1]
    z[:, IGNORE] *= 20.0  # noise of the followers' scale
    z = (z - z.mean(0)) / z.std(0)
    edges = np.zeros((2, 0), dtype=np.int64)
    return z, u, edges, per_neuron_ridge(z, edges, u)


def _gap(feats, a, b):
    """Distance between two groups' mean first stimulus features (channel 0 per channel, the
    strongest sorted): the first |ridge coefficient| column (after the 10 autocorrelation lags)
    and the first |lag-1 correlation| column (the second last). The weaker input's columns are
    left out: near zero for every neuron, standardising them over 12 neurons magnifies noise."""
    cols = [10, feats.shape[1] - 2]
    return np.linalg.norm(feats[a, cols].mean(0) - feats[b, cols].mean(0))


def test_sorted_stimulus_features_describe_followers_of_either_channel_alike():
    z, u, edges, ridge = _neurons()
    per_channel = dynamics_features(z, ridge, edges, u)
    sorted_ = dynamics_features(z, ridge, edges, u, stimulus_channels="sorted")
    assert per_channel.shape == sorted_.shape
    # per channel, followers of the two channels are as far apart as followers and noise
    assert _gap(per_channel, FOLLOW_0, FOLLOW_1) > 0.5 * _gap(per_channel, FOLLOW_0, IGNORE)
    # sorted, they are one group, far from the noise
    assert _gap(sorted_, FOLLOW_0, FOLLOW_1) < 0.1 * _gap(sorted_, FOLLOW_0, IGNORE)


def test_an_unknown_stimulus_description_is_refused():
    z, u, edges, ridge = _neurons()
    with pytest.raises(ValueError, match="stimulus_channels must be one of"):
        dynamics_features(z, ridge, edges, u, stimulus_channels="max")


def test_both_keeps_the_channels_and_adds_the_sorted_values():
    z, u, edges, ridge = _neurons()
    per_channel = dynamics_features(z, ridge, edges, u)
    sorted_ = dynamics_features(z, ridge, edges, u, stimulus_channels="sorted")
    both = dynamics_features(z, ridge, edges, u, stimulus_channels="both")
    assert both.shape[1] == per_channel.shape[1] + 2 * u.shape[1]
    # the |ridge coefficient| block: per channel (2 columns), then sorted (2 columns)
    np.testing.assert_allclose(both[:, 10:12], per_channel[:, 10:12])
    np.testing.assert_allclose(both[:, 12:14], sorted_[:, 10:12])
