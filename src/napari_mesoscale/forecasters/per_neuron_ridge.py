"""One ridge regression per neuron, all solved at once (batched normal equations)."""

from __future__ import annotations

import numpy as np

__all__ = ["solve_per_neuron_ridge"]


def solve_per_neuron_ridge(
    design: np.ndarray,
    target: np.ndarray,
    penalty: np.ndarray,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Coefficients (N, p) of ``target[:, i] ~ design[:, i, :]`` for every neuron i.

    Parameters
    ----------
    design : ndarray (T, N, p)
    target : ndarray (T, N)
    penalty : ndarray (p, p)
        Added to every neuron's Gram matrix (the ridge term, with the caller's scaling).
    weight : ndarray (T, N), optional
        Per-row weights (e.g. 0 where the target is missing).
    """
    if weight is None:
        gram = np.einsum("tnp,tnq->npq", design, design)
        rhs = np.einsum("tnp,tn->np", design, target)
    else:
        gram = np.einsum("tnp,tnq,tn->npq", design, design, weight)
        rhs = np.einsum("tnp,tn,tn->np", design, target, weight)
    return np.linalg.solve(gram + penalty, rhs[..., None])[..., 0]
