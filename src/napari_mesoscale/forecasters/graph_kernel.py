"""Filter weights from the connectome and a small graph-kernel forecaster.

The connectome-constrained networks of Chu et al. (2022, patent) build convolution kernels
from rows (outgoing) or columns (incoming) of the synaptic adjacency matrix of a (sub)graph,
frozen or as initial values. Here:

* :func:`connectome_kernels` — kernel of every neuron from a row or column of the adjacency,
  optionally restricted to a subset of neurons (a sub-graph) and normalised; returned as a
  sparse (N, N) matrix whose row i is neuron i's kernel over the other neurons.
* :func:`domain_kernels` — the same, each neuron's kernel restricted to the sub-graph enclosed
  by the receptive field of its domain (the field of its (location, filter) pair).
* :func:`filter_templates` / :func:`template_kernels` — per-filter weight templates: the mean
  kernel of a filter's neurons binned by the relative position of the partner (a 3-D
  convolution kernel shared by every location), and the per-neuron kernels a template gives.
* :func:`kernel_edges` — a kernel matrix as (pre, post) edges and values, the format of the
  mesoscale model's drive (``MesoscaleNet(edges=..., edge_weight_init=...)``).
* :class:`GraphKernelForecaster` / :func:`fit_kernel_forecaster` — a self-contained one-step
  forecaster for the ablation: each neuron's next state is a softmax mixture of B shared
  basis filters (:class:`~napari_mesoscale.model.network.BasisBank`) applied to its own
  state, its kernel-weighted neighbour drive and its stimulus drive. The kernel is frozen
  (``mode="frozen"``: only a per-neuron gain is learned), initialised from the given values and
  trained (``mode="trainable"``), or trained from zero on a given support (``mode="learned"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial import cKDTree
from torch import nn

from napari_mesoscale.forecasters.training import adam_loop
from napari_mesoscale.model.network import BasisBank

__all__ = [
    "FittedKernelForecaster",
    "GraphKernelForecaster",
    "connectome_kernels",
    "domain_kernels",
    "filter_templates",
    "fit_kernel_forecaster",
    "kernel_edges",
    "nearest_field",
    "nearest_support",
    "template_kernels",
]


# ------------------------------------------------------------------------------------- kernels
def _square(adjacency: Any) -> sp.csr_matrix:
    from napari_mesoscale.connectome.graph import Connectome

    if isinstance(adjacency, Connectome):
        adjacency = adjacency.adjacency
    if not sp.issparse(adjacency):
        if isinstance(adjacency, np.ndarray) and adjacency.ndim == 2:
            adjacency = sp.csr_matrix(adjacency)
        else:
            raise ValueError(
                "adjacency must be a Connectome, a scipy.sparse matrix or a 2-D numpy array; "
                f"got {type(adjacency).__name__}."
            )
    matrix = sp.csr_matrix(adjacency, dtype=np.float64)
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"adjacency must be square (N, N) with N ≥ 1; got {matrix.shape}.")
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        raise ValueError("adjacency holds NaN or infinite values; clean them first.")
    matrix.sum_duplicates()
    return matrix


def _normalise_rows(kernels: sp.csr_matrix, normalise: str | None) -> sp.csr_matrix:
    if normalise in (None, "none"):
        return kernels
    absolute = abs(kernels)
    if normalise == "l1":
        scale = np.asarray(absolute.sum(axis=1)).ravel()
    elif normalise == "l2":
        scale = np.sqrt(np.asarray(kernels.multiply(kernels).sum(axis=1)).ravel())
    elif normalise == "max":
        scale = absolute.max(axis=1).toarray().ravel()
    else:
        raise ValueError(f"normalise must be None, 'l1', 'l2' or 'max'; got {normalise!r}.")
    inv = np.divide(1.0, scale, out=np.zeros_like(scale, dtype=np.float64), where=scale > 0)
    return sp.csr_matrix(sp.diags(inv) @ kernels)


def connectome_kernels(
    adjacency: Any,
    *,
    orientation: str = "in",
    subset: np.ndarray | None = None,
    normalise: str | None = "l1",
    binary: bool = False,
) -> sp.csr_matrix:
    """Every neuron's kernel from its row or column of the adjacency (patent FIG. 2).

    Parameters
    ----------
    adjacency : Connectome or sparse matrix (N, N)
        Pre→post adjacency (signed synapse counts or weights).
    orientation : {"in", "out"}
        "in": the kernel of neuron i is column i (its pre-synaptic partners: what drives it,
        the orientation a forecaster needs); "out": row i (its post-synaptic targets, the
        patent's claim 4).
    subset : array of int or bool, optional
        Restrict to the sub-graph induced by these neurons (patent paragraph 0035): entries
        whose partner or owner lies outside are dropped (rows of outside neurons are empty).
    normalise : {"l1", "l2", "max", None}
        Scale every non-empty kernel to unit L1 / L2 norm / largest magnitude (signs kept).
    binary : bool
        Use sign(value) instead of the synapse count.

    Returns
    -------
    csr_matrix (N, N), float64
        Row i is neuron i's kernel; column k the weight of partner k.
    """
    if orientation not in ("in", "out"):
        raise ValueError(
            f"orientation must be 'in' (columns) or 'out' (rows); got {orientation!r}."
        )
    matrix = _square(adjacency)
    kernels = matrix.T.tocsr() if orientation == "in" else matrix.copy()
    if binary:
        kernels.data = np.sign(kernels.data)
    if subset is not None:
        n = kernels.shape[0]
        subset = np.asarray(subset)
        if subset.dtype == bool:
            if subset.shape != (n,):
                raise ValueError(f"boolean subset must have shape ({n},); got {subset.shape}.")
            keep = subset
        else:
            if subset.size and (subset.min() < 0 or subset.max() >= n):
                raise ValueError(f"subset holds indices outside 0..{n - 1}.")
            keep = np.zeros(n, dtype=bool)
            keep[subset.astype(np.int64)] = True
        mask = sp.diags(keep.astype(np.float64))
        kernels = sp.csr_matrix(mask @ kernels @ mask)
    kernels.eliminate_zeros()
    kernels = _normalise_rows(kernels, normalise)
    kernels.sort_indices()
    return kernels


def domain_kernels(
    adjacency: Any,
    grid: Any,
    field_of: np.ndarray,
    *,
    orientation: str = "in",
    normalise: str | None = "l1",
    binary: bool = False,
) -> sp.csr_matrix:
    """Kernels restricted to the sub-graph that each neuron's domain encloses.

    Neuron i sits in domain (field_of[i], filter); its kernel keeps only the partners whose
    soma lies inside receptive field ``field_of[i]`` — the adjacency of the enclosed
    sub-graph (``enclosed_subgraphs(...).neurons(j)``), row or column of neuron i.

    Parameters
    ----------
    adjacency : Connectome or sparse matrix (N, N)
    grid : Grid or FieldSubgraphs
        The receptive-field grid built on the same neurons.
    field_of : array of int, shape (N,)
        The field of every neuron's domain (e.g. ``result.domain_field`` of a fitted model, or
        the nearest field centre); -1 leaves the neuron without a kernel.
    orientation, normalise, binary
        As in :func:`connectome_kernels`.

    Returns
    -------
    csr_matrix (N, N)
    """
    grid = getattr(grid, "grid", grid)
    if not hasattr(grid, "candidates"):
        raise ValueError("grid must be a Grid (receptive_field_grid) or FieldSubgraphs.")
    kernels = connectome_kernels(adjacency, orientation=orientation, normalise=None, binary=binary)
    n = kernels.shape[0]
    field_of = np.asarray(field_of)
    if field_of.shape != (n,):
        raise ValueError(
            f"field_of must have shape ({n},), one field per neuron; got {field_of.shape}."
        )
    if grid.n_neurons != n:
        raise ValueError(f"grid was built on {grid.n_neurons} neurons; the adjacency has {n}.")
    if field_of.size and field_of.max() >= grid.n_fields:
        raise ValueError(f"field_of holds fields ≥ the grid's {grid.n_fields} fields.")
    coo = kernels.tocoo()
    owner, partner = coo.row, coo.col
    f = field_of[owner]
    inside = (grid.candidates[partner] == f[:, None]) & grid.mask[partner]
    keep = inside.any(axis=1) & (f >= 0)
    # the owner itself must sit in its own field too
    own = ((grid.candidates[owner] == f[:, None]) & grid.mask[owner]).any(axis=1)
    keep &= own
    out = sp.csr_matrix((coo.data[keep], (owner[keep], partner[keep])), shape=kernels.shape)
    out = _normalise_rows(out, normalise)
    out.sort_indices()
    return out


def nearest_field(grid: Any, positions: np.ndarray) -> np.ndarray:
    """The candidate field whose centre is nearest to each neuron, shape (N,)."""
    grid = getattr(grid, "grid", grid)
    positions = np.asarray(positions, dtype=np.float64)
    cand = np.where(grid.mask, grid.candidates, 0)
    d = ((grid.centers[cand] - positions[:, None, :]) ** 2).sum(-1)
    d = np.where(grid.mask, d, np.inf)
    return cand[np.arange(len(cand)), d.argmin(axis=1)]


def _bins(offsets: np.ndarray, radius: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    cell = 2.0 * radius / bins
    idx = np.floor((offsets + radius) / cell).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < bins), axis=1)
    return idx, ok


def filter_templates(
    kernels: sp.spmatrix,
    positions: np.ndarray,
    filter_of: np.ndarray,
    *,
    radius: float,
    bins: int = 5,
    n_filters: int | None = None,
) -> np.ndarray:
    """Per-filter weight templates: the mean kernel of a filter's neurons in relative space.

    Every kernel entry (i, k) is placed at the offset p_k - p_i (µm, z, y, x) in a cube of
    ``bins``³ cells of side ``2 radius / bins``; the template of filter b is the sum of the
    entries of its neurons per cell divided by its number of neurons — a 3-D convolution
    kernel, shared by every location, that the connectome suggests for that filter.

    Parameters
    ----------
    kernels : sparse (N, N)
        Row i = neuron i's kernel (from :func:`connectome_kernels` / :func:`domain_kernels`).
    positions : ndarray (N, 3)
        µm, (z, y, x).
    filter_of : array of int (N,)
        The filter (motif) of every neuron; -1 excludes a neuron.
    radius : float
        Half the side of the template cube (µm); partners farther along any axis are ignored.
    bins : int
        Cells per axis.
    n_filters : int, optional
        Number of templates (default ``max(filter_of) + 1``).

    Returns
    -------
    ndarray, shape (B, bins, bins, bins)
    """
    kernels = sp.csr_matrix(kernels)
    positions = np.asarray(positions, dtype=np.float64)
    n = kernels.shape[0]
    if positions.shape != (n, 3):
        raise ValueError(
            f"positions must have shape ({n}, 3) in µm (z, y, x); got {positions.shape}."
        )
    filter_of = np.asarray(filter_of, dtype=np.int64)
    if filter_of.shape != (n,):
        raise ValueError(f"filter_of must have shape ({n},); got {filter_of.shape}.")
    if radius <= 0 or bins < 1:
        raise ValueError("radius must be > 0 and bins ≥ 1.")
    b = int(n_filters if n_filters is not None else max(int(filter_of.max()) + 1, 1))
    coo = kernels.tocoo()
    fb = filter_of[coo.row]
    idx, ok = _bins(positions[coo.col] - positions[coo.row], radius, bins)
    ok &= (fb >= 0) & (fb < b)
    flat = ((fb * bins + idx[:, 0]) * bins + idx[:, 1]) * bins + idx[:, 2]
    total = np.bincount(flat[ok], weights=coo.data[ok], minlength=b * bins**3)
    members = np.bincount(filter_of[(filter_of >= 0) & (filter_of < b)], minlength=b)
    templates = total.reshape(b, bins, bins, bins)
    return templates / np.maximum(members, 1)[:, None, None, None]


def template_kernels(
    templates: np.ndarray,
    positions: np.ndarray,
    filter_of: np.ndarray,
    *,
    radius: float,
) -> sp.csr_matrix:
    """Per-neuron kernels from per-filter templates (a shared convolution in tissue space).

    Neuron i of filter b gets weight ``templates[b][cell(p_k - p_i)]`` on every other neuron k
    whose offset falls inside the template cube.

    Returns
    -------
    csr_matrix (N, N)
    """
    templates = np.asarray(templates, dtype=np.float64)
    if templates.ndim != 4 or len(set(templates.shape[1:])) != 1:
        raise ValueError(f"templates must have shape (B, bins, bins, bins); got {templates.shape}.")
    bins = templates.shape[1]
    positions = np.asarray(positions, dtype=np.float64)
    filter_of = np.asarray(filter_of, dtype=np.int64)
    n = positions.shape[0]
    tree = cKDTree(positions)
    pairs = tree.query_pairs(r=radius * math.sqrt(3.0), output_type="ndarray")
    a = np.concatenate([pairs[:, 0], pairs[:, 1]])
    k = np.concatenate([pairs[:, 1], pairs[:, 0]])
    idx, ok = _bins(positions[k] - positions[a], radius, bins)
    fb = filter_of[a]
    ok &= (fb >= 0) & (fb < templates.shape[0])
    values = np.zeros(a.size)
    values[ok] = templates[fb[ok], idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    keep = ok & (values != 0)
    out = sp.csr_matrix((values[keep], (a[keep], k[keep])), shape=(n, n))
    out.sort_indices()
    return out


def nearest_support(positions: np.ndarray, counts: np.ndarray | int) -> sp.csr_matrix:
    """A spatial support: each neuron's ``counts[i]`` nearest other neurons (value 1).

    Used as the support of fully learned kernels, matched edge for edge to a connectome
    kernel (``counts = in-degrees``) so that both have the same number of trainable weights.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = positions.shape[0]
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), (n,))
    if counts.min(initial=0) < 0 or counts.max(initial=0) > n - 1:
        raise ValueError(f"counts must be in 0..{n - 1} (other neurons available).")
    k_max = int(counts.max(initial=0))
    if k_max == 0:
        return sp.csr_matrix((n, n))
    _, nbr = cKDTree(positions).query(positions, k=k_max + 1)
    nbr = nbr[:, 1:].reshape(n, k_max)
    take = np.arange(k_max)[None, :] < counts[:, None]
    rows = np.repeat(np.arange(n), counts)
    out = sp.csr_matrix((np.ones(rows.size), (rows, nbr[take])), shape=(n, n))
    out.sort_indices()
    return out


def kernel_edges(kernels: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Kernels as drive edges: ``edges`` (2, E) int64 with row 0 the partner (pre) and row 1
    the owner (post), and their values (E,) float32 — ``MesoscaleNet(edges=torch.as_tensor(
    edges), edge_weight_init=torch.as_tensor(values))`` takes them as they are."""
    coo = sp.csr_matrix(kernels).tocoo()
    return np.stack([coo.col, coo.row]).astype(np.int64), coo.data.astype(np.float32)


# ----------------------------------------------------------------------------------- forecaster
#: Up to this many neurons the drive is one dense (N, N) product; above, a sparse scatter.
DENSE_LIMIT = 2048


class _TanhBank(nn.Module):
    """B one-hidden-layer tanh networks with a linear skip, all fed the same features.

    g_b(f) = v_b . f + w_b . tanh(W_b f + c_b) + e_b. The same family as a
    :class:`BasisBank` with one tanh layer, computed as one (F, B·H) matrix product — about
    six times faster on CPU, which the ablation benchmark needs. It is not replaced by a
    :class:`BasisBank`: that one adds per-layer activation mixing and pass-through gates (more
    parameters, other random draws), so the ablation's numbers and speed would change.
    """

    def __init__(
        self,
        n_filters: int,
        n_features: int,
        hidden: int,
        depth: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        b, f, h = n_filters, n_features, hidden
        self.n_filters, self.hidden = b, h if depth else 0
        self.skip = nn.Parameter(torch.randn(f, b, generator=generator) * 0.1)
        self.out_bias = nn.Parameter(torch.zeros(b))
        if depth:
            self.w_in = nn.Parameter(torch.randn(f, b * h, generator=generator) / math.sqrt(f))
            self.c_in = nn.Parameter(torch.zeros(b * h))
            self.w_out = nn.Parameter(torch.randn(b, h, generator=generator) / math.sqrt(h))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) -> (..., B)."""
        out = features @ self.skip + self.out_bias
        if self.hidden:
            a = torch.tanh(features @ self.w_in + self.c_in)
            a = a.reshape(*a.shape[:-1], self.n_filters, self.hidden)
            out = out + (a * self.w_out).sum(-1)
        return out


class GraphKernelForecaster(nn.Module):
    """One-step forecaster whose neighbour drive is a per-neuron kernel over other neurons.

    For neuron i at time t with centred state z_i = x_i - μ_i:

        d¹_i = a_i Σ_k κ_ik z_k,   d²_i = c_i Σ_k κ_ik x_k²,   s_i = G_i · u_t
        x̂_i,t+1 = μ_i + β_i + Σ_b π_ib g_b(z_i, d¹_i, d²_i, s_i),   π_i = softmax(α_i)

    with g_1..g_B a :class:`BasisBank`. κ is frozen (only the gains a, c are learned), or
    trained from given initial values on its support.

    Parameters
    ----------
    kernels : sparse (N, N)
        Support and values of κ (row i = neuron i's kernel).
    mean : array (N,)
        μ, the training mean of every neuron.
    trainable_kernel : bool
        Train the kernel values (else they are a frozen buffer).
    n_stimulus, n_filters, hidden, depth, activations
        Stimulus channels and shape and activation menu of the basis bank.
    generator : torch.Generator, optional
    """

    def __init__(
        self,
        kernels: sp.spmatrix,
        mean: np.ndarray,
        *,
        trainable_kernel: bool,
        n_stimulus: int = 0,
        n_filters: int = 4,
        hidden: int = 8,
        depth: int = 1,
        activations: tuple[str, ...] = ("tanh",),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        coo = sp.csr_matrix(kernels).tocoo()
        n = kernels.shape[0]
        self.n_neurons, self.n_stimulus = n, n_stimulus
        self.register_buffer("owner", torch.as_tensor(coo.row, dtype=torch.long))
        self.register_buffer("partner", torch.as_tensor(coo.col, dtype=torch.long))
        values = torch.as_tensor(coo.data, dtype=torch.float32)
        if trainable_kernel:
            self.kernel = nn.Parameter(values.clone())
        else:
            self.register_buffer("kernel", values.clone())
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.gain = nn.Parameter(torch.ones(2, n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.logits = nn.Parameter(0.01 * torch.randn(n, n_filters, generator=generator))
        if n_stimulus:
            self.stim = nn.Parameter(torch.zeros(n, n_stimulus))
        else:
            self.register_buffer("stim", torch.zeros(n, 1))
        if depth == 0 or tuple(activations) == ("tanh",):
            self.bank = _TanhBank(n_filters, 4, hidden, depth, generator=generator)
        else:
            self.bank = BasisBank(
                n_filters, 4, hidden, depth, tuple(activations), generator=generator
            )

    def n_trainable(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.numel() for p in self.parameters() if p.requires_grad))

    def forward(self, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Predict x_{t+1} from x_t: (T, N) -> (T, N)."""
        z = x - self.mean
        n = self.n_neurons
        if n <= DENSE_LIMIT:  # one dense product beats a gather/scatter at this size
            dense = torch.zeros(n, n, dtype=x.dtype, device=x.device)
            dense = dense.index_put((self.owner, self.partner), self.kernel.to(x.dtype))
            drive = torch.stack([z @ dense.T, (x * x) @ dense.T], dim=-1)
        else:
            phi = torch.stack([z, x * x], dim=-1)[:, self.partner] * self.kernel[None, :, None]
            drive = torch.zeros(x.shape[0], n, 2, dtype=x.dtype, device=x.device)
            drive = drive.index_add_(1, self.owner, phi)
        drive = drive * self.gain.T[None]
        if self.n_stimulus:
            if u is None:
                raise ValueError("this forecaster was built with a stimulus; pass u.")
            s = u @ self.stim.T
        else:
            s = torch.zeros_like(x)
        f = torch.cat([z[..., None], drive, s[..., None]], dim=-1)  # (T, N, 4)
        b = self.bank.n_filters
        if isinstance(self.bank, _TanhBank):
            out = self.bank(f)  # (T, N, B)
        else:
            out = self.bank(f[:, :, None, :].expand(*f.shape[:2], b, 4))  # (T, N, B)
        pi = torch.softmax(self.logits, dim=-1)
        return self.mean + self.bias + (out * pi).sum(-1)


@dataclass
class FittedKernelForecaster:
    """A fitted :class:`GraphKernelForecaster` and its held-out scores."""

    model: GraphKernelForecaster
    mode: str
    n_params: int
    train_frames: tuple[int, int]
    test_frames: tuple[int, int]
    test_mse: float
    test_r2: float
    losses: list[float] = field(default_factory=list)
    cancelled: bool = False

    def predict(self, activity: np.ndarray, stimulus: np.ndarray | None = None) -> np.ndarray:
        """One-step predictions: row t predicts frame t + 1 from frame t, shape (T-1, N)."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(activity[:-1]), dtype=torch.float32)
            u = None if stimulus is None else torch.as_tensor(stimulus[:-1], dtype=torch.float32)
            return self.model(x, u).numpy()


MODES = ("frozen", "trainable", "learned")


def _check_kernel_inputs(
    activity: Any, kernels: Any, mode: str, stimulus: Any, train_fraction: float
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """float32 activity and stimulus, and the last training transition; ValueError if unfit."""
    activity = np.asarray(activity, dtype=np.float32)
    if activity.ndim != 2:
        raise ValueError(f"activity must be (T, N); got shape {activity.shape}.")
    t, n = activity.shape
    if t < 4:
        raise ValueError(f"activity needs at least 4 frames; got {t}.")
    if not np.all(np.isfinite(activity)):
        raise ValueError("activity holds NaN or infinite values; fill or drop them first.")
    if not sp.issparse(kernels) or kernels.shape != (n, n):
        raise ValueError(
            f"kernels must be a sparse ({n}, {n}) matrix matching activity's {n} neurons; "
            f"got {getattr(kernels, 'shape', type(kernels).__name__)}."
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}.")
    if stimulus is not None:
        stimulus = np.asarray(stimulus, dtype=np.float32)
        if stimulus.ndim != 2 or stimulus.shape[0] != t:
            raise ValueError(
                f"stimulus must be (T, S) with T = {t} frames like activity; got {stimulus.shape}."
            )
    split = int(round((t - 1) * train_fraction))
    if split < 2 or split > t - 2:
        raise ValueError("train_fraction leaves no training or no test transitions.")
    return activity, stimulus, split


def fit_kernel_forecaster(
    activity: np.ndarray,
    kernels: sp.spmatrix,
    *,
    mode: str = "frozen",
    stimulus: np.ndarray | None = None,
    train_fraction: float = 0.75,
    n_filters: int = 4,
    hidden: int = 8,
    depth: int = 1,
    activations: tuple[str, ...] = ("tanh",),
    steps: int = 400,
    lr: float = 0.02,
    batch_frames: int | None = 256,
    seed: int = 0,
    callback: Any = None,
) -> FittedKernelForecaster:
    """Fit a graph-kernel forecaster on the first frames and score it on the rest.

    Parameters
    ----------
    activity : ndarray (T, N)
        Activity (rows are frames).
    kernels : sparse (N, N)
        Kernel support and values (row i = neuron i's kernel): connectome-derived, shuffled, or
        a bare support (values ignored) for ``mode="learned"``.
    mode : {"frozen", "trainable", "learned"}
        "frozen": κ fixed to ``kernels`` (a per-neuron gain learned); "trainable": κ trained
        from ``kernels``; "learned": κ trained from zero on the support of ``kernels``.
        "trainable" and "learned" on supports of equal size have equal parameter counts.
    stimulus : ndarray (T, S), optional
    train_fraction : float
        Leading fraction of the transitions used for training; the rest is held out.
    n_filters, hidden, depth, activations
        Basis bank shape and activation menu (see :class:`BasisBank`).
    steps, lr : int, float
        Adam steps and learning rate.
    batch_frames : int or None
        Transitions per step, drawn at random from the training block (None: all of them).
    seed : int
        Initialisation seed (deterministic).
    callback : callable, optional
        Progress protocol (:mod:`napari_mesoscale.progress`), called every 50 steps with
        ``fraction``, ``step``, ``steps`` and ``loss``. Returning False or raising a
        ``Cancelled`` stops training: the model so far is scored and returned with
        ``cancelled=True``.

    Returns
    -------
    FittedKernelForecaster
    """
    activity, stimulus, split = _check_kernel_inputs(
        activity, kernels, mode, stimulus, train_fraction
    )
    t = activity.shape[0]
    kernels = sp.csr_matrix(kernels, dtype=np.float64)
    if mode == "learned":
        kernels = kernels.copy()
        kernels.data = np.zeros_like(kernels.data)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mean = activity[: split + 1].mean(axis=0)
    model = GraphKernelForecaster(
        kernels,
        mean,
        trainable_kernel=mode != "frozen",
        n_stimulus=0 if stimulus is None else stimulus.shape[1],
        n_filters=n_filters,
        hidden=hidden,
        depth=depth,
        activations=activations,
        generator=gen,
    )
    x = torch.as_tensor(activity)
    u = None if stimulus is None else torch.as_tensor(stimulus)
    x_in, x_out = x[:split], x[1 : split + 1]
    u_in = None if u is None else u[:split]

    def one_batch(_step: int) -> list[tuple[Any, Any, Any]]:
        if batch_frames is not None and batch_frames < split:
            idx = torch.randint(0, split, (int(batch_frames),), generator=gen)
            return [(x_in[idx], x_out[idx], None if u_in is None else u_in[idx])]
        return [(x_in, x_out, u_in)]

    def loss(batch: tuple[Any, Any, Any]) -> torch.Tensor:
        xb, yb, ub = batch
        return torch.mean((model(xb, ub) - yb) ** 2)

    run = adam_loop(
        model,
        one_batch,
        loss,
        epochs=steps,
        lr=lr,
        callback=callback,
        report_every=50,
        unit="step",
    )
    losses = run.losses
    with torch.no_grad():
        pred = model(x[split:-1], None if u is None else u[split:-1]).numpy()
    target = activity[split + 1 :]
    mse = float(np.mean((pred - target) ** 2))
    var = float(np.mean((target - target.mean(axis=0)) ** 2))
    return FittedKernelForecaster(
        model=model,
        mode=mode,
        n_params=model.n_trainable(),
        train_frames=(0, split + 1),
        test_frames=(split, t),
        test_mse=mse,
        test_r2=1.0 - mse / var if var > 0 else float("nan"),
        losses=losses,
        cancelled=run.cancelled,
    )
