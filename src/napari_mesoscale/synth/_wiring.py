"""Wiring of the toy brain: synapse counts, signed adjacency, dynamical weights, synapse table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

# motif codes used internally (indices into MOTIF_NAMES)
OSC, INT, WTA, CHAIN = 0, 1, 2, 3


def within_instance_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """All ordered pairs (a, b), a != b, of members of each instance (instances contiguous).

    Returns global pre, post, the instance index of each pair, and local indices la, lb.
    """
    sq = sizes * sizes
    total = int(sq.sum())
    inst = np.repeat(np.arange(len(sizes)), sq)
    offs = np.repeat(np.cumsum(sq) - sq, sq)
    idx = np.arange(total) - offs
    n_rep = sizes[inst]
    la = idx // n_rep
    lb = idx % n_rep
    keep = la != lb
    inst, la, lb = inst[keep], la[keep], lb[keep]
    pre = starts[inst] + la
    post = starts[inst] + lb
    return pre, post, inst, la, lb


def _ensure_input(
    rng: np.random.Generator,
    pre: np.ndarray,
    post: np.ndarray,
    needy: np.ndarray,
    src_start: np.ndarray,
    src_count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Add one random presynaptic partner (from [src_start, src_start+src_count)) to ``needy``."""
    if len(needy) == 0:
        return pre, post
    cand = src_start + (rng.random(len(needy)) * src_count).astype(np.int64)
    # never a self connection: shift by one inside the source range when it hits
    clash = cand == needy
    cand[clash] = src_start[clash] + (cand[clash] - src_start[clash] + 1) % src_count[clash]
    ok = cand != needy
    return np.concatenate([pre, cand[ok]]), np.concatenate([post, needy[ok]])


def build_wiring(
    rng: np.random.Generator,
    positions: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    inst_motif: np.ndarray,
    n_exc: np.ndarray,
    sign: np.ndarray,
    instance: np.ndarray,
    cfg: dict,
) -> dict:
    """Connect the neurons (instances contiguous, members in local order).

    Returns a dict with pre, post, count (synapses per pair), weight (dynamical coupling per
    pair) and whether each pair is within an instance.
    """
    n = len(positions)
    pre, post, inst, la, lb = within_instance_pairs(starts, sizes)
    mt = inst_motif[inst]
    ne = n_exc[inst]
    u = rng.random(len(pre))
    is_e_pre = la < ne
    is_e_post = lb < ne
    keep = np.zeros(len(pre), dtype=bool)
    # oscillator: E -> I, I -> E and E -> E
    osc = mt == OSC
    keep |= osc & (is_e_pre | is_e_post) & (u < cfg["p_osc"])
    # integrator: random recurrent excitation
    keep |= (mt == INT) & (u < cfg["p_int"])
    # winner-take-all: dense mutual inhibition
    keep |= (mt == WTA) & (u < cfg["p_wta"])
    # chain: member k -> k+1 only
    keep |= (mt == CHAIN) & (lb == la + 1)
    pre, post = pre[keep], post[keep]

    # every oscillator / integrator neuron gets at least one input of the right class
    motif_of = inst_motif[instance]
    start_of = starts[instance]
    size_of = sizes[instance]
    ne_of = n_exc[instance]
    has_in = np.zeros(n, dtype=bool)
    has_in[post] = True
    local = np.arange(n) - start_of
    needy = np.flatnonzero(~has_in & (motif_of == OSC) & (local < ne_of))  # E needs an I input
    pre, post = _ensure_input(
        rng, pre, post, needy, start_of[needy] + ne_of[needy], size_of[needy] - ne_of[needy]
    )
    needy = np.flatnonzero(~has_in & (motif_of == OSC) & (local >= ne_of))  # I needs an E input
    pre, post = _ensure_input(rng, pre, post, needy, start_of[needy], ne_of[needy])
    for code in (INT, WTA):
        needy = np.flatnonzero(~has_in & (motif_of == code))
        pre, post = _ensure_input(rng, pre, post, needy, start_of[needy], size_of[needy])
    n_within = len(pre)
    count = 1 + rng.poisson(cfg["syn_per_pair"] - 1, size=n_within)

    # between instances: sparse, distance dependent
    lam = cfg["inter_length"]
    tree = cKDTree(positions)
    pairs = tree.query_pairs(r=2.5 * lam, output_type="ndarray")
    if len(pairs):
        a = np.concatenate([pairs[:, 0], pairs[:, 1]])
        b = np.concatenate([pairs[:, 1], pairs[:, 0]])
        diff = instance[a] != instance[b]
        a, b = a[diff], b[diff]
        d2 = ((positions[a] - positions[b]) ** 2).sum(-1)
        g = np.exp(-d2 / (2 * lam * lam))
        p0 = min(1.0, cfg["inter_degree"] * n / max(g.sum(), 1e-12))
        hit = rng.random(len(a)) < p0 * g
        a, b = a[hit], b[hit]
    else:
        a = b = np.empty(0, dtype=np.int64)
    inter_count = 1 + rng.poisson(cfg["inter_syn_per_pair"] - 1, size=len(a))

    pre = np.concatenate([pre, a]).astype(np.int64)
    post = np.concatenate([post, b]).astype(np.int64)
    count = np.concatenate([count, inter_count]).astype(np.int64)
    within = np.zeros(len(pre), dtype=bool)
    within[:n_within] = True

    # dynamical weights
    w = np.zeros(len(pre))
    mt_post = motif_of[post]
    # oscillator and integrator: in-degree-normalised (mean-field) coupling, ∝ synapse count;
    # oscillator inputs are normalised per presynaptic class (E->E, I->E, E->I)
    osc_w = within & (mt_post == OSC)
    exc_pre = sign[pre] > 0
    exc_post = sign[post] > 0
    for sel, gain in (
        (osc_w & exc_pre & exc_post, cfg["osc_ee"]),
        (osc_w & ~exc_pre, cfg["osc_coupling"]),
        (osc_w & exc_pre & ~exc_post, cfg["osc_coupling"]),
        (within & (mt_post == INT), cfg["int_coupling"]),
    ):
        tot = np.bincount(post[sel], weights=count[sel], minlength=n)
        w[sel] = gain * count[sel] / tot[post[sel]]
    sel = within & (mt_post == WTA)
    w[sel] = cfg["wta_inhibition"] * count[sel] / cfg["syn_per_pair"]
    sel = within & (mt_post == CHAIN)
    w[sel] = cfg["chain_gain"]
    w[~within] = cfg["inter_weight"] * count[~within]
    w *= sign[pre]
    return {"pre": pre, "post": post, "count": count, "weight": w, "within": within}


def to_sparse(pre: np.ndarray, post: np.ndarray, values: np.ndarray, n: int) -> sp.csr_matrix:
    """(N, N) CSR pre -> post with sorted indices (pairs are unique)."""
    m = sp.csr_matrix((values, (pre, post)), shape=(n, n))
    m.sort_indices()
    return m


def synapse_table(
    rng: np.random.Generator,
    positions: np.ndarray,
    diameters: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    count: np.ndarray,
    weight: np.ndarray,
    sign: np.ndarray,
) -> pd.DataFrame:
    """One row per synapse; each lies just outside the post-synaptic soma, facing the partner."""
    sp_pre = np.repeat(pre, count)
    sp_post = np.repeat(post, count)
    sp_w = np.repeat(weight / count, count)
    v = positions[sp_pre] - positions[sp_post]
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    v = v + 0.45 * rng.standard_normal(v.shape)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    radius = diameters[sp_post] / 2 + 0.4
    xyz = positions[sp_post] + v * radius[:, None]
    return pd.DataFrame(
        {
            "pre": sp_pre.astype(np.int64),
            "post": sp_post.astype(np.int64),
            "z": xyz[:, 0],
            "y": xyz[:, 1],
            "x": xyz[:, 2],
            "weight": sp_w,
            "sign": sign[sp_pre].astype(np.int8),
        }
    )
