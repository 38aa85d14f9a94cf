"""GIF populations placed in 3D as domains: a second kind of toy-brain ground truth.

:func:`make_population_brain` simulates the microscopic GIF network, places each population
as a compact spatial domain of somata, bins the spikes into imaging frames, turns them into
calcium traces and (optionally) renders a calcium movie. Where the toy brain's rendering
helpers of :mod:`napari_mesoscale.synth` can be imported (soma footprints, the shot-noise
movie renderer, the calcium kernel), they are used, so that both ground truths look alike
to the detection and modelling code; otherwise a minimal renderer of this module is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.reproductions.populations.microscopic import (
    GIFParams,
    GIFSimulation,
    PopulationCancelled,
    simulate_gif_network,
    sine_modulated_input,
    two_population_params,
)
from napari_mesoscale.synth import MovieRenderer, smooth_field, soma_profiles, spikes_to_calcium

__all__ = ["PopulationBrain", "make_population_brain"]


@dataclass
class PopulationBrain:
    """Ground truth of a GIF network laid out in 3D.

    Attributes
    ----------
    positions : ndarray, shape (N, 3)
        Soma centres in µm, (z, y, x).
    population : ndarray of int, shape (N,)
        Population index of every neuron (also its domain: one domain per population).
    population_names : tuple of str
    spikes : ndarray of int16, shape (T_frames, N)
        Spikes per imaging frame.
    calcium : ndarray of float32, shape (T_frames, N)
        Clean dF/F traces.
    counts : ndarray, shape (T_frames, M)
        Population spike counts per frame.
    adjacency : scipy.sparse.csr_matrix, shape (N, N)
        Signed synaptic weights (mV), ``adjacency[pre, post]``.
    frame_rate : float
    voxel_size : tuple of float
        µm per voxel (z, y, x).
    shape : tuple of int
        Volume shape (Z, Y, X).
    simulation : GIFSimulation
        The microscopic simulation (fine time step, input, all spikes).
    params : dict
        Everything needed to regenerate it.
    """

    positions: np.ndarray
    population: np.ndarray
    population_names: tuple[str, ...]
    spikes: np.ndarray
    calcium: np.ndarray
    counts: np.ndarray
    adjacency: sp.csr_matrix
    frame_rate: float
    voxel_size: tuple[float, float, float]
    shape: tuple[int, int, int]
    simulation: GIFSimulation
    params: dict = field(default_factory=dict)
    diameters: np.ndarray | None = None
    _renderer: Any = None
    _labels: np.ndarray | None = None

    @property
    def n_neurons(self) -> int:
        """Number of neurons."""
        return int(self.positions.shape[0])

    @property
    def neurons(self) -> pd.DataFrame:
        """Per-neuron table: id, z, y, x (µm), population, domain, rate_hz."""
        dur = self.spikes.shape[0] / self.frame_rate
        return pd.DataFrame(
            {
                "id": np.arange(self.n_neurons),
                "z": self.positions[:, 0],
                "y": self.positions[:, 1],
                "x": self.positions[:, 2],
                "population": np.asarray(self.population_names)[self.population],
                "domain": self.population,
                "rate_hz": self.spikes.sum(0) / dur,
            }
        )

    @property
    def activity(self) -> np.ndarray:
        """Population activity per frame (Hz), shape (T_frames, M)."""
        N = np.bincount(self.population, minlength=len(self.population_names))
        return self.counts * self.frame_rate / N[None, :]

    def _get_renderer(self) -> Any:
        if self._renderer is None:
            ri = self.params["render"]
            p, labels = soma_profiles(
                self.positions, self.diameters, self.voxel_size, self.shape, ri["psf_sigma"]
            )
            rng = np.random.default_rng([ri["seed"], 0xB6])
            background = smooth_field(rng, self.shape, 16, 0.1, 0.3)
            baseline = np.random.default_rng([ri["seed"], 0xB7]).uniform(
                0.6, 1.4, self.n_neurons
            )
            drift = np.ones(self.calcium.shape[0], dtype=np.float32)
            self._renderer = MovieRenderer(
                p, baseline, self.calcium, background, drift, ri["snr"], self.shape, ri["seed"]
            )
            self._labels = labels
        return self._renderer

    @property
    def labels(self) -> np.ndarray:
        """Soma label volume (Z, Y, X) int32, neuron index + 1."""
        self._get_renderer()
        return self._labels

    def movie(self, frames: Any = None) -> np.ndarray:
        """Calcium movie (T, Z, Y, X) uint16 of ``frames`` (default all), rendered eagerly."""
        r = self._get_renderer()
        frames = np.arange(self.calcium.shape[0]) if frames is None else np.asarray(frames)
        return r.render(frames)

    def lazy_movie(self) -> Any:
        """The calcium movie as a dask array rendered chunk by chunk."""
        r = self._get_renderer()
        if hasattr(r, "lazy"):
            return r.lazy()
        import dask.array as da

        frames = da.from_array(np.arange(self.calcium.shape[0]), chunks=8)
        return frames.map_blocks(
            lambda b: r.render(b),
            new_axis=[1, 2, 3],
            chunks=(frames.chunks[0], *((s,) for s in self.shape)),
            dtype=np.uint16,
        )


def _place_domain(
    rng: np.random.Generator,
    n: int,
    centre: np.ndarray,
    radius: float,
    min_dist: float,
    placed: list[np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """``n`` points in a ball, at least ``min_dist`` from each other and from ``placed``."""
    from scipy.spatial import cKDTree

    others = np.concatenate(placed) if placed else np.zeros((0, 3))
    pts: list[np.ndarray] = []
    r = radius
    while len(pts) < n:
        cand = rng.normal(size=(8 * n, 3))
        cand *= (r * rng.random(8 * n) ** (1 / 3) / np.linalg.norm(cand, axis=1))[:, None]
        cand += centre
        cand = cand[np.all((cand >= lo) & (cand <= hi), axis=1)]
        # accept from the centre outwards so that the domain stays compact
        cand = cand[np.argsort(np.linalg.norm(cand - centre, axis=1))]
        tree_o = cKDTree(others) if len(others) else None
        for c in cand:
            if tree_o is not None and tree_o.query(c)[0] < min_dist:
                continue
            if pts and np.min(np.linalg.norm(np.asarray(pts) - c, axis=1)) < min_dist:
                continue
            pts.append(c)
            if len(pts) == n:
                break
        r *= 1.15  # grow the ball if it was too tight
    return np.asarray(pts)


def make_population_brain(
    params: GIFParams | None = None,
    duration: float = 5.0,
    *,
    dt: float = 2e-4,
    input: Any = None,
    frame_rate: float = 20.0,
    soma_diameter: float = 8.0,
    voxel_size: tuple[float, float, float] = (2.0, 1.0, 1.0),
    domain_gap: float = 20.0,
    tau_rise: float = 0.05,
    tau_decay: float = 0.5,
    calcium_amplitude: float = 0.1,
    snr: float = 4.0,
    psf_sigma: tuple[float, float, float] = (1.5, 0.5, 0.5),
    burn_in: float = 2.0,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> PopulationBrain:
    """Simulate a GIF network and lay its populations out in 3D as domains.

    Parameters
    ----------
    params : GIFParams, optional
        Network (default :func:`two_population_params`, 438 E + 109 I neurons).
    duration : float
        Recorded time (s), after ``burn_in`` seconds that are simulated and dropped.
    dt : float
        Microscopic step (s).
    input : array-like, optional
        External input (mA), shape (T, M) on the ``dt`` grid or a coarser one covering
        ``burn_in + duration``; default the sine-modulated training input of the seed
        (``params.extra["input"]``) or none.
    frame_rate : float
        Imaging rate (Hz); spikes are counted per frame.
    soma_diameter : float
        Soma diameter (µm); somata are at least this far apart.
    voxel_size : tuple of float
        µm per voxel (z, y, x) of the rendered movie.
    domain_gap : float
        Space (µm) between neighbouring domains.
    tau_rise, tau_decay, calcium_amplitude : float
        Calcium kernel (s) and dF/F per spike at its peak.
    snr, psf_sigma : float, tuple
        Movie shot-noise SNR of a resting soma and PSF widths (µm, z y x).
    burn_in : float
        Simulated time dropped at the start (s).
    seed : int
    callback : callable, optional
        Passed to :func:`simulate_gif_network` (progress); a cancel raises
        :class:`PopulationCancelled` (a ``napari_mesoscale.progress.Cancelled``).

    Returns
    -------
    PopulationBrain
    """
    p = two_population_params() if params is None else params
    if not isinstance(p, GIFParams):
        raise ValueError("params must be a GIFParams.")
    if frame_rate <= 0 or soma_diameter <= 0 or burn_in < 0:
        raise ValueError("frame_rate and soma_diameter must be positive and burn_in >= 0.")
    vs = tuple(float(v) for v in voxel_size)
    if len(vs) != 3 or min(vs) <= 0:
        raise ValueError(f"voxel_size must be three positive numbers (z, y, x); got {voxel_size}.")
    frame_steps = int(round(1.0 / (frame_rate * dt)))
    if frame_steps < 1 or abs(frame_steps * dt * frame_rate - 1) > 1e-6:
        raise ValueError(f"1 / frame_rate must be a multiple of dt={dt}; got {frame_rate} Hz.")
    total = burn_in + duration
    if input is None and "input" in p.extra:
        input = sine_modulated_input(total, 1e-3, **p.extra["input"], seed=seed + 1)
    sim = simulate_gif_network(
        p, total, dt, input, seed=seed, keep_connectivity=True, callback=callback
    )
    if sim.cancelled:  # a brain of a truncated simulation would not match its parameters
        raise PopulationCancelled("make_population_brain cancelled during the simulation")
    rng = np.random.default_rng([seed, 0x50])
    # ---- layout: one compact ball per population, side by side along x ------------------
    N = p.N
    radii = 0.5 * soma_diameter * (N / 0.3) ** (1 / 3) + soma_diameter
    margin = soma_diameter
    width_x = 2 * radii.sum() + domain_gap * (p.M - 1) + 2 * margin
    side = 2 * radii.max() + 2 * margin
    lo = np.array([margin / 2, margin / 2, margin / 2])
    hi = np.array([side, side, width_x]) - margin / 2
    placed: list[np.ndarray] = []
    x = margin
    for a in range(p.M):
        x += radii[a]
        centre = np.array([side / 2, side / 2, x])
        placed.append(
            _place_domain(rng, int(N[a]), centre, radii[a] * 0.8, soma_diameter, placed, lo, hi)
        )
        x += radii[a] + domain_gap
    positions = np.concatenate(placed)
    population = np.repeat(np.arange(p.M), N)
    shape = tuple(int(np.ceil(e / v)) for e, v in zip((side, side, width_x), vs, strict=False))
    # ---- spikes per frame, calcium ------------------------------------------------------
    k0 = int(round(burn_in / dt))
    n_frames = int((sim.counts.shape[0] - k0) // frame_steps)
    keep = (sim.spike_steps >= k0) & (sim.spike_steps < k0 + n_frames * frame_steps)
    fr_idx = (sim.spike_steps[keep] - k0) // frame_steps
    spikes = np.zeros((n_frames, positions.shape[0]), dtype=np.int16)
    np.add.at(spikes, (fr_idx, sim.spike_neurons[keep]), 1)
    calcium = spikes_to_calcium(spikes, frame_rate, tau_rise, tau_decay, calcium_amplitude)
    counts = np.stack([spikes[:, population == a].sum(1) for a in range(p.M)], 1)
    conn = sim.connectivity  # [post, pre]
    post, pre = np.nonzero(conn)
    weights = p.w[population[post], population[pre]]
    adjacency = sp.csr_matrix((weights, (pre, post)), shape=(positions.shape[0],) * 2)
    return PopulationBrain(
        positions=positions,
        population=population,
        population_names=p.names,
        spikes=spikes,
        calcium=np.asarray(calcium, dtype=np.float32),
        counts=counts,
        adjacency=adjacency,
        frame_rate=float(frame_rate),
        voxel_size=vs,  # type: ignore[arg-type]
        shape=shape,  # type: ignore[arg-type]
        simulation=sim,
        params={
            "gif": p.as_dict(),
            "duration": duration,
            "burn_in": burn_in,
            "dt": dt,
            "seed": seed,
            "render": {"psf_sigma": list(psf_sigma), "snr": snr, "seed": seed},
            "calcium": {
                "tau_rise": tau_rise,
                "tau_decay": tau_decay,
                "amplitude": calcium_amplitude,
            },
        },
        diameters=np.full(positions.shape[0], soma_diameter),
    )
