"""Microscopic network of generalised integrate-and-fire (GIF) neurons in populations.

This is the spiking ground truth of René, Longtin & Macke (2020, *Inference of a
mesoscopic population model from population activity*, section 4.1), itself taken from
Schwalger, Deger & Gerstner (2017). Each neuron ``i`` of population ``alpha`` has

* a membrane potential ``tau_m du/dt = -u + u_rest + R I_ext(t) + tau_m sum_beta y_i,beta(t)``
  where ``y_i,beta`` is the synaptic drive from population ``beta``: every presynaptic spike
  of a connected neuron (probability ``p[alpha, beta]``) arrives after the transmission delay
  ``delay[alpha, beta]`` and adds about ``w[alpha, beta] / tau_s[beta]`` to ``y``, which decays
  with ``tau_s[beta]`` (an exponential synaptic kernel of unit integral, so that a spike moves
  the potential by ``w`` mV in total);
* a dynamic threshold ``theta(t) = u_th + sum_k J_theta / tau_theta exp(-(t - t_k - t_ref) /
  tau_theta)`` over its own past spikes ``t_k`` (spike-triggered adaptation, eq. 4.6);
* an escape rate ``lambda = c exp((u - theta) / delta_u)`` (eq. 4.9): in a step ``dt`` it
  spikes with probability ``1 - exp(-lambda dt)``;
* after a spike, ``u`` is reset to ``u_r`` and clamped there for ``t_ref`` (absolute
  refractoriness), during which the neuron cannot fire.

The simulation is vectorised over neurons (and over independent trials) with torch; the
loop runs over time only. Units: seconds, mV, Hz, mA and Ohm (so that ``R * I`` is in mV).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from napari_mesoscale.progress import Cancelled, Progress

__all__ = [
    "GIFParams",
    "GIFSimulation",
    "sine_modulated_input",
    "ou_input",
    "simulate_gif_network",
    "two_population_params",
    "four_population_params",
]


_POP_FIELDS = (
    "R",
    "u_rest",
    "tau_m",
    "t_ref",
    "u_th",
    "u_r",
    "c",
    "delta_u",
    "tau_s",
    "J_theta",
    "tau_theta",
)
_PAIR_FIELDS = ("p", "w", "delay")


@dataclass
class GIFParams:
    """Parameters of a network of ``M`` homogeneous GIF populations (René et al. 2020, Table 2).

    Population vectors have shape ``(M,)``; pair matrices have shape ``(M, M)`` and are
    indexed ``[target, source]`` (``w[alpha, beta]`` is the weight from ``beta`` onto
    ``alpha``). ``tau_s`` belongs to the *source* population.

    Attributes
    ----------
    names : tuple of str
        Population labels, e.g. ``("E", "I")``.
    N : ndarray of int
        Number of neurons per population.
    R : ndarray
        Membrane resistance (Ohm); ``R * I_ext`` is in mV when ``I_ext`` is in mA.
    u_rest, u_th, u_r : ndarray
        Resting potential, non-adapting threshold and reset potential (mV).
    p : ndarray
        Connection probabilities ``(M, M)``.
    w : ndarray
        Connection weights ``(M, M)`` in mV (negative for inhibitory sources).
    delay : ndarray
        Transmission delays ``(M, M)`` in s.
    tau_m, t_ref, tau_s, tau_theta : ndarray
        Membrane, refractory, synaptic and adaptation time constants (s).
    c : ndarray
        Escape rate at threshold (Hz).
    delta_u : ndarray
        Softness of the threshold / noise level (mV).
    J_theta : ndarray
        Integral of the adaptation kernel (mV s); 0 for no adaptation.
    """

    names: tuple[str, ...]
    N: np.ndarray
    R: np.ndarray
    u_rest: np.ndarray
    p: np.ndarray
    w: np.ndarray
    tau_m: np.ndarray
    t_ref: np.ndarray
    u_th: np.ndarray
    u_r: np.ndarray
    c: np.ndarray
    delta_u: np.ndarray
    delay: np.ndarray
    tau_s: np.ndarray
    J_theta: np.ndarray
    tau_theta: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = tuple(str(n) for n in self.names)
        M = len(self.names)
        if M == 0:
            raise ValueError("GIFParams needs at least one population (names is empty).")
        self.N = np.asarray(self.N, dtype=np.int64).reshape(-1)
        if self.N.shape != (M,) or np.any(self.N <= 0):
            raise ValueError(f"N must hold {M} positive neuron counts, got {self.N!r}.")
        for name in _POP_FIELDS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim == 0:
                arr = np.full(M, float(arr))
            if arr.shape != (M,):
                raise ValueError(f"{name} must have shape ({M},), got {arr.shape}.")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinite values.")
            setattr(self, name, arr)
        for name in _PAIR_FIELDS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim == 0:
                arr = np.full((M, M), float(arr))
            if arr.shape != (M, M):
                raise ValueError(f"{name} must have shape ({M}, {M}), got {arr.shape}.")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinite values.")
            setattr(self, name, arr)
        for name in ("tau_m", "tau_s", "delta_u"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"{name} must be strictly positive.")
        if np.any(self.c < 0) or np.any(self.t_ref < 0) or np.any(self.delay < 0):
            raise ValueError("c, t_ref and delay must be non-negative.")
        if np.any((self.p < 0) | (self.p > 1)):
            raise ValueError("connection probabilities p must lie in [0, 1].")
        if np.any((self.J_theta != 0) & (self.tau_theta <= 0)):
            raise ValueError("tau_theta must be positive where J_theta is non-zero.")

    @property
    def M(self) -> int:
        """Number of populations."""
        return len(self.names)

    @property
    def J(self) -> np.ndarray:
        """Effective population coupling ``p * N_source * w`` (mV), shape ``(M, M)``."""
        return self.p * self.N[None, :] * self.w

    def copy(self, **changes: Any) -> GIFParams:
        """Return a deep copy with some fields replaced."""
        kw = {f.name: np.array(getattr(self, f.name), copy=True) for f in fields(self)}
        kw["names"] = self.names
        kw["extra"] = dict(self.extra)
        kw.update(changes)
        return replace(self, **kw)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary of the parameters."""
        out: dict[str, Any] = {"names": list(self.names)}
        for f in fields(self):
            if f.name in ("names", "extra"):
                continue
            out[f.name] = np.asarray(getattr(self, f.name)).tolist()
        return out


def two_population_params() -> GIFParams:
    """The two-population E/I model of René, Longtin & Macke 2020 (Table 7, two-population column).

    Layer-4 E and I populations of a cortical column with sizes reduced 50-fold (438 and 109
    neurons) and weights scaled up accordingly. Under the sine-modulated training input
    (Table 5, :func:`sine_modulated_input`) the paper reports mean rates of about 5.9 Hz (E)
    and 8.4 Hz (I).

    Returns
    -------
    GIFParams
    """
    return GIFParams(
        names=("E", "I"),
        N=[438, 109],
        R=[19.0, 11.964],
        u_rest=[20.0, 19.5],
        p=[[0.0497, 0.1350], [0.0794, 0.1597]],
        w=[[2.482, -4.964], [1.245, -4.964]],
        tau_m=[0.01, 0.01],
        t_ref=[0.002, 0.002],
        u_th=[15.0, 15.0],
        u_r=[0.0, 0.0],
        c=[10.0, 10.0],
        delta_u=[5.0, 5.0],
        delay=0.001,
        tau_s=[0.003, 0.006],
        J_theta=[1.0, 0.0],
        tau_theta=[1.0, 1.0],
        extra={
            "input": {"B": [0.25, 0.1], "omega": 2.0, "q": [4.0, 4.0]},
            "reported_rates_hz": [5.9, 8.4],
        },
    )


def four_population_params() -> GIFParams:
    """The four-population L2/3-L4 model of René, Longtin & Macke 2020 (Table 7).

    The weight matrix is all ``1.245`` mV from excitatory and ``-4.964`` mV from inhibitory
    sources, with the doubled ``2.482`` mV on L4e -> L2/3e (Potjans & Diesmann); the flattened
    weight row of Table 7 in the seed text is garbled, so this placement is a reconstruction.
    """
    p = [
        [0.1009, 0.1689, 0.0437, 0.0818],
        [0.1346, 0.1371, 0.0316, 0.0515],
        [0.0077, 0.0059, 0.0497, 0.1350],
        [0.0691, 0.0029, 0.0794, 0.1597],
    ]
    w = np.tile([1.245, -4.964, 1.245, -4.964], (4, 1))
    w[0, 2] = 2.482
    return GIFParams(
        names=("L2/3e", "L2/3i", "L4e", "L4i"),
        N=[413, 116, 438, 109],
        R=[0.0, 0.0, 19.0, 11.964],
        u_rest=[18.0, 18.0, 25.0, 20.0],
        p=p,
        w=w,
        tau_m=0.01,
        t_ref=0.002,
        u_th=15.0,
        u_r=0.0,
        c=10.0,
        delta_u=5.0,
        delay=0.001,
        tau_s=[0.003, 0.006, 0.003, 0.006],
        J_theta=[1.0, 0.0, 1.0, 0.0],
        tau_theta=[1.0, 1.0, 1.0, 1.0],
        extra={"input": {"B": [0.0, 0.0, 0.25, 0.1], "omega": 2.0, "q": [4.0] * 4}},
    )


def sine_modulated_input(
    duration: float,
    dt: float,
    B: Any,
    omega: float = 2.0,
    q: Any = 4.0,
    *,
    noise_tau: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Frozen sine-modulated noisy input shared within each population (René et al. 2020, 4.8.1).

    ``I_alpha(t) = B_alpha sin(omega t) + q_alpha sqrt(h) xi_alpha,k`` for ``t`` in the k-th
    input bin of width ``h`` (1 ms): ``xi`` is frozen standard Gaussian noise, i.e. white
    noise of intensity ``q`` integrated over each bin as in an Euler-Maruyama step. The
    input lives on the 1 ms grid of the mesoscopic model and is held within it, so the
    microscopic (0.2 ms) and mesoscopic (1 ms) models see the same input (section 4.8.4).

    Equation 4.28 itself is missing from the text of the seed (its equations are images),
    so this form is a reconstruction from the parameter names of Table 5 (amplitude ``B``,
    angular frequency ``omega``, noise intensity ``q``); with it the two-population network
    fires at rates close to the paper's 5.9 Hz (E) and 8.4 Hz (I).

    Parameters
    ----------
    duration, dt : float
        Length and time step (s).
    B : array-like, shape (M,)
        Amplitude per population (mA).
    omega : float
        Angular frequency (rad/s).
    q : float or array-like
        Noise intensity (mA s^1/2).
    noise_tau : float
        Width ``h`` of the input bins (s); 0 means 1 ms.
    seed : int
        Seed of the frozen noise.

    Returns
    -------
    ndarray, shape (T, M)
        Input current in mA.
    """
    B = np.atleast_1d(np.asarray(B, dtype=np.float64))
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), B.shape)
    T = _n_steps(duration, dt)
    hold = noise_tau if noise_tau > 0 else 1e-3
    per = max(1, int(round(hold / dt)))
    rng = np.random.default_rng(seed)
    n_coarse = -(-T // per)
    xi = rng.standard_normal((n_coarse, B.size)).repeat(per, axis=0)[:T]
    t = np.arange(T) * dt
    return B[None, :] * np.sin(omega * t)[:, None] + (q * math.sqrt(per * dt))[None, :] * xi


def ou_input(
    duration: float,
    dt: float,
    mu: Any,
    q: Any,
    tau: float = 0.1,
    *,
    init: Any = None,
    seed: int = 0,
) -> np.ndarray:
    """Frozen Ornstein-Uhlenbeck test input, shape (T, M) (René et al. 2020, eq. 4.29).

    ``dI = (mu - I) / tau dt + q sqrt(2 / tau) dW`` (stationary standard deviation ``q``),
    integrated exactly on a 1 ms grid and held within it.
    """
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), mu.shape)
    T = _n_steps(duration, dt)
    per = max(1, int(round(1e-3 / dt)))
    h = per * dt
    n_coarse = -(-T // per)
    rng = np.random.default_rng(seed)
    a = math.exp(-h / tau)
    sd = q * math.sqrt(1 - a * a)
    x = np.empty((n_coarse, mu.size))
    x[0] = mu if init is None else np.asarray(init, dtype=np.float64)
    noise = rng.standard_normal((n_coarse, mu.size))
    for k in range(1, n_coarse):
        x[k] = mu + (x[k - 1] - mu) * a + sd * noise[k]
    return x.repeat(per, axis=0)[:T]


class PopulationCancelled(Cancelled):
    """A population simulation or fit was cancelled through its progress callback."""


@dataclass
class GIFSimulation:
    """Result of :func:`simulate_gif_network`.

    Attributes
    ----------
    params : GIFParams
    dt : float
        Simulation step (s).
    population : ndarray, shape (N_total,)
        Population index of every neuron.
    spike_steps, spike_neurons : ndarray
        Spikes as (time step, neuron index) pairs, sorted by time (first trial).
    counts : ndarray, shape (T, M)
        Spikes per population and step (first trial); ``counts / (N dt)`` is the
        population activity ``A(t)`` in Hz.
    counts_trials : ndarray, shape (n_trials, T, M)
    input : ndarray, shape (T, M)
        External input used (mA).
    connectivity : scipy-free dense ndarray or None
        Boolean adjacency ``[post, pre]`` when ``keep_connectivity`` was requested.
    wall_time : float
        Seconds spent in the time loop.
    cancelled : bool
        The progress callback stopped the run: the arrays end at the last step simulated.
    """

    params: GIFParams
    dt: float
    population: np.ndarray
    spike_steps: np.ndarray
    spike_neurons: np.ndarray
    counts: np.ndarray
    counts_trials: np.ndarray
    input: np.ndarray
    connectivity: np.ndarray | None
    wall_time: float
    cancelled: bool = False

    @property
    def duration(self) -> float:
        """Simulated time (s)."""
        return self.counts.shape[0] * self.dt

    @property
    def activity(self) -> np.ndarray:
        """Population activity ``A(t)`` in Hz, shape (T, M)."""
        return self.counts / (self.params.N[None, :] * self.dt)

    def rates(self, burn_in: float = 0.0) -> np.ndarray:
        """Mean firing rate per neuron of each population (Hz) after ``burn_in`` seconds,
        averaged over trials."""
        k0 = int(round(burn_in / self.dt))
        c = self.counts_trials[:, k0:, :]
        if c.shape[1] == 0:
            raise ValueError("burn_in is longer than the simulation.")
        return c.sum(axis=(0, 1)) / (c.shape[0] * c.shape[1] * self.dt * self.params.N)

    def binned_counts(self, bin_dt: float, trial: int = 0) -> np.ndarray:
        """Counts summed into bins of ``bin_dt`` seconds (a multiple of ``dt``), (T_bins, M)."""
        k = int(round(bin_dt / self.dt))
        if k < 1 or abs(k * self.dt - bin_dt) > 1e-9 * max(1.0, bin_dt):
            raise ValueError(f"bin_dt={bin_dt} must be a positive multiple of dt={self.dt}.")
        c = self.counts_trials[trial]
        T = (c.shape[0] // k) * k
        return c[:T].reshape(-1, k, c.shape[1]).sum(axis=1)

    def spike_train(self, trial: int = 0) -> np.ndarray:
        """Dense boolean spike raster (T, N_total) of the first trial (memory T*N bytes)."""
        if trial != 0:
            raise ValueError("only the first trial's spikes are stored.")
        out = np.zeros((self.counts.shape[0], self.population.size), dtype=bool)
        out[self.spike_steps, self.spike_neurons] = True
        return out


def _n_steps(duration: float, dt: float) -> int:
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}.")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}.")
    T = int(round(duration / dt))
    if T < 1:
        raise ValueError(f"duration={duration} is shorter than one step dt={dt}.")
    return T


def _prepare_input(inp: Any, T: int, M: int, dt: float) -> np.ndarray:
    if inp is None:
        return np.zeros((T, M))
    arr = np.asarray(inp, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == M:
        arr = np.broadcast_to(arr, (T, M)).copy()
    if arr.ndim != 2 or arr.shape[1] != M:
        raise ValueError(
            f"input must have shape (T, {M}) (time, population) or ({M},) for a constant "
            f"input; got {arr.shape}."
        )
    if arr.shape[0] != T:
        # allow a coarser input grid (e.g. 1 ms) that divides the duration evenly
        rows = arr.shape[0]
        k = int(round(T / rows))
        if k >= 1 and abs(rows * k - T) < k:
            arr = arr.repeat(k, axis=0)[:T]
            if arr.shape[0] < T:  # the last coarse bin is held
                arr = np.concatenate([arr, np.repeat(arr[-1:], T - arr.shape[0], axis=0)])
        else:
            raise ValueError(
                f"input has {arr.shape[0]} time steps but the simulation has {T} steps of "
                f"dt={dt}; pass one row per step or per an integer multiple of steps."
            )
    if not np.all(np.isfinite(arr)):
        raise ValueError("input contains NaN or infinite values.")
    return arr


def simulate_gif_network(
    params: GIFParams,
    duration: float,
    dt: float = 2e-4,
    input: Any = None,
    seed: int = 0,
    *,
    n_trials: int = 1,
    keep_connectivity: bool = False,
    init: str = "stationary",
    callback: Callable[[dict], Any] | None = None,
    device: str = "cpu",
) -> GIFSimulation:
    """Simulate the microscopic GIF network (René, Longtin & Macke 2020, section 4.1).

    Parameters
    ----------
    params : GIFParams
        Network parameters, e.g. :func:`two_population_params`.
    duration : float
        Simulated time (s).
    dt : float
        Integration step (s); the paper uses 0.2 ms.
    input : array-like, optional
        External current per population (mA), shape (T, M) with one row per step (or per
        an integer multiple of steps, e.g. a 1 ms grid), or (M,) for a constant input.
    seed : int
        Seeds both the random connectivity and the escape noise.
    n_trials : int
        Independent realisations of the escape noise run side by side on the same network
        and input (vectorised).
    keep_connectivity : bool
        Return the boolean adjacency matrix ``[post, pre]``.
    init : {"stationary", "silent"}
        ``"silent"``: every neuron at rest with no spike history. ``"stationary"``: random
        last-spike ages and membrane potentials drawn from a 10 Hz guess, which shortens
        the initial transient.
    callback : callable, optional
        Progress protocol (:mod:`napari_mesoscale.progress`), called about every 1 % of the
        run with ``fraction``, ``step`` and ``n_steps``. Returning ``False`` or raising a
        ``Cancelled`` stops the simulation: the steps done so far are returned with
        ``cancelled=True``.
    device : str
        Torch device.

    Returns
    -------
    GIFSimulation
    """
    if not isinstance(params, GIFParams):
        raise ValueError("params must be a GIFParams (see two_population_params()).")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}.")
    if init not in ("stationary", "silent"):
        raise ValueError(f"init must be 'stationary' or 'silent', got {init!r}.")
    T = _n_steps(duration, dt)
    M = params.M
    I_ext = _prepare_input(input, T, M, dt)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(rng.integers(2**62)))
    dtype = torch.float64
    dev = torch.device(device)

    N = params.N
    n_tot = int(N.sum())
    pop = np.repeat(np.arange(M), N)
    starts = np.concatenate([[0], np.cumsum(N)])

    # --- random connectivity, weights per (post, source population) -----------------------
    # conn[i, j] = True if j -> i. Build weight blocks W_beta (n_tot x N_beta).
    conn = rng.random((n_tot, n_tot)) < params.p[pop[:, None], pop[None, :]]
    np.fill_diagonal(conn, False)
    delay_steps = np.rint(params.delay / dt).astype(int)
    if np.any(delay_steps < 1):
        raise ValueError(
            f"every transmission delay must be at least one step dt={dt}; got "
            f"{params.delay.min()} s."
        )
    # group (target pop, source pop) blocks by delay
    W_blocks = []  # list of (delay, source beta, target slice mask rows, dense weight matrix)
    for beta in range(M):
        cols = slice(starts[beta], starts[beta + 1])
        for d in np.unique(delay_steps[:, beta]):
            targets = np.nonzero(delay_steps[:, beta] == d)[0]
            rows = np.isin(pop, targets)
            Wb = np.zeros((n_tot, N[beta]))
            Wb[rows] = conn[rows, cols] * params.w[pop[rows], beta][:, None]
            W_blocks.append((int(d), beta, torch.tensor(Wb, dtype=dtype, device=dev)))
    D = int(delay_steps.max())

    def per_neuron(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(x)[pop], dtype=dtype, device=dev)

    P_m = per_neuron(np.exp(-dt / params.tau_m))
    u_rest = per_neuron(params.u_rest)
    R = per_neuron(params.R)
    u_th = per_neuron(params.u_th)
    u_r = per_neuron(params.u_r)
    c = per_neuron(params.c)
    du = per_neuron(params.delta_u)
    tau_m = per_neuron(params.tau_m)
    k_ref = torch.tensor(np.rint(params.t_ref / dt).astype(np.int64)[pop], device=dev)
    tau_th = np.where(params.J_theta != 0, params.tau_theta, 1.0)
    P_th = per_neuron(np.exp(-dt / tau_th))
    jump_th = per_neuron(np.where(params.J_theta != 0, params.J_theta / tau_th, 0.0))
    P_s = torch.tensor(np.exp(-dt / params.tau_s), dtype=dtype, device=dev)  # (M,) by source
    # increment (1 - P_s) / dt instead of 1 / tau_s: the discrete kernel then integrates to
    # exactly w per spike (1 / tau_s would overshoot by dt / (2 tau_s), 3 % at 0.2 ms / 3 ms)
    inv_tau_s = torch.tensor((1.0 - np.exp(-dt / params.tau_s)) / dt, dtype=dtype, device=dev)
    I_t = torch.tensor(I_ext, dtype=dtype, device=dev)

    R_tr = n_trials
    u = u_rest.expand(R_tr, n_tot).clone()
    g = torch.zeros(R_tr, n_tot, dtype=dtype, device=dev)  # adaptation threshold (mV)
    ref = torch.zeros(R_tr, n_tot, dtype=torch.int64, device=dev)  # steps left refractory
    y = torch.zeros(R_tr, n_tot, M, dtype=dtype, device=dev)  # synaptic drive (mV/s)
    # ring buffer of weighted arrivals: buf[(t + d) % (D+1)] receives (R, n_tot, M)
    buf = torch.zeros(D + 1, R_tr, n_tot, M, dtype=dtype, device=dev)
    if init == "stationary":
        # last-spike ages from a 10 Hz Poisson guess; potentials relaxed accordingly
        age = torch.empty(R_tr, n_tot, dtype=dtype, device=dev).exponential_(10.0, generator=gen)
        relax = torch.exp(-age / tau_m)
        u = u_r * relax + u_rest * (1 - relax)
        g = jump_th * torch.exp(-age * (1.0 / torch.tensor(tau_th[pop], device=dev)))
    pop_t = torch.tensor(pop, device=dev)

    counts_t = torch.zeros(T, R_tr, M, dtype=dtype, device=dev)
    raster = torch.zeros(T, n_tot, dtype=torch.bool, device=dev)  # first trial only
    report_every = max(1, T // 100)
    progress, cancelled = Progress.wrap(callback, PopulationCancelled), False
    import time as _time

    t0 = _time.perf_counter()
    T_done = T
    pop_onehot = torch.nn.functional.one_hot(pop_t, M).to(dtype)  # (n_tot, M)
    I_neuron = I_t[:, pop_t]  # (T, n_tot)
    one_m_Pm = 1 - P_m
    released_jump = jump_th
    instant_jump = jump_th * (k_ref == 0)
    for k in range(T):
        slot = k % (D + 1)
        # synaptic drive: decay then add the arrivals of this step
        y = y * P_s + buf[slot] * inv_tau_s
        buf[slot].zero_()
        mu = u_rest + R * I_neuron[k] + tau_m * y.sum(-1)
        refractory = ref > 0
        u = torch.where(refractory, u_r, u * P_m + mu * one_m_Pm)
        ref = (ref - 1).clamp_(min=0)
        released = refractory & (ref == 0)
        g = g * P_th + released_jump * released  # adaptation kernel starts after t_ref
        p_spike = -torch.expm1(-dt * c * torch.exp((u - u_th - g) / du))
        spikes = (torch.rand(R_tr, n_tot, generator=gen, dtype=dtype, device=dev) < p_spike) & (
            ~refractory
        )
        s = spikes.to(dtype)
        u = torch.where(spikes, u_r, u)
        ref = torch.where(spikes, k_ref, ref)
        g = g + instant_jump * s  # neurons with t_ref == 0: adaptation starts at once
        for d, beta, Wb in W_blocks:
            buf[(k + d) % (D + 1), :, :, beta] += s[:, starts[beta] : starts[beta + 1]] @ Wb.T
        counts_t[k] = s @ pop_onehot
        raster[k] = spikes[0]
        if progress.active and (k % report_every == 0 or k == T - 1):
            try:
                progress.report((k + 1) / T, f"step {k + 1}/{T}", step=k + 1, n_steps=T)
            except Cancelled:
                T_done, cancelled = k + 1, True
                break
    counts = counts_t[:T_done].round().to(torch.int64).permute(1, 0, 2).cpu().numpy()
    nz = torch.nonzero(raster[:T_done]).cpu().numpy()
    wall = _time.perf_counter() - t0
    return GIFSimulation(
        params=params,
        dt=dt,
        population=pop,
        spike_steps=nz[:, 0].astype(np.int64),
        spike_neurons=nz[:, 1].astype(np.int64),
        counts=counts[0],
        counts_trials=counts,
        input=I_ext[:T_done],
        connectivity=conn if keep_connectivity else None,
        wall_time=wall,
        cancelled=cancelled,
    )
