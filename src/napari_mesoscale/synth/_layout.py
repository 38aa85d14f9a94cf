"""Placement of motif instances and somata in the volume (vectorised per instance)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

#: packing fraction used to size an instance's ball from its number of members
_PACKING = 0.3


def draw_instance_sizes(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """Instance sizes in [lo, hi] that sum exactly to ``n``.

    Raises
    ------
    ValueError
        If no partition of ``n`` into parts of size ``lo..hi`` exists.
    """
    if n < lo:
        raise ValueError(
            f"n_neurons={n} is smaller than the smallest instance size {lo}; "
            "lower instance_size[0] or add neurons."
        )
    # the smallest number of parts m must satisfy m*lo <= n <= m*hi
    m_min = -(-n // hi)
    m_max = n // lo
    if m_min > m_max:
        raise ValueError(
            f"instance_size=({lo}, {hi}) cannot partition n_neurons={n} "
            "(no number of instances with sizes in that range sums to it); widen instance_size."
        )
    k = n // lo + 2
    sizes = rng.integers(lo, hi + 1, size=k)
    cs = np.cumsum(sizes)
    m = int(np.searchsorted(cs, n))  # first index with cs >= n
    sizes = sizes[: m + 1].copy()
    sizes[-1] = n - (cs[m - 1] if m > 0 else 0)
    if sizes[-1] < lo:
        rem = int(sizes[-1])
        sizes = sizes[:-1]
        room = hi - sizes
        if room.sum() >= rem:
            # hand the remainder out one neuron at a time, round robin over instances with room
            order = rng.permutation(len(sizes))
            while rem > 0:
                for i in order:
                    if rem == 0:
                        break
                    if sizes[i] < hi:
                        sizes[i] += 1
                        rem -= 1
        else:
            # take neurons from other instances to build one more instance of size lo
            need = lo - rem
            order = rng.permutation(len(sizes))
            while need > 0:
                for i in order:
                    if need == 0:
                        break
                    if sizes[i] > lo:
                        sizes[i] -= 1
                        need -= 1
            sizes = np.append(sizes, lo)
    assert sizes.sum() == n and sizes.min() >= lo and sizes.max() <= hi
    return sizes.astype(np.int64)


def instance_radius(n: int | np.ndarray, min_dist: float) -> np.ndarray:
    """Radius (µm) of the ball holding the soma centres of an instance of ``n`` members."""
    n = np.asarray(n, dtype=float)
    return np.maximum(min_dist, 0.5 * min_dist * (n / _PACKING) ** (1.0 / 3.0))


def place_instances(
    rng: np.random.Generator,
    sizes: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    min_dist: float,
    n_candidates: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance centres by best-candidate (Mitchell) sampling inside the box [lo, hi].

    Returns centres (M, 3) and radii (M,), in the order of ``sizes``.
    """
    m = len(sizes)
    radii = instance_radius(sizes, min_dist)
    centres = np.empty((m, 3))
    span = hi - lo
    tree, n_tree, rebuild = None, 0, 256
    for k in range(m):
        r = radii[k]
        # keep the instance ball inside the box where the box is wide enough, else centre it
        c_lo = np.where(span > 2 * r, lo + r, lo + span / 2)
        c_hi = np.where(span > 2 * r, hi - r, lo + span / 2)
        cand = c_lo + rng.random((n_candidates, 3)) * (c_hi - c_lo)
        gap = np.full(n_candidates, np.inf)
        if tree is not None:
            dd, ii = tree.query(cand, k=min(4, n_tree))
            dd, ii = dd.reshape(n_candidates, -1), ii.reshape(n_candidates, -1)
            gap = (dd - radii[ii] - r).min(axis=1)
        if k > n_tree:
            d = np.sqrt(((cand[:, None, :] - centres[None, n_tree:k, :]) ** 2).sum(-1))
            gap = np.minimum(gap, (d - radii[None, n_tree:k] - r).min(axis=1))
        centres[k] = cand[int(np.argmax(gap))]
        if k + 1 - n_tree >= rebuild:
            tree, n_tree = cKDTree(centres[: k + 1]), k + 1
    return centres, radii


def place_somata(
    rng: np.random.Generator,
    sizes: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    min_dist: float,
) -> np.ndarray:
    """Soma centres (N, 3) µm, grouped by instance in the order of ``sizes``.

    Every pair of somata (within and between instances) is at least ``min_dist`` apart and every
    centre lies in the box [lo, hi]. Candidates are drawn in the instance ball, those that clash
    with somata already placed are dropped, and the rest are accepted greedily from the ball's
    centre outwards, so that instances stay compact.
    """
    m = len(sizes)
    placed: list[np.ndarray] = []
    extent = np.zeros(m)  # largest distance of a placed soma from its instance centre
    d2min = min_dist * min_dist
    tree = cKDTree(centres)
    for k in range(m):
        n = int(sizes[k])
        accepted = np.empty((0, 3))
        r = radii[k]
        for _attempt in range(12):
            # somata of instances placed so far that can come within min_dist of this ball
            near = tree.query_ball_point(centres[k], r + extent.max() + min_dist)
            near = [j for j in near if j < k]
            existing = np.concatenate([placed[j] for j in near]) if near else np.empty((0, 3))
            n_cand = 4 * n + 16
            # uniform in a ball of radius r
            v = rng.standard_normal((n_cand, 3))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            cand = centres[k] + v * (r * rng.random(n_cand) ** (1.0 / 3.0))[:, None]
            cand = cand[np.all((cand >= lo) & (cand <= hi), axis=1)]
            ref = np.concatenate([existing, accepted])
            if len(ref) and len(cand):
                cand = cand[cdist(cand, ref, "sqeuclidean").min(axis=1) >= d2min]
            if len(cand):
                cand = cand[np.argsort(((cand - centres[k]) ** 2).sum(-1))]
                pair = cdist(cand, cand, "sqeuclidean") < d2min
                alive = np.ones(len(cand), dtype=bool)
                take = []
                need = n - len(accepted)
                while need > 0:
                    i = int(np.argmax(alive))
                    if not alive[i]:
                        break
                    take.append(i)
                    alive &= ~pair[i]
                    need -= 1
                accepted = np.concatenate([accepted, cand[take]])
            if len(accepted) >= n:
                break
            r *= 1.25
        if len(accepted) < n:
            raise ValueError(
                f"could not place {n} non-overlapping somata for an instance; the volume is "
                "too crowded. Use a larger `shape` (or shape=None to scale it with n_neurons), "
                "a smaller soma_diameter or fewer neurons."
            )
        placed.append(accepted[:n])
        extent[k] = np.sqrt(((accepted[:n] - centres[k]) ** 2).sum(-1)).max()
    return np.concatenate(placed)
