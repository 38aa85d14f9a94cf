"""Ground-truth dynamics of the toy brain: stimulus, Markov map, spikes and calcium.

See the docstring of :mod:`napari_mesoscale.synth` for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.signal import lfilter
from scipy.special import expit, ndtr

from ._wiring import CHAIN, INT, OSC, WTA

#: names of the stimulus channels (columns of ``ToyBrain.stimulus``)
STIMULUS_NAMES = ("pulse_a", "pulse_b", "cos_dir", "sin_dir", "flicker_a", "flicker_b")


def make_stimulus(rng: np.random.Generator, n_frames: int, cfg: dict) -> np.ndarray:
    """Stimulus (T, 6): two sparse pulse trains, a jumping direction (cos, sin), two flickers."""
    t = n_frames
    u = np.zeros((t, len(STIMULUS_NAMES)))
    u[:, 0:2] = rng.random((t, 2)) < cfg["pulse_rate"]
    jumps = rng.random(t) < cfg["dir_jump"]
    jumps[0] = True
    angles = rng.uniform(0, 2 * np.pi, size=t)
    phi = angles[np.maximum.accumulate(np.where(jumps, np.arange(t), 0))]
    u[:, 2] = np.cos(phi)
    u[:, 3] = np.sin(phi)
    a = cfg["flicker_ar"]
    e = rng.standard_normal((t, 2)) * np.sqrt(1 - a * a)
    u[:, 4:6] = lfilter([1.0], [1.0, -a], e, axis=0)
    return u


@dataclass
class Dynamics:
    """Per-neuron parameters of the Markov map x_{t+1} = F(x_t, u_t) + noise (see package doc).

    All arrays are (N,) except ``gain`` (N, S); ``wt_exc`` / ``wt_inh`` are (N, N) CSR holding
    the transposed positive part and the transposed magnitude of the negative part of
    ``weights`` (post x pre), so that ``wt_exc @ v`` is the excitatory drive.
    """

    code: np.ndarray
    rest: np.ndarray
    self_coef: np.ndarray
    bias: np.ndarray
    gain: np.ndarray
    wt_exc: sp.csr_matrix
    wt_inh: sp.csr_matrix
    osc_amp: float
    wta_sigma: float
    wta_rate: float
    chain_beta: float
    noise_std: float

    def __post_init__(self) -> None:
        self.idx = {c: np.flatnonzero(self.code == c) for c in (OSC, INT, WTA, CHAIN)}

    def presynaptic_output(self, x: np.ndarray) -> np.ndarray:
        """φ(x): what each neuron transmits. x - rest, and x² for winner-take-all neurons."""
        d = x - self.rest
        i = self.idx[WTA]
        if len(i):
            d[..., i] = x[..., i] * x[..., i]
        return d

    def mean_map(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """F(x_t, u_t): the noiseless next state. ``x`` (N,) or (B, N), ``u`` (S,) or (B, S)."""
        x = np.asarray(x, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        single = x.ndim == 1
        if single:
            x, u = x[None], u[None]
        d = x - self.rest
        phi = self.presynaptic_output(x)
        hp = (self.wt_exc @ phi.T).T
        hn = (self.wt_inh @ phi.T).T
        s = u @ self.gain.T + self.bias
        f = np.empty_like(x)
        i = self.idx[OSC]
        if len(i):
            a = self.osc_amp
            arg = self.self_coef[i] * d[:, i] + hp[:, i] - hn[:, i] + s[:, i]
            f[:, i] = self.rest[i] + a * np.tanh(arg / a)
        i = self.idx[INT]
        if len(i):
            f[:, i] = self.rest[i] + self.self_coef[i] * d[:, i] + hp[:, i] - hn[:, i] + s[:, i]
        i = self.idx[WTA]
        if len(i):
            e = np.maximum(s[:, i] + self.self_coef[i] * x[:, i] + hp[:, i], 0.0)
            e2 = e * e
            g = self.wta_rate
            f[:, i] = (1 - g) * x[:, i] + g * e2 / (self.wta_sigma**2 + e2 + hn[:, i])
        i = self.idx[CHAIN]
        if len(i):
            f[:, i] = expit(self.chain_beta * (hp[:, i] - hn[:, i] + s[:, i]))
        return f[0] if single else f

    def expected_next(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """E[x_{t+1} | x_t, u_t] = E[max(0, F + σε)]: the best possible one-step prediction."""
        f = self.mean_map(x, u)
        s = self.noise_std
        if s <= 0:
            return np.maximum(f, 0.0)
        z = f / s
        return f * ndtr(z) + s * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def simulate(
    dyn: Dynamics,
    stimulus: np.ndarray,
    x0: np.ndarray,
    rng: np.random.Generator,
    burn_in: int,
    callback=None,
) -> np.ndarray:
    """Run x_{t+1} = max(0, F(x_t, u_t) + σ ε_t); returns (T, N) float32 after ``burn_in``.

    The stimulus (T_total, S) covers burn-in and recording; ``callback`` gets a progress dict
    every 50 steps and stops the run when it returns False.
    """
    t_total, n = stimulus.shape[0], len(x0)
    t_out = t_total - burn_in
    out = np.empty((t_out, n), dtype=np.float32)
    x = x0.astype(np.float64)
    for t in range(t_total):
        if t >= burn_in:
            out[t - burn_in] = x
        if t == t_total - 1:
            break
        noise = rng.standard_normal(n) * dyn.noise_std
        x = np.maximum(dyn.mean_map(x, stimulus[t]) + noise, 0.0)
        # the stored state is float32: keep simulating from exactly what is stored
        x = x.astype(np.float32).astype(np.float64)
        if callback is not None and t % 50 == 0:
            if callback({"stage": "simulate", "step": t, "total": t_total}) is False:
                raise InterruptedError("toy brain simulation cancelled")
    return out


def calcium_kernel(frame_rate: float, tau_rise: float, tau_decay: float, n: int) -> np.ndarray:
    """Difference of exponentials sampled at mid-frame, peak normalised to 1, length ``n``."""
    t = (np.arange(n) + 0.5) / frame_rate
    k = np.exp(-t / tau_decay) - np.exp(-t / tau_rise)
    tt = np.linspace(0, 10 * tau_decay, 4000)
    peak = (np.exp(-tt / tau_decay) - np.exp(-tt / tau_rise)).max()
    return k / peak


def spikes_to_calcium(
    spikes: np.ndarray, frame_rate: float, tau_rise: float, tau_decay: float, amplitude: float
) -> np.ndarray:
    """Clean dF/F (T, N): spikes convolved with the GCaMP-like kernel (two IIR filters)."""
    dt = 1.0 / frame_rate
    tt = np.linspace(0, 10 * tau_decay, 4000)
    peak = (np.exp(-tt / tau_decay) - np.exp(-tt / tau_rise)).max()
    s = spikes.astype(np.float32)
    out = np.zeros(s.shape, dtype=np.float32)
    for tau, sgn in ((tau_decay, 1.0), (tau_rise, -1.0)):
        g = np.exp(-dt / tau)
        # y[t] = g y[t-1] + s[t] e^{-dt/(2 tau)}  ->  kernel exp(-(n+0.5) dt / tau)
        y = lfilter([np.exp(-0.5 * dt / tau)], [1.0, -g], s, axis=0)
        out += np.float32(sgn) * y.astype(np.float32)
    out *= np.float32(amplitude / peak)
    return out
