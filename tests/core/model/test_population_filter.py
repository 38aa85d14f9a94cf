"""Population filters: the mesoscopic escape-rate model as a filter type of the mesoscale model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.model import MesoscaleFit, fit_mesoscale
from napari_mesoscale.model.core import FEATURES, POPULATION_FEATURES, MesoscaleNet
from napari_mesoscale.model.network import BasisBank
from napari_mesoscale.model.population_filter import (
    MixedBank,
    PopulationBank,
    escape_probability,
)


def test_escape_probability_is_the_mesoscopic_bin_probability() -> None:
    # hazard lambda = c exp((u - theta) / delta_u); P(spike in dt) = 1 - exp(-lambda dt)
    c, theta, delta_u, dt = 10.0, 15.0, 2.5, 1e-3
    u = np.linspace(0.0, 30.0, 31)
    expected = 1.0 - np.exp(-c * np.exp((u - theta) / delta_u) * dt)
    h = torch.as_tensor(np.log(c * dt) + (u - theta) / delta_u)
    assert np.allclose(escape_probability(h).numpy(), expected, rtol=1e-10, atol=1e-15)
    # saturates without overflow and keeps a finite gradient
    big = torch.tensor([50.0, 1e4], requires_grad=True)
    p = escape_probability(big)
    p.sum().backward()
    assert torch.allclose(p, torch.ones(2)) and torch.isfinite(big.grad).all()


def test_population_bank_ignores_masked_features() -> None:
    mask = [name in POPULATION_FEATURES for name in FEATURES]
    bank = PopulationBank(3, len(FEATURES), mask, FEATURES.index("self"))
    f = torch.randn(5, 7, 3, len(FEATURES))
    moved = f.clone()
    for name in ("rel_z", "rel_y", "rel_x", "drive_squared"):
        moved[..., FEATURES.index(name)] += 10.0
    assert torch.equal(bank(f), bank(moved))
    own = f.clone()
    own[..., FEATURES.index("self")] += 1.0
    assert not torch.allclose(bank(f), bank(own))
    with pytest.raises(ValueError, match="feature_mask"):
        PopulationBank(2, 4, [True, False])


def test_mixed_bank_evaluates_each_filter_on_its_own_slice() -> None:
    gen = torch.Generator().manual_seed(0)
    configurable = BasisBank(2, 6, hidden=4, depth=1, generator=gen)
    population = PopulationBank(1, 6, generator=gen)
    mixed = MixedBank(configurable, population)
    f = torch.randn(4, 3, 6)
    out = mixed(f)
    assert out.shape == (4, 3)
    assert torch.allclose(out[:, :2], configurable(f[:, :2]))
    assert torch.allclose(out[:, 2:], population(f[:, 2:]))
    types = [d["type"] for d in mixed.describe()]
    assert types == ["configurable", "configurable", "population"]
    assert [d["filter"] for d in mixed.describe()] == [0, 1, 2]
    assert mixed.complexity().shape == (3,)


def test_population_filters_must_fit_in_n_filters() -> None:
    x = np.random.default_rng(0).normal(size=(60, 5))
    pos = np.random.default_rng(1).uniform(0, 50, size=(5, 3))
    with pytest.raises(ValueError, match="population_filters"):
        fit_mesoscale(x, pos, n_filters=2, population_filters=3, epochs=1)
    with pytest.raises(ValueError, match="population_filters"):
        MesoscaleNet(
            torch.zeros(5, 1, dtype=torch.long),
            torch.zeros(5, 1, 3),
            1,
            torch.zeros(2, 0, dtype=torch.long),
            n_filters=2,
            population_filters=-1,
        )


def _population_recording(seed: int = 0, n_per: int = 60, t: int = 500, decay: float = 0.8):
    """Two exchangeable populations in two spatial balls, escape-rate spiking, calcium traces.

    Population 0 is excited by the stimulus, population 1 inhibited by it and by population 0;
    every neuron fires with the population's probability 1 - exp(-exp(h)) and its trace decays
    by ``decay`` per frame. Also returns the exact conditional mean of every frame.
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[40.0, 40.0, 40.0], [40.0, 40.0, 160.0]])
    pos = np.concatenate([c + rng.normal(scale=8.0, size=(n_per, 3)) for c in centres])
    pop = np.repeat([0, 1], n_per)
    u = np.sin(np.arange(t) * 2 * np.pi / 23.0)[:, None] + 0.3 * rng.normal(size=(t, 1))
    x = np.zeros((t, 2 * n_per))
    expected = np.full((t, 2 * n_per), np.nan)  # E[x(t) | past]: the forecast floor
    spikes_prev = np.zeros(2 * n_per)
    for k in range(1, t):
        a0 = spikes_prev[pop == 0].mean()
        h = np.array([-1.5 + 1.2 * u[k - 1, 0], -0.8 - 1.0 * u[k - 1, 0] - 2.0 * a0])
        p = 1.0 - np.exp(-np.exp(h))
        spikes = (rng.random(2 * n_per) < p[pop]).astype(float)
        x[k] = decay * x[k - 1] + spikes
        expected[k] = decay * x[k - 1] + p[pop]
        spikes_prev = spikes
    return x, u, pos, pop, expected


def _effective_leak(
    fit: MesoscaleFit, x: np.ndarray, u: np.ndarray, frames: int = 20
) -> np.ndarray:
    """d x_i(t+1) / d x_i(t) of the fitted model per neuron, averaged over frames (finite diff.).

    The filter's ``leak`` alone is not identifiable (the local interfaces rescale it); this is
    the coefficient the whole model applies to a neuron's own state.
    """
    net = fit.net
    mean, std = np.asarray(fit._p["mean"]), np.asarray(fit._p["std"])
    z = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    s_mean, s_std = np.asarray(fit._p["stim_mean"]), np.asarray(fit._p["stim_std"])
    ut = torch.as_tensor((u - s_mean) / s_std, dtype=torch.float32)
    n, eps = x.shape[1], 1e-2
    slopes = []
    with torch.no_grad():
        for t in np.linspace(10, len(x) - 2, frames).astype(int):
            batch = z[t].repeat(n, 1)
            base = net.predict_hard(batch, ut[t].repeat(n, 1)).diagonal()
            moved = net.predict_hard(batch + eps * torch.eye(n), ut[t].repeat(n, 1)).diagonal()
            slopes.append(((moved - base) / eps).numpy())
    return np.mean(slopes, axis=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_population_filters_recover_populations_and_calcium_decay(tmp_path) -> None:
    torch.set_num_threads(2)
    x, u, pos, pop, expected = _population_recording(t=400)
    fit = fit_mesoscale(
        x,
        pos,
        stimulus=u,
        n_filters=2,
        population_filters=2,
        rf_diameter=120.0,
        max_neighbors=4,
        epochs=15,
        seed=0,
    )
    assert adjusted_rand_score(pop, fit.motif_labels) > 0.95
    assert adjusted_rand_score(pop, fit.domain_labels) > 0.95
    # the model's coefficient on a neuron's own trace is the trace's decay per frame
    leak = [np.median(_effective_leak(fit, x, u)[pop == a]) for a in (0, 1)]
    assert np.allclose(leak, 0.8, atol=0.05), leak
    # one step ahead on the test block: close to the exact conditional mean, far below persistence
    pred = fit.predict(x, stimulus=u)
    test = slice(int(0.85 * len(x)) + 1, len(x))
    mse = np.mean((pred[test] - x[test]) ** 2)
    floor = np.mean((expected[test] - x[test]) ** 2)
    persistence = np.mean((x[test.start - 1 : -1] - x[test]) ** 2)
    assert mse < 1.1 * floor and floor < 0.8 * persistence, (mse, floor, persistence)
    assert list(fit.filters["type"]) == ["population", "population"]
    # the filter bank is 2 x 14 numbers
    assert sum(p.numel() for p in fit.net.bank.parameters()) == 2 * (len(FEATURES) + 4)
    fit.save(tmp_path / "fit.pt")
    again = MesoscaleFit.load(tmp_path / "fit.pt")
    assert np.allclose(again.predict(x, stimulus=u), pred, equal_nan=True)
