"""Correlation-eigenvector features of neurons: moments and leading eigenvectors of |correlation|.

:func:`correlation_eigenfeatures` describes each neuron by the first moments of its activity
(mean, standard deviation, ...) and its entries in the leading eigenvectors of the *absolute*
correlation matrix of activity (16 by default, the optimum of Dyer & Griffin 2022, who locate
neurons from activity with them). :func:`eigenvector_features_frame` puts them in a table for
``points_layer.features``, so that napari can colour point sources by any eigenvector.

How the eigenvectors are computed (memory and time)
---------------------------------------------------
---------------------------------------------------
The absolute correlation |C| = |Z^T Z| / T of the z-scored activity Z (T, N) is not a low-rank
matrix (the absolute value breaks the factorisation), so it cannot be applied implicitly.

* ``method="dense"`` (auto for N <= 6000): |C| is formed in memory (N^2 float64: 288 MB at
  N = 6000) and the top k eigenpairs are taken by ``scipy.linalg.eigh(subset_by_index=...)``.
* ``method="torch"`` (auto for N <= 30000 when CUDA is available): the same on the GPU with
  ``torch.linalg.eigh`` in float32.
* ``method="sparse"`` (auto above): |C| is computed in row chunks of at most ~64 MB
  (``chunk_rows`` rows at a time, never the whole N x N matrix); each row keeps its
  ``max_neighbors`` largest entries (a k-nearest-neighbour sparsification: independent neurons
  correlate at ~1/sqrt(T), so the small entries are mostly estimation noise), the sparse matrix
  is symmetrised by the element-wise maximum, and ``scipy.sparse.linalg.eigsh`` finds the top k
  eigenvectors. Memory is O(N * max_neighbors) + one chunk (100k neurons x 64 neighbours: ~77 MB);
  time is one pass of O(N^2 T) multiply-adds, done by BLAS chunk by chunk. It approximates the
  dense eigenvectors only as far as the kept neighbours cover each neuron's genuinely
  correlated partners: on a line of neurons with local shared inputs (benchmarks/localisation.py)
  the top-8 eigenvector subspaces of the two methods overlap 0.95 at N = 1000 but 0.70 at
  N = 2000, where each neuron has ~240 correlated partners and only 64 are kept; raise
  ``max_neighbors`` when neurons have many correlated partners.

Silent neurons (constant activity) get an all-zero correlation row (the paper adds a 1e-9 jitter
instead, which creates spurious correlations of ~0.008). Eigenvector signs are fixed so that
the entry of largest magnitude is positive, and entries are multiplied by sqrt(N) so that
features are O(1) whatever the number of neurons (tree classifiers do not care; a model that
initialises its domain logits from these features does).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from napari_mesoscale.evaluate.reliability import EvaluationCancelled
from napari_mesoscale.progress import Progress

__all__ = ["EigenMethod", "correlation_eigenfeatures", "eigenvector_features_frame"]

EigenMethod = Literal["auto", "dense", "sparse", "torch"]
_DENSE_MAX = 6000
_TORCH_MAX = 30000


# -- features --------------------------------------------------------------------------------


def _as_activity(activity: Any, name: str = "activity") -> np.ndarray:
    arr = np.asarray(activity, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (T, N) array (time or stimuli x neurons); got shape "
            f"{arr.shape}. Traces stored as (N, T) must be transposed first."
        )
    if arr.shape[0] < 3:
        raise ValueError(f"{name} has {arr.shape[0]} time points; correlations need >= 3.")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} has {arr.shape[1]} neuron(s); at least 2 are needed.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or interpolate them.")
    return arr


def _moments(x: np.ndarray, n_moments: int) -> np.ndarray:
    mean = x.mean(0)
    std = x.std(0)
    cols = [mean, std][:n_moments]
    if n_moments > 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
        cols.append((z**3).mean(0))
        if n_moments > 3:
            cols.append((z**4).mean(0) - 3.0 * (std > 0))
    return np.stack(cols, axis=1) if cols else np.zeros((x.shape[1], 0))


def _zscore(x: np.ndarray, dtype) -> np.ndarray:
    std = x.std(0)
    z = (x - x.mean(0)) / np.where(std > 1e-12 * (np.abs(x).max(0) + 1e-300), std, np.inf)
    return z.astype(dtype, copy=False)


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _eig_dense(z: np.ndarray, k: int) -> np.ndarray:
    from scipy.linalg import eigh

    n = z.shape[1]
    c = np.abs(z.T @ z) / z.shape[0]
    _, vecs = eigh(c, subset_by_index=[n - k, n - 1])
    return vecs[:, ::-1]


def _eig_torch(z: np.ndarray, k: int, device: str | None) -> np.ndarray:
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    zt = torch.as_tensor(z, dtype=torch.float32, device=dev)
    c = torch.abs(zt.T @ zt) / zt.shape[0]
    _, vecs = torch.linalg.eigh(c)
    out = vecs[:, -k:].flip(1).double().cpu().numpy()
    del c, zt, vecs
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _eig_sparse(
    z: np.ndarray,
    k: int,
    max_neighbors: int,
    chunk_rows: int | None,
    seed: int,
    progress: Progress,
) -> np.ndarray:
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    t, n = z.shape
    m = int(min(max(max_neighbors, k + 1), n))
    if chunk_rows is None:
        chunk_rows = int(max(16, min(n, 16_000_000 // n)))  # ~64 MB float32 per chunk
    z32 = np.ascontiguousarray(z, dtype=np.float32)
    rows = np.empty((n, m), dtype=np.int64)
    cols = np.empty((n, m), dtype=np.int32)
    vals = np.empty((n, m), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        block = np.abs(z32[:, start:stop].T @ z32) / t  # (chunk, N)
        top = np.argpartition(block, n - m, axis=1)[:, n - m :]
        rows[start:stop] = np.arange(start, stop)[:, None]
        cols[start:stop] = top
        vals[start:stop] = np.take_along_axis(block, top, axis=1)
        progress.report(stop / n, f"{stop}/{n} rows")
    a = sparse.csr_matrix(
        (vals.ravel().astype(np.float64), (rows.ravel(), cols.ravel())), shape=(n, n)
    )
    a = a.maximum(a.T).tocsr()
    v0 = np.random.default_rng(seed).standard_normal(n)
    _, vecs = eigsh(a, k=k, which="LA", v0=v0)
    return vecs[:, ::-1]


def _auto_method(n: int) -> str:
    """Dense up to _DENSE_MAX neurons, torch on a GPU up to _TORCH_MAX, sparse beyond."""
    if n <= _DENSE_MAX:
        return "dense"
    if n <= _TORCH_MAX:
        try:
            import torch

            if torch.cuda.is_available():
                return "torch"
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    return "sparse"


def correlation_eigenfeatures(
    activity: Any,
    n_eigenvectors: int = 16,
    *,
    n_moments: int = 2,
    method: EigenMethod = "auto",
    max_neighbors: int = 64,
    n_neighbours: int | None = None,
    chunk_rows: int | None = None,
    device: str | None = None,
    scale: bool = True,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> np.ndarray:
    """Per-neuron features from activity: moments and leading eigenvectors of |correlation|.

    Parameters
    ----------
    activity : array (T, N)
        Activity (time points or stimuli x neurons).
    n_eigenvectors : int
        Number of leading eigenvectors of the absolute correlation matrix (paper: 16).
    n_moments : int
        First moments of each neuron's activity put before the eigenvectors: 0 to 4 of mean,
        standard deviation, skewness, excess kurtosis (paper: mean and standard deviation).
    method : {"auto", "dense", "sparse", "torch"}
        How eigenvectors are computed (see the module docstring).
    max_neighbors : int
        Entries kept per row by the sparse method (``n_neighbours``: its deprecated name).
    chunk_rows : int, optional
        Rows of |C| computed at a time by the sparse method (default: ~64 MB chunks).
    device : str, optional
        Torch device for ``method="torch"`` (default: CUDA if available, else CPU).
    scale : bool
        Multiply eigenvector entries by sqrt(N).
    seed : int
        Seed of the sparse eigensolver's start vector.
    callback : callable, optional
        Progress callback; returning False stops with :class:`EvaluationCancelled`.

    Returns
    -------
    ndarray (N, n_moments + n_eigenvectors)
        Columns: the moments, then eigenvectors by decreasing eigenvalue.
    """
    if n_neighbours is not None:
        warnings.warn(
            "n_neighbours is deprecated; use max_neighbors", DeprecationWarning, stacklevel=2
        )
        max_neighbors = n_neighbours
    progress = Progress.wrap(callback, EvaluationCancelled)
    x = _as_activity(activity)
    n = x.shape[1]
    if not 0 <= n_moments <= 4:
        raise ValueError(f"n_moments must be between 0 and 4; got {n_moments}.")
    if not 1 <= n_eigenvectors < n:
        raise ValueError(
            f"n_eigenvectors must be between 1 and N - 1 = {n - 1}; got {n_eigenvectors}."
        )
    if method not in ("auto", "dense", "sparse", "torch"):
        raise ValueError(f"method must be 'auto', 'dense', 'sparse' or 'torch'; got {method!r}.")
    if method == "auto":
        method = _auto_method(n)
    progress.report(0.0, f"eigenvectors ({method})")
    moments = _moments(x, n_moments)
    if method == "dense":
        vecs = _eig_dense(_zscore(x, np.float64), n_eigenvectors)
    elif method == "torch":
        vecs = _eig_torch(_zscore(x, np.float32), n_eigenvectors, device)
    else:
        vecs = _eig_sparse(
            _zscore(x, np.float32),
            n_eigenvectors,
            max_neighbors,
            chunk_rows,
            seed,
            progress.stage(0.0, 0.9, "correlation matrix (sparse, chunked)"),
        )
    vecs = _fix_signs(vecs)
    if scale:
        vecs = vecs * np.sqrt(n)
    progress.report(1.0, "eigenvectors done")
    return np.hstack([moments, vecs])


def eigenvector_features_frame(
    activity: Any, n_eigenvectors: int = 16, **kwargs: Any
) -> pd.DataFrame:
    """Eigenvector features as a DataFrame with columns ``eig_0 .. eig_{k-1}`` (one row/neuron).

    Meant for ``points_layer.features`` so that napari can colour points by any eigenvector.
    Keyword arguments go to :func:`correlation_eigenfeatures` (moments are left out).
    """
    kwargs = {**kwargs, "n_moments": 0}
    feats = correlation_eigenfeatures(activity, n_eigenvectors, **kwargs)
    return pd.DataFrame(feats, columns=[f"eig_{k}" for k in range(feats.shape[1])])
