"""`make_toy_brain` and the `ToyBrain` container (see the package docstring for the model)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._dynamics import STIMULUS_NAMES, Dynamics, make_stimulus, simulate, spikes_to_calcium
from ._layout import draw_instance_sizes, place_instances, place_somata
from ._render import (
    EMRenderer,
    MovieRenderer,
    slab_array,
    smooth_field,
    soma_labels_only,
    soma_profiles,
)
from ._wiring import CHAIN, INT, OSC, WTA, build_wiring, synapse_table, to_sparse

#: the motif types the toy brain knows, in their canonical order
MOTIF_NAMES: tuple[str, ...] = ("oscillator", "integrator", "wta", "chain")
_CODE = {"oscillator": OSC, "integrator": INT, "wta": WTA, "chain": CHAIN}

#: default shape / voxel size / neuron count that define the default density
_DEFAULT_SHAPE = (64, 128, 128)
_DEFAULT_VOXEL = (2.0, 1.0, 1.0)
_DEFAULT_N = 300
_DEFAULT_SOMA = 8.0

#: movies below this size are rendered eagerly by render="auto"
EAGER_MOVIE_BYTES = 512 * 2**20
#: from this many neurons on, render="auto" makes no movie
AUTO_NO_MOVIE_NEURONS = 20000
#: label volumes with more voxels than this stay lazy (dask)
EAGER_LABEL_VOXELS = 2**26
#: EM volumes with more voxels than this stay lazy (dask, rendered slab by slab)
EAGER_EM_VOXELS = 2**27
#: voxels per z-slab of the lazy label and EM volumes
SLAB_VOXELS = 2**23

#: fixed constants of the dynamics (the knobs that matter are arguments of make_toy_brain)
DYNAMICS_DEFAULTS: dict[str, float] = {
    "osc_rest": 0.4,
    # ρ = exp(g θ): gain of the E-I rotation per frame (> 1: a limit cycle bounded by tanh);
    # g per radian keeps the growth per cycle, so the frequency holds at any frame rate
    "osc_growth_per_radian": 0.2226,  # ρ = 1.15 at 0.5 Hz and 5 Hz
    "osc_amp": 0.3,  # A: tanh saturation of the oscillator
    "osc_exc_fraction": 0.6,
    "osc_self_max": 0.9,
    "int_rest": 0.05,
    "int_tau_s": 5.0,  # population leak λ_s + κ = exp(-1 / (τ frame_rate)); λ_s = 5/6 of it
    "int_gain": 0.2,  # g: pulse gain
    "wta_self": 0.5,
    "wta_bias": 0.0,
    "wta_gain": 0.6,
    "wta_sigma": 0.25,
    "wta_rate": 0.5,  # γ: fraction of the normalised target reached per frame
    "wta_inhibition": 2.0,  # per-pair divisive inhibition (scaled by synapse count / 3)
    "chain_beta": 8.0,
    "chain_gain": 1.0,
    "chain_threshold": 0.5,
    "chain_head_gain": 1.0,
    "chain_head_threshold": 0.8,
    "p_osc": 0.7,
    "p_int": 0.4,
    "p_wta": 0.8,
    "syn_per_pair": 3.0,  # mean synapses per connected pair inside an instance
    "inter_syn_per_pair": 1.5,
    "inter_length": 20.0,  # µm, length scale of between-instance wiring
    "inter_degree": 1.5,  # mean between-instance out-degree
    "inter_weight": 0.01,  # coupling per synapse between instances (weak)
    "pulse_rate_hz": 0.25,  # pulse trains: events per second
    "dir_jump_hz": 1.5,  # jumps of the direction stimulus per second
    "flicker_ar": 0.3,
    "burn_in": 100,
    "calcium_amplitude": 0.1,  # dF/F per spike at the kernel's peak
    "psf_sigma_z": 1.5,
    "psf_sigma_xy": 0.5,
}


def _check_triplet(name: str, value: Any, positive: bool = True) -> tuple[float, float, float]:
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 numbers (z, y, x); got {value!r}") from None
    if arr.shape != (3,):
        raise ValueError(
            f"{name} must have exactly 3 values (z, y, x); got {len(arr)}: {value!r}. "
            "For a 2D-like volume use a thin z extent, e.g. shape=(4, 256, 256)."
        )
    if not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        raise ValueError(f"{name} values must be finite and > 0; got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _check_positive(name: str, value: Any, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    if integer:
        if int(value) != value:
            raise ValueError(f"{name} must be a whole number; got {value!r}")
        return int(value)
    return float(value)


@dataclass(eq=False, repr=False)
class ToyBrain:
    """A ground-truth toy brain: somata, motifs, wiring, dynamics, calcium movie and EM.

    Positions are µm in (z, y, x); activity-like matrices are (T, N). Neuron ``i`` is row ``i``
    of every per-neuron array and has label ``i + 1`` in the label volumes. See
    :func:`make_toy_brain` and the package docstring for how everything is generated.

    Attributes
    ----------
    positions : ndarray (N, 3)
        Soma centres in µm (z, y, x); voxel index = position / voxel_size.
    motif, motif_names, instance, diameters : ndarray (N,), tuple, ndarray (N,), ndarray (N,)
        Motif index into ``motif_names``, motif instance id (0..M-1), soma diameter (µm).
    neurons : DataFrame
        id, z, y, x, motif, motif_name, instance, sign (+1 excitatory / -1 inhibitory),
        diameter, role ("E", "I", "integrator", "wta", "chain"), order (position in the
        instance; for chains the position along the chain, the head being 0).
    synapses : DataFrame
        pre, post, z, y, x (µm), weight, sign: one row per synapse (a multigraph).
    adjacency : csr_matrix (N, N)
        pre -> post, sign(pre) x number of synapses.
    weights : csr_matrix (N, N)
        The coupling used by the dynamics (same sparsity and signs as ``adjacency``).
    stimulus : ndarray (T, S) float32
        The stimulus u_t, columns named by ``stimulus_names``.
    activity : ndarray (T, N) float32
        The dynamical state x_t (x_{t+1} = max(0, F(x_t, u_t) + noise)).
    spikes : ndarray (T, N) int32
    calcium : ndarray (T, N) float32
        Clean dF/F.
    frame_rate, voxel_size, shape, em_voxel_size, em_shape
        Hz, µm (3,), voxels (3,), µm (3,), voxels (3,).
    movie : ndarray | dask array | None
        (T, Z, Y, X) uint16 calcium movie.
    soma_labels : ndarray | dask array
        (Z, Y, X) int32 label volume at ``voxel_size`` (neuron index + 1).
    em, em_labels : ndarray | dask array | None
        (Z, Y, X) uint8 EM-like volume and int32 labels at ``em_voxel_size``.
    seed, params : int, dict
        The seed and every argument (JSON-serialisable), with the dynamics constants.
    stimulus_names, instance_motif, instance_centres, baseline, drift_trace, noise_std
        Additions: stimulus column names, motif index of each instance (M,), instance
        centres (M, 3) µm, resting movie brightness of each soma (N,), the movie's
        multiplicative drift per frame (T,), the process-noise standard deviation.
    dynamics : Dynamics
        The ground-truth map (``dynamics.mean_map(x, u)``); see also :meth:`one_step`.
    timings : dict
        Seconds spent per stage.
    """

    positions: np.ndarray
    motif: np.ndarray
    motif_names: tuple[str, ...]
    instance: np.ndarray
    diameters: np.ndarray
    neurons: pd.DataFrame
    synapses: pd.DataFrame
    adjacency: sp.csr_matrix
    weights: sp.csr_matrix
    stimulus: np.ndarray
    activity: np.ndarray
    spikes: np.ndarray
    calcium: np.ndarray
    frame_rate: float
    voxel_size: np.ndarray
    shape: tuple[int, int, int]
    em_voxel_size: np.ndarray
    em_shape: tuple[int, int, int]
    movie: Any
    soma_labels: Any
    em: np.ndarray | None
    em_labels: np.ndarray | None
    seed: int
    params: dict
    # additions beyond the fixed interface
    stimulus_names: tuple[str, ...] = STIMULUS_NAMES
    instance_motif: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    instance_centres: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    baseline: np.ndarray = field(default_factory=lambda: np.empty(0))
    drift_trace: np.ndarray = field(default_factory=lambda: np.empty(0))
    noise_std: float = 0.0
    dynamics: Dynamics | None = None
    timings: dict = field(default_factory=dict)
    _renderer: MovieRenderer | None = None
    _em_renderer: EMRenderer | None = None
    _render_inputs: dict | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def n_neurons(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.activity.shape[0])

    @property
    def n_instances(self) -> int:
        return int(self.instance_motif.shape[0])

    def __repr__(self) -> str:
        kind = (
            "none"
            if self.movie is None
            else ("eager" if isinstance(self.movie, np.ndarray) else "lazy")
        )
        return (
            f"ToyBrain(n_neurons={self.n_neurons}, n_instances={self.n_instances}, "
            f"n_frames={self.n_frames}, n_synapses={len(self.synapses)}, shape={self.shape}, "
            f"voxel_size={tuple(float(v) for v in self.voxel_size)}, movie={kind}, "
            f"em={'none' if self.em is None else self.em_shape}, seed={self.seed})"
        )

    # ------------------------------------------------------------------ tables
    def neuron_table(self) -> pd.DataFrame:
        """Alias of :attr:`neurons`."""
        return self.neurons

    def synapse_table(self) -> pd.DataFrame:
        """Alias of :attr:`synapses`."""
        return self.synapses

    def truth(self) -> dict[str, Any]:
        """Everything true about the brain, as a dict of arrays, tables and metadata."""
        return {
            "positions": self.positions,
            "diameters": self.diameters,
            "motif": self.motif,
            "motif_names": self.motif_names,
            "instance": self.instance,
            "instance_motif": self.instance_motif,
            "instance_centres": self.instance_centres,
            "neurons": self.neurons,
            "synapses": self.synapses,
            "adjacency": self.adjacency,
            "weights": self.weights,
            "stimulus": self.stimulus,
            "stimulus_names": self.stimulus_names,
            "activity": self.activity,
            "spikes": self.spikes,
            "calcium": self.calcium,
            "baseline": self.baseline,
            "drift_trace": self.drift_trace,
            "soma_labels": self.soma_labels,
            "em_labels": self.em_labels,
            "frame_rate": self.frame_rate,
            "voxel_size": self.voxel_size,
            "shape": self.shape,
            "em_voxel_size": self.em_voxel_size,
            "em_shape": self.em_shape,
            "noise_std": self.noise_std,
            "seed": self.seed,
            "params": self.params,
        }

    # ------------------------------------------------------------------ dynamics
    def one_step(self, activity: np.ndarray | None = None, stimulus: np.ndarray | None = None):
        """The ideal one-step prediction E[x_{t+1} | x_t, u_t] for every row of ``activity``.

        Parameters
        ----------
        activity : ndarray (T, N), optional
            States x_t (default: the brain's own activity).
        stimulus : ndarray (T, S), optional
            Stimulus u_t (default: the brain's stimulus; needs the same T as ``activity``).

        Returns
        -------
        ndarray (T, N)
            Row t predicts x_{t+1}; with the brain's own activity, compare rows ``[:-1]`` with
            ``activity[1:]``: the residual is the noise floor (variance ≈ ``noise_std**2``).
        """
        x = self.activity if activity is None else np.asarray(activity, dtype=float)
        u = self.stimulus if stimulus is None else np.asarray(stimulus, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.n_neurons:
            raise ValueError(f"activity must be (T, {self.n_neurons}); got {x.shape}")
        if u.shape != (x.shape[0], self.stimulus.shape[1]):
            raise ValueError(
                f"stimulus must be (T, {self.stimulus.shape[1]}) with T = {x.shape[0]}; "
                f"got {u.shape}"
            )
        out = np.empty(x.shape, dtype=np.float64)
        for t0 in range(0, x.shape[0], 256):
            out[t0 : t0 + 256] = self.dynamics.expected_next(x[t0 : t0 + 256], u[t0 : t0 + 256])
        return out

    # ------------------------------------------------------------------ movie
    def _get_renderer(self) -> MovieRenderer:
        if self._renderer is None:
            ri = self._render_inputs
            p, labels = soma_profiles(
                self.positions, self.diameters, self.voxel_size, self.shape, ri["psf_sigma"]
            )
            ri["labels"] = labels
            rng = np.random.default_rng([self.seed, 0xB6])
            background = smooth_field(rng, self.shape, 16, 0.1, 0.3)
            self._renderer = MovieRenderer(
                p,
                self.baseline,
                self.calcium,
                background,
                self.drift_trace,
                ri["snr"],
                self.shape,
                self.seed,
            )
        return self._renderer

    def render_movie(self, frames=None, *, chunk: int | None = None):
        """The calcium movie as a lazy dask array (k, Z, Y, X) uint16, rendered chunk by chunk.

        Parameters
        ----------
        frames : None, int, slice or sequence of int
            Which frames (default: all T). Each frame renders identically whether it is
            computed alone, in any chunk, or with the whole movie.
        chunk : int, optional
            Frames per dask chunk (default: up to 16, about 64 MB per chunk).
        """
        return self._get_renderer().lazy(self._frame_index(frames), chunk=chunk)

    def render_frames(self, frames=None) -> np.ndarray:
        """The same frames as :meth:`render_movie`, computed now as a numpy array."""
        return self._get_renderer().render(self._frame_index(frames))

    def _frame_index(self, frames) -> np.ndarray:
        t = self.n_frames
        if frames is None:
            return np.arange(t)
        if isinstance(frames, slice):
            return np.arange(t)[frames]
        idx = np.asarray(frames).reshape(-1)
        if idx.dtype.kind not in "iu":
            raise ValueError(f"frames must be integers, a slice or None; got {frames!r}")
        if len(idx) and (idx.min() < -t or idx.max() >= t):
            raise ValueError(f"frame index out of range for a movie of {t} frames")
        return np.where(idx < 0, idx + t, idx).astype(np.int64)


def _scaled_shape(n: int, voxel_size, soma_diameter: float) -> tuple[int, int, int]:
    base = np.asarray(_DEFAULT_SHAPE) * np.asarray(_DEFAULT_VOXEL)
    scale = (n / _DEFAULT_N) ** (1 / 3) * (soma_diameter / _DEFAULT_SOMA)
    return tuple(
        int(max(4, math.ceil(b * scale / v))) for b, v in zip(base, voxel_size, strict=True)
    )


def make_toy_brain(
    n_neurons: int = 300,
    *,
    n_frames: int = 500,
    shape: Sequence[int] | None = (64, 128, 128),
    voxel_size: Sequence[float] = (2.0, 1.0, 1.0),
    frame_rate: float = 5.0,
    motif_types: Sequence[str] = ("oscillator", "integrator", "wta", "chain"),
    instance_size: tuple[int, int] = (5, 30),
    soma_diameter: float = 8.0,
    snr: float = 5.0,
    drift: bool = False,
    render: str | None = "auto",
    em: bool = True,
    em_voxel_size: Sequence[float] = (1.0, 0.5, 0.5),
    seed: int = 0,
    osc_frequency: float = 0.5,
    noise_std: float = 0.03,
    max_rate: float = 20.0,
    tau_rise: float = 0.1,
    tau_decay: float = 0.8,
    callback: Callable[[dict], Any] | None = None,
) -> ToyBrain:
    """Make a seeded ground-truth toy brain.

    Parameters
    ----------
    n_neurons : int
        Number of neurons N.
    n_frames : int
        Number of time points T (frames of the movie, rows of activity).
    shape : (3,) ints or None
        Calcium volume (Z, Y, X) in voxels. None scales the volume with ``n_neurons`` (and
        ``soma_diameter``) at the default density of 300 neurons in 128 µm³.
    voxel_size : (3,) floats
        Calcium voxel size in µm (z, y, x).
    frame_rate : float
        Frames per second; the dynamics run at one step per frame.
    motif_types : sequence of str
        Motif types to use, any of :data:`MOTIF_NAMES`; instances are split evenly among them.
    instance_size : (int, int)
        Smallest and largest number of neurons in a motif instance (inclusive, smallest ≥ 2).
    soma_diameter : float
        Mean soma diameter in µm (each soma draws ±10 %).
    snr : float
        Shot-noise signal-to-noise ratio of a resting soma's brightest voxel in the movie.
    drift : bool
        Add a slow multiplicative brightness drift (bleaching and baseline wander) to the movie.
    render : {"auto", "eager", "lazy", None}
        The movie as numpy ("eager"), as a dask array rendered on demand ("lazy"), or not at
        all (None). "auto": eager below 512 MB, lazy above, none from 20,000 neurons on.
    em : bool
        Render the EM-like volume and its labels at ``em_voxel_size``.
    em_voxel_size : (3,) floats
        EM voxel size in µm.
    seed : int
        Seed of everything; the same arguments give identical data.
    osc_frequency : float
        Oscillator frequency in Hz (must be below frame_rate / 2).
    noise_std : float
        Standard deviation σ of the per-step process noise of the dynamics.
    max_rate : float
        Firing rate in Hz at activity 1 (spikes ~ Poisson(max_rate · x / frame_rate)).
    tau_rise, tau_decay : float
        Rise and decay time constants (s) of the calcium indicator kernel.
    callback : callable, optional
        Called with a progress dict at each stage; returning False cancels
        (raises ``InterruptedError``).

    Returns
    -------
    ToyBrain

    Raises
    ------
    ValueError
        For impossible or malformed arguments (negative sizes, wrong voxel_size length,
        unknown motif types, an instance_size that cannot partition n_neurons, a volume too
        small for the somata, ...).
    """
    # ---------------------------------------------------------------- validation
    n = _check_positive("n_neurons", n_neurons, integer=True)
    t_frames = _check_positive("n_frames", n_frames, integer=True)
    if t_frames < 2:
        raise ValueError(f"n_frames must be at least 2; got {n_frames}")
    vs = np.asarray(_check_triplet("voxel_size", voxel_size))
    ev = np.asarray(_check_triplet("em_voxel_size", em_voxel_size))
    fr = _check_positive("frame_rate", frame_rate)
    d_soma = _check_positive("soma_diameter", soma_diameter)
    snr_v = _check_positive("snr", snr)
    f_osc = _check_positive("osc_frequency", osc_frequency)
    if f_osc >= fr / 2:
        raise ValueError(
            f"osc_frequency={f_osc} Hz must be below the Nyquist frequency frame_rate/2 = "
            f"{fr / 2} Hz; lower it or raise frame_rate."
        )
    sigma = float(noise_std)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"noise_std must be >= 0; got {noise_std!r}")
    rmax_hz = _check_positive("max_rate", max_rate)
    t_rise = _check_positive("tau_rise", tau_rise)
    t_decay = _check_positive("tau_decay", tau_decay)
    if t_rise >= t_decay:
        raise ValueError(f"tau_rise ({t_rise}) must be smaller than tau_decay ({t_decay})")
    if shape is None:
        shp = _scaled_shape(n, vs, d_soma)
    else:
        shp_f = _check_triplet("shape", shape)
        if any(int(s) != s for s in shp_f):
            raise ValueError(f"shape must be 3 whole numbers of voxels; got {shape!r}")
        shp = tuple(int(s) for s in shp_f)
    if isinstance(motif_types, str):
        motif_types = (motif_types,)
    motif_types = tuple(motif_types)
    if not motif_types:
        raise ValueError(f"motif_types is empty; choose from {MOTIF_NAMES}")
    bad = [m for m in motif_types if m not in _CODE]
    if bad:
        raise ValueError(f"unknown motif type(s) {bad}; choose from {MOTIF_NAMES}")
    if len(set(motif_types)) != len(motif_types):
        raise ValueError(f"motif_types has duplicates: {motif_types}")
    try:
        lo_n, hi_n = (int(v) for v in instance_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"instance_size must be two integers (min, max); got {instance_size!r}"
        ) from None
    if lo_n < 2 or hi_n < lo_n:
        raise ValueError(
            f"instance_size=(min, max) needs 2 <= min <= max; got {instance_size!r} "
            "(a motif needs at least two neurons)"
        )
    if render not in ("auto", "eager", "lazy", None):
        raise ValueError(f'render must be "auto", "eager", "lazy" or None; got {render!r}')
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)

    params = {
        "n_neurons": n,
        "n_frames": t_frames,
        "shape": list(shp),
        "shape_argument": None if shape is None else list(shp),
        "voxel_size": vs.tolist(),
        "frame_rate": fr,
        "motif_types": list(motif_types),
        "instance_size": [lo_n, hi_n],
        "soma_diameter": d_soma,
        "snr": snr_v,
        "drift": bool(drift),
        "render": render,
        "em": bool(em),
        "em_voxel_size": ev.tolist(),
        "seed": seed,
        "osc_frequency": f_osc,
        "noise_std": sigma,
        "max_rate": rmax_hz,
        "tau_rise": t_rise,
        "tau_decay": t_decay,
        "dynamics": dict(DYNAMICS_DEFAULTS),
    }
    cfg = params["dynamics"]

    def report(stage: str, **kw: Any) -> None:
        if callback is not None and callback({"stage": stage, **kw}) is False:
            raise InterruptedError(f"make_toy_brain cancelled at stage {stage!r}")

    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    # ---------------------------------------------------------------- layout
    report("layout")
    rng_layout = np.random.default_rng([seed, 1])
    diam = d_soma * rng_layout.uniform(0.9, 1.1, size=n)
    dmax = float(diam.max())
    extent = (np.asarray(shp) - 1) * vs
    margin = dmax / 2 + 1.0  # every soma at least 1 µm inside the volume
    box_lo = np.full(3, margin)
    box_hi = extent - margin
    if np.any(box_hi <= box_lo):
        raise ValueError(
            f"the volume {tuple(shp)} voxels x {tuple(vs)} µm is too small to hold somata of "
            f"{d_soma} µm with a margin; enlarge shape or use shape=None."
        )
    usable = np.prod(box_hi - box_lo + dmax)
    fill = n * math.pi / 6 * dmax**3 / usable
    if fill > 0.3:
        raise ValueError(
            f"{n} somata of {d_soma} µm fill {fill:.0%} of the volume (at most 30% fits); "
            "use a larger shape, shape=None, a smaller soma_diameter or fewer neurons."
        )
    sizes = draw_instance_sizes(rng_layout, n, lo_n, hi_n)
    sizes = np.sort(sizes)[::-1].copy()  # big instances first: they are hardest to place
    m = len(sizes)
    k = len(motif_types)
    inst_code_list = np.array([_CODE[x] for x in motif_types])
    inst_type = rng_layout.permutation(np.arange(m) % k)  # index into motif_types
    centres, radii = place_instances(rng_layout, sizes, box_lo, box_hi, dmax)
    pos = place_somata(rng_layout, sizes, centres, radii, box_lo, box_hi, dmax)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    inst_of = np.repeat(np.arange(m), sizes)
    local = np.arange(n) - starts[inst_of]
    # local order: random, except chains which run along a random axis through the instance
    key = rng_layout.random(n)
    code_inst = inst_code_list[inst_type]
    axis = rng_layout.standard_normal((m, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    proj = ((pos - centres[inst_of]) * axis[inst_of]).sum(1)
    key = np.where(code_inst[inst_of] == CHAIN, proj, key)
    order = np.lexsort((key, inst_of))
    pos = pos[order]
    diam_sorted = diam  # diameters are i.i.d.: no need to reorder
    timings["layout"] = time.perf_counter() - t_start

    n_exc = sizes.copy()
    osc_inst = code_inst == OSC
    n_exc[osc_inst] = np.clip(
        np.rint(cfg["osc_exc_fraction"] * sizes[osc_inst]), 1, sizes[osc_inst] - 1
    ).astype(np.int64)
    code_n = code_inst[inst_of]
    is_exc_local = local < n_exc[inst_of]
    sign_sorted = np.ones(n, dtype=np.int64)
    sign_sorted[(code_n == OSC) & ~is_exc_local] = -1
    sign_sorted[code_n == WTA] = -1

    # ---------------------------------------------------------------- wiring
    report("wiring")
    t0 = time.perf_counter()
    theta = 2 * np.pi * f_osc / fr
    rho = float(np.exp(cfg["osc_growth_per_radian"] * theta))
    cfg["osc_radius"] = rho
    # E-I population map [[A_E, -c], [c, a]] has eigenvalues ρ e^{±iθ}; every neuron's own
    # deviation decays with its self term a = min(ρ cos θ, 0.9) < 1 (E->E recurrence b makes up
    # the rest of the E population's diagonal A_E = a + b)
    a_self = min(rho * np.cos(theta), cfg["osc_self_max"])
    a_pop_e = 2 * rho * np.cos(theta) - a_self
    cfg["osc_self"] = a_self
    cfg["osc_ee"] = a_pop_e - a_self
    cfg["osc_coupling"] = float(np.sqrt(rho**2 - a_pop_e * a_self))
    lam_pop = float(np.exp(-1.0 / (cfg["int_tau_s"] * fr)))
    cfg["int_self"] = lam_pop * 5.0 / 6.0
    cfg["int_coupling"] = lam_pop / 6.0
    cfg["pulse_prob"] = min(1.0, cfg["pulse_rate_hz"] / fr)
    cfg["dir_jump_prob"] = min(1.0, cfg["dir_jump_hz"] / fr)
    rng_wire = np.random.default_rng([seed, 2])
    wiring = build_wiring(rng_wire, pos, starts, sizes, code_inst, n_exc, sign_sorted, inst_of, cfg)
    # global random relabelling of neurons and instances, so ids carry no structure
    perm = rng_layout.permutation(n)  # new id -> old (sorted) index
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    inst_perm = rng_layout.permutation(m)  # old instance -> new instance id
    positions = pos[perm]
    diameters = diam_sorted[perm]
    sign = sign_sorted[perm]
    instance = inst_perm[inst_of[perm]]
    inst_motif_new = np.empty(m, dtype=np.int64)
    inst_motif_new[inst_perm] = inst_type
    inst_centres_new = np.empty((m, 3))
    inst_centres_new[inst_perm] = centres
    motif = inst_type[inst_of[perm]].astype(np.int64)
    code = code_n[perm]
    local_new = local[perm]
    exc_new = is_exc_local[perm]
    pre = inv[wiring["pre"]]
    post = inv[wiring["post"]]
    adjacency = to_sparse(pre, post, (sign[pre] * wiring["count"]).astype(np.int64), n)
    weights = to_sparse(pre, post, wiring["weight"], n)
    synapses = synapse_table(
        rng_wire, positions, diameters, pre, post, wiring["count"], wiring["weight"], sign
    )
    timings["wiring"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- dynamics
    report("dynamics")
    t0 = time.perf_counter()
    rng_dyn = np.random.default_rng([seed, 3])
    s_ch = len(STIMULUS_NAMES)
    burn = int(cfg["burn_in"])
    stim_all = make_stimulus(rng_dyn, t_frames + burn, cfg)
    rest = np.zeros(n)
    self_coef = np.zeros(n)
    bias = np.zeros(n)
    gain = np.zeros((n, s_ch))
    # per-instance stimulus channel choice (integrators: a pulse train; chains: a flicker)
    inst_channel = rng_dyn.integers(0, 2, size=m)
    ch = inst_channel[instance]
    jitter = rng_dyn.uniform(0.8, 1.2, size=n)
    i = code == OSC
    rest[i] = cfg["osc_rest"]
    self_coef[i] = cfg["osc_self"]
    # an E cell without E->E input (a lone E cell) carries the E population's diagonal itself
    has_ee = np.zeros(n, dtype=bool)
    ee = (
        (code[post] == OSC) & (sign[pre] > 0) & (sign[post] > 0) & (instance[pre] == instance[post])
    )
    has_ee[post[ee]] = True
    lone_e = i & (sign > 0) & ~has_ee
    self_coef[lone_e] = cfg["osc_self"] + cfg["osc_ee"]
    i = code == INT
    rest[i] = cfg["int_rest"]
    self_coef[i] = cfg["int_self"]
    gain[np.flatnonzero(i), ch[i]] = cfg["int_gain"] * jitter[i]
    i = code == WTA
    # preferred directions spread evenly around the circle within each wta instance
    inst_size_new = np.bincount(instance, minlength=m)
    psi = 2 * np.pi * (local_new + rng_dyn.uniform(-0.3, 0.3, size=n)) / inst_size_new[instance]
    psi += rng_dyn.uniform(0, 2 * np.pi, size=m)[instance]
    self_coef[i] = cfg["wta_self"]
    bias[i] = cfg["wta_bias"]
    gain[i, 2] = cfg["wta_gain"] * np.cos(psi[i])
    gain[i, 3] = cfg["wta_gain"] * np.sin(psi[i])
    i = code == CHAIN
    head = i & (local_new == 0)
    bias[i] = -cfg["chain_threshold"]
    bias[head] = -cfg["chain_head_threshold"]
    gain[np.flatnonzero(head), 4 + ch[head]] = cfg["chain_head_gain"] * jitter[head]
    w_t = weights.T.tocsr()
    exc_part = w_t.multiply(w_t > 0).tocsr()
    inh_part = (-w_t.multiply(w_t < 0)).tocsr()
    dyn = Dynamics(
        code=code,
        rest=rest,
        self_coef=self_coef,
        bias=bias,
        gain=gain,
        wt_exc=exc_part,
        wt_inh=inh_part,
        osc_amp=cfg["osc_amp"],
        wta_sigma=cfg["wta_sigma"],
        wta_rate=cfg["wta_rate"],
        chain_beta=cfg["chain_beta"],
        noise_std=sigma,
    )
    x0 = rest + 0.05 * rng_dyn.random(n)
    activity = simulate(dyn, stim_all, x0, rng_dyn, burn, callback=callback)
    stimulus = stim_all[burn:].astype(np.float32)
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # spikes drawn in blocks of frames (same numbers as one call: the generator fills in order)
    spikes = np.empty(activity.shape, dtype=np.int32)
    for f0 in range(0, t_frames, 64):
        lam = activity[f0 : f0 + 64].astype(np.float64) * (rmax_hz / fr)
        spikes[f0 : f0 + 64] = rng_dyn.poisson(lam)
    calcium = spikes_to_calcium(spikes, fr, t_rise, t_decay, cfg["calcium_amplitude"])
    timings["spikes_calcium"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- tables
    neurons = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "z": positions[:, 0],
            "y": positions[:, 1],
            "x": positions[:, 2],
            "motif": motif,
            "motif_name": pd.Categorical(
                np.asarray(motif_types, dtype=object)[motif], categories=list(motif_types)
            ),
            "instance": instance.astype(np.int64),
            "sign": sign.astype(np.int8),
            "diameter": diameters,
            "role": np.select(
                [
                    (code == OSC) & exc_new,
                    code == OSC,
                    code == INT,
                    code == WTA,
                ],
                ["E", "I", "integrator", "wta"],
                default="chain",
            ),
            "order": local_new.astype(np.int64),
        }
    )

    # ---------------------------------------------------------------- rendering set-up
    rng_render = np.random.default_rng([seed, 4])
    baseline = rng_render.uniform(0.6, 1.4, size=n)
    tt = np.arange(t_frames) / fr
    if drift:
        duration = t_frames / fr
        wander = 0.06 * np.sin(
            2 * np.pi * tt / max(duration, 1e-9) * 0.7 + rng_render.uniform(0, 6.3)
        )
        drift_trace = np.exp(-tt / (3.0 * duration)) * (1.0 + wander)
    else:
        drift_trace = np.ones(t_frames)
    movie_bytes = 2 * t_frames * int(np.prod(shp))
    mode = render
    if render == "auto":
        if n >= AUTO_NO_MOVIE_NEURONS:
            mode = None
        else:
            mode = "eager" if movie_bytes < EAGER_MOVIE_BYTES else "lazy"
    em_shape = tuple(int(max(1, round(s * v / e))) for s, v, e in zip(shp, vs, ev, strict=True))
    params["render_mode"] = mode

    brain = ToyBrain(
        positions=positions,
        motif=motif,
        motif_names=tuple(motif_types),
        instance=instance.astype(np.int64),
        diameters=diameters,
        neurons=neurons,
        synapses=synapses,
        adjacency=adjacency,
        weights=weights,
        stimulus=stimulus,
        activity=activity,
        spikes=spikes,
        calcium=calcium,
        frame_rate=fr,
        voxel_size=vs,
        shape=shp,
        em_voxel_size=ev,
        em_shape=em_shape,
        movie=None,
        soma_labels=None,
        em=None,
        em_labels=None,
        seed=seed,
        params=params,
        instance_motif=inst_motif_new,
        instance_centres=inst_centres_new,
        baseline=baseline,
        drift_trace=drift_trace,
        noise_std=sigma,
        dynamics=dyn,
        _render_inputs={
            "psf_sigma": (cfg["psf_sigma_z"], cfg["psf_sigma_xy"], cfg["psf_sigma_xy"]),
            "snr": snr_v,
        },
    )
    t0 = time.perf_counter()
    n_vox = int(np.prod(shp))
    if mode is not None:
        report("movie")
        brain._get_renderer()
        brain.soma_labels = brain._render_inputs.pop("labels")
        brain.movie = brain.render_frames() if mode == "eager" else brain.render_movie()
    elif n_vox <= EAGER_LABEL_VOXELS:
        brain.soma_labels = soma_labels_only(positions, diameters, vs, shp)
    else:
        brain.soma_labels = slab_array(
            lambda z0, z1: soma_labels_only(
                positions, diameters, vs, (z1 - z0, shp[1], shp[2]), z0=z0
            ),
            shp,
            np.int32,
            SLAB_VOXELS,
        )
    timings["movie"] = time.perf_counter() - t0

    if em:
        report("em")
        t0 = time.perf_counter()
        n_em = int(np.prod(em_shape))
        rng_em = np.random.default_rng([seed, 5])
        # nucleus centre offset from the soma centre by at most 0.2 r
        nuc = rng_em.normal(0, 0.08, size=(n, 3)) * diameters[:, None]
        lim = 0.1 * diameters[:, None]
        nuc *= np.minimum(1.0, lim / np.maximum(np.linalg.norm(nuc, axis=1, keepdims=True), 1e-9))
        syn_xyz = synapses[["z", "y", "x"]].to_numpy()
        em_r = EMRenderer(seed, positions, diameters, nuc, syn_xyz, ev, em_shape)
        brain._em_renderer = em_r
        if n_em <= EAGER_EM_VOXELS:
            brain.em = em_r.render(0, em_shape[0])
            brain.em_labels = em_r.labels(0, em_shape[0])
        else:
            brain.em = slab_array(em_r.render, em_shape, np.uint8, SLAB_VOXELS)
            brain.em_labels = slab_array(em_r.labels, em_shape, np.int32, SLAB_VOXELS)
        timings["em"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    brain.timings = {k2: round(v, 4) for k2, v in timings.items()}
    report("done")
    return brain
