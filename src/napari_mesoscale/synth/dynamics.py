"""Ground-truth dynamics of the toy brain: stimulus, Markov map, spikes and calcium.

See the docstring of :mod:`napari_mesoscale.synth` for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.signal import lfilter
from scipy.special import expit, ndtr

from napari_mesoscale.progress import Cancelled, Progress

from ._wiring import CHAIN, INT, OSC, WTA


class ToyBrainCancelled(Cancelled, InterruptedError):
    """The progress callback stopped the toy brain (also an ``InterruptedError``, its old name)."""


#: names of the stimulus channels (columns of ``ToyBrain.stimulus``)
STIMULUS_NAMES = ("pulse_a", "pulse_b", "cos_dir", "sin_dir", "flicker_a", "flicker_b")


def make_stimulus(rng: np.random.Generator, n_frames: int, cfg: dict) -> np.ndarray:
    """Stimulus (T, 6): two sparse pulse trains, a jumping direction (cos, sin), two flickers."""
    t = n_frames
    u = np.zeros((t, len(STIMULUS_NAMES)))
    u[:, 0:2] = rng.random((t, 2)) < cfg["pulse_prob"]
    jumps = rng.random(t) < cfg["dir_jump_prob"]
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
        # internally neurons are sorted by motif code, so each type is a contiguous slice
        self.perm = np.argsort(self.code, kind="stable")
        counts = np.bincount(self.code, minlength=4)
        edges = np.concatenate([[0], np.cumsum(counts)])
        self.sl = {c: slice(int(edges[c]), int(edges[c + 1])) for c in (OSC, INT, WTA, CHAIN)}
        p = self.perm
        self._set_dtype(np.float64)
        w = self.sl[WTA]
        # signed drive for everyone, split drives only for the wta rows
        self._w_signed = (self.wt_exc - self.wt_inh)[p][:, p].tocsr()
        self._exc_wta = self.wt_exc[p[w]][:, p].tocsr()
        self._inh_wta = self.wt_inh[p[w]][:, p].tocsr()
        self._mats = {np.dtype(np.float64): (self._w_signed, self._exc_wta, self._inh_wta)}

    def _set_dtype(self, dtype) -> None:
        p = self.perm
        self._rest = self.rest[p].astype(dtype)
        self._self = self.self_coef[p].astype(dtype)
        self._bias = self.bias[p].astype(dtype)
        self._gain_t = np.ascontiguousarray(self.gain[p].T).astype(dtype)

    def _matrices(self, dtype) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
        dtype = np.dtype(dtype)
        if dtype not in self._mats:
            self._mats[dtype] = tuple(m.astype(dtype) for m in self._mats[np.dtype(np.float64)])
        return self._mats[dtype]

    def _phi(self, x: np.ndarray) -> np.ndarray:
        """φ(x) in sorted order: x - rest, and x² for winner-take-all neurons."""
        d = x - self._rest
        w = self.sl[WTA]
        d[..., w] = x[..., w] * x[..., w]
        return d

    @staticmethod
    def _spmv(m: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
        return m @ v if v.ndim == 1 else (m @ v.T).T

    def _stimulus_drive(self, u: np.ndarray) -> np.ndarray:
        """G u + b in sorted order (a loop over the few channels beats a BLAS call here)."""
        if u.ndim == 2:
            return u @ self._gain_t + self._bias
        s = self._bias.copy()
        for k in range(len(u)):
            if u[k] != 0:
                s += u[k] * self._gain_t[k]
        return s

    def _map_sorted(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """F in sorted order; x (N,) or (B, N), u (S,) or (B, S); computed in x's dtype."""
        if self._rest.dtype != x.dtype:
            self._set_dtype(x.dtype)
        w_signed, exc_wta, inh_wta = self._matrices(x.dtype)
        d = x - self._rest
        phi = self._phi(x)
        h = self._spmv(w_signed, phi)
        s = self._stimulus_drive(u.astype(x.dtype))
        f = np.empty_like(x)
        i = self.sl[OSC]
        a = x.dtype.type(self.osc_amp)
        arg = self._self[i] * d[..., i] + h[..., i] + s[..., i]
        f[..., i] = self._rest[i] + a * np.tanh(arg / a)
        i = self.sl[INT]
        f[..., i] = self._rest[i] + self._self[i] * d[..., i] + h[..., i] + s[..., i]
        i = self.sl[WTA]
        if i.stop > i.start:
            hp = self._spmv(exc_wta, phi)
            hn = self._spmv(inh_wta, phi)
            e = np.maximum(s[..., i] + self._self[i] * x[..., i] + hp, 0)
            e2 = e * e
            g = x.dtype.type(self.wta_rate)
            sig2 = x.dtype.type(self.wta_sigma**2)
            f[..., i] = (1 - g) * x[..., i] + g * e2 / (sig2 + e2 + hn)
        i = self.sl[CHAIN]
        f[..., i] = expit(x.dtype.type(self.chain_beta) * (h[..., i] + s[..., i]))
        return f

    def presynaptic_output(self, x: np.ndarray) -> np.ndarray:
        """φ(x): what each neuron transmits. x - rest, and x² for winner-take-all neurons."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        out[..., self.perm] = self._phi(x[..., self.perm])
        return out

    def mean_map(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """F(x_t, u_t): the noiseless next state. ``x`` (N,) or (B, N), ``u`` (S,) or (B, S)."""
        x = np.asarray(x, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        out = np.empty_like(x)
        out[..., self.perm] = self._map_sorted(x[..., self.perm], u)
        return out

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

    The stimulus (T_total, S) covers burn-in and recording; ``callback`` (see
    :mod:`napari_mesoscale.progress`) hears every 50 steps and stops the run by returning False
    (:class:`ToyBrainCancelled`).
    """
    progress = Progress.wrap(callback, ToyBrainCancelled)
    t_total, n = stimulus.shape[0], len(x0)
    t_out = t_total - burn_in
    out = np.empty((t_out, n), dtype=np.float32)
    perm = dyn.perm
    # simulated in float32: the stored activity is exactly the state the map was applied to
    x = x0[perm].astype(np.float32)
    stim = np.asarray(stimulus, dtype=np.float32)
    sigma = np.float32(dyn.noise_std)
    for t in range(t_total):
        if t >= burn_in:
            out[t - burn_in, perm] = x
        if t == t_total - 1:
            break
        x = dyn._map_sorted(x, stim[t])
        x += rng.standard_normal(n, dtype=np.float32) * sigma
        np.maximum(x, 0, out=x)
        if t % 50 == 0:
            progress.report(t / t_total, f"step {t}/{t_total}", step=t, total=t_total)
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
    t_n = spikes.shape[0]
    out = np.empty(spikes.shape, dtype=np.float32)
    gd, gr = np.float32(np.exp(-dt / tau_decay)), np.float32(np.exp(-dt / tau_rise))
    hd, hr = np.float32(np.exp(-0.5 * dt / tau_decay)), np.float32(np.exp(-0.5 * dt / tau_rise))
    # y[t] = g y[t-1] + h s[t] gives the kernel h g^n = exp(-(n + 1/2) dt / tau)
    yd = np.zeros(spikes.shape[1:], dtype=np.float32)
    yr = np.zeros(spikes.shape[1:], dtype=np.float32)
    for t in range(t_n):
        st = spikes[t].astype(np.float32)
        yd *= gd
        yd += hd * st
        yr *= gr
        yr += hr * st
        np.subtract(yd, yr, out=out[t])
    out *= np.float32(amplitude / peak)
    return out
