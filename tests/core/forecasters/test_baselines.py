"""Baselines: common interface, numbers on a toy brain, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mesoscale.baselines import (
    ConnectomeLinear,
    GRUBaseline,
    MeanBaseline,
    NeuronAR2,
    Persistence,
    RidgeVAR,
    default_baselines,
)
from napari_mesoscale.evaluate import evaluate_forecast
from napari_mesoscale.synth import make_toy_brain

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(n_neurons=80, n_frames=300, render=None, em=False, seed=4)


def _split(b):
    return 200, slice(201, 300)


def test_linear_baselines_beat_persistence(brain):
    x, u = brain.activity, brain.stimulus
    n_tr, test = _split(brain)
    mse = {}
    for name, model in default_baselines(brain.adjacency).items():
        if name == "gru":
            continue
        model.fit(x[:n_tr], stimulus=u[:n_tr])
        pred = model.predict(x, stimulus=u)
        assert pred.shape == x.shape and np.isnan(pred[0]).all()
        mse[name] = evaluate_forecast(pred, x, frames=test)[1]["mse"]
    assert mse["ridge_var"] < 0.5 * mse["persistence"]
    assert mse["connectome_linear"] < 0.5 * mse["persistence"]
    # persistence is exactly x(t) and the mean baseline the training mean
    p = Persistence().fit(x[:n_tr]).predict(x)
    np.testing.assert_allclose(p[1:], x[:-1], rtol=1e-6, atol=1e-7)
    m = MeanBaseline().fit(x[:n_tr]).predict(x)
    np.testing.assert_allclose(m[5], x[:n_tr].mean(0), rtol=1e-6, atol=1e-7)


def test_ridge_recovers_a_known_linear_system():
    rng = np.random.default_rng(0)
    n, t = 12, 3000
    a = rng.normal(0, 0.25, (n, n)) / np.sqrt(n) + 0.5 * np.eye(n)
    x = np.zeros((t, n))
    for k in range(1, t):
        x[k] = x[k - 1] @ a.T + rng.normal(0, 0.1, n)
    model = RidgeVAR(alphas=(1e-6,)).fit(x)
    # in normalised units the transition matrix is the same up to per-neuron scaling
    pred = model.predict(x)
    resid = x[1:] - pred[1:]
    assert abs(resid.std() - 0.1) < 0.01  # reaches the noise floor
    low = RidgeVAR(max_dense=5, rank=12, alphas=(1e-6,)).fit(x)
    assert np.nanstd(x[1:] - low.predict(x)[1:]) < 0.11
    assert low.n_params > 0


def test_neuron_ar2_recovers_damped_oscillators_that_ar1_cannot():
    rng = np.random.default_rng(1)
    n, t = 6, 4000
    period = rng.uniform(8, 12, n)
    r = 0.9
    a, b = 2 * r * np.cos(2 * np.pi / period), -(r**2)  # x(t+1) = a x(t) + b x(t-1) + noise
    u = rng.normal(size=(t, 1))
    x = np.zeros((t, n))
    for k in range(1, t - 1):
        x[k + 1] = a * x[k] + b * x[k - 1] + 0.3 * u[k, 0] + 0.1 * rng.normal(size=n) + 1.0
    fit, test = slice(0, 3000), slice(3001, t)
    ar2 = NeuronAR2(alpha=1e-6).fit(x[fit], stimulus=u[fit])
    pred = ar2.predict(x, stimulus=u)
    assert pred.shape == x.shape and np.isnan(pred[0]).all() and np.isfinite(pred[1:]).all()
    assert abs(np.std(x[test] - pred[test]) - 0.1) < 0.01  # reaches the noise floor
    assert ar2.n_params == n * 4  # x(t), x(t-1), one stimulus column, intercept
    # a first-order linear forecaster, even one that sees every neuron, stays far above it
    var = RidgeVAR(alphas=(1e-6,)).fit(x[fit], stimulus=u[fit])
    assert np.std(x[test] - var.predict(x, stimulus=u)[test]) > 0.15
    # k steps: the one-step map applied k times from (x(s), x(s-1))
    p2 = ar2.predict(x, steps=2, stimulus=u)
    assert np.isnan(p2[:2]).all()
    s = 100
    z = (x - ar2.mean_) / ar2.std_
    uz = (u - ar2.u_mean_) / ar2.u_std_
    c = ar2.coef_
    one = c[:, 0] * z[s] + c[:, 1] * z[s - 1] + c[:, 2] * uz[s, 0] + c[:, 3]
    two = c[:, 0] * one + c[:, 1] * z[s] + c[:, 2] * uz[s + 1, 0] + c[:, 3]
    np.testing.assert_allclose(p2[s + 2], two * ar2.std_ + ar2.mean_, rtol=1e-9)
    np.testing.assert_allclose(pred[s + 1], one * ar2.std_ + ar2.mean_, rtol=1e-9)
    # row 1 is predicted with row 0 standing in for its own previous frame
    first = (c[:, 0] + c[:, 1]) * z[0] + c[:, 2] * uz[0, 0] + c[:, 3]
    np.testing.assert_allclose(pred[1], first * ar2.std_ + ar2.mean_, rtol=1e-9)


def test_connectome_linear_sparsity(brain):
    x = brain.activity
    model = ConnectomeLinear(brain.adjacency).fit(x[:200])
    nnz = brain.adjacency.copy()
    nnz.setdiag(0)
    nnz.eliminate_zeros()
    # one coefficient per incoming edge and self, plus the intercept
    assert model.n_params == nnz.nnz + x.shape[1] + x.shape[1]


def test_gru_and_multistep(brain):
    x = brain.activity
    gru = GRUBaseline(hidden=16, epochs=3, seed=0).fit(x[:200])
    p1, p4 = gru.predict(x, steps=1), gru.predict(x, steps=4)
    assert np.isnan(p4[:4]).all() and np.isfinite(p4[4:]).all()
    assert np.isfinite(p1[1:]).all()
    again = GRUBaseline(hidden=16, epochs=3, seed=0).fit(x[:200])
    np.testing.assert_allclose(again.predict(x), p1, rtol=1e-5)


def test_bad_input(brain):
    x = brain.activity
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        RidgeVAR().fit(x[:, 0])
    model = RidgeVAR().fit(x[:200])
    with pytest.raises(ValueError, match="neurons"):
        model.predict(x[:, :10])
    with pytest.raises(ValueError, match="stimulus"):
        RidgeVAR().fit(x[:200], stimulus=brain.stimulus[:200]).predict(x)
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeVAR().predict(x)
    with pytest.raises(ValueError, match="adjacency"):
        ConnectomeLinear(brain.adjacency[:10, :10]).fit(x)
