"""Activity at zebrafish scale (ZAPBench's recording shape), generated frame block by block.

ZAPBench's light-sheet recording of a larval zebrafish has 71,721 segmented neurons over 7,879
frames. :func:`zebrafish_scale_activity` builds activity of that shape with structure the
mesoscale model can find (spatial domains, each driven by one of a few motif dynamics, plus a
local connectome drive) without ever rendering a movie: the (T, N) float32 matrix is filled
block by block in time (2.3 GB at full size, or a ``numpy.memmap`` given as ``out``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: ZAPBench's recording: neurons and frames.
ZAPBENCH_NEURONS = 71_721
ZAPBENCH_FRAMES = 7_879
#: Half-axes (z, y, x) in µm of the ellipsoid that stands in for a larval zebrafish brain.
BRAIN_HALF_AXES_UM = (100.0, 400.0, 200.0)
MOTIFS = ("oscillator", "integrator", "bursting", "saturating")


@dataclass
class ZebrafishScaleActivity:
    """Generated activity and its ground truth.

    Attributes
    ----------
    activity : ndarray (T, N) float32
    positions : ndarray (N, 3) float64, µm (z, y, x)
    connectome : scipy.sparse.csr_matrix (N, N), pre -> post signed weights
    domain : ndarray (N,) int64, spatial domain of every neuron
    motif : ndarray (N,) int64, motif (index into :data:`MOTIFS`) of every neuron
    """

    activity: np.ndarray
    positions: np.ndarray
    connectome: sp.csr_matrix
    domain: np.ndarray
    motif: np.ndarray


def brain_positions(n_neurons: int, seed: int = 0) -> np.ndarray:
    """Uniform positions (N, 3) in µm inside an ellipsoid of zebrafish-brain size."""
    rng = np.random.default_rng(seed)
    half = np.asarray(BRAIN_HALF_AXES_UM)
    out = np.empty((0, 3))
    while len(out) < n_neurons:
        p = rng.uniform(-1.0, 1.0, size=(2 * n_neurons, 3))
        out = np.concatenate([out, p[(p**2).sum(1) <= 1.0]])
    return out[:n_neurons] * half + half


def local_connectome(
    positions: np.ndarray, partners: int = 16, seed: int = 0, strength: float = 1.0
) -> sp.csr_matrix:
    """Sparse (N, N) pre -> post matrix: every neuron receives from its nearest ``partners``.

    Weights are signed (80 % excitatory) and each column is L1-normalised to ``strength``.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    n = len(positions)
    k = min(partners + 1, n)
    _, idx = cKDTree(positions).query(positions, k=k)
    pre = idx[:, 1:].ravel()
    post = np.repeat(np.arange(n), k - 1)
    w = rng.uniform(0.5, 1.0, size=pre.size) * np.where(rng.random(pre.size) < 0.8, 1.0, -1.0)
    w = w / (k - 1) * strength
    return sp.csr_matrix((w.astype(np.float32), (pre, post)), shape=(n, n))


def _latents(n_frames: int, motif_of_domain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One latent drive per domain (T, D): motif-specific dynamics, domain-specific phase."""
    n_dom = len(motif_of_domain)
    t = np.arange(n_frames)[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=n_dom)
    freq = rng.uniform(0.02, 0.06, size=n_dom)
    noise = rng.normal(size=(n_frames, n_dom)).astype(np.float32)
    walk = np.empty((n_frames, n_dom), dtype=np.float32)
    walk[0] = 0.0
    for i in range(1, n_frames):  # AR(1) with a slow time constant: T steps over D values
        walk[i] = 0.97 * walk[i - 1] + 0.25 * noise[i]
    osc = np.sin(2 * np.pi * freq * t + phase)
    lat = np.where(motif_of_domain == 0, osc, walk)
    lat = np.where(motif_of_domain == 2, np.maximum(walk - 0.5, 0.0) * 1.5, lat)
    lat = np.where(motif_of_domain == 3, np.tanh(2.0 * walk + osc), lat)
    return lat.astype(np.float32)


def _leaky(drive: np.ndarray, leak: np.ndarray, state: np.ndarray) -> np.ndarray:
    """x(t) = leak x(t-1) + drive(t-1) over a block (T, N), x(-1) = ``state``; x(0) = state."""
    from scipy.signal import lfilter

    out = np.empty_like(drive)
    for value in np.unique(leak):
        cols = np.flatnonzero(leak == value)
        zi = (value * state[cols])[None]
        shifted = np.concatenate([state[cols][None] - zi, drive[:-1, cols]])
        out[:, cols] = lfilter([1.0], [1.0, -float(value)], shifted, axis=0, zi=zi)[0]
    return out


def zebrafish_scale_activity(
    n_neurons: int = ZAPBENCH_NEURONS,
    n_frames: int = ZAPBENCH_FRAMES,
    *,
    n_domains: int = 96,
    partners: int = 16,
    coupling: float = 0.2,
    noise_std: float = 0.1,
    block_frames: int = 256,
    seed: int = 0,
    out: Any = None,
    callback: Any = None,
) -> ZebrafishScaleActivity:
    """Activity (T, N) with ZAPBench's shape: spatial domains of motif dynamics, no movie.

    Every neuron follows ``x(t+1) = a_m x(t) + (1 - a_m) g_i s_d(t) + coupling * (W^T x)(t)
    + noise``: ``s_d`` is the latent drive of its spatial domain ``d`` (motif ``m`` decides the
    latent's dynamics and the leak ``a_m``), ``W`` a local connectome.

    Parameters
    ----------
    n_neurons, n_frames : int
        Size; the defaults are ZAPBench's 71,721 neurons x 7,879 frames.
    n_domains : int
        Spatial domains (Voronoi cells of random centres), each given one of four motifs.
    partners : int
        Presynaptic partners of every neuron in the local connectome.
    coupling : float
        Weight of the connectome drive.
    noise_std : float
        Standard deviation of the per-step noise.
    block_frames : int
        Frames generated per block (the working memory is a few (block, N) arrays).
    seed : int
        Seed of every random choice.
    out : array_like (T, N) float32, optional
        Where to write (e.g. a ``numpy.memmap``); by default a new in-memory array.
    callback : callable, optional
        Progress, :class:`napari_mesoscale.progress.Progress` protocol.

    Returns
    -------
    ZebrafishScaleActivity
    """
    from scipy.spatial import cKDTree

    from napari_mesoscale.progress import Progress

    if n_neurons < 2 or n_frames < 2 or n_domains < 1:
        raise ValueError("n_neurons and n_frames must be >= 2 and n_domains >= 1.")
    progress = Progress.wrap(callback)
    rng = np.random.default_rng(seed)
    positions = brain_positions(n_neurons, seed)
    n_dom = min(n_domains, n_neurons)
    centres = positions[rng.choice(n_neurons, size=n_dom, replace=False)]
    domain = cKDTree(centres).query(positions)[1].astype(np.int64)
    motif_of_domain = np.arange(n_dom) % len(MOTIFS)
    motif = motif_of_domain[domain]
    adjacency = local_connectome(positions, partners, seed, strength=1.0)
    drive_t = (adjacency.T * coupling).tocsr().astype(np.float32)
    leak = np.asarray([0.6, 0.85, 0.5, 0.75], dtype=np.float32)[motif]
    gain = rng.uniform(0.5, 1.5, size=n_neurons).astype(np.float32)
    latent = _latents(n_frames, motif_of_domain, rng)
    act = np.empty((n_frames, n_neurons), dtype=np.float32) if out is None else out
    state = np.zeros(n_neurons, dtype=np.float32)
    for start in range(0, n_frames, block_frames):
        stop = min(n_frames, start + block_frames)
        drive = (1 - leak) * gain * latent[start:stop][:, domain]
        drive += noise_std * rng.standard_normal(drive.shape, dtype=np.float32)
        # connectome drive of the previous frame, from a first pass without it (one sweep of
        # a fixed-point iteration: cheap, and the coupling is weak)
        first = _leaky(drive, leak, state)
        previous = np.concatenate([state[None], first[:-1]])
        drive += np.asarray(drive_t @ previous.T).T
        block = _leaky(drive, leak, state)
        np.clip(block, -10.0, 10.0, out=block)
        act[start:stop] = block
        state = block[-1]
        progress.report(stop / n_frames, f"activity frames {stop}/{n_frames}")
    return ZebrafishScaleActivity(act, positions, adjacency, domain, motif)
