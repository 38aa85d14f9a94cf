"""Per-neuron own-state gains (``ModelConfig.neuron_gains``).

A neuron's gain scales its own past (x[t], and x[t-1] with ``input_lags=2``) into whichever
filter it uses, so that one shared filter can serve neurons of one motif whose periods differ.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
from napari_mesoscale.model.core import MesoscaleNet, previous_frames

torch.set_num_threads(1)


def _nets(lags: int) -> tuple[MesoscaleNet, MesoscaleNet]:
    """The same small network with and without neuron gains (equal parameters otherwise)."""
    n, lm = 12, 2
    cand = torch.stack([torch.arange(n) % 3, (torch.arange(n) + 1) % 3], dim=1)
    relpos = 0.1 * torch.randn(n, lm, 3, generator=torch.Generator().manual_seed(1))
    edges = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])

    def net(gains: bool) -> MesoscaleNet:
        return MesoscaleNet(
            cand, relpos, 3, edges, n_filters=2, n_stimulus=1, input_lags=lags,
            neuron_gains=gains, generator=torch.Generator().manual_seed(0),
        )

    with_gains, plain = net(True), net(False)
    plain.load_state_dict({k: v for k, v in with_gains.state_dict().items() if k != "neuron_gain"})
    return with_gains, plain


def _outputs(net: MesoscaleNet) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    z, u = torch.randn(20, net.n_neurons, generator=g), torch.randn(20, 1, generator=g)
    slots, pi = net.routed()
    with torch.no_grad():
        out, _ = net.evaluate(z, u, pi, slots, previous_frames(z, 0, 20))
    return out


@pytest.mark.parametrize("lags", [1, 2])
def test_zero_gains_change_nothing_and_a_gain_acts_on_its_own_neuron_only(lags):
    with_gains, plain = _nets(lags)
    assert with_gains.neuron_gain.shape == (12, lags)
    assert torch.equal(_outputs(with_gains), _outputs(plain))
    # neuron 4's gain on its own state is the same as a field gain on "self" for neuron 4
    with torch.no_grad():
        with_gains.neuron_gain[4, 0] = 0.7
        plain.pre_gain[:, :, plain.feature_names.index("self")] = 0.7
    a, b = _outputs(with_gains), _outputs(plain)
    assert torch.allclose(a[:, 4], b[:, 4], atol=1e-6)
    others = torch.arange(12) != 4
    reference = _nets(lags)[1]
    assert torch.equal(a[:, others], _outputs(reference)[:, others])
    assert not torch.allclose(a[:, 4], _outputs(reference)[:, 4])
    penalty = with_gains.interface_penalty() - reference.interface_penalty()  # gains counted
    assert float(penalty.detach()) == pytest.approx(0.7**2 / (12 * lags), rel=1e-5)


def _oscillators(n: int = 40, t: int = 900, seed: int = 0):
    """Damped oscillators of per-neuron periods 7-14 frames (radius 0.9) kicked by one shared
    stimulus, in one cluster: one motif whose neurons differ in period."""
    rng = np.random.default_rng(seed)
    c1 = 1.8 * np.cos(2 * np.pi / rng.uniform(7.0, 14.0, n))
    kicks = (rng.random(t) < 0.08) * rng.normal(0.0, 1.0, t)
    x = np.zeros((t, n))
    for k in range(2, t):
        x[k] = c1 * x[k - 1] - 0.81 * x[k - 2] + kicks[k - 1] + 0.05 * rng.normal(size=n)
    positions = rng.normal(0.0, 10.0, (n, 3)) + 100.0
    return x.astype(np.float32), positions, kicks[:, None].astype(np.float32)


def test_gains_let_one_filter_serve_oscillators_of_different_periods(tmp_path):
    """One filter for 40 oscillators whose periods span 7-14 frames: with a gain per neuron
    the held-out one-step error comes nearer the noise floor than without; the gains are
    trained, saved and loaded with the fit."""
    x, positions, stim = _oscillators()
    common = dict(
        stimulus=stim, n_filters=1, input_lags=2, epochs=25, seed=0, hidden=8, depth=1,
        batch_frames=64, rollout=2, rollout_frames=4, patience=100,
    )
    plain = fit_mesoscale(x, positions, **common)
    gains = fit_mesoscale(x, positions, neuron_gains=True, **common)
    assert gains.config.neuron_gains and not plain.config.neuron_gains
    trained = gains.net.neuron_gain.detach()
    assert trained.abs().max() > 0.05
    start, stop = plain.blocks["test"]
    assert (start, stop) == gains.blocks["test"]

    def excess(fit: MesoscaleFit) -> float:  # held-out one-step MSE above the noise's
        pred = fit.predict(x, stimulus=stim)
        return float(np.mean((pred[start + 1 : stop] - x[start + 1 : stop]) ** 2)) - 0.05**2

    excess = {"plain": excess(plain), "gains": excess(gains)}  # measured: 0.0030, 0.0016
    assert excess["gains"] < 0.8 * excess["plain"], excess
    path = tmp_path / "gains.mesoscale"
    gains.save(path)
    loaded = MesoscaleFit.load(path)
    assert torch.equal(loaded.net.neuron_gain, trained)
    np.testing.assert_allclose(
        loaded.predict(x, stimulus=stim), gains.predict(x, stimulus=stim), atol=1e-6
    )
