"""Transmission-response graphs: the edges of the connectome that carried activity, per time bin.

The recording is cut into bins of ``bin_size`` frames. The graph of bin b keeps the connectome
edge i→j when neuron i had an event at a frame t of the bin and neuron j had an event at a frame
t' with t < t' ≤ t + delay (the post-synaptic cell responded within the delay). Each graph holds
every neuron and a subset of the edges; the sequence is stored sparsely as offsets into one
array of edge ids, like a CSR matrix whose rows are bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.progress import Progress

if TYPE_CHECKING:
    from napari_mesoscale.connectome.graph import Connectome


@dataclass(frozen=True)
class TransmissionResponseGraphs:
    """A sequence of transmission-response graphs, one per time bin.

    Attributes
    ----------
    pre, post : ndarray of int64, shape (E,)
        Neuron rows of every distinct connectome edge; an edge id indexes these arrays (CSR
        order of ``connectome.adjacency``).
    offsets : ndarray of int64, shape (n_bins + 1,)
        ``edge_ids[offsets[b]:offsets[b + 1]]`` are the (sorted) edges that transmitted in bin b.
    edge_ids : ndarray of int32 or int64
        Concatenated edge ids of all bins.
    counts : ndarray of int64, shape (E,)
        Number of bins in which each edge transmitted.
    opportunities : ndarray of int64, shape (E,)
        Number of bins in which the edge's pre-synaptic neuron had an event.
    event_counts : ndarray of int64, shape (N,)
        Events per neuron over the recording.
    bin_size, delay, n_frames : int
    threshold : float
        Event threshold used (z-score units when ``zscore`` is True).
    zscore : bool
    n_neurons : int
    """

    pre: np.ndarray
    post: np.ndarray
    offsets: np.ndarray
    edge_ids: np.ndarray
    counts: np.ndarray
    opportunities: np.ndarray
    event_counts: np.ndarray
    bin_size: int
    delay: int
    n_frames: int
    threshold: float
    zscore: bool
    n_neurons: int
    ids: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def n_bins(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_edges(self) -> int:
        return int(self.pre.size)

    @property
    def frequency(self) -> np.ndarray:
        """Per edge: transmitting bins / bins with a pre-synaptic event (NaN if none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.opportunities > 0, self.counts / np.maximum(self.opportunities, 1), np.nan
            )

    def edges(self, b: int) -> np.ndarray:
        """(K, 2) pre/post neuron rows of the edges that transmitted in bin ``b``."""
        ids = self.bin_edge_ids(b)
        return np.stack([self.pre[ids], self.post[ids]], axis=1)

    def bin_edge_ids(self, b: int) -> np.ndarray:
        if not 0 <= int(b) < self.n_bins:
            raise ValueError(f"bin {b} out of range: there are {self.n_bins} bins.")
        return self.edge_ids[self.offsets[b] : self.offsets[b + 1]]

    def sizes(self) -> np.ndarray:
        """Number of transmitting edges per bin, shape (n_bins,)."""
        return np.diff(self.offsets)

    def to_sparse(self, b: int) -> sp.csr_matrix:
        """The graph of bin ``b`` as an (N, N) boolean CSR matrix pre→post."""
        ids = self.bin_edge_ids(b)
        n = self.n_neurons
        return sp.csr_matrix(
            (np.ones(ids.size, dtype=bool), (self.pre[ids], self.post[ids])), shape=(n, n)
        )

    def bin_frames(self, b: int) -> tuple[int, int]:
        """First and one-past-last frame of bin ``b``."""
        start = int(b) * self.bin_size
        return start, min(start + self.bin_size, self.n_frames)

    def summary(self) -> pd.DataFrame:
        """One row per connectome edge: ``pre``, ``post`` (neuron ids when known, else rows),
        ``count`` (transmitting bins), ``opportunities`` and ``frequency``."""
        pre, post = self.pre, self.post
        if self.ids.size == self.n_neurons:
            pre, post = self.ids[pre], self.ids[post]
        return pd.DataFrame(
            {
                "pre": pre,
                "post": post,
                "count": self.counts,
                "opportunities": self.opportunities,
                "frequency": self.frequency,
            }
        )


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum} (frames); got {value!r}.")
    return int(value)


def detect_events(
    activity: Any,
    *,
    threshold: float | np.ndarray = 2.0,
    zscore: bool = True,
    onsets: bool = True,
    chunk_frames: int = 256,
) -> np.ndarray:
    """Boolean events (T, N) from activity (T, N).

    A frame is active when the activity (z-scored per neuron when ``zscore``) exceeds
    ``threshold`` (a number or one per neuron); with ``onsets`` only the first frame of each run
    of active frames is an event (a calcium transient counts once). Boolean input is taken as
    events as is.
    """
    activity = _check_activity(activity)
    t, n = activity.shape
    if activity.dtype == bool:
        return np.asarray(activity)
    threshold_arr = np.asarray(threshold, dtype=float)
    if threshold_arr.ndim > 1 or (threshold_arr.ndim == 1 and threshold_arr.size != n):
        raise ValueError(
            f"threshold must be one number or one per neuron ({n}); "
            f"got shape {threshold_arr.shape}."
        )
    if not np.all(np.isfinite(threshold_arr)):
        raise ValueError("threshold must be finite.")
    if zscore:
        mean, std = _column_moments(activity, chunk_frames)
        std = np.where(std > 0, std, np.inf)  # constant traces never cross
        cut = mean + threshold_arr * std
    else:
        cut = np.broadcast_to(threshold_arr, (n,)).astype(np.float64)
    events = np.empty((t, n), dtype=bool)
    previous = np.zeros(n, dtype=bool)
    for start in range(0, t, chunk_frames):
        stop = min(start + chunk_frames, t)
        block = _float_block(activity, start, stop)
        active = block > cut.astype(block.dtype)
        if onsets:
            shifted = np.vstack([previous[None], active[:-1]])
            previous = active[-1].copy()
            active = active & ~shifted
        events[start:stop] = active
    return events


def _check_activity(activity: Any) -> Any:
    if not hasattr(activity, "shape") or not hasattr(activity, "ndim"):
        activity = np.asarray(activity)
    if activity.ndim != 2:
        raise ValueError(
            f"activity must be a (T, N) matrix (frames × neurons); got shape {activity.shape}. "
            "Traces stored as (N, T) need a transpose (`traces.T`)."
        )
    if activity.shape[0] == 0 or activity.shape[1] == 0:
        raise ValueError(f"activity is empty (shape {activity.shape}).")
    return activity


def _float_block(activity: Any, start: int, stop: int) -> np.ndarray:
    """Frames ``start:stop`` as a float array (float32 kept), refusing NaN and inf."""
    block = np.asarray(activity[start:stop])
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
    if not np.isfinite(block).all():
        bad_t, bad_n = np.nonzero(~np.isfinite(block))
        raise ValueError(
            f"activity contains NaN or inf (first at frame {start + bad_t[0]}, neuron "
            f"{bad_n[0]}); fill or drop those values first."
        )
    return block


def _column_moments(activity: Any, chunk_frames: int) -> tuple[np.ndarray, np.ndarray]:
    t, n = activity.shape
    total = np.zeros(n)
    total_sq = np.zeros(n)
    shift = None  # shifted sums keep the variance accurate
    for start in range(0, t, chunk_frames):
        block = _float_block(activity, start, start + chunk_frames)
        if shift is None:
            shift = block.mean(axis=0, dtype=np.float64)
        deviation = block - shift.astype(block.dtype)
        total += deviation.sum(axis=0, dtype=np.float64)
        deviation *= deviation
        total_sq += deviation.sum(axis=0, dtype=np.float64)
    mean = total / t
    var = np.maximum(total_sq / t - mean**2, 0.0)
    return mean + shift, np.sqrt(var)


def _responded(events: np.ndarray, delay: int) -> np.ndarray:
    """``out[t, j]``: neuron j has an event in frames t+1 .. t+delay (bounded memory)."""
    t = events.shape[0]
    if delay <= 32:
        responded = np.zeros_like(events)
        for d in range(1, min(delay, t - 1) + 1):
            responded[:-d] |= events[d:]
        return responded
    cumulative = np.zeros((t + 1, events.shape[1]), dtype=np.int32)
    np.cumsum(events, axis=0, out=cumulative[1:])
    upper = np.minimum(np.arange(t) + delay + 1, t)
    return (cumulative[upper] - cumulative[np.arange(t) + 1]) > 0


def _transmitting_edges(
    events: np.ndarray,
    responded: np.ndarray,
    indptr: np.ndarray,
    post: np.ndarray,
    bin_size: int,
    progress: Progress,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge ids that transmitted in each bin (with CSR-like offsets), counts and opportunities.

    An edge transmits in a bin when its pre-synaptic neuron has an event in a frame of the bin
    and its post-synaptic neuron responded (``responded``) after that frame; an edge has an
    opportunity in a bin when its pre-synaptic neuron had any event in it.
    """
    t, n = events.shape
    n_edges = int(post.size)
    id_dtype = np.int32 if n_edges < 2**31 - 1 else np.int64
    n_bins = -(-t // bin_size)
    offsets = np.zeros(n_bins + 1, dtype=np.int64)
    parts: list[np.ndarray] = []
    counts = np.zeros(n_edges, dtype=np.int64)
    opportunities = np.zeros(n_edges, dtype=np.int64)
    out_degree = np.diff(indptr)
    pre_seen = np.zeros(n, dtype=bool)
    for b in range(n_bins):
        start, stop = b * bin_size, min((b + 1) * bin_size, t)
        hits: list[np.ndarray] = []
        for frame in range(start, stop):
            # one frame at a time keeps the gathers inside one row of `responded`
            active = np.flatnonzero(events[frame])
            if active.size == 0:
                continue
            pre_seen[active] = True
            lengths = out_degree[active]
            total = int(lengths.sum())
            if total == 0:
                continue
            # edge ids of the active pre-neurons: ranges indptr[i] .. indptr[i + 1]
            first = np.repeat(indptr[active] - np.cumsum(lengths) + lengths, lengths)
            edge = first + np.arange(total, dtype=np.int64)
            hits.append(edge[responded[frame][post[edge]]])
        if hits:
            found = np.sort(np.concatenate(hits))
            keep = np.ones(found.size, dtype=bool)
            keep[1:] = found[1:] != found[:-1]
            bin_edges = found[keep].astype(id_dtype)
        else:
            bin_edges = np.zeros(0, dtype=id_dtype)
        pre_active = np.flatnonzero(pre_seen)
        if pre_active.size:
            pre_seen[pre_active] = False
            degree = out_degree[pre_active]
            opportunity_edges = np.repeat(
                indptr[pre_active] - np.cumsum(degree) + degree, degree
            ) + np.arange(int(degree.sum()), dtype=np.int64)
            opportunities[opportunity_edges] += 1
        counts[bin_edges] += 1
        parts.append(bin_edges)
        offsets[b + 1] = offsets[b] + bin_edges.size
        if b % 16 == 0 or b == n_bins - 1:
            progress.report(
                (b + 1) / n_bins,
                f"transmission-response graphs: bin {b + 1}/{n_bins}",
            )
    edge_ids = np.concatenate(parts) if parts else np.zeros(0, dtype=id_dtype)
    return edge_ids, offsets, counts, opportunities


def checked_activity(activity: Any, n: int) -> Any:
    """``activity`` as a (T, N) array for ``n`` neurons; errors say how to fix the shape."""
    activity = _check_activity(activity)
    if activity.shape[1] != n:
        hint = " (it looks transposed: pass activity.T)" if activity.shape[0] == n else ""
        raise ValueError(
            f"activity has {activity.shape[1]} neuron columns but the connectome has {n} "
            f"neurons{hint}; activity must be (T, N) in connectome row order."
        )
    return activity


def _adjacency_and_ids(connectome: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    from napari_mesoscale.connectome.graph import Connectome

    if isinstance(connectome, Connectome):
        return connectome.adjacency, connectome.ids
    if sp.issparse(connectome):
        adjacency = sp.csr_matrix(connectome)
        return adjacency, np.arange(adjacency.shape[0])
    raise ValueError(
        "transmission_response_graphs needs a Connectome or a sparse adjacency matrix; "
        f"got {type(connectome).__name__}."
    )


def transmission_response_graphs(
    connectome: Connectome | sp.spmatrix,
    activity: Any,
    *,
    bin_size: int | None = None,
    delay: int | None = None,
    threshold: float | np.ndarray | None = None,
    zscore: bool = True,
    onsets: bool = True,
    callback: Any = None,
) -> TransmissionResponseGraphs:
    """Transmission-response graphs of a connectome under recorded activity.

    Parameters
    ----------
    connectome : Connectome or sparse matrix
        The structural graph (its adjacency pre→post, N × N).
    activity : array_like, shape (T, N)
        Activity per frame and neuron (dF/F, rates, or a boolean event matrix); neuron columns
        in connectome row order. A dask array is read in chunks of frames.
    bin_size : int, optional
        Frames per graph (≥ 1); default :attr:`ConnectomeParams.bin_size`.
    delay : int, optional
        Frames after a pre-synaptic event within which the post-synaptic neuron must have an
        event (≥ 1); default :attr:`ConnectomeParams.delay`.
    threshold : float or ndarray (N,), optional
        Event threshold: a z-score when ``zscore``, else in activity units; default
        :attr:`ConnectomeParams.threshold`.
    zscore : bool
        Threshold per-neuron z-scores (True) or raw activity (False).
    onsets : bool
        Count only the first frame of each supra-threshold run as an event (True), or every
        supra-threshold frame.
    callback : callable, optional
        Progress callback (``fraction``, ``message``); returning False cancels.

    Returns
    -------
    TransmissionResponseGraphs
        Edge ids per bin (CSR-like offsets), per-edge transmission counts and frequencies.

    Notes
    -----
    Memory is O(T·N) bits for the event matrix plus O(E) for the edge arrays plus the edges
    that transmit; the work per frame is proportional to the out-degree of the neurons that
    had an event, so sparse activity is fast.
    """
    progress = Progress.wrap(callback, ConnectomeCancelled)
    defaults = ConnectomeParams()
    bin_size = defaults.bin_size if bin_size is None else bin_size
    delay = defaults.delay if delay is None else delay
    threshold = defaults.threshold if threshold is None else threshold
    adjacency, ids = _adjacency_and_ids(connectome)
    bin_size = _as_int(bin_size, "bin_size", 1)
    delay = _as_int(delay, "delay", 1)
    n = adjacency.shape[0]
    activity = checked_activity(activity, n)
    progress.report(0.0, "transmission-response graphs: detecting events")
    events = detect_events(activity, threshold=threshold, zscore=zscore, onsets=onsets)
    t = events.shape[0]
    # responded[t, j]: neuron j has an event in frames t+1 .. t+delay
    responded = _responded(events, delay)

    indptr = adjacency.indptr.astype(np.int64)
    pre = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    post = adjacency.indices.astype(np.int64)
    edge_ids, offsets, counts, opportunities = _transmitting_edges(
        events, responded, indptr, post, bin_size, progress
    )
    return TransmissionResponseGraphs(
        pre=pre,
        post=post,
        offsets=offsets,
        edge_ids=edge_ids,
        counts=counts,
        opportunities=opportunities,
        event_counts=events.sum(axis=0).astype(np.int64),
        bin_size=bin_size,
        delay=delay,
        n_frames=t,
        threshold=float(np.mean(threshold)),
        zscore=bool(zscore),
        n_neurons=n,
        ids=np.asarray(ids),
    )
