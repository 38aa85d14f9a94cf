r"""A motif zoo: brains built from many dynamics families, for testing motif discovery.

The toy brain (:func:`napari_mesoscale.synth.make_toy_brain`) generates four families
(oscillator, integrator, winner-take-all, chain) and the model's initialisation was designed on
them. ``make_zoo_brain`` draws brains from fifteen other families, split once and for all into
families to develop on and families only to test on:

``DEV_FAMILIES`` (develop and tune on these)
    rotation_slow, rotation_mid, flipflop, rectified_follower, leaky_integrator, chain_delay2,
    noise_ar1, adapting_onset
``TEST_FAMILIES`` (never tune anything on these; report figures only)
    rotation_fast, relaxation_burster, chain_delay4, gain_modulated, heteroclinic_cycle,
    resonator, up_down

Families (x is a neuron's activity, r its rest level, h the drive from its own instance through
the synapse table, h = Wᵀ (x − r); u the stimulus; ε noise):

* rotation_{slow,mid,fast}: E and I halves whose mean fields rotate by 2π / period per frame
  with gain 0.97 (periods 40, 16, 7 frames): d' = A tanh((a d + h) / A), d = x − r, a damped
  rotation kept alive by noise and kicked by stimulus pulses.
* flipflop: bistable units, x' = (1 − γ) x + γ σ(β (x + h + s − θ)) with shared inhibition in
  the instance; noise flips which unit is up.
* rectified_follower: x' = α x + (1 − α) g_i [v · u + b]₊, v shared by the instance, gain g_i
  per neuron; no synapses inside the instance.
* leaky_integrator: x' = r + λ (x − r) + h + g · pulse, recurrent excitation κ, λ + κ = 0.97.
* chain_delay{2,4}: members in a line, member k repeats member k − 1 after 2 (4) frames; the
  head fires at random.
* noise_ar1: x' = a_i x + ε with a_i ~ U(0.2, 0.9); no synapses, no stimulus (a null family).
* adapting_onset: x' = ½ x + ½ [d − a]₊ with d = g_i v · u and an adaptation a' = 0.85 a +
  0.15 d: transient responses to stimulus changes.
* relaxation_burster: FitzHugh–Nagumo units (hidden recovery variable), weakly coupled
  electrically inside the instance.
* gain_modulated: x' = α x + (1 − α)(0.2 + 2 m) g_i tanh(v · u), m the slow modulator channel.
* heteroclinic_cycle: May–Leonard winnerless competition (Lotka–Volterra, asymmetric ring
  inhibition): activity visits the members in turn.
* resonator: per-neuron damped oscillators (period ~ 10 frames, r = 0.9) driven by pulses.
* up_down: recurrent excitation with slow adaptation: the instance switches between up and down
  states together.

Brains
------
N neurons are split into instances of ``instance_size`` = (min, max) members; instances get the
families round robin in random order. Instance centres are placed one after another at a
distance drawn from ``spacing_um`` to an earlier one (no two instances' balls overlap); somata are
drawn in a ball of radius 4 µm · (n / 0.3)^{1/3} at least 6 µm apart. Neurons in different
instances closer than ``coupling_radius_um`` connect with probability 0.3 exp(−d² / 2 (20 µm)²)
and a weak weight ± ``coupling``. Then

    x_{t+1} = clip_f(F_f(x_t, h_t, u_t, hidden_t) + Σ_cross W_ji (x_j − r_j) + σ_f ε_t),

after 100 frames of burn-in (with ``heterogeneity`` > 0 every neuron's, or every instance's,
F is mixed with its own state and gain: x + s (r + g (F - r) - x), a dev-family stand-in for
the per-neuron time scales and gains of some test families). Neuron ids are permuted at
random. ``expected`` holds the term before noise and clipping (its one-step error is about the
noise floor).

Stimulus: four channels (``ZOO_STIMULUS_NAMES``): sparse pulses, a slow drift (an
Ornstein–Uhlenbeck process, τ = 25 frames), a flicker (telegraph 0/1) and a slow modulator in
[0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "DEV_FAMILIES",
    "FAMILIES",
    "TEST_FAMILIES",
    "ZOO_STIMULUS_NAMES",
    "ZooBrain",
    "make_zoo_brain",
]

ZOO_STIMULUS_NAMES = ("pulses", "drift", "flicker", "modulator")
_PULSE, _DRIFT, _FLICKER, _MOD = range(4)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -50, 50)))


@dataclass
class _Block:
    """What a family contributes for all its instances (local neuron indices 0..n-1)."""

    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    rest: np.ndarray
    sign: np.ndarray
    noise_std: float
    clip: tuple[float, float]
    state: dict = field(default_factory=dict)


def _members(sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Instance (within the family) and rank within the instance of every local neuron."""
    inst = np.repeat(np.arange(len(sizes)), sizes)
    start = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    return inst, np.arange(inst.size) - start


def _pairs(rng: np.random.Generator, sizes: Sequence[int], p: float) -> tuple[np.ndarray, ...]:
    """Random directed pairs (no self loops) inside every instance, each with probability p."""
    pre, post, off = [], [], 0
    for n in sizes:
        keep = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
        i, j = np.nonzero(keep)
        pre.append(i + off)
        post.append(j + off)
        off += n
    return np.concatenate(pre), np.concatenate(post)


def _normalise_in(post: np.ndarray, weight: np.ndarray, n: int, total: float) -> np.ndarray:
    """Scale weights so that each neuron's inputs sum to ``total`` (in absolute value)."""
    s = np.bincount(post, weights=np.abs(weight), minlength=n)
    return total * weight / np.maximum(s[post], 1e-12)


def _none(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)


def _instance_vectors(rng: np.random.Generator, sizes: Sequence[int], channels: list[int]):
    """One random unit stimulus projection per instance, repeated for its members (n, S)."""
    v = np.zeros((len(sizes), len(ZOO_STIMULUS_NAMES)))
    v[:, channels] = rng.normal(size=(len(sizes), len(channels)))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.repeat(v, sizes, axis=0)


# ---------------------------------------------------------------------------- the families
class _Family:
    name = ""
    description = ""

    def build(self, rng: np.random.Generator, sizes: Sequence[int]) -> _Block:
        raise NotImplementedError

    def step(self, b: _Block, x: np.ndarray, h: np.ndarray, u: np.ndarray, past) -> np.ndarray:
        raise NotImplementedError


class _Rotation(_Family):
    def __init__(self, name: str, period: float) -> None:
        self.name, self.period = name, period
        self.description = f"E-I damped rotation, period {period:g} frames"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        inst, rank = _members(sizes)
        size = np.asarray(sizes)[inst]
        is_e = rank < np.maximum(1, size // 2)
        theta, rho = 2 * np.pi / self.period, 0.97
        a = 0.3 * rho * np.cos(theta)
        same, cross = rho * np.cos(theta) - a, rho * np.sin(theta)
        pre, post = _pairs(rng, sizes, 0.6)
        pre_e, post_e = is_e[pre], is_e[post]
        coef = np.where(pre_e == post_e, same, np.where(pre_e, cross, -cross))
        w = rng.uniform(0.5, 1.5, pre.size)
        key = 2 * post + pre_e  # each neuron averages its E inputs and its I inputs
        w = coef * w / np.bincount(key, weights=w, minlength=2 * n)[key]
        rest = np.full(n, 0.5)
        state = {"a": a, "kick": 0.3 * is_e}
        return _Block(pre, post, w, rest, np.where(is_e, 1, -1), 0.05, (-np.inf, np.inf), state)

    def step(self, b, x, h, u, past):
        d = b.state["a"] * (x - b.rest) + h + b.state["kick"] * u[_PULSE]
        return b.rest + 0.5 * np.tanh(d / 0.5)


class _FlipFlop(_Family):
    name = "flipflop"
    description = "bistable units with shared inhibition"
    beta, noise = 6.0, 0.08  # chosen so that units switch tens of times in 2,000 frames

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        pre, post = _pairs(rng, sizes, 0.8)
        w = _normalise_in(post, -np.ones(pre.size), n, 1.2)
        s = 0.2 * rng.choice([-1.0, 1.0], n)
        state = {"s": s, "gamma": 0.3, "beta": self.beta, "theta": 0.5}
        return _Block(pre, post, w, np.zeros(n), -np.ones(n, int), self.noise, (0.0, 1.5), state)

    def step(self, b, x, h, u, past):
        st = b.state
        drive = x + h + st["s"] * u[_FLICKER] - st["theta"]
        return (1 - st["gamma"]) * x + st["gamma"] * _sigmoid(st["beta"] * drive)


class _RectifiedFollower(_Family):
    name = "rectified_follower"
    description = "rectified stimulus followers with per-neuron gain"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        v = _instance_vectors(rng, sizes, [_PULSE, _DRIFT, _FLICKER])
        state = {"v": v, "g": rng.uniform(0.5, 2.0, n), "b": rng.uniform(-0.2, 0.2, n)}
        return _Block(*_none(n), np.zeros(n), np.ones(n, int), 0.03, (0.0, np.inf), state)

    def step(self, b, x, h, u, past):
        st = b.state
        return 0.5 * x + 0.5 * st["g"] * np.maximum(st["v"] @ u + st["b"], 0.0)


class _LeakyIntegrator(_Family):
    name = "leaky_integrator"
    description = "slow leaky integrators with recurrent excitation, pulse input"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        pre, post = _pairs(rng, sizes, 0.4)
        w = _normalise_in(post, rng.uniform(0.5, 1.5, pre.size), n, 0.17)
        state = {"lam": 0.8, "g": 0.3 * rng.uniform(0.5, 1.5, n)}
        return _Block(pre, post, w, np.full(n, 0.1), np.ones(n, int), 0.03, (0.0, np.inf), state)

    def step(self, b, x, h, u, past):
        st = b.state
        return b.rest + st["lam"] * (x - b.rest) + h + st["g"] * u[_PULSE]


class _Chain(_Family):
    def __init__(self, name: str, delay: int) -> None:
        self.name, self.delay = name, delay
        self.description = f"sequence chain, {delay} frames per link"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        _, rank = _members(sizes)
        head = rank == 0
        post = np.flatnonzero(~head)
        pre = post - 1
        state = {"head": head, "prev": np.where(head, 0, np.arange(n) - 1), "trigger": 0.08}
        state["rng"] = np.random.default_rng(rng.integers(2**63))
        w = np.ones(pre.size)
        return _Block(pre, post, w, np.zeros(n), np.ones(n, int), 0.03, (0.0, 1.2), state)

    def step(self, b, x, h, u, past):
        st = b.state
        earlier = past(self.delay - 1)[st["prev"]]
        fire = (st["rng"].random(x.size) < st["trigger"]).astype(float)
        drive = np.where(st["head"], fire, earlier)
        return _sigmoid(8.0 * (drive - 0.5))


class _NoiseAR1(_Family):
    name = "noise_ar1"
    description = "noise-driven AR(1) units, no synapses, no stimulus (null family)"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        state = {"a": rng.uniform(0.2, 0.9, n)}
        return _Block(*_none(n), np.zeros(n), np.ones(n, int), 0.1, (-np.inf, np.inf), state)

    def step(self, b, x, h, u, past):
        return b.state["a"] * x


class _AdaptingOnset(_Family):
    name = "adapting_onset"
    description = "transient (adapting) responders to stimulus changes"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        v = _instance_vectors(rng, sizes, [_DRIFT, _FLICKER])
        state = {"v": v, "g": rng.uniform(0.5, 1.5, n), "a": np.zeros(n)}
        return _Block(*_none(n), np.zeros(n), np.ones(n, int), 0.03, (0.0, np.inf), state)

    def step(self, b, x, h, u, past):
        st = b.state
        d = st["g"] * (st["v"] @ u)
        out = 0.5 * x + 0.5 * np.maximum(d - st["a"], 0.0)
        st["a"] = 0.85 * st["a"] + 0.15 * d
        return out


class _RelaxationBurster(_Family):
    name = "relaxation_burster"
    description = "FitzHugh-Nagumo relaxation oscillators, weak electrical coupling"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        pre, post = _pairs(rng, sizes, 0.5)
        w = _normalise_in(post, np.ones(pre.size), n, 0.15)
        state = {"w": rng.uniform(-0.5, 1.0, n), "i": rng.uniform(0.4, 0.7, n), "dt": 0.7}
        return _Block(pre, post, w, np.zeros(n), np.ones(n, int), 0.05, (-2.5, 2.5), state)

    def step(self, b, x, h, u, past):
        st = b.state
        w, dt = st["w"], st["dt"]
        v = x + dt * (x - x**3 / 3 - w + st["i"] + h)
        st["w"] = w + dt * 0.08 * (x + 0.7 - 0.8 * w)
        return v


class _GainModulated(_Family):
    name = "gain_modulated"
    description = "stimulus followers whose gain is set by the slow modulator"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        v = _instance_vectors(rng, sizes, [_DRIFT, _FLICKER])
        state = {"v": v, "g": rng.uniform(0.5, 1.5, n)}
        return _Block(*_none(n), np.zeros(n), np.ones(n, int), 0.03, (-np.inf, np.inf), state)

    def step(self, b, x, h, u, past):
        st = b.state
        gain = (0.2 + 2.0 * u[_MOD]) * st["g"]
        return 0.6 * x + 0.4 * gain * np.tanh(st["v"] @ u)


class _Heteroclinic(_Family):
    name = "heteroclinic_cycle"
    description = "May-Leonard winnerless competition (activity visits members in turn)"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        inst, rank = _members(sizes)
        size = np.asarray(sizes)[inst]
        pre, post = _pairs(rng, sizes, 1.0)
        ahead = (rank[post] - rank[pre]) % size[pre]  # post is `ahead` places after pre
        w = -np.where(ahead == 1, 0.5, 1.6) * rng.uniform(0.9, 1.1, pre.size)
        state = {"dt": 0.5, "eta": 0.002}
        return _Block(pre, post, w, np.zeros(n), -np.ones(n, int), 0.01, (0.0, 1.5), state)

    def step(self, b, x, h, u, past):
        st = b.state
        return x + st["dt"] * x * (1.0 - x + h) + st["eta"]


class _Resonator(_Family):
    name = "resonator"
    description = "per-neuron damped oscillators driven by stimulus pulses"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        omega = 2 * np.pi / rng.uniform(8.0, 12.0, n)
        state = {"c1": 2 * 0.9 * np.cos(omega), "c2": -0.81, "prev": np.zeros(n)}
        state["g"] = rng.uniform(0.5, 1.5, n)
        return _Block(*_none(n), np.zeros(n), np.ones(n, int), 0.02, (-np.inf, np.inf), state)

    def step(self, b, x, h, u, past):
        st = b.state
        out = st["c1"] * x + st["c2"] * st["prev"] + st["g"] * u[_PULSE]
        st["prev"] = x
        return out


class _UpDown(_Family):
    name = "up_down"
    description = "recurrent excitation with slow adaptation: shared up and down states"

    def build(self, rng, sizes):
        n = int(np.sum(sizes))
        pre, post = _pairs(rng, sizes, 0.5)
        w = _normalise_in(post, rng.uniform(0.5, 1.5, pre.size), n, 1.5)
        state = {"a": np.zeros(n)}
        return _Block(pre, post, w, np.zeros(n), np.ones(n, int), 0.05, (0.0, 1.2), state)

    def step(self, b, x, h, u, past):
        st = b.state
        drive = h + 0.3 * x + 0.8 * u[_PULSE] - st["a"] - 0.5
        out = 0.5 * x + 0.5 * _sigmoid(8.0 * drive)
        st["a"] = 0.97 * st["a"] + 0.03 * 2.0 * x
        return out


FAMILIES: dict[str, _Family] = {
    f.name: f
    for f in (
        _Rotation("rotation_slow", 40.0),
        _Rotation("rotation_mid", 16.0),
        _FlipFlop(),
        _RectifiedFollower(),
        _LeakyIntegrator(),
        _Chain("chain_delay2", 2),
        _NoiseAR1(),
        _AdaptingOnset(),
        _Rotation("rotation_fast", 7.0),
        _RelaxationBurster(),
        _Chain("chain_delay4", 4),
        _GainModulated(),
        _Heteroclinic(),
        _Resonator(),
        _UpDown(),
    )
}
DEV_FAMILIES: tuple[str, ...] = (
    "rotation_slow",
    "rotation_mid",
    "flipflop",
    "rectified_follower",
    "leaky_integrator",
    "chain_delay2",
    "noise_ar1",
    "adapting_onset",
)
TEST_FAMILIES: tuple[str, ...] = (
    "rotation_fast",
    "relaxation_burster",
    "chain_delay4",
    "gain_modulated",
    "heteroclinic_cycle",
    "resonator",
    "up_down",
)


# ---------------------------------------------------------------------------- the brain
@dataclass
class ZooBrain:
    """A zoo brain and its ground truth (positions µm (z, y, x); time series (T, N)).

    Attributes
    ----------
    positions : ndarray (N, 3)
        Soma centres in µm.
    activity : ndarray (T, N) float32
        The state x_t.
    expected : ndarray (T, N) float32
        Row t: the update's value before noise and clipping (row 0 = activity[0]); its one-step
        error is about the noise floor.
    stimulus : ndarray (T, S) float32
        Columns named by ``stimulus_names`` (:data:`ZOO_STIMULUS_NAMES`).
    motif, motif_names : ndarray (N,), tuple
        Family index of every neuron into ``motif_names`` (the families of this brain).
    instance : ndarray (N,)
        Instance (true domain) of every neuron, 0..M-1.
    neurons : DataFrame
        id, z, y, x, motif, motif_name, instance, sign, split ("dev" / "test").
    synapses : DataFrame
        pre, post, z, y, x (µm, halfway between the somata), weight (signed), sign: one row
        per connected pair; usable with ``Connectome.from_tables(neurons, synapses)``.
    adjacency : csr_matrix (N, N)
        pre -> post signed weights used by the dynamics.
    instance_motif, instance_centres : ndarray (M,), ndarray (M, 3)
    seed, params : int, dict
    """

    positions: np.ndarray
    activity: np.ndarray
    expected: np.ndarray
    stimulus: np.ndarray
    stimulus_names: tuple[str, ...]
    motif: np.ndarray
    motif_names: tuple[str, ...]
    instance: np.ndarray
    neurons: pd.DataFrame
    synapses: pd.DataFrame
    adjacency: sp.csr_matrix
    instance_motif: np.ndarray
    instance_centres: np.ndarray
    seed: int
    params: dict[str, Any]

    @property
    def n_neurons(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.activity.shape[0])

    def connectome(self, value: str = "weight"):
        """The synapse table as a :class:`napari_mesoscale.Connectome` (signed weights)."""
        from napari_mesoscale.connectome import Connectome

        return Connectome.from_tables(self.neurons, self.synapses, value=value)


def resolve_families(families: str | Sequence[str]) -> tuple[str, ...]:
    """``"dev"``, ``"test"``, ``"all"`` or a list of family names -> names (validated)."""
    if isinstance(families, str):
        named = {"dev": DEV_FAMILIES, "test": TEST_FAMILIES, "all": tuple(FAMILIES)}
        if families in named:
            return named[families]
        families = [families]
    names = tuple(families)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown or not names:
        raise ValueError(
            f"families must be 'dev', 'test', 'all' or names from {sorted(FAMILIES)}; "
            f"got {list(names)}"
        )
    return names


def _instance_sizes(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    sizes: list[int] = []
    remaining = n
    while remaining > 0:
        s = int(rng.integers(lo, hi + 1))
        if remaining - s < lo:
            s = remaining if remaining <= hi else remaining - lo
        sizes.append(s)
        remaining -= s
    return sizes


def _place(rng, sizes, spacing_um, soma_um=6.0) -> tuple[np.ndarray, np.ndarray]:
    """Instance centres (M, 3) and soma positions in instance order (N, 3), µm."""
    radii = 4.0 * (np.asarray(sizes) / 0.3) ** (1 / 3)
    centres = [np.zeros(3)]
    for m in range(1, len(sizes)):
        for _ in range(1000):
            direction = rng.normal(size=3)
            c = centres[rng.integers(len(centres))] + rng.uniform(*spacing_um) * (
                direction / np.linalg.norm(direction)
            )
            gaps = np.linalg.norm(np.asarray(centres) - c, axis=1) - radii[:m] - radii[m]
            if gaps.min() > soma_um:
                break
        centres.append(c)
    centres = np.asarray(centres)
    somata = []
    for c, r, n in zip(centres, radii, sizes, strict=True):
        somata.append(c + _ball_points(rng, n, r, soma_um))
    pos = np.concatenate(somata)
    shift = radii.max() + 10.0 - pos.min(0)
    return centres + shift, pos + shift


def _ball_points(rng, n: int, radius: float, min_dist: float) -> np.ndarray:
    accepted: list[np.ndarray] = []
    while len(accepted) < n:
        cand = rng.uniform(-radius, radius, size=(50 * n, 3))
        cand = cand[np.linalg.norm(cand, axis=1) <= radius]
        for p in cand:
            if not accepted or np.min(np.linalg.norm(np.asarray(accepted) - p, axis=1)) >= min_dist:
                accepted.append(p)
                if len(accepted) == n:
                    break
        radius *= 1.1
    return np.asarray(accepted)


def _stimulus(rng: np.random.Generator, t: int) -> np.ndarray:
    u = np.zeros((t, len(ZOO_STIMULUS_NAMES)))
    u[:, _PULSE] = rng.random(t) < 0.03
    flips = np.cumsum(rng.random(t) < 0.08) % 2
    u[:, _FLICKER] = flips
    for ch, tau in ((_DRIFT, 25.0), (_MOD, 150.0)):
        a = np.exp(-1.0 / tau)
        e = rng.normal(size=t) * np.sqrt(1 - a * a)
        v = np.zeros(t)
        v[0] = rng.normal()
        for i in range(1, t):
            v[i] = a * v[i - 1] + e[i]
        u[:, ch] = v
    u[:, _MOD] = _sigmoid(2.0 * u[:, _MOD])
    return u


def _cross_edges(rng, pos, instance, radius_um, coupling) -> tuple[np.ndarray, ...]:
    """Weak random-sign edges between neurons of different, nearby instances."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(pos).query_pairs(radius_um, output_type="ndarray")
    pairs = pairs[instance[pairs[:, 0]] != instance[pairs[:, 1]]]
    pairs = np.concatenate([pairs, pairs[:, ::-1]])  # both directions, drawn independently
    d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    keep = rng.random(d.size) < 0.3 * np.exp(-(d**2) / (2 * 20.0**2))
    pairs = pairs[keep]
    w = coupling * rng.choice([-1.0, 1.0], pairs.shape[0]) * rng.uniform(0.5, 1.5, pairs.shape[0])
    return pairs[:, 0], pairs[:, 1], w


def _simulate(blocks, index, w_in, w_cross, rest, stimulus, rng, jitter=None):
    """Run the map; returns activity and the pre-noise update, both (t_total, N).

    ``jitter`` = (speed, gain), each (N,), mixes every neuron's family update F with its own
    state: x + s (r + g (F - r) - x) (see ``heterogeneity`` of :func:`make_zoo_brain`).
    """
    n, t_total = rest.size, stimulus.shape[0]
    x_all = np.zeros((t_total, n))
    expected = np.zeros((t_total, n))
    noise = np.zeros(n)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for fam, b in blocks.items():
        noise[index[fam]] = b.noise_std
        lo[index[fam]], hi[index[fam]] = b.clip
    x_all[0] = np.clip(rest + noise * rng.normal(size=n), lo, hi)
    expected[0] = x_all[0]
    eps = rng.normal(size=(t_total, n)) * noise
    w_in_t, w_cross_t = w_in.T.tocsr(), w_cross.T.tocsr()
    mean = np.zeros(n)
    for t in range(t_total - 1):
        x = x_all[t]
        dev = x - rest
        h = w_in_t @ dev
        for fam, b in blocks.items():
            idx = index[fam]

            def past(lag: int, idx=idx, t=t) -> np.ndarray:
                return x_all[max(t - lag, 0), idx]

            mean[idx] = FAMILIES[fam].step(b, x[idx], h[idx], stimulus[t], past)
        if jitter is not None:
            speed, gain = jitter
            mean = x + speed * (rest + gain * (mean - rest) - x)
        mean += w_cross_t @ dev
        expected[t + 1] = mean
        x_all[t + 1] = np.clip(mean + eps[t + 1], lo, hi)
    return x_all, expected


def _check_arguments(
    n_neurons, n_frames, instance_size, spacing_um, n_names, heterogeneity=(0.0, "neuron")
) -> None:
    if not 0.0 <= heterogeneity[0] <= 1.0:
        raise ValueError(f"heterogeneity must be in [0, 1]; got {heterogeneity[0]}")
    if heterogeneity[1] not in ("neuron", "instance"):
        raise ValueError(
            f"heterogeneity_scope must be 'neuron' or 'instance'; got {heterogeneity[1]!r}"
        )
    lo, hi = instance_size
    if not 4 <= lo <= hi:
        raise ValueError(
            f"instance_size must be (min, max) with 4 <= min <= max; got {instance_size}"
        )
    if n_neurons < max(lo, 4) * n_names:
        raise ValueError(
            f"n_neurons={n_neurons} is too few for {n_names} families of instances of at least "
            f"{lo} neurons; use n_neurons >= {lo * n_names}"
        )
    if n_frames < 10:
        raise ValueError(f"n_frames must be >= 10; got {n_frames}")
    if not 0 < spacing_um[0] <= spacing_um[1]:
        raise ValueError(f"spacing_um must be (min, max) µm with 0 < min <= max; got {spacing_um}")


def make_zoo_brain(
    n_neurons: int = 480,
    n_frames: int = 3000,
    families: str | Sequence[str] = "dev",
    *,
    seed: int = 0,
    n_families: int | None = None,
    instance_size: tuple[int, int] = (8, 32),
    spacing_um: tuple[float, float] = (50.0, 90.0),
    coupling: float = 0.03,
    coupling_radius_um: float = 40.0,
    noise_scale: float = 1.0,
    burn_in_frames: int = 100,
    heterogeneity: float = 0.0,
    heterogeneity_scope: str = "neuron",
) -> ZooBrain:
    """Draw a brain of motif instances from the zoo's families, with its ground truth.

    Parameters
    ----------
    n_neurons, n_frames : int
        Size of the brain and length of the recording (frames, after burn-in).
    families : "dev", "test", "all" or list of names
        Which families to draw from (see :data:`DEV_FAMILIES`, :data:`TEST_FAMILIES`).
    seed : int
        Every random choice; the same seed gives the same brain.
    n_families : int, optional
        Use a random subset of this many of ``families`` (all by default).
    instance_size : (int, int)
        Smallest and largest instance (neurons).
    spacing_um : (float, float)
        Range of the distance between an instance's centre and the earlier one it is placed
        next to (µm).
    coupling, coupling_radius_um : float
        Weight scale of the edges between nearby instances and the largest distance (µm) of
        such an edge.
    noise_scale : float
        Multiplies every family's process-noise standard deviation.
    burn_in_frames : int
        Frames simulated and dropped before the recording starts.
    heterogeneity : float
        Per-neuron jitter of time constant and gain, 0 (none, the default) to 1: every
        neuron's update becomes x + s (r + g (F - r) - x) with its own speed s and gain g
        drawn uniformly in [1 - heterogeneity / 2, 1] (F its family's update, r its rest
        level), so that the neurons of one motif differ in time scale and gain (as in some
        test families) while the other random draws stay those of ``heterogeneity=0``.

    Returns
    -------
    ZooBrain
    """
    rng = np.random.default_rng(seed)
    names = resolve_families(families)
    if n_families is not None:
        if not 1 <= n_families <= len(names):
            raise ValueError(f"n_families must be in 1..{len(names)}; got {n_families}")
        chosen = set(rng.choice(len(names), n_families, replace=False).tolist())
        names = tuple(f for i, f in enumerate(names) if i in chosen)
    _check_arguments(n_neurons, n_frames, instance_size, spacing_um, len(names),
                     (heterogeneity, heterogeneity_scope))
    # every family needs an instance: cap the largest size when neurons are few
    largest = min(instance_size[1], n_neurons // len(names))
    sizes = _instance_sizes(rng, n_neurons, instance_size[0], largest)
    inst_family = rng.permutation(np.arange(len(sizes)) % len(names))
    centres, pos = _place(rng, sizes, spacing_um)
    instance = np.repeat(np.arange(len(sizes)), sizes)
    blocks, index, rest, sign, edges = _build_families(rng, names, sizes, inst_family, noise_scale)
    cross = _cross_edges(rng, pos, instance, coupling_radius_um, coupling)
    w_in = _sparse(edges, n_neurons)
    w_cross = _sparse([cross], n_neurons)
    stimulus = _stimulus(rng, n_frames + burn_in_frames)
    jitter = _jitter(seed, instance, heterogeneity, heterogeneity_scope)
    x_all, expected = _simulate(blocks, index, w_in, w_cross, rest, stimulus, rng, jitter)
    motif = inst_family[instance]
    perm, inst_perm = rng.permutation(n_neurons), rng.permutation(len(sizes))
    adjacency = (w_in + w_cross).tocsr()[perm][:, perm].tocsr()
    keep = slice(burn_in_frames, None)
    brain_instance = inst_perm[instance[perm]]
    instance_motif = np.empty(len(sizes), dtype=np.int64)
    instance_motif[inst_perm] = inst_family
    centres_out = np.empty_like(centres)
    centres_out[inst_perm] = centres
    positions = pos[perm]
    neurons = _neuron_table(positions, motif[perm], names, brain_instance, sign[perm])
    return ZooBrain(
        positions=positions,
        activity=x_all[keep][:, perm].astype(np.float32),
        expected=expected[keep][:, perm].astype(np.float32),
        stimulus=stimulus[keep].astype(np.float32),
        stimulus_names=ZOO_STIMULUS_NAMES,
        motif=motif[perm],
        motif_names=names,
        instance=brain_instance,
        neurons=neurons,
        synapses=_synapse_table(adjacency, positions),
        adjacency=adjacency,
        instance_motif=instance_motif,
        instance_centres=centres_out,
        seed=int(seed),
        params={
            "n_neurons": n_neurons,
            "n_frames": n_frames,
            "families": list(names),
            "n_families": n_families,
            "instance_size": list(instance_size),
            "spacing_um": list(spacing_um),
            "coupling": coupling,
            "coupling_radius_um": coupling_radius_um,
            "noise_scale": noise_scale,
            "burn_in_frames": burn_in_frames,
            "heterogeneity": heterogeneity,
            "heterogeneity_scope": heterogeneity_scope,
            "instance_sizes": [int(sizes[m]) for m in np.argsort(inst_perm)],
        },
    )


def _jitter(seed: int, instance: np.ndarray, heterogeneity: float, scope: str):
    """Per-neuron (speed, gain) in [1 - heterogeneity / 2, 1], or None for none; drawn per
    neuron or per instance (``scope``) from their own generator so that every other draw of
    the brain stays the same."""
    if heterogeneity == 0.0:
        return None
    gen = np.random.default_rng([int(seed), 7919])
    n = instance.size if scope == "neuron" else int(instance.max()) + 1
    draws = tuple(1.0 - 0.5 * heterogeneity * gen.random(n) for _ in range(2))
    return draws if scope == "neuron" else tuple(d[instance] for d in draws)


def _build_families(rng, names, sizes, inst_family, noise_scale):
    """Every family's block, its neurons (global indices), rest levels, signs and edges."""
    n = int(np.sum(sizes))
    starts = np.cumsum([0, *sizes])
    rest, sign = np.zeros(n), np.ones(n, dtype=np.int64)
    blocks, index, edges = {}, {}, []
    for f, name in enumerate(names):
        members = np.flatnonzero(inst_family == f)
        idx = np.concatenate([np.arange(starts[m], starts[m + 1]) for m in members])
        block = FAMILIES[name].build(rng, [sizes[m] for m in members])
        block.noise_std *= noise_scale
        blocks[name], index[name] = block, idx
        rest[idx], sign[idx] = block.rest, block.sign
        edges.append((idx[block.pre], idx[block.post], block.weight))
    return blocks, index, rest, sign, edges


def _neuron_table(positions, motif, names, instance, sign) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(positions.shape[0]),
            "z": positions[:, 0],
            "y": positions[:, 1],
            "x": positions[:, 2],
            "motif": motif,
            "motif_name": np.asarray(names)[motif],
            "instance": instance,
            "sign": sign,
            "split": ["dev" if names[m] in DEV_FAMILIES else "test" for m in motif],
        }
    )


def _sparse(edges: list[tuple[np.ndarray, ...]], n: int) -> sp.csr_matrix:
    pre = np.concatenate([e[0] for e in edges]).astype(np.int64)
    post = np.concatenate([e[1] for e in edges]).astype(np.int64)
    w = np.concatenate([e[2] for e in edges]).astype(np.float64)
    return sp.csr_matrix((w, (pre, post)), shape=(n, n))


def _synapse_table(adjacency: sp.csr_matrix, positions: np.ndarray) -> pd.DataFrame:
    coo = adjacency.tocoo()
    keep = coo.data != 0
    pre, post, w = coo.row[keep], coo.col[keep], coo.data[keep]
    mid = 0.5 * (positions[pre] + positions[post])
    return pd.DataFrame(
        {
            "pre": pre.astype(np.int64),
            "post": post.astype(np.int64),
            "z": mid[:, 0],
            "y": mid[:, 1],
            "x": mid[:, 2],
            "weight": w,
            "sign": np.sign(w).astype(np.int64),
        }
    )
