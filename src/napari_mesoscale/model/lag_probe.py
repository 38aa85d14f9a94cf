"""``input_lags="auto"``: a cheap, truth-free linear probe decides whether the filters need x[t-1].

Before training, on the **training block only** (the validation and test blocks are never
read), every neuron gets two ridge one-step predictors of x[t+1] on the features a basis
filter sees, linearised: an intercept, its own state x[t], the stimulus u[t], its connectome
input (each neuron's presynaptic states weighted by the adjacency, normalised to unit L1 per
neuron; only with a connectome) and the mean state of its nearest neighbours in space;
the second predictor also sees x[t-1]. Both are fitted on the first part of the training
block and scored on its last part (``val_share``, held-in frames the fit did not see). The
probe's figures are the pooled relative gain of the second lag,
``gain = 1 - sum_i mse2_i / sum_i mse1_i`` (normalised units, as the fit's scores), and the
share of neurons whose own relative gain is at least ``neuron_gain`` (0.5); ``input_lags``
resolves to 2 when ``gain >= threshold`` (0.10) or that share is at least
``share_threshold`` (0.05: a minority of second-order units). The threshold was 0.05 until
rule R4 (benchmarks/input_lags_default.py): on the development survey every case sent to 2
without second-order units had a pooled gain of 0.052-0.071 and a share of at most 0.021,
every case with them a gain >= 0.088 or a share >= 0.113.

A second-order unit (a damped oscillator, a resonator) has its phase in x[t-1] and nothing
else it sees: its own gain is large (0.96-0.98 on populations of oscillators); on
first-order units x[t-1] adds little beyond x[t] and the inputs (pooled gain -0.006 to 0.034
and at most 0.7 % of neurons with an own gain >= 0.5 on 16 development brains). The rule was
chosen on development data (``benchmarks/input_lags_auto_dev.py``; docs/results/motifs.md),
which also say what it cannot do: on first-order brains the trained model with x[t-1] is
5-9 % better or worse than without it about as often, by as much as a change of the fit's
seed, and the probe does not predict that. With the threshold at 0.10 it sends such units to 1,
and "auto" is the default (rule R4: on 73 fresh development cases auto's held-out error was at
most 1.019 x that of one lag, 0.11 x on resonators; docs/results/model.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from napari_mesoscale.forecasters.per_neuron_ridge import solve_per_neuron_ridge
from napari_mesoscale.model.prepare import PreparedData

__all__ = [
    "LAG_PROBE_MAX_VALUES",
    "LAG_PROBE_MIN_FRAMES",
    "LAG_PROBE_NEURON_GAIN",
    "LAG_PROBE_SHARE",
    "LAG_PROBE_THRESHOLD",
    "LagProbe",
    "describe_probe",
    "probe_errors",
    "probe_frames",
    "probe_input_lags",
]

#: Pooled relative gain of x[t-1] in the probe's held-in one-step MSE above which "auto"
#: picks ``input_lags=2`` (chosen on development data, see the module notes).
LAG_PROBE_THRESHOLD = 0.10
#: A neuron counts as second-order when x[t-1] lowers its own held-in MSE by this share ...
LAG_PROBE_NEURON_GAIN = 0.5
#: ... and "auto" also picks 2 when at least this share of the neurons are.
LAG_PROBE_SHARE = 0.05
#: At most this many (frame, neuron) values of the training block are read (the probe's
#: memory: three float64 arrays of that size, 512 MiB each) ...
LAG_PROBE_MAX_VALUES = 2**26
#: ... but never fewer than this many frames.
LAG_PROBE_MIN_FRAMES = 256


@dataclass(frozen=True)
class LagProbe:
    """What the probe measured and what it picked.

    Attributes
    ----------
    lags : int
        The resolved ``input_lags`` (1 or 2).
    gain : float
        ``1 - mse_two / mse_one``: pooled relative drop of the held-in one-step MSE when the
        neuron's previous state joins its features.
    mse_one, mse_two : float
        Pooled held-in one-step MSE (normalised units) without and with x[t-1].
    share : float
        Share of neurons whose own held-in MSE drops by at least ``neuron_gain`` with x[t-1].
    threshold : float
        The pooled gain at and above which 2 is picked.
    neuron_gain, share_threshold : float
        2 is also picked when ``share >= share_threshold``.
    fit_frames, score_frames : int
        Training-block frames the ridge predictors were fitted and scored on.
    features : tuple of str
        The one-lag features (x[t-1] is added to them).
    seconds : float
        Wall time of the probe.
    """

    lags: int
    gain: float
    mse_one: float
    mse_two: float
    share: float
    threshold: float
    neuron_gain: float
    share_threshold: float
    fit_frames: int
    score_frames: int
    features: tuple[str, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out

    def summary(self) -> str:
        """One line for a status bar or a log."""
        return (
            f"input_lags auto -> {self.lags}: x[t-1] lowers the linear probe's held-in "
            f"one-step MSE by {100 * self.gain:.1f} % (threshold {100 * self.threshold:.0f} %; "
            f"by >= {100 * self.neuron_gain:.0f} % on {100 * self.share:.1f} % of neurons, "
            f"threshold {100 * self.share_threshold:.0f} %)"
        )


def describe_probe(probe: dict[str, Any]) -> str:
    """What ``fit.lag_probe`` (:meth:`LagProbe.to_dict`) picked and why, in one phrase.

    Both figures are given against the level that picks 2, so a pick of 1 with a gain of
    7 % reads as what it is (below the 10 %), not as a probe that ignored a gain.
    """
    return (
        f"input lags {probe['lags']} (auto: adding x[t-1] lowers the linear probe's held-in "
        f"error by {100 * probe['gain']:.1f} % (2 lags from {100 * probe['threshold']:.0f} %) "
        f"and at least halves it for {100 * probe['share']:.1f} % of the cells (2 lags from "
        f"{100 * probe['share_threshold']:.0f} %))"
    )


def _drive_matrix(connectome: Any, n: int) -> sp.csr_matrix | None:
    """(N, N) post x pre weights, each row's magnitudes summing to 1 (None: no connectome)."""
    if connectome is None:
        return None
    from napari_mesoscale.forecasters.graph_kernel import connectome_kernels
    from napari_mesoscale.model.initial_model import as_adjacency

    return connectome_kernels(as_adjacency(connectome, n), orientation="in", normalise="l1")


def _neighbour_matrix(positions: np.ndarray, k: int) -> sp.csr_matrix | None:
    """(N, N) mean over each neuron's ``k`` nearest other neurons in space."""
    from scipy.spatial import cKDTree

    n = positions.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return None
    _, idx = cKDTree(positions).query(positions, k=k + 1)
    idx = np.asarray(idx)[:, 1:]
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((np.full(n * k, 1.0 / k), (rows, idx.ravel())), shape=(n, n))


def probe_frames(
    n_neurons: int, max_frames: int = 4096, max_values: int | None = LAG_PROBE_MAX_VALUES
) -> int:
    """Training frames the probe reads at most: ``max_frames``, cut so that frames x neurons
    stays within ``max_values`` (but never below :data:`LAG_PROBE_MIN_FRAMES`; None: no cut).

    The probe holds three float64 (frames, N) arrays (the state, its connectome input and its
    neighbours' mean): 4,096 frames of 71,721 neurons would be 6.6 GiB on top of the fit's
    own arrays; with the cut they are at most 1.5 GiB.
    """
    frames = int(max_frames)
    if max_values is not None and n_neurons > 0:
        frames = min(frames, max(LAG_PROBE_MIN_FRAMES, int(max_values) // int(n_neurons)))
    return frames


def probe_errors(
    data: PreparedData,
    connectome: Any = None,
    *,
    max_frames: int = 4096,
    max_values: int | None = LAG_PROBE_MAX_VALUES,
    val_share: float = 0.25,
    alpha: float = 1e-3,
    neighbours: int = 8,
    chunk: int = 256,
) -> tuple[np.ndarray, tuple[str, ...], int, int]:
    """Per-neuron held-in one-step MSE of the probe's two ridge predictors.

    Parameters are those of :func:`probe_input_lags`. Returns ``(mse, features, fit_frames,
    score_frames)`` with ``mse`` (2, N): row 0 without x[t-1], row 1 with it.
    """
    tr0, tr1 = data.blocks["train"]
    tr1 = min(tr1, tr0 + probe_frames(data.n_neurons, max_frames, max_values))
    z = np.asarray(data.z[tr0:tr1], dtype=np.float64)
    finite = np.asarray(data.finite[tr0:tr1])
    n_frames, n = z.shape
    if n_frames < 12:
        raise ValueError(f"input_lags='auto' needs at least 12 training frames; got {n_frames}")
    # rows t = 1 .. n_frames - 2: x[t-1], x[t] are inputs, x[t+1] the target
    t_idx = np.arange(1, n_frames - 1)
    n_score = max(2, int(round(val_share * len(t_idx))))
    fit_rows, score_rows = t_idx[:-n_score], t_idx[-n_score:]
    shared = [np.ones(n_frames)]
    names = ["intercept", "self"]
    if data.u is not None:
        u = np.asarray(data.u[tr0:tr1], dtype=np.float64)
        shared += list(u.T)
        names += [f"stimulus_{s}" for s in range(u.shape[1])]
    per_neuron = []
    drive = _drive_matrix(connectome, n)
    if drive is not None:
        per_neuron.append(np.asarray((drive @ z.T).T))
        names.append("connectome_input")
    near = _neighbour_matrix(np.asarray(data.positions, dtype=np.float64), neighbours)
    if near is not None:
        per_neuron.append(np.asarray((near @ z.T).T))
        names.append("neighbour_mean")
    shared_m = np.stack(shared, 1)  # (T, S + 1)
    weight = finite[2:].astype(np.float64)  # target finite, row t -> frame t+1
    mse = np.zeros((2, n))
    for c0 in range(0, n, chunk):
        cols = slice(c0, min(n, c0 + chunk))
        m = cols.stop - cols.start
        feats = [np.broadcast_to(shared_m[:, None, :], (n_frames, m, shared_m.shape[1]))]
        feats.append(z[:, cols, None])
        feats += [f[:, cols, None] for f in per_neuron]
        one = np.concatenate(feats, 2)  # (T, m, p)
        two = np.concatenate([one[1:], z[:-1, cols, None]], 2)  # row r -> frame r + 1
        target = z[2:, cols]  # row r -> target of frame r + 1
        w = weight[:, cols]
        for k, x in enumerate((one[1:-1], two[:-1])):
            xf, yf, wf = x[fit_rows - 1], target[fit_rows - 1], w[fit_rows - 1]
            penalty = alpha * max(1, len(fit_rows)) * np.eye(x.shape[2])
            penalty[0, 0] = 0.0  # the intercept is not shrunk
            penalty += 1e-9 * np.eye(x.shape[2])
            coef = solve_per_neuron_ridge(xf, yf, penalty, weight=wf)
            xs, ys, ws = x[score_rows - 1], target[score_rows - 1], w[score_rows - 1]
            pred = np.einsum("tmp,mp->tm", xs, coef)
            mse[k, cols] = np.sum(ws * (pred - ys) ** 2, 0) / np.maximum(ws.sum(0), 1.0)
    return mse, tuple(names), int(len(fit_rows)), int(len(score_rows))


def probe_input_lags(
    data: PreparedData,
    connectome: Any = None,
    *,
    threshold: float = LAG_PROBE_THRESHOLD,
    neuron_gain: float = LAG_PROBE_NEURON_GAIN,
    share_threshold: float = LAG_PROBE_SHARE,
    max_frames: int = 4096,
    max_values: int | None = LAG_PROBE_MAX_VALUES,
    val_share: float = 0.25,
    alpha: float = 1e-3,
    neighbours: int = 8,
    chunk: int = 256,
) -> LagProbe:
    """Decide ``input_lags`` from the training block (see the module notes).

    Parameters
    ----------
    data : PreparedData
        The prepared recording (:func:`napari_mesoscale.model.prepare.prepare_data`); only
        its training block is read (at most its first :func:`probe_frames` frames).
    connectome : Connectome or (N, N) matrix, optional
        Pre -> post adjacency: its weighted presynaptic input is one of the features.
    threshold : float
        Pooled relative gain of x[t-1] at and above which 2 is picked.
    neuron_gain, share_threshold : float
        2 is also picked when at least ``share_threshold`` of the neurons have their own
        relative gain >= ``neuron_gain`` (a minority of second-order units).
    max_frames : int
        Frames of the training block read at most (the probe's cost is linear in them).
    max_values : int or None
        Frames x neurons read at most (:func:`probe_frames`: the probe's memory; None: no
        bound beyond ``max_frames``).
    val_share : float
        Last share of those frames the predictors are scored on (not fitted on).
    alpha : float
        Ridge penalty per fitted frame (features are in normalised units).
    neighbours : int
        Nearest neighbours in space whose mean state is a feature.
    chunk : int
        Neurons solved at a time (bounds the memory to ``frames x chunk x features``).

    Returns
    -------
    LagProbe
    """
    t_start = time.perf_counter()
    mse, names, fit_frames, score_frames = probe_errors(
        data,
        connectome,
        max_frames=max_frames,
        max_values=max_values,
        val_share=val_share,
        alpha=alpha,
        neighbours=neighbours,
        chunk=chunk,
    )
    mse_one, mse_two = float(mse[0].mean()), float(mse[1].mean())
    gain = 1.0 - mse_two / mse_one if mse_one > 0 else 0.0
    per_gain = 1.0 - mse[1] / np.maximum(mse[0], 1e-300)
    share = float(np.mean(per_gain >= neuron_gain))
    return LagProbe(
        lags=2 if gain >= threshold or share >= share_threshold else 1,
        gain=float(gain),
        mse_one=mse_one,
        mse_two=mse_two,
        share=share,
        threshold=float(threshold),
        neuron_gain=float(neuron_gain),
        share_threshold=float(share_threshold),
        fit_frames=fit_frames,
        score_frames=score_frames,
        features=names,
        seconds=time.perf_counter() - t_start,
    )
