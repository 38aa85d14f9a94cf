"""Same seed, several CPU threads: bit-identical results (issue 18, item 9).

The gather of per-(field, filter) parameters used to be ``table[index]``, whose backward
(``index_put_`` with accumulation) adds repeated indices in a thread-dependent order: two fits
with the same seed and torch's default 2 threads differed by up to 2.4e-7 at N = 3,000.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from napari_mesoscale.model import fit_mesoscale
from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.synth import make_toy_brain


@contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _net(n: int = 600, slots: int = 16, fields: int = 100) -> MesoscaleNet:
    """A network whose neurons share few fields: many repeated indices in every gather."""
    gen = torch.Generator().manual_seed(0)
    candidates = torch.randint(0, fields, (n, slots), generator=gen)
    relpos = torch.randn(n, slots, 3, generator=gen)
    edges = torch.randint(0, n, (2, 4 * n), generator=gen)
    net = MesoscaleNet(candidates, relpos, fields, edges, shared_field_logits=True, generator=gen)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def _gradients(net: MesoscaleNet, z: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    slots, pi = net.routed(tau=1.0, mode="soft")
    out, pred = net.evaluate(z[:-1], None, pi, slots)
    _, rolled = net.evaluate(pred, None, pi, slots)  # gradients through the state as well
    loss = ((pred - z[1:]) ** 2).mean() + ((out - z[1:, :, None, None]) ** 2 * pi).mean()
    (loss + ((rolled[:-1] - z[2:]) ** 2).mean()).backward()
    return {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


def test_gradients_are_bit_identical_with_two_threads():
    net = _net()
    z = torch.randn(4, 600, generator=torch.Generator().manual_seed(1))
    with _threads(2):
        runs = [_gradients(net, z) for _ in range(3)]
    for other in runs[1:]:
        for name, grad in runs[0].items():
            assert torch.equal(grad, other[name]), f"gradient of {name} differs between runs"


@pytest.mark.slow
def test_two_fits_with_two_threads_are_bit_identical():
    brain = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    kw = dict(epochs=2, seed=5, device="cpu", batch_frames=32, rollout=2, patience=100)
    with _threads(2):
        first = fit_mesoscale(brain.activity, brain.positions, **kw)
        second = fit_mesoscale(brain.activity, brain.positions, **kw)
    np.testing.assert_array_equal(first.predict(brain.activity), second.predict(brain.activity))
