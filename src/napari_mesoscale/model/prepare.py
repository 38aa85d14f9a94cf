"""Fit stage 1, *prepare*: validate the inputs, split the recording in time and normalise it.

* The recording is cut into three contiguous blocks in time (train / validation / test,
  ``ModelConfig.split``); the model never sees validation or test frames while learning.
* Activity is normalised with the training block's mean and standard deviation (one for the
  whole recording, or per neuron: ``ModelConfig.normalise``).
* NaNs are masked: a NaN frame of a neuron does not enter the loss and enters the inputs as
  the neuron's training mean (0 after normalisation). A neuron without two finite values in
  the training block, or any infinite value, is refused with a ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mesoscale.model.config import ModelConfig

__all__ = ["PreparedData", "prepare_data", "split_blocks", "validate_inputs"]


@dataclass
class PreparedData:
    """The recording as the model sees it (normalised, masked, split), plus how to undo it.

    Attributes
    ----------
    z : (T, N) float32, activity normalised with ``mean`` / ``std``, NaNs replaced by 0
        (float32 like the model; :attr:`z32` is the same array, not a copy).
    z_neuron : (T_init, N) float32 or None, the first ``ModelConfig.init_frames`` frames of
        the training block (:attr:`init`) z-scored per neuron (for the dynamics
        initialisation's features; None for ``init="random"``); the same array as
        ``z[init]`` with ``normalise="neuron"``.
    finite : (T, N) bool, where the recording was finite (the loss mask).
    u : (T, S) float64 or None, the normalised stimulus (float32 copy: :attr:`u32`).
    positions : (N, 3) µm.
    blocks : ``{"train" | "val" | "test": (start, stop)}`` frame ranges.
    mean, std : (N,) float64, the normalisation of the activity (statistics in float64).
    stim_mean, stim_std : (S,) or None, the normalisation of the stimulus.
    """

    z: np.ndarray
    z_neuron: np.ndarray | None
    finite: np.ndarray
    u: np.ndarray | None
    positions: np.ndarray
    blocks: dict[str, tuple[int, int]]
    mean: np.ndarray
    std: np.ndarray
    stim_mean: np.ndarray | None
    stim_std: np.ndarray | None
    init_frames: int | None = None

    @property
    def n_neurons(self) -> int:
        return int(self.z.shape[1])

    @property
    def train(self) -> slice:
        return slice(*self.blocks["train"])

    @property
    def init(self) -> slice:
        """The frames the initialisation reads: the start of the training block."""
        tr0, tr1 = self.blocks["train"]
        return slice(tr0, tr1 if self.init_frames is None else min(tr1, tr0 + self.init_frames))

    @property
    def z32(self) -> np.ndarray:
        return self.z.astype(np.float32, copy=False)

    @property
    def u32(self) -> np.ndarray | None:
        return None if self.u is None else self.u.astype(np.float32)


def validate_inputs(
    activity: Any, positions: Any, stimulus: Any = None, *, dtype: Any = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes and values; return float arrays (activity (T,N), positions (N,3), stim).

    ``activity`` is returned as ``dtype`` (no copy when it already is; the fit asks for
    float32, which at zebrafish scale saves a 4.5 GB float64 copy); the others as float64.
    """
    activity = np.asarray(activity, dtype=dtype)
    positions = np.asarray(positions, dtype=np.float64)
    if activity.ndim != 2:
        raise ValueError(
            f"activity must be a (T, N) matrix (time x neurons); got shape {activity.shape}. "
            "Traces stored as (N, T) must be transposed."
        )
    if activity.size == 0:
        raise ValueError("activity is empty.")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3) in µm (z, y, x); got {positions.shape}")
    if positions.shape[0] != activity.shape[1]:
        raise ValueError(
            f"activity has N={activity.shape[1]} neurons (columns) but positions has "
            f"{positions.shape[0]} rows; they must describe the same neurons in the same order."
        )
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or inf.")
    if np.isinf(activity).any():
        raise ValueError("activity contains inf; replace it by NaN (masked) or a finite value.")
    return activity, positions, _validate_stimulus(stimulus, activity.shape[0])


def _validate_stimulus(stimulus: Any, n_frames: int) -> np.ndarray | None:
    if stimulus is None:
        return None
    stimulus = np.asarray(stimulus, dtype=np.float64)
    if stimulus.ndim == 1:
        stimulus = stimulus[:, None]
    if stimulus.ndim != 2 or stimulus.shape[0] != n_frames:
        raise ValueError(
            f"stimulus must be (T, S) with T={n_frames} frames like activity; got {stimulus.shape}"
        )
    if not np.all(np.isfinite(stimulus)):
        raise ValueError("stimulus contains NaN or inf.")
    return stimulus


def split_blocks(n_frames: int, split: tuple[float, float, float], rollout: int) -> dict:
    """Contiguous train / validation / test frame ranges ``{"train": (start, stop), ...}``."""
    fr = np.asarray(split, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or fr[0] <= 0:
        raise ValueError(f"split must be three non-negative fractions; got {split}")
    fr = fr / fr.sum()
    n_train = int(math.floor(fr[0] * n_frames))
    n_val = int(math.floor(fr[1] * n_frames))
    n_test = n_frames - n_train - n_val
    need_train = rollout + 9
    min_total = need_train + (3 if fr[1] > 0 else 0) + (3 if fr[2] > 0 else 0)
    if n_train < need_train or (fr[1] > 0 and n_val < 3) or (fr[2] > 0 and n_test < 3):
        raise ValueError(
            f"too few time points ({n_frames}) for the split {tuple(np.round(fr, 3))}: the "
            f"training block needs at least {need_train} frames (rollout={rollout}) and the "
            f"validation and test blocks 3 each; record longer (about {min_total} frames or "
            "more), reduce rollout or change split."
        )
    return {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n_frames),
    }


def prepare_data(activity: Any, positions: Any, stimulus: Any, cfg: ModelConfig) -> PreparedData:
    """Validate, split and normalise the recording (see the module notes)."""
    activity, positions, stim = validate_inputs(activity, positions, stimulus, dtype=np.float32)
    blocks = split_blocks(activity.shape[0], cfg.split, max(1, cfg.rollout))
    tr0, tr1 = blocks["train"]
    finite = np.isfinite(activity)
    train = activity[tr0:tr1]
    n_finite = np.isfinite(train).sum(0)
    if np.any(n_finite < 2):
        bad = np.flatnonzero(n_finite < 2)
        raise ValueError(
            f"neuron(s) {bad[:10].tolist()} have fewer than 2 finite values in the training "
            f"block (frames {tr0}-{tr1}); drop them or fill their NaNs."
        )
    mean, std, mean_n, std_n = _normalisation(train, cfg.normalise)
    z = _standardised(activity, finite, mean, std)
    i1 = min(tr1, tr0 + int(cfg.init_frames))
    if cfg.normalise == "neuron":
        z_neuron = z[tr0:i1]
    elif cfg.init != "dynamics" and cfg.assignment == "gradient":
        z_neuron = None  # only the dynamics start and the community units read it
    else:
        z_neuron = _standardised(activity[tr0:i1], finite[tr0:i1], mean_n, std_n)
    s_mean = s_std = u = None
    if stim is not None:
        s_mean, s_std = stim[tr0:tr1].mean(0), stim[tr0:tr1].std(0)
        s_std = np.where(s_std > 1e-12, s_std, 1.0)
        u = (stim - s_mean) / s_std
    return PreparedData(
        z=z,
        z_neuron=z_neuron,
        finite=finite,
        u=u,
        positions=positions,
        blocks=blocks,
        mean=mean,
        std=std,
        stim_mean=s_mean,
        stim_std=s_std,
        init_frames=int(cfg.init_frames),
    )


def _standardised(
    x: np.ndarray, finite: np.ndarray, mean: np.ndarray, std: np.ndarray, rows: int = 256
) -> np.ndarray:
    """float32 ``(x - mean) / std`` where finite, else 0, a block of rows at a time.

    The arithmetic is float64 within a block (the result is the float64 formula rounded
    once to float32); working block by block keeps the temporaries to a few (rows, N).
    """
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], rows):
        sl = slice(start, start + rows)
        block = (x[sl].astype(np.float64) - mean) / std
        out[sl] = np.where(finite[sl], block, 0.0)
    return out


def _normalisation(
    train: np.ndarray, normalise: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std) used by the model and the per-neuron (mean, std) used by the features."""
    if normalise not in ("global", "neuron"):
        raise ValueError(f"normalise must be 'global' or 'neuron'; got {normalise!r}")
    mean_n, std_n = _column_stats(train)
    std_n = np.where(std_n > 1e-12, std_n, 1.0)
    if normalise == "neuron":
        return mean_n, std_n, mean_n, std_n
    n = train.shape[1]
    g_mean, g_std = _global_stats(train)
    mean = np.full(n, g_mean)
    std = np.full(n, g_std if g_std > 1e-12 else 1.0)
    return mean, std, mean_n, std_n


def _column_blocks(n: int, t: int) -> range:
    return range(0, n, max(1, 4_000_000 // max(1, t)))  # float64 blocks of ~32 MB


def _column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nanmean and nanstd of every column, in float64, a block of columns at a time."""
    n = x.shape[1]
    mean, std = np.empty(n), np.empty(n)
    step = _column_blocks(n, x.shape[0]).step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for start in _column_blocks(n, x.shape[0]):
            block = x[:, start : start + step].astype(np.float64)
            mean[start : start + step] = np.nanmean(block, axis=0)
            std[start : start + step] = np.nanstd(block, axis=0)
    return mean, std


def _global_stats(x: np.ndarray) -> tuple[float, float]:
    """nanmean and nanstd of the whole matrix (two passes over column blocks, float64)."""
    step = _column_blocks(x.shape[1], x.shape[0]).step
    total, count = 0.0, 0
    for start in _column_blocks(x.shape[1], x.shape[0]):
        block = x[:, start : start + step].astype(np.float64)
        total += float(np.nansum(block))
        count += int(np.isfinite(block).sum())
    if count == 0:
        return math.nan, math.nan
    mean = total / count
    squares = 0.0
    for start in _column_blocks(x.shape[1], x.shape[0]):
        block = x[:, start : start + step].astype(np.float64)
        squares += float(np.nansum((block - mean) ** 2))
    return mean, math.sqrt(squares / count)
