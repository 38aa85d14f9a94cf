"""`make_toy_brain` and the `ToyBrain` container (see the package docstring for the model)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.params import Params, param
from napari_mesoscale.progress import Progress

from ._layout import draw_instance_sizes, place_instances, place_somata
from ._wiring import CHAIN, INT, OSC, WTA, build_wiring, synapse_table, to_sparse
from .calcium_presets import (
    CALCIUM_PRESETS,
    PRESET_CONSTANTS,
    check_preset,
    realistic_calcium,
)
from .dynamics import (
    STIMULUS_NAMES,
    Dynamics,
    ToyBrainCancelled,
    make_stimulus,
    simulate,
    spikes_to_calcium,
)
from .render import (
    EMRenderer,
    MovieRenderer,
    slab_array,
    smooth_field,
    soma_labels_only,
    soma_profiles,
)

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
    calcium_observed : ndarray (T, N) float32 or None
        The dF/F the movie shows at each soma when it differs from ``calcium`` (the
        ``"realistic"`` or ``"heldout"`` preset: neuropil and baseline drift added); None
        otherwise.
    calcium_truth : dict or None
        The realistic preset's per-cell draws: ``tau_decay`` (N,) s, ``poor_snr`` (N,) bool,
        ``brightness`` (N,) factor on the resting brightness.
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
    calcium_observed: np.ndarray | None = None
    calcium_truth: dict | None = None
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
                self.calcium if self.calcium_observed is None else self.calcium_observed,
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


@dataclass
class ToyBrainParams(Params):
    """Every argument of :func:`make_toy_brain` except ``callback``, grouped by stage.

    Attributes
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
    calcium_preset : {"classic", "realistic", "heldout"}
        How spikes become fluorescence (:mod:`napari_mesoscale.synth.calcium_presets`):
        "classic" (the default, every old figure's movie, byte for byte) or "realistic"
        (saturation, neuropil, per-cell drift and decay, dim cells, per-spike amplitudes);
        "heldout" is "realistic" with other constants, for held-out benchmarks.
    """

    # layout
    n_neurons: int = param(300, "number of neurons N", minimum=1)
    shape: tuple[int, int, int] | None = param(
        _DEFAULT_SHAPE, "calcium volume (Z, Y, X); None scales it with n_neurons", unit="voxels"
    )
    voxel_size: tuple[float, float, float] = param(
        _DEFAULT_VOXEL, "calcium voxel size (z, y, x)", unit="µm"
    )
    motif_types: tuple[str, ...] = param(MOTIF_NAMES, "motif types used")
    instance_size: tuple[int, int] = param((5, 30), "smallest and largest motif instance")
    soma_diameter: float = param(_DEFAULT_SOMA, "mean soma diameter (±10 %)", unit="µm")
    seed: int = param(0, "seed of everything", minimum=0)
    # dynamics
    n_frames: int = param(500, "number of time points T", minimum=2)
    frame_rate: float = param(5.0, "frames per second (one dynamics step per frame)", unit="Hz")
    osc_frequency: float = param(0.5, "oscillator frequency", unit="Hz")
    noise_std: float = param(0.03, "process noise σ of the dynamics", minimum=0.0)
    max_rate: float = param(20.0, "firing rate at activity 1", unit="Hz")
    tau_rise: float = param(0.1, "calcium indicator rise time", unit="s")
    tau_decay: float = param(0.8, "calcium indicator decay time", unit="s")
    calcium_preset: str = param(
        "classic",
        "how spikes become fluorescence: classic (old figures), realistic, or heldout (other "
        "constants, for held-out benchmarks)",
        choices=CALCIUM_PRESETS,
    )
    # rendering
    snr: float = param(5.0, "shot-noise SNR of a resting soma's brightest voxel")
    drift: bool = param(False, "slow multiplicative brightness drift in the movie")
    render: str | None = param(
        "auto", "movie as numpy, dask or not at all", choices=("auto", "eager", "lazy", None)
    )
    em: bool = param(True, "render the EM-like volume and its labels")
    em_voxel_size: tuple[float, float, float] = param(
        (1.0, 0.5, 0.5), "EM voxel size (z, y, x)", unit="µm"
    )


_UNSET: Any = object()


def make_toy_brain(
    n_neurons: int = _UNSET,
    *,
    n_frames: int = _UNSET,
    shape: Sequence[int] | None = _UNSET,
    voxel_size: Sequence[float] = _UNSET,
    frame_rate: float = _UNSET,
    motif_types: Sequence[str] = _UNSET,
    instance_size: tuple[int, int] = _UNSET,
    soma_diameter: float = _UNSET,
    snr: float = _UNSET,
    drift: bool = _UNSET,
    render: str | None = _UNSET,
    em: bool = _UNSET,
    em_voxel_size: Sequence[float] = _UNSET,
    seed: int = _UNSET,
    osc_frequency: float = _UNSET,
    noise_std: float = _UNSET,
    max_rate: float = _UNSET,
    tau_rise: float = _UNSET,
    tau_decay: float = _UNSET,
    calcium_preset: str = _UNSET,
    params: ToyBrainParams | None = None,
    callback: Callable[[dict], Any] | None = None,
) -> ToyBrain:
    """Make a seeded ground-truth toy brain.

    Parameters
    ----------
    n_neurons, n_frames, shape, voxel_size, frame_rate, motif_types, instance_size, \
soma_diameter, snr, drift, render, em, em_voxel_size, seed, osc_frequency, noise_std, max_rate, \
tau_rise, tau_decay, calcium_preset
        Fields of :class:`ToyBrainParams`, which gives each one's meaning, unit and default;
        an argument left out takes its value from ``params``.
    params : ToyBrainParams, optional
        All of the above at once (explicit arguments override it).
    callback : callable, optional
        Progress callback (:mod:`napari_mesoscale.progress`): called with ``fraction``,
        ``message`` and ``stage`` (layout, wiring, dynamics, movie, em, done); returning
        False cancels (raises :class:`ToyBrainCancelled`, an ``InterruptedError``).

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
    given = {k: v for k, v in locals().items() if v is not _UNSET and k in _PARAM_NAMES}
    values = (params or ToyBrainParams()).to_dict()
    values.update(given)
    record = _checked_arguments(values)
    progress = Progress.wrap(callback, ToyBrainCancelled)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    progress.stage(0.0, 0.05, "layout").report(0.0)
    layout = _layout(record)
    timings["layout"] = time.perf_counter() - t_start
    t0 = time.perf_counter()
    progress.stage(0.05, 0.1, "wiring").report(0.0)
    wiring = _wiring(record, layout)
    timings["wiring"] = time.perf_counter() - t0
    brain = _dynamics(record, wiring, progress.stage(0.1, 0.5, "dynamics"), timings)
    _render(brain, record, progress, timings)
    timings["total"] = time.perf_counter() - t_start
    brain.timings = {k2: round(v, 4) for k2, v in timings.items()}
    progress.stage(1.0, 1.0, "done").report(1.0)
    return brain


_PARAM_NAMES = frozenset(f.name for f in dataclasses.fields(ToyBrainParams))


# -- validation ---------------------------------------------------------------------------
def _checked_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """Validate every argument; the JSON-able record stored as ``ToyBrain.params``."""
    n = _check_positive("n_neurons", values["n_neurons"], integer=True)
    t_frames = _check_positive("n_frames", values["n_frames"], integer=True)
    if t_frames < 2:
        raise ValueError(f"n_frames must be at least 2; got {values['n_frames']}")
    vs = np.asarray(_check_triplet("voxel_size", values["voxel_size"]))
    ev = np.asarray(_check_triplet("em_voxel_size", values["em_voxel_size"]))
    fr = _check_positive("frame_rate", values["frame_rate"])
    d_soma = _check_positive("soma_diameter", values["soma_diameter"])
    snr_v = _check_positive("snr", values["snr"])
    f_osc = _check_positive("osc_frequency", values["osc_frequency"])
    if f_osc >= fr / 2:
        raise ValueError(
            f"osc_frequency={f_osc} Hz must be below the Nyquist frequency frame_rate/2 = "
            f"{fr / 2} Hz; lower it or raise frame_rate."
        )
    sigma = float(values["noise_std"])
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"noise_std must be >= 0; got {values['noise_std']!r}")
    rmax_hz = _check_positive("max_rate", values["max_rate"])
    t_rise = _check_positive("tau_rise", values["tau_rise"])
    t_decay = _check_positive("tau_decay", values["tau_decay"])
    if t_rise >= t_decay:
        raise ValueError(f"tau_rise ({t_rise}) must be smaller than tau_decay ({t_decay})")
    shape = values["shape"]
    if shape is None:
        shp = _scaled_shape(n, vs, d_soma)
    else:
        shp_f = _check_triplet("shape", shape)
        if any(int(s) != s for s in shp_f):
            raise ValueError(f"shape must be 3 whole numbers of voxels; got {shape!r}")
        shp = tuple(int(s) for s in shp_f)
    motif_types, (lo_n, hi_n) = _checked_motifs(values["motif_types"], values["instance_size"])
    render, seed = values["render"], values["seed"]
    if render not in ("auto", "eager", "lazy", None):
        raise ValueError(f'render must be "auto", "eager", "lazy" or None; got {render!r}')
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return {
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
        "drift": bool(values["drift"]),
        "render": render,
        "em": bool(values["em"]),
        "em_voxel_size": ev.tolist(),
        "seed": int(seed),
        "osc_frequency": f_osc,
        "noise_std": sigma,
        "max_rate": rmax_hz,
        "tau_rise": t_rise,
        "tau_decay": t_decay,
        **_preset_record(values),
        "dynamics": dict(DYNAMICS_DEFAULTS),
    }


def _preset_record(values: dict[str, Any]) -> dict[str, str]:
    """The preset enters the record only when it is not "classic" (old records unchanged)."""
    preset = check_preset(values.get("calcium_preset", "classic"))
    return {} if preset == "classic" else {"calcium_preset": preset}


def _checked_motifs(motif_types: Any, instance_size: Any) -> tuple[tuple[str, ...], list[int]]:
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
    return motif_types, [lo_n, hi_n]


# -- layout: somata placed in motif instances ----------------------------------------------
def _check_room(record: dict[str, Any], dmax: float) -> tuple[np.ndarray, np.ndarray]:
    """The box soma centres may occupy; ``ValueError`` when the somata cannot fit."""
    shp, vs, d_soma = record["shape"], record["voxel_size"], record["soma_diameter"]
    n = record["n_neurons"]
    extent = (np.asarray(shp) - 1) * np.asarray(vs)
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
    return box_lo, box_hi


def _layout(record: dict[str, Any]) -> dict[str, Any]:
    """Soma positions (sorted by instance), diameters, instance sizes, types and signs."""
    n, seed = record["n_neurons"], record["seed"]
    motif_types = record["motif_types"]
    rng_layout = np.random.default_rng([seed, 1])
    diam = record["soma_diameter"] * rng_layout.uniform(0.9, 1.1, size=n)
    dmax = float(diam.max())
    box_lo, box_hi = _check_room(record, dmax)
    sizes = draw_instance_sizes(rng_layout, n, *record["instance_size"])
    sizes = np.sort(sizes)[::-1].copy()  # big instances first: they are hardest to place
    m = len(sizes)
    inst_code_list = np.array([_CODE[x] for x in motif_types])
    inst_type = rng_layout.permutation(np.arange(m) % len(motif_types))  # into motif_types
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
    n_exc = sizes.copy()
    osc_inst = code_inst == OSC
    n_exc[osc_inst] = np.clip(
        np.rint(record["dynamics"]["osc_exc_fraction"] * sizes[osc_inst]), 1, sizes[osc_inst] - 1
    ).astype(np.int64)
    code_n = code_inst[inst_of]
    is_exc_local = local < n_exc[inst_of]
    sign_sorted = np.ones(n, dtype=np.int64)
    sign_sorted[(code_n == OSC) & ~is_exc_local] = -1
    sign_sorted[code_n == WTA] = -1
    return {
        "rng": rng_layout,  # the relabelling in _wiring continues this stream
        "pos": pos[order],
        "diam": diam,  # diameters are i.i.d.: no need to reorder
        "sizes": sizes,
        "starts": starts,
        "inst_of": inst_of,
        "inst_type": inst_type,
        "code_inst": code_inst,
        "code_n": code_n,
        "centres": centres,
        "local": local,
        "n_exc": n_exc,
        "is_exc_local": is_exc_local,
        "sign_sorted": sign_sorted,
    }


# -- wiring: synapses within and between instances -------------------------------------------
def _derive_dynamics_constants(cfg: dict[str, Any], f_osc: float, fr: float) -> None:
    """Constants of the dynamics that follow from the frame rate and oscillator frequency."""
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


def _wiring(record: dict[str, Any], lay: dict[str, Any]) -> dict[str, Any]:
    """Synapses, adjacency and weights, with neurons and instances relabelled at random."""
    n, seed, cfg = record["n_neurons"], record["seed"], record["dynamics"]
    _derive_dynamics_constants(cfg, record["osc_frequency"], record["frame_rate"])
    rng_wire = np.random.default_rng([seed, 2])
    pos, sizes, inst_of = lay["pos"], lay["sizes"], lay["inst_of"]
    wiring = build_wiring(
        rng_wire,
        pos,
        lay["starts"],
        sizes,
        lay["code_inst"],
        lay["n_exc"],
        lay["sign_sorted"],
        inst_of,
        cfg,
    )
    m = len(sizes)
    # global random relabelling of neurons and instances, so ids carry no structure
    perm = lay["rng"].permutation(n)  # new id -> old (sorted) index
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    inst_perm = lay["rng"].permutation(m)  # old instance -> new instance id
    positions, diameters, sign = pos[perm], lay["diam"][perm], lay["sign_sorted"][perm]
    inst_motif_new = np.empty(m, dtype=np.int64)
    inst_motif_new[inst_perm] = lay["inst_type"]
    inst_centres_new = np.empty((m, 3))
    inst_centres_new[inst_perm] = lay["centres"]
    pre, post = inv[wiring["pre"]], inv[wiring["post"]]
    weights = to_sparse(pre, post, wiring["weight"], n)
    return {
        "positions": positions,
        "diameters": diameters,
        "sign": sign,
        "instance": inst_perm[inst_of[perm]],
        "instance_motif": inst_motif_new,
        "instance_centres": inst_centres_new,
        "motif": lay["inst_type"][inst_of[perm]].astype(np.int64),
        "code": lay["code_n"][perm],
        "local": lay["local"][perm],
        "exc": lay["is_exc_local"][perm],
        "pre": pre,
        "post": post,
        "adjacency": to_sparse(pre, post, (sign[pre] * wiring["count"]).astype(np.int64), n),
        "weights": weights,
        "synapses": synapse_table(
            rng_wire, positions, diameters, pre, post, wiring["count"], wiring["weight"], sign
        ),
        "n_instances": m,
    }


# -- dynamics: the ground-truth map, simulation, spikes and calcium ---------------------------
def _cell_coefficients(
    cfg: dict[str, Any], w: dict[str, Any], rng_dyn: np.random.Generator
) -> dict[str, np.ndarray]:
    """Rest level, self coupling, bias and stimulus gains of every neuron, by motif role."""
    code, instance, sign, pre, post = w["code"], w["instance"], w["sign"], w["pre"], w["post"]
    n, m = len(code), w["n_instances"]
    rest, self_coef, bias = np.zeros(n), np.zeros(n), np.zeros(n)
    gain = np.zeros((n, len(STIMULUS_NAMES)))
    # per-instance stimulus channel choice (integrators: a pulse train; chains: a flicker)
    ch = rng_dyn.integers(0, 2, size=m)[instance]
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
    self_coef[i & (sign > 0) & ~has_ee] = cfg["osc_self"] + cfg["osc_ee"]
    i = code == INT
    rest[i] = cfg["int_rest"]
    self_coef[i] = cfg["int_self"]
    gain[np.flatnonzero(i), ch[i]] = cfg["int_gain"] * jitter[i]
    i = code == WTA
    # preferred directions spread evenly around the circle within each wta instance
    inst_size_new = np.bincount(instance, minlength=m)
    psi = 2 * np.pi * (w["local"] + rng_dyn.uniform(-0.3, 0.3, size=n)) / inst_size_new[instance]
    psi += rng_dyn.uniform(0, 2 * np.pi, size=m)[instance]
    self_coef[i] = cfg["wta_self"]
    bias[i] = cfg["wta_bias"]
    gain[i, 2] = cfg["wta_gain"] * np.cos(psi[i])
    gain[i, 3] = cfg["wta_gain"] * np.sin(psi[i])
    i = code == CHAIN
    head = i & (w["local"] == 0)
    bias[i] = -cfg["chain_threshold"]
    bias[head] = -cfg["chain_head_threshold"]
    gain[np.flatnonzero(head), 4 + ch[head]] = cfg["chain_head_gain"] * jitter[head]
    return {"rest": rest, "self_coef": self_coef, "bias": bias, "gain": gain}


def _dynamics(
    record: dict[str, Any], w: dict[str, Any], progress: Progress, timings: dict[str, float]
) -> ToyBrain:
    """Simulate the activity, draw spikes and calcium; the brain without movie or EM."""
    t0 = time.perf_counter()
    progress.report(0.0)
    cfg, fr = record["dynamics"], record["frame_rate"]
    rng_dyn = np.random.default_rng([record["seed"], 3])
    burn = int(cfg["burn_in"])
    stim_all = make_stimulus(rng_dyn, record["n_frames"] + burn, cfg)
    coefficients = _cell_coefficients(cfg, w, rng_dyn)
    w_t = w["weights"].T.tocsr()
    dyn = Dynamics(
        code=w["code"],
        **coefficients,
        wt_exc=w_t.multiply(w_t > 0).tocsr(),
        wt_inh=(-w_t.multiply(w_t < 0)).tocsr(),
        osc_amp=cfg["osc_amp"],
        wta_sigma=cfg["wta_sigma"],
        wta_rate=cfg["wta_rate"],
        chain_beta=cfg["chain_beta"],
        noise_std=record["noise_std"],
    )
    x0 = coefficients["rest"] + 0.05 * rng_dyn.random(len(w["code"]))
    activity = simulate(dyn, stim_all, x0, rng_dyn, burn, callback=progress.stage(0.0, 0.9))
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # spikes drawn in blocks of frames (same numbers as one call: the generator fills in order)
    spikes = np.empty(activity.shape, dtype=np.int32)
    for f0 in range(0, record["n_frames"], 64):
        lam = activity[f0 : f0 + 64].astype(np.float64) * (record["max_rate"] / fr)
        spikes[f0 : f0 + 64] = rng_dyn.poisson(lam)
    preset = record.get("calcium_preset", "classic")
    if preset in PRESET_CONSTANTS:
        realistic = realistic_calcium(
            spikes,
            w["positions"],
            fr,
            record["tau_rise"],
            record["tau_decay"],
            cfg["calcium_amplitude"],
            np.random.default_rng([record["seed"], 7]),
            PRESET_CONSTANTS[preset],
        )
        calcium = realistic.pop("calcium")
    else:
        realistic = None
        calcium = spikes_to_calcium(
            spikes, fr, record["tau_rise"], record["tau_decay"], cfg["calcium_amplitude"]
        )
    timings["spikes_calcium"] = time.perf_counter() - t0
    brain = _assemble(record, w, dyn, stim_all[burn:].astype(np.float32), activity, spikes, calcium)
    if realistic is not None:
        brain.calcium_observed = realistic.pop("observed")
        brain.baseline = brain.baseline * realistic["brightness"]
        brain.calcium_truth = realistic
    return brain


def _neuron_table(record: dict[str, Any], w: dict[str, Any]) -> pd.DataFrame:
    positions, code, motif = w["positions"], w["code"], w["motif"]
    motif_types = record["motif_types"]
    return pd.DataFrame(
        {
            "id": np.arange(len(code), dtype=np.int64),
            "z": positions[:, 0],
            "y": positions[:, 1],
            "x": positions[:, 2],
            "motif": motif,
            "motif_name": pd.Categorical(
                np.asarray(motif_types, dtype=object)[motif], categories=list(motif_types)
            ),
            "instance": w["instance"].astype(np.int64),
            "sign": w["sign"].astype(np.int8),
            "diameter": w["diameters"],
            "role": np.select(
                [(code == OSC) & w["exc"], code == OSC, code == INT, code == WTA],
                ["E", "I", "integrator", "wta"],
                default="chain",
            ),
            "order": w["local"].astype(np.int64),
        }
    )


def _assemble(record, w, dyn, stimulus, activity, spikes, calcium) -> ToyBrain:
    """The :class:`ToyBrain` before rendering, with the per-soma movie brightness and drift."""
    n, t_frames, fr = record["n_neurons"], record["n_frames"], record["frame_rate"]
    shp, vs, ev = tuple(record["shape"]), np.asarray(record["voxel_size"]), record["em_voxel_size"]
    rng_render = np.random.default_rng([record["seed"], 4])
    baseline = rng_render.uniform(0.6, 1.4, size=n)
    tt = np.arange(t_frames) / fr
    if record["drift"]:
        duration = t_frames / fr
        wander = 0.06 * np.sin(
            2 * np.pi * tt / max(duration, 1e-9) * 0.7 + rng_render.uniform(0, 6.3)
        )
        drift_trace = np.exp(-tt / (3.0 * duration)) * (1.0 + wander)
    else:
        drift_trace = np.ones(t_frames)
    em_shape = tuple(int(max(1, round(s * v / e))) for s, v, e in zip(shp, vs, ev, strict=True))
    record["render_mode"] = _render_mode(record)
    cfg = record["dynamics"]
    return ToyBrain(
        positions=w["positions"],
        motif=w["motif"],
        motif_names=tuple(record["motif_types"]),
        instance=w["instance"].astype(np.int64),
        diameters=w["diameters"],
        neurons=_neuron_table(record, w),
        synapses=w["synapses"],
        adjacency=w["adjacency"],
        weights=w["weights"],
        stimulus=stimulus,
        activity=activity,
        spikes=spikes,
        calcium=calcium,
        frame_rate=fr,
        voxel_size=vs,
        shape=shp,
        em_voxel_size=np.asarray(ev),
        em_shape=em_shape,
        movie=None,
        soma_labels=None,
        em=None,
        em_labels=None,
        seed=record["seed"],
        params=record,
        instance_motif=w["instance_motif"],
        instance_centres=w["instance_centres"],
        baseline=baseline,
        drift_trace=drift_trace,
        noise_std=record["noise_std"],
        dynamics=dyn,
        _render_inputs={
            "psf_sigma": (cfg["psf_sigma_z"], cfg["psf_sigma_xy"], cfg["psf_sigma_xy"]),
            "snr": record["snr"],
        },
    )


# -- rendering: calcium movie, labels, EM -----------------------------------------------------
def _render_mode(record: dict[str, Any]) -> str | None:
    render = record["render"]
    if render != "auto":
        return render
    if record["n_neurons"] >= AUTO_NO_MOVIE_NEURONS:
        return None
    movie_bytes = 2 * record["n_frames"] * int(np.prod(record["shape"]))
    return "eager" if movie_bytes < EAGER_MOVIE_BYTES else "lazy"


def _render(
    brain: ToyBrain, record: dict[str, Any], progress: Progress, timings: dict[str, float]
) -> None:
    """Render the movie (or only the soma labels) and the EM volume, as ``record`` asks."""
    t0 = time.perf_counter()
    mode, shp, vs = record["render_mode"], brain.shape, brain.voxel_size
    positions, diameters = brain.positions, brain.diameters
    if mode is not None:
        progress.stage(0.5, 0.8, "movie").report(0.0)
        brain._get_renderer()
        brain.soma_labels = brain._render_inputs.pop("labels")
        brain.movie = brain.render_frames() if mode == "eager" else brain.render_movie()
    elif int(np.prod(shp)) <= EAGER_LABEL_VOXELS:
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
    if record["em"]:
        progress.stage(0.8, 1.0, "em").report(0.0)
        t0 = time.perf_counter()
        _render_em(brain)
        timings["em"] = time.perf_counter() - t0


def _render_em(brain: ToyBrain) -> None:
    em_shape, diameters = brain.em_shape, brain.diameters
    rng_em = np.random.default_rng([brain.seed, 5])
    # nucleus centre offset from the soma centre by at most 0.2 r
    nuc = rng_em.normal(0, 0.08, size=(brain.n_neurons, 3)) * diameters[:, None]
    lim = 0.1 * diameters[:, None]
    nuc *= np.minimum(1.0, lim / np.maximum(np.linalg.norm(nuc, axis=1, keepdims=True), 1e-9))
    syn_xyz = brain.synapses[["z", "y", "x"]].to_numpy()
    em_r = EMRenderer(
        brain.seed, brain.positions, diameters, nuc, syn_xyz, brain.em_voxel_size, em_shape
    )
    brain._em_renderer = em_r
    if int(np.prod(em_shape)) <= EAGER_EM_VOXELS:
        brain.em = em_r.render(0, em_shape[0])
        brain.em_labels = em_r.labels(0, em_shape[0])
    else:
        brain.em = slab_array(em_r.render, em_shape, np.uint8, SLAB_VOXELS)
        brain.em_labels = slab_array(em_r.labels, em_shape, np.int32, SLAB_VOXELS)
