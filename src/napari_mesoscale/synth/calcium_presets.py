"""How the toy brain turns spikes into the fluorescence its movie shows: named presets.

``"classic"`` is the renderer as first written (old figures are reproducible with it): every
spike adds the same GCaMP-like kernel (one rise and decay time for all cells), the soma's
brightness follows dF/F linearly, nothing else enters the soma's pixels.

``"realistic"`` adds what real traces carry (the movie's shot noise, N(λ, λ) per voxel, is
common to both and already scales with brightness):

* spike-driven transients with a random amplitude per spike count (log-normal, 30 %) and a
  decay time drawn per cell (±25 % around ``tau_decay``);
* indicator saturation, ``dF/F = c / (1 + c / dff_max)`` of the unsaturated response ``c``;
* neuropil contamination: each soma's pixels also show ``neuropil_ratio`` times the
  distance-weighted mean dF/F of the other cells (Gaussian, ``neuropil_radius_um``);
* a slow baseline drift per cell (bleaching plus a wander of a few per cent over minutes);
* a few dim cells (``poor_snr_fraction``) with a quarter of the brightness and half the
  response, whose traces have a poor SNR.

``"heldout"`` is the realistic kind of trace with other constants (:data:`HELDOUT`), fixed
before anything was measured on it: a held-out check that the calcium path was not tuned to
the realistic preset's numbers.

The truth keeps the soma's own dF/F (``ToyBrain.calcium``, saturated, no neuropil or drift);
the movie renders ``ToyBrain.calcium_observed``.
"""

from __future__ import annotations

import numpy as np

CALCIUM_PRESETS = ("classic", "realistic", "heldout")

#: constants of the realistic preset
REALISTIC = {
    "amplitude_cv": 0.3,
    "tau_decay_jitter": 0.25,
    "dff_max": 2.0,
    "neuropil_ratio": 0.5,
    "neuropil_radius_um": 20.0,
    "drift_amplitude": 0.05,
    "bleach_fraction": 0.1,
    "poor_snr_fraction": 0.1,
    "poor_snr_brightness": 0.25,
    "poor_snr_response": 0.5,
}


#: the held-out preset: the realistic preset's kind of trace with other constants (a slower,
#: more saturating indicator, more neuropil, drift and dim cells), fixed before anything was
#: measured on it and never tuned on; benchmarks report it apart from "realistic"
HELDOUT = {
    "amplitude_cv": 0.45,
    "tau_decay_jitter": 0.35,
    "tau_decay_scale": 1.5,
    "dff_max": 1.2,
    "neuropil_ratio": 0.7,
    "neuropil_radius_um": 25.0,
    "drift_amplitude": 0.08,
    "bleach_fraction": 0.2,
    "poor_snr_fraction": 0.2,
    "poor_snr_brightness": 0.25,
    "poor_snr_response": 0.5,
}
PRESET_CONSTANTS = {"realistic": REALISTIC, "heldout": HELDOUT}


def check_preset(preset: str) -> str:
    """``preset`` if it is one of :data:`CALCIUM_PRESETS`, else a ``ValueError``."""
    if preset not in CALCIUM_PRESETS:
        raise ValueError(f"calcium_preset must be one of {CALCIUM_PRESETS}; got {preset!r}")
    return preset


def transients(
    spikes: np.ndarray,
    frame_rate: float,
    tau_rise: float,
    tau_decay: np.ndarray,
    amplitude: np.ndarray,
) -> np.ndarray:
    """Unsaturated dF/F (T, N): each frame's spikes times ``amplitude`` (T, N) through a
    difference of exponentials with per-cell decay ``tau_decay`` (N,), peak normalised."""
    dt = 1.0 / frame_rate
    tau_decay = np.asarray(tau_decay, dtype=float)
    gd, gr = np.exp(-dt / tau_decay), np.exp(-dt / tau_rise)
    hd, hr = np.exp(-0.5 * dt / tau_decay), np.exp(-0.5 * dt / tau_rise)
    tt = np.linspace(0, 10 * tau_decay.max(), 4000)[:, None]
    peak = (np.exp(-tt / tau_decay) - np.exp(-tt / tau_rise)).max(axis=0)
    drive = spikes * amplitude
    out = np.empty(spikes.shape, dtype=np.float32)
    yd = np.zeros(spikes.shape[1])
    yr = np.zeros(spikes.shape[1])
    for t in range(spikes.shape[0]):
        yd = gd * yd + hd * drive[t]
        yr = gr * yr + hr * drive[t]
        out[t] = (yd - yr) / peak
    return out


def neuropil(dff: np.ndarray, positions: np.ndarray, radius_um: float) -> np.ndarray:
    """(T, N) distance-weighted mean dF/F of the *other* cells around each cell."""
    d2 = ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(-1)
    w = np.exp(-0.5 * d2 / radius_um**2)
    np.fill_diagonal(w, 0.0)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return (dff @ w.T).astype(np.float32)


def realistic_calcium(
    spikes: np.ndarray,
    positions: np.ndarray,
    frame_rate: float,
    tau_rise: float,
    tau_decay: float,
    amplitude: float,
    rng: np.random.Generator,
    constants: dict | None = None,
) -> dict[str, np.ndarray]:
    """The realistic preset's traces from spikes (T, N) (``constants``: :data:`REALISTIC`,
    or :data:`HELDOUT` for the held-out preset).

    Returns ``calcium`` (T, N) the soma's own saturated dF/F, ``observed`` (T, N) the dF/F its
    pixels show (with neuropil and drift), ``brightness`` (N,) the factor on the soma's resting
    brightness (< 1 for the dim cells), ``tau_decay`` (N,) and ``poor_snr`` (N,) bool.
    """
    c = REALISTIC if constants is None else constants
    t_n, n = spikes.shape
    tau_decay = tau_decay * c.get("tau_decay_scale", 1.0)
    taus = tau_decay * rng.uniform(1 - c["tau_decay_jitter"], 1 + c["tau_decay_jitter"], n)
    poor = rng.random(n) < c["poor_snr_fraction"]
    response = np.where(poor, c["poor_snr_response"], 1.0) * amplitude
    sigma = np.sqrt(np.log(1 + c["amplitude_cv"] ** 2))
    jitter = rng.lognormal(-0.5 * sigma**2, sigma, size=(t_n, n))
    raw = transients(spikes, frame_rate, tau_rise, taus, jitter * response)
    dff = raw / (1.0 + raw / c["dff_max"])
    tt = np.arange(t_n)[:, None] / frame_rate
    duration = max(t_n / frame_rate, 1e-9)
    bleach = 1.0 - c["bleach_fraction"] * rng.uniform(0, 1, n) * tt / duration
    phase = rng.uniform(0, 2 * np.pi, n)
    period = duration * rng.uniform(0.5, 1.5, n)
    wander = 1.0 + c["drift_amplitude"] * np.sin(2 * np.pi * tt / period + phase)
    contaminated = dff + c["neuropil_ratio"] * neuropil(dff, positions, c["neuropil_radius_um"])
    observed = (1.0 + contaminated) * bleach * wander - 1.0
    return {
        "calcium": dff.astype(np.float32),
        "observed": observed.astype(np.float32),
        "brightness": np.where(poor, c["poor_snr_brightness"], 1.0),
        "tau_decay": taus,
        "poor_snr": poor,
    }
