"""The per-neuron linear path (``ModelConfig.linear_skip="ridge"``).

Untrained, the model must predict exactly what a linear per-neuron ridge on the training
block predicts (own state, x[t-1] with ``input_lags=2``, presynaptic partners, stimulus,
intercept): the reference here is rebuilt by hand from the coefficients of
:func:`~napari_mesoscale.model.initialise.per_neuron_ridge`, not through the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mesoscale.model import MesoscaleFit, ModelConfig, fit_mesoscale
from napari_mesoscale.model.core import skip_names
from napari_mesoscale.model.initialise import per_neuron_ridge
from napari_mesoscale.synth import make_toy_brain

torch.set_num_threads(1)

FAST = {"batch_frames": 32, "rollout": 2, "patience": 100}


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(n_neurons=80, n_frames=300, render=None, em=False, seed=5)


def _ridge_prediction(fit: MesoscaleFit, brain, lags: int) -> np.ndarray:
    """One-step prediction (activity units, rows 1..T-1) of a linear per-neuron ridge fitted
    on the fit's training block, computed from the ridge's coefficients in numpy."""
    x, stim = brain.activity, brain.stimulus
    mean, std = np.asarray(fit._p["mean"]), np.asarray(fit._p["std"])
    z = ((x - mean) / std).astype(np.float32)
    s = stim[:, None] if stim.ndim == 1 else stim
    u = (s - np.asarray(fit._p["stim_mean"])) / np.asarray(fit._p["stim_std"])
    tr0, tr1 = fit.blocks["train"]
    init = slice(tr0, min(tr1, tr0 + fit.config.init_frames))
    edges = np.stack([fit.net.pre.numpy(), fit.net.post.numpy()])
    ridge = per_neuron_ridge(z[init], edges, u[init], degree=1, previous=lags == 2)
    zd = z.astype(np.float64)
    prev = np.concatenate([zd[:1], zd[:-1]])
    drive = np.zeros_like(zd)
    np.add.at(drive.T, edges[1], ridge["edge"][:, None] * zd.T[edges[0]])
    pred = ridge["intercept"] + ridge["self"][:, 0] * zd + drive + u @ ridge["stimulus"].T
    if lags == 2:
        pred = pred + ridge["previous"] * prev
    return pred[:-1] * std + mean


@pytest.mark.parametrize("lags", [1, 2])
def test_untrained_model_is_the_per_neuron_ridge(brain, lags):
    """lr = 0: the fit's one-step prediction equals the linear ridge's (to ~1e-5 in
    normalised units), and the filters' output layer is zero."""
    fit = fit_mesoscale(
        brain.activity,
        brain.positions,
        connectome=brain.adjacency,
        stimulus=brain.stimulus,
        epochs=1,
        lr=0.0,
        lr_assignment=0.0,
        seed=0,
        linear_skip="ridge",
        input_lags=lags,
        **FAST,
    )
    net = fit.net
    assert net.linear_skip and net.skip_names == skip_names(lags, 1)
    assert float(net.bank.w_out.detach().abs().max()) == 0.0
    assert float(net.bank.c_out.detach().abs().max()) == 0.0
    pred = fit.predict(brain.activity, stimulus=brain.stimulus)
    ref = _ridge_prediction(fit, brain, lags)
    std = np.asarray(fit._p["std"])
    err = np.abs(pred[1:] - ref) / std
    assert err.max() < 1e-5, err.max()
    # the start was the first best-state candidate, and its validation loss was recorded
    assert fit._p["start_val_loss"] == pytest.approx(fit.scores["val_mse"], rel=1e-5)


def test_linear_path_trains_predicts_saves_and_loads(tmp_path, brain):
    """Trained, the linear path's coefficients and the filters' outputs move; the fit
    predicts (one step and free-running), scores no worse on validation than its start, and
    round-trips through save / load."""
    kwargs = {"connectome": brain.adjacency, "stimulus": brain.stimulus, "seed": 0, **FAST}
    fit = fit_mesoscale(brain.activity, brain.positions, epochs=6, linear_skip="ridge", **kwargs)
    start = fit_mesoscale(
        brain.activity,
        brain.positions,
        epochs=1,
        lr=0.0,
        lr_assignment=0.0,
        linear_skip="ridge",
        **kwargs,
    )
    assert fit.config.linear_skip == "ridge"
    moved = (fit.net.skip_weight - start.net.skip_weight).detach().abs().max()
    assert float(moved) > 1e-4
    assert float(fit.net.bank.w_out.detach().abs().max()) > 0.0
    assert fit.scores["val_mse"] <= fit._p["start_val_loss"] + 1e-9
    assert fit.n_params == start.n_params
    x, s = brain.activity, brain.stimulus
    one = fit.predict(x, stimulus=s)
    three = fit.predict(x, steps=3, stimulus=s)
    assert np.isfinite(one[1:]).all() and np.isfinite(three[3:]).all()
    path = fit.save(tmp_path / "skip.pt")
    again = MesoscaleFit.load(path)
    assert again.config.linear_skip == "ridge" and again.net.linear_skip
    np.testing.assert_array_equal(again.predict(x[:80], stimulus=s[:80]), one[:80])
    np.testing.assert_array_equal(again.motif_labels, fit.motif_labels)


def test_without_the_option_the_network_has_no_linear_path(brain):
    """The default builds no skip parameter (older fits' state dicts load unchanged), and the
    option is refused where its start cannot be the ridge."""
    fit = fit_mesoscale(brain.activity[:120], brain.positions, epochs=1, seed=0, **FAST)
    assert fit.config.linear_skip == "none" and not fit.net.linear_skip
    assert "skip_weight" not in fit._p["state"] and fit._p["start_val_loss"] is None
    with pytest.raises(ValueError, match="linear_skip"):
        ModelConfig(linear_skip="ridge", population_filters=1, n_filters=2).check(
            has_connectome=False
        )
    with pytest.raises(ValueError, match="linear_skip"):
        ModelConfig(linear_skip="ridge", edge_init="connectome").check(has_connectome=True)


def test_per_neuron_ridge_default_design_is_unchanged(brain):
    """degree=3 (the default) keeps the cubic design the dynamics features read; degree=1 with
    previous adds the x[t-1] coefficient; both return the intercept."""
    z = (brain.activity - brain.activity.mean(0)) / brain.activity.std(0)
    edges = np.stack([brain.adjacency.tocoo().row, brain.adjacency.tocoo().col])
    cubic = per_neuron_ridge(z, edges)
    linear = per_neuron_ridge(z, edges, degree=1, previous=True)
    assert cubic["self"].shape == (z.shape[1], 3) and linear["self"].shape == (z.shape[1], 1)
    assert np.all(cubic["previous"] == 0) and np.any(linear["previous"] != 0)
    with pytest.raises(ValueError, match="degree"):
        per_neuron_ridge(z, edges, degree=2)
