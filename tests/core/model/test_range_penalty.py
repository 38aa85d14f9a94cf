"""The out-of-range penalty (``lambda_range``) keeps a chain filter bounded in free rollout.

Ground truth: a 6-member chain whose true dynamics is a shift (x_i(t+1) = x_{i-1}(t)) of
saturated pulses (0 or 1, like the toy brain's sigmoid chains). The filter starts reading only
the squared drive (weight 1 per synapse): exact on the recording (1² = 1), so one-step
training leaves it there, but an overshoot grows at every hop (1.2, 1.44, 2.07, 4.3, ...) and a
free rollout diverges. Trained with the range penalty its predictions from states 1.5x beyond
the range return into it and the rollout of the overshoot stays bounded.
"""

from __future__ import annotations

import pytest
import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import FEATURES, MesoscaleNet
from napari_mesoscale.model.training import _range_penalty, _training_range

N = 6


def _chain_net() -> MesoscaleNet:
    edges = torch.tensor([list(range(N - 1)), list(range(1, N))])
    net = MesoscaleNet(
        torch.zeros(N, 1, dtype=torch.long),
        torch.zeros(N, 1, 3),
        1,
        edges,
        n_filters=1,
        hidden=1,
        depth=0,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        net.bank.w_in.zero_()
        net.bank.w_in[0, FEATURES.index("drive_squared"), 0] = 1.0
        net.bank.w_out.fill_(1.0)
        net.edge_weight.fill_(1.0)
    return net


def _pulses(t: int = 400) -> torch.Tensor:
    """Shift-register recording (T, N): the head pulses (0 or 1) at random."""
    g = torch.Generator().manual_seed(1)
    z = torch.zeros(t, N)
    z[:, 0] = (torch.rand(t, generator=g) < 0.3).float()
    for i in range(1, N):
        z[1:, i] = z[:-1, i - 1]
    return z


def _rollout_peak(net: MesoscaleNet, steps: int = 5) -> float:
    """Largest state of a free run from a pulse that overshoots: the head at 1.2."""
    slots, pi = net.routed(1.0, "hard")
    state = torch.zeros(1, N)
    state[0, 0] = 1.2
    peak = 0.0
    with torch.no_grad():
        for _ in range(steps):
            state = net.evaluate(state, None, pi, slots)[1]
            state[0, 0] = 0.0  # the head's input (the stimulus) is off after the pulse
            peak = max(peak, float(state.abs().max()))
    return peak


def _train(lambda_range: float, steps: int = 300) -> MesoscaleNet:
    torch.manual_seed(0)
    net = _chain_net()
    z = _pulses()
    bounds = _training_range(z, torch.ones_like(z, dtype=torch.bool))
    cfg = ModelConfig(lambda_range=lambda_range)
    opt = torch.optim.Adam([net.bank.w_in, net.bank.w_out, net.edge_weight], lr=0.02)
    slots, pi = net.routed(1.0, "hard")
    for _ in range(steps):
        opt.zero_grad()
        pred = net.evaluate(z[:-1], None, pi, slots)[1]
        loss = ((pred[:, 1:] - z[1:, 1:]) ** 2).mean()
        if lambda_range > 0:
            probe = (z[:-1], None, None)
            loss = loss + lambda_range * _range_penalty(
                net, probe, pi, slots, cfg, len(z) - 1, 1.0 / (len(z) - 1), bounds
            )
        loss.backward()
        opt.step()
    return net


def test_training_range_ignores_missing_frames():
    z = torch.tensor([[0.0, 5.0], [2.0, -1.0], [9.0, 1.0]])
    finite = torch.tensor([[True, False], [True, True], [False, True]])
    lo, hi = _training_range(z, finite)
    assert lo.tolist() == [0.0, -1.0]
    assert hi.tolist() == [2.0, 1.0]


def test_amplifying_chain_filter_diverges_and_penalty_is_positive():
    net = _chain_net()
    assert _rollout_peak(net) > 10.0  # 1.2^(2^k): the unbounded filter diverges
    z = _pulses()
    bounds = _training_range(z, torch.ones_like(z, dtype=torch.bool))
    slots, pi = net.routed(1.0, "hard")
    cfg = ModelConfig(lambda_range=1.0)
    penalty = _range_penalty(net, (z, None, None), pi, slots, cfg, len(z), 1.0 / len(z), bounds)
    assert float(penalty.detach()) > 0.01


def test_range_penalty_keeps_the_chain_rollout_bounded():
    plain = _train(0.0)
    bounded = _train(1.0)
    # both learn the one-step shift on the recorded range ...
    z = _pulses()
    slots, pi = bounded.routed(1.0, "hard")
    with torch.no_grad():
        pred = bounded.evaluate(z[:-1], None, pi, slots)[1]
    assert float(((pred[:, 1:] - z[1:, 1:]) ** 2).mean()) < 0.01
    # ... but only the penalised filter brings an overshoot back instead of amplifying it
    assert _rollout_peak(plain) > 10.0
    assert _rollout_peak(bounded) <= 1.2


def test_fit_with_range_penalty_records_it_and_plain_fit_does_not():
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    b = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    kw = dict(connectome=b.adjacency, stimulus=b.stimulus, epochs=2, seed=0)
    bounded = fit_mesoscale(b.activity, b.positions, lambda_range=1.0, **kw)
    plain = fit_mesoscale(b.activity, b.positions, lambda_range=0.0, **kw)
    assert "train_range" in bounded.history and (bounded.history["train_range"] >= 0).all()
    assert "train_range" not in plain.history
    assert bounded.config.lambda_range == 1.0
    with pytest.raises(ValueError, match="range_probe_scale"):
        fit_mesoscale(b.activity, b.positions, range_probe_scale=0.5, **kw)
