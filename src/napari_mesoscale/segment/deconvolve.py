"""Non-negative deconvolution of calcium traces with an AR(1) model (OASIS)."""

from __future__ import annotations

import numpy as np


def oasis_ar1(
    y: np.ndarray, g: float, *, lam: float = 0.0, s_min: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Deconvolve one trace with the AR(1) OASIS algorithm (Friedrich et al. 2017).

    Solves ``min_c 1/2 ||c - y||^2 + lam * sum(s)`` subject to ``s_t = c_t - g c_{t-1} >= 0``
    (and, with ``s_min > 0``, every non-zero event at least ``s_min``) by pooling adjacent
    violators in one pass.

    Parameters
    ----------
    y : numpy.ndarray
        (T,) trace, baseline removed (e.g. dF/F).
    g : float
        AR(1) decay per frame, ``exp(-1 / (tau * frame_rate))``, in (0, 1).
    lam : float
        Sparsity penalty (same units as ``y``).
    s_min : float
        Smallest allowed event amplitude.

    Returns
    -------
    c, s : numpy.ndarray
        The denoised calcium trace and the non-negative events, both (T,).
    """
    y = np.asarray(y, dtype=float).ravel()
    n = len(y)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if not 0.0 < g < 1.0:
        raise ValueError(f"g must lie in (0, 1); got {g}.")
    yy = y - lam * (1.0 - g)
    yy[-1] = y[-1] - lam
    value = np.empty(n)
    weight = np.empty(n)
    start = np.empty(n, dtype=np.int64)
    length = np.empty(n, dtype=np.int64)
    gpow = g ** np.arange(n + 1)
    k = 0
    value[0], weight[0], start[0], length[0] = yy[0], 1.0, 0, 1
    for t in range(1, n):
        k += 1
        value[k], weight[k], start[k], length[k] = yy[t], 1.0, t, 1
        while k > 0 and value[k - 1] * gpow[length[k - 1]] + s_min > value[k]:
            gl = gpow[length[k - 1]]
            w = weight[k - 1] + gl * gl * weight[k]
            value[k - 1] = (weight[k - 1] * value[k - 1] + gl * weight[k] * value[k]) / w
            weight[k - 1] = w
            length[k - 1] += length[k]
            k -= 1
    c = np.empty(n)
    for j in range(k + 1):
        v = max(value[j], 0.0)
        c[start[j] : start[j] + length[j]] = v * gpow[: length[j]]
    s = np.empty(n)
    s[0] = c[0]
    s[1:] = c[1:] - g * c[:-1]
    np.maximum(s, 0.0, out=s)
    return c, s


def deconvolve_traces(
    dff: np.ndarray,
    *,
    frame_rate: float,
    tau: float = 1.0,
    lam: float = 0.0,
    s_min: float = 0.0,
) -> np.ndarray:
    """Event rates (N, T) from dF/F traces (N, T) by AR(1) OASIS, one trace at a time.

    ``tau`` is the calcium indicator's decay time in seconds; rates are events per second
    (the deconvolved amplitude per frame times ``frame_rate``).
    """
    dff = np.asarray(dff, dtype=float)
    if dff.ndim != 2:
        raise ValueError(f"dff must be (N, T); got shape {dff.shape}.")
    if not (frame_rate > 0 and tau > 0):
        raise ValueError(f"frame_rate and tau must be positive; got {frame_rate}, {tau}.")
    g = float(np.exp(-1.0 / (tau * frame_rate)))
    rates = np.zeros_like(dff)
    for i, trace in enumerate(dff):
        if np.all(np.isfinite(trace)):
            rates[i] = oasis_ar1(trace, g, lam=lam, s_min=s_min)[1] * frame_rate
    return rates
