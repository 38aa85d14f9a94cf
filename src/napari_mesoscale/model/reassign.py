"""Assignment driven by the filters' prediction loss (``ModelConfig.assignment="alternating"``).

Gradient descent on the assignment logits barely moves a neuron once its filter and interfaces
have adapted to it: every other (field, filter) pair predicts it worse simply because it was
never trained on it. The alternating scheme is hard expectation-maximisation instead: training
epochs fit the filters to the current assignment, and every ``reassign_every`` epochs each
*unit* (a community of correlated neighbours, the candidate domain) moves to the filter whose
one-step error, summed over the unit's members on a held-in stretch of the training block, is
lowest. The comparison runs with the local interfaces at identity so that it ranks the shared
filters, not the interfaces one pair happened to adapt. A filter that ends up idle is re-seeded
from the worst-predicted group (a split: it copies that group's filter with a small
perturbation and takes the worse half of its units), and filters whose removal raises the
held-in loss by less than ``prune_threshold`` are merged into their runners-up, so the number of
motifs is chosen by the data with ``n_filters`` as an upper bound.

Cost: one pass of every (neuron, filter) pair over at most ``reassign_frames`` frames, O(N B T),
plus O(N) bookkeeping per reassignment.

Measured (benchmarks/results/motif_zoo.json, 5 test-family zoo brains, 240 neurons, 1,500
frames, 5 epochs): from the dynamics initialisation the alternating assignment reaches median
motif ARI 0.61 (the gradient assignment, which keeps the initialisation: 0.93), so
``"gradient"`` stays the default; from a random initialisation it reaches 0.53 where the
gradient assignment stays at 0.00, with domain ARI 0.99 (the communities give the domains).
With five epochs the filters are not yet specific enough for their errors to rank the motifs
reliably: that, not the cost, is what limits the scheme today.

``ModelConfig.assignment="em"`` finds the motifs *before* training instead
(:func:`discover_assignment`). Diagnosis of the alternating scheme from a random start (dev
families): the communities are pure (purity 1.00 on dev brains of 240 neurons), so the task is
grouping about a dozen communities into K motifs; but filters trained a few dozen Adam steps on
random mixtures are too alike for their errors to rank the motifs (even from the true groups,
annealed EM with the network filters drifted from ARI 1.00 to 0.74 within two iterations). A
filter fitted to one community alone is specific, though: the cross-prediction loss of
per-community *linearised* filters (ridge on the filters' inputs and a random-feature
expansion, exact and cheap) separates families, asymmetrically (a noise community is predicted
by any filter, its own filter predicts nothing else), so the distance is symmetrised before
average linkage. Linkage and k-means++ starts then run hard EM with one pooled filter per
group, and the lowest held-in loss wins (``discover_grouping="loss"``). On 24 dev-family zoo
brains that picks wrong groupings: the true grouping is a fixed point of the EM, but a pooled
linearised filter fits two simple motifs at once while splitting a heterogeneous motif lowers
the loss more, so the lowest loss is not the truth (median motif ARI 0.72). Clustering the
communities by the correlation of their cross-prediction *profiles* (how every filter
predicts them, how their filter predicts every community; complete linkage) and refining by
the same EM gives 0.86 on those brains (``discover_grouping="profile"``, the default).
With ``discover_motif_count="profile_cut"`` the number of motifs comes from the data, with
``n_filters`` as an upper bound: the same profile tree is cut at a correlation distance
(``discover_cut_distance``, 0.1), so two groups of communities stay apart when their profiles
correlate less than 0.9 (:func:`profile_motif_count`). Chosen on 40 dev-family brains of 2-6
motifs (``benchmarks/motif_count.py``) where the loss elbow and seed stability had failed: a
pooled filter's held-in loss barely moves once two motifs share a group, so no penalised
loss separates the counts, while the profile tree's lowest merges are near 0 within a motif.
The cut errs towards more groups than motifs (a heterogeneous motif split in two), which
costs less ARI than merging two motifs; on the test-only families it splits further (more
motifs than true on 18 of 20 brains), so the count is an estimate, not the truth (README).
``"loss_cut"`` cuts instead the complete-linkage tree of the symmetric cross-prediction loss
divided by its 90th percentile over the brain's pairs (:func:`loss_motif_count`): a fraction
of the brain's own between-motif penalty rather than a profile correlation; ``"affine_cut"``
is the profile cut after refitting every neuron's prediction on [prediction, own state, 1]
(:func:`_affine_cross_errors`), invariant to per-neuron speed and gain but measured worse (a
free own-state term lets any near-linear filter predict the other near-linear families).
``"wiring_cut"`` adds the connectome as a second view (:func:`wiring_motif_groups`): every
community's own sub-circuit signature vetoes profile merges of communities wired
differently, and wired groups with one wiring merge up to a looser profile distance. Not
adopted (benchmarks/results/motif_count_wiring_check*.json, dev check brains 1020-1039): it
finds the true count on 4 instead of 2 of 20 heterogeneous brains but on 10 instead of 12
plain ones, and on fresh dev brains 1040-1059 as many as the profile cut (3 and 2 of 20); it
raises the median motif ARI on every set (0.71 -> 0.83 heterogeneous, 0.92 -> 0.93 plain on
the check brains; docs/results/motifs.md).
Cost: O(N P^2 T) once for the per-community Gram matrices (a group's are sums of its
communities', so the EM iterations cost O(U P^2) for the fits), O(N V P T) for scoring under
at most V = 256 candidate communities' filters and linkage on those V: linear in N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_mesoscale.model.core import (
    MesoscaleNet,
    both_finite,
    frames_per_pass,
    previous_frames,
)

if TYPE_CHECKING:
    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.prepare import PreparedData

__all__ = [
    "AssignmentUnits",
    "community_units",
    "discover_assignment",
    "group_costs",
    "initial_unit_groups",
    "loss_motif_count",
    "pooled_loss",
    "profile_motif_count",
    "reassign",
    "reassign_after_epoch",
    "unit_errors",
    "wiring_motif_groups",
]


@dataclass
class AssignmentUnits:
    """The candidate domains the alternating assignment moves between filters.

    Attributes
    ----------
    unit : (N,) int64, the unit (community) of every neuron.
    slot : (N,) int64, the candidate slot of the field every neuron's unit uses.
    wiring : (U, 5) float, optional, every unit's own sub-circuit wiring signature
        (:func:`napari_mesoscale.model.initialise.community_wiring_features`; None without a
        connectome): the second view of ``discover_motif_count="wiring_cut"``.
    """

    unit: np.ndarray
    slot: np.ndarray
    wiring: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return int(self.unit.max()) + 1 if self.unit.size else 0


def _start_groups(
    data: PreparedData,
    cfg: ModelConfig,
    edges: np.ndarray,
    spatial: np.ndarray,
    partners: np.ndarray | None = None,
):
    """k-means motif groups of the dynamics features (``init="dynamics"``), else None."""
    from napari_mesoscale.model.initialise import (
        motif_features,
        motif_init,
        neighbour_correlation,
        per_neuron_ridge,
    )

    if cfg.init != "dynamics":
        return None
    ztr = data.z_neuron  # the initialisation frames only
    utr = None if data.u is None else data.u[data.init]
    pos_w = np.clip(neighbour_correlation(ztr, spatial), 0, None)
    ridge = per_neuron_ridge(ztr, edges, utr)
    feats = motif_features(ztr, ridge, edges, utr, spatial, pos_w, cfg, partners)
    return motif_init(feats, cfg.n_filters, seed=0)


def community_units(
    data: PreparedData,
    cfg: ModelConfig,
    grid: Any,
    edges: np.ndarray,
    seed: int,
    partners: np.ndarray | None = None,
) -> tuple[torch.Tensor, np.ndarray | None, AssignmentUnits]:
    """Units (communities of the lagged-correlation neighbour graph), their fields and start.

    With ``init="dynamics"`` the communities do not cross the k-means motif groups and each
    starts with its majority group; with ``init="random"`` they are built from correlations
    alone and each starts with a random filter. Returns the initial logits (N, Lm, B), the
    initial motif groups (None for a random start) and the units.
    """
    from napari_mesoscale.model.initialise import (
        group_neurons,
        lagged_affinity,
        local_edges,
        pick_fields,
    )

    n, b, positions = data.n_neurons, cfg.n_filters, data.positions
    init_r = float(cfg.init_radius) if cfg.init_radius else cfg.rf_diameter / 4
    spatial = local_edges(positions, init_r, cfg.init_neighbors)
    ztr = data.z_neuron  # the initialisation frames only
    groups = _start_groups(data, cfg, edges, spatial, partners)
    aff = lagged_affinity(ztr, spatial)
    if groups is not None:
        aff = aff * (groups[spatial[0]] == groups[spatial[1]])
    communities = group_neurons(n, spatial, aff, seed=seed)
    n_units = int(communities.max()) + 1
    if groups is None:
        label = np.random.default_rng(seed).integers(b, size=n_units)
    else:
        counts = np.zeros((n_units, b))
        np.add.at(counts, (communities, groups), 1.0)
        label = counts.argmax(1)
    slot = pick_fields(
        communities, label, grid.candidates, grid.mask, grid.centers, positions, cfg.rf_diameter
    )
    units = AssignmentUnits(communities, np.asarray(slot, dtype=np.int64))
    logits = torch.zeros(n, grid.candidates.shape[1], b)
    net_like = _LogitsHolder(logits)
    _set_logits(
        net_like, label[communities], units.slot, (cfg.init_strength, cfg.location_strength)
    )
    start = None if groups is None else label[communities]
    return net_like.logits, start, units


class _LogitsHolder:
    """Just enough of a net for :func:`_set_logits` before the net exists."""

    shared_field_logits = False

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


def _unit_context(z: torch.Tensor, unit: torch.Tensor, n_units: int) -> torch.Tensor:
    """Mean of (z, relu z) over every neuron's unit, (T, N, 2): the same input for all filters."""
    phi = torch.stack([z, torch.relu(z)], dim=-1)  # (T, N, 2)
    num = torch.zeros(z.shape[0], n_units, 2, dtype=z.dtype, device=z.device)
    num.index_add_(1, unit, phi)
    den = torch.zeros(n_units, dtype=z.dtype, device=z.device)
    den.index_add_(0, unit, torch.ones_like(unit, dtype=z.dtype))
    return (num / den.clamp(min=1)[None, :, None])[:, unit]


def _outputs(
    net: MesoscaleNet,
    z: torch.Tensor,
    u: torch.Tensor | None,
    slot: torch.Tensor,
    unit: torch.Tensor,
    n_units: int,
    z_prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """(T, N, B) next-state prediction of every filter for every neuron, interfaces at identity.

    The features are those of :meth:`MesoscaleNet.evaluate`, except that the context is the
    neuron's unit mean for every filter: an untried filter sees the same inputs as the current
    one (its own domain pool would be empty or hold other neurons). With ``linear_skip`` the
    per-neuron linear path is added (the same for every filter).
    """
    if net.input_lags == 2:
        z_prev = net.lagged(z, z_prev)
    f = _features(net, z, u, slot, unit, n_units, z_prev)
    t, n, width = f.shape
    out = net.bank(f[:, :, None, :].expand(t, n, net.n_filters, width))
    out = out + net.neuron_bias[:, None]
    if net.linear_skip:  # columns 0, 1 and 4 of the features: z, linear drive, stimulus drive
        out = out + net.linear_path(z, f[..., 1], f[..., 4], z_prev)[..., None]
    return out


@torch.no_grad()
def _filter_errors(
    net: MesoscaleNet,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    units: AssignmentUnits,
    frames: tuple[int, int],
    chunk: int = 64,
) -> torch.Tensor:
    """(N, B) summed one-step squared error of every neuron with every filter, frames t0..t1."""
    z, m, u = tensors
    dev = z.device
    slot = torch.as_tensor(units.slot, device=dev)
    unit = torch.as_tensor(units.unit, device=dev)
    n, b = z.shape[1], net.n_filters
    err = torch.zeros(n, b, dtype=torch.float64, device=dev)
    t0, t1 = frames
    chunk = frames_per_pass(n, b, chunk)
    for s in range(t0, t1 - 1, chunk):
        e = min(t1 - 1, s + chunk)
        prev = previous_frames(z, s, e) if net.input_lags == 2 else None
        u_s = None if u is None else u[s:e]
        out = _outputs(net, z[s:e], u_s, slot, unit, units.n_units, prev)
        mk = both_finite(m, s, e, z.dtype)
        err += ((out - z[s + 1 : e + 1, :, None]) ** 2 * mk[..., None]).sum(0).double()
    return err


def unit_errors(per_neuron: np.ndarray, unit: np.ndarray, n_units: int) -> np.ndarray:
    """(U, B) error of every unit with every filter: the sum over its members."""
    out = np.zeros((n_units, per_neuron.shape[1]))
    np.add.at(out, unit, per_neuron)
    return out


def _reseed_idle(
    net: MesoscaleNet, cost: np.ndarray, choice: np.ndarray, gen: np.random.Generator
) -> np.ndarray:
    """Give every idle filter the worse half of the worst-predicted group's units (a split)."""
    b = cost.shape[1]
    for idle in range(b):
        if (choice == idle).any():
            continue
        own = cost[np.arange(len(choice)), choice]
        totals = np.bincount(choice, weights=own, minlength=b)
        counts = np.bincount(choice, minlength=b)
        totals[counts < 2] = -np.inf
        worst = int(np.argmax(totals))
        if not np.isfinite(totals[worst]):
            break
        members = np.flatnonzero(choice == worst)
        # the worse half by error per unit relative to the group's best alternative
        ratio = own[members] / np.maximum(np.delete(cost[members], worst, 1).min(1), 1e-12)
        order = members[np.argsort(-ratio + 1e-9 * gen.standard_normal(len(members)))]
        choice[order[: max(1, len(members) // 2)]] = idle
        _copy_filter(net, worst, idle, gen)
    return choice


@torch.no_grad()
def _copy_filter(net: MesoscaleNet, src: int, dst: int, gen: np.random.Generator) -> None:
    """Filter ``dst`` becomes a perturbed copy of filter ``src`` (configurable banks only)."""
    bank = net.bank
    if not hasattr(bank, "w_in") or getattr(bank, "n_filters", 0) != net.n_filters:
        return
    for p in bank.parameters():
        if p.shape[0] == net.n_filters:
            noise = torch.as_tensor(gen.standard_normal(p[src].shape), dtype=p.dtype)
            p[dst] = p[src] + 0.02 * p[src].abs().mean() * noise.to(p.device)


def _unit_filter(filt: np.ndarray, units: AssignmentUnits) -> np.ndarray:
    """The majority filter of every unit's members, (U,)."""
    counts = np.zeros((units.n_units, int(filt.max()) + 1))
    np.add.at(counts, (units.unit, filt), 1.0)
    return counts.argmax(1)


def _hysteresis(cost: np.ndarray, current: np.ndarray, size: np.ndarray, margin: float):
    """Best filter per unit, but a unit stays unless the best beats its filter by ``margin``.

    ``cost`` sums log MSEs over members, so ``margin`` is the mean log-ratio of the errors
    (0.05 = about 5 % lower error per member) that a move must gain.
    """
    best = cost.argmin(1)
    stay_cost = cost[np.arange(len(current)), np.minimum(current, cost.shape[1] - 1)]
    gain = (stay_cost - cost[np.arange(len(best)), best]) / np.maximum(size, 1)
    return np.where(gain > margin, best, np.minimum(current, cost.shape[1] - 1))


def _prune(cost: np.ndarray, choice: np.ndarray, threshold: float, n_neurons: int) -> np.ndarray:
    """Merge filters whose units' move to their runner-up raises the loss by < threshold.

    ``cost`` sums log MSEs, so the rise is the mean log-ratio of the error per neuron.
    """
    if threshold <= 0:
        return choice
    total = float(n_neurons)
    while len(np.unique(choice)) > 1:
        used = np.unique(choice)
        rise = {}
        for f in used:
            members = np.flatnonzero(choice == f)
            others = cost[np.ix_(members, np.setdiff1d(used, [f]))].min(1)
            rise[f] = float((others - cost[members, f]).sum()) / max(total, 1e-12)
        f = min(rise, key=rise.get)
        if rise[f] >= threshold:
            break
        members = np.flatnonzero(choice == f)
        rest = np.setdiff1d(used, [f])
        choice[members] = rest[cost[np.ix_(members, rest)].argmin(1)]
    return choice


@torch.no_grad()
def reassign(
    net: MesoscaleNet,
    units: AssignmentUnits,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    frames: tuple[int, int],
    strengths: tuple[float, float],
    *,
    prune_threshold: float = 0.0,
    final: bool = False,
    margin: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """Move every unit to the filter with the lowest held-in one-step error; set the logits.

    Parameters
    ----------
    net : the network (its logits are overwritten).
    units : the units and their fields.
    tensors : (z, finite mask, stimulus or None) on the net's device, (T, N) / (T, S).
    frames : (t0, t1), the held-in frames to score on.
    strengths : (filter, field) logit scales, as in the initialisation.
    prune_threshold : at the ``final`` reassignment, merge filters whose removal raises the
        held-in loss by less than this fraction (0 = never merge).
    final : the last reassignment: prune; before it, idle filters are re-seeded instead.
    margin : a unit moves only when its best filter lowers its members' error by this mean
        log-ratio (hysteresis against noise in the scores).
    seed : randomness of the splits.

    Returns
    -------
    dict with ``moved`` (fraction of neurons whose filter changed), ``held_in`` (mean squared
    error with the new assignment, normalised units) and ``n_motifs`` (filters in use).
    """
    per_neuron = _filter_errors(net, tensors, units, frames).cpu().numpy()
    n_frames = max(1, frames[1] - frames[0] - 1)
    # per-neuron Gaussian likelihood with its own noise level: the sum of log MSEs, so that
    # loud neurons do not outvote the rest of their unit
    cost = unit_errors(np.log(per_neuron / n_frames + 1e-8), units.unit, units.n_units)
    size = np.bincount(units.unit, minlength=units.n_units).astype(float)
    _, _, before = net.choice()
    current = _unit_filter(before.cpu().numpy(), units)
    choice = _hysteresis(cost, current, size, margin)
    gen = np.random.default_rng(seed)
    if final:
        choice = _prune(cost, choice, prune_threshold, units.unit.size)
    else:
        mse = unit_errors(per_neuron, units.unit, units.n_units)
        choice = _reseed_idle(net, mse, choice, gen)
    filt = choice[units.unit]
    _set_logits(net, filt, units.slot, strengths)
    held_in = float(per_neuron[np.arange(len(filt)), filt].sum()) / (len(filt) * n_frames)
    moved = float((before.cpu().numpy() != filt).mean())
    return {"moved": moved, "held_in": held_in, "n_motifs": float(len(np.unique(choice)))}


@torch.no_grad()
def _set_logits(
    net: MesoscaleNet, filt: np.ndarray, slot: np.ndarray, strengths: tuple[float, float]
) -> None:
    n, lm, b = net.logits.shape
    logits = torch.zeros(n, lm, b)
    logits[torch.arange(n), :, torch.as_tensor(filt)] += strengths[0]
    logits[torch.arange(n), torch.as_tensor(slot), :] += strengths[1]
    net.logits.copy_(logits.to(net.logits.device))
    if net.shared_field_logits:
        net.field_logits.zero_()


def reassign_after_epoch(
    net: MesoscaleNet, units: AssignmentUnits, tensors: Any, cfg: ModelConfig, epoch: int, seed: int
) -> dict[str, float]:
    """Reassign after every ``reassign_every``-th epoch but the last (which trains the result).

    ``tensors`` is the training loop's recording on the device (``z``, ``mask``, ``u``,
    ``starts``). The scored frames move through the training block from one reassignment to
    the next. Returns the figures for the epoch's history row (empty when not reassigning).
    """
    every = cfg.reassign_every
    if (epoch + 1) % every or epoch + 1 >= cfg.epochs:
        return {}
    t0, t1 = int(tensors.starts[0]), int(tensors.starts[-1]) + 2
    length = min(cfg.reassign_frames, t1 - t0)
    offset = (epoch // every * length) % max(1, t1 - t0 - length + 1)
    frames = (t0 + offset, t0 + offset + length)
    final = epoch + 1 + every >= cfg.epochs
    figures = reassign(
        net,
        units,
        (tensors.z, tensors.mask, tensors.u),
        frames,
        (cfg.init_strength, cfg.location_strength),
        prune_threshold=cfg.prune_threshold,
        final=final,
        margin=cfg.reassign_margin,
        seed=seed * 7919 + epoch,
    )
    return {f"reassign_{key}": value for key, value in figures.items()}


# ------------------------------------------------------------------ discovery (assignment="em")
@dataclass
class _EmData:
    """What the discovery EM fits: features (T, N, F), targets (T, N) and loss weights (T, N)."""

    feats: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor


@torch.no_grad()
def _em_data(
    net: MesoscaleNet,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    units: AssignmentUnits,
    frames: tuple[int, int],
    n_frames: int,
    gen: np.random.Generator,
    max_elements: int = 2**23,
) -> _EmData:
    """Features of ``n_frames`` random frames of the training block (fewer when N is large).

    The weight of a neuron's squared error is its mask over its target variance, so that every
    neuron's loss is relative to its own scale (a loud neuron does not outvote its unit).
    """
    z, m, u = tensors
    dev = z.device
    n = z.shape[1]
    t0, t1 = frames
    budget = max(16, max_elements // max(1, n * net.n_features))
    count = int(min(n_frames, budget, t1 - t0 - 1))
    t = torch.as_tensor(np.sort(gen.choice(t1 - t0 - 1, count, replace=False)) + t0, device=dev)
    slot = torch.as_tensor(units.slot, device=dev)
    unit = torch.as_tensor(units.unit, device=dev)
    # x[t-1] stays out of the discovery's features even with input_lags=2 (training still
    # sees it): in them it lowered the motif ARI of dev-family brain 1000 from 1.00 to 0.80
    # and left brains 1001-1002 unchanged (benchmarks/results/motif_zoo_dev.json).
    feats = _features(net, z[t], None if u is None else u[t], slot, unit, units.n_units)
    # the whole next state, not what a linear_skip path leaves of it: the discovery groups
    # neurons by their dynamics, and a linear path's residual of linear families is noise
    target = z[t + 1] - net.neuron_bias.detach()[None]
    mk = m[t + 1] * m[t]
    mean = (target * mk).sum(0) / mk.sum(0).clamp(min=1)
    var = (((target - mean) ** 2) * mk).sum(0) / mk.sum(0).clamp(min=1)
    return _EmData(feats.detach(), target.detach(), (mk / var.clamp(min=1e-6)).detach())


def _features(
    net: MesoscaleNet,
    z: torch.Tensor,
    u: torch.Tensor | None,
    slot: torch.Tensor,
    unit: torch.Tensor,
    n_units: int,
    z_prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """(T, N, F) inputs of every filter for every neuron (see :func:`_outputs`); the previous
    state ``z_prev`` (T, N), when given, is the last feature."""
    t, n = z.shape
    drive = net.drive(z)
    s_drive = u @ net.stim_weight.T if net.n_stimulus and u is not None else torch.zeros_like(z)
    ctx = _unit_context(z, unit, n_units)
    relpos = net.relpos[torch.arange(n, device=z.device), slot]  # (N, 3)
    parts = [z[..., None], drive, s_drive[..., None], ctx, relpos[None].expand(t, n, 3)]
    if z_prev is not None:
        parts.append(z_prev[..., None])
    return torch.cat(parts, dim=-1)


def _unit_cost(err: torch.Tensor, units: AssignmentUnits) -> np.ndarray:
    """(U, B) mean log error over every unit's members (log: scale-free per neuron)."""
    log_err = np.log(err.double().cpu().numpy() + 1e-6)
    size = np.bincount(units.unit, minlength=units.n_units).astype(float)
    return unit_errors(log_err, units.unit, units.n_units) / np.maximum(size, 1)[:, None]


def _expand(feats: torch.Tensor, proj: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """[f, relu f, f^2, relu(f W + c), 1]: a random-feature linearisation of a filter."""
    hidden = torch.relu(feats @ proj + bias)
    return torch.cat(
        [feats, torch.relu(feats), feats**2, hidden, torch.ones_like(feats[..., :1])], dim=-1
    )


def _unit_normal_equations(
    phi: torch.Tensor, data: _EmData, rows: torch.Tensor, units: AssignmentUnits
) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, P, P) weighted Gram matrices and (U, P) right-hand sides of every unit, frames
    ``rows``: computed once, a group's are the sums of its units' (no pass over the neurons)."""
    p = phi.shape[-1]
    unit = torch.as_tensor(units.unit, device=phi.device)
    gram = torch.zeros(units.n_units, p, p, dtype=torch.float64, device=phi.device)
    rhs = torch.zeros(units.n_units, p, dtype=torch.float64, device=phi.device)
    for s in range(0, phi.shape[1], 256):
        x = phi[rows, s : s + 256].double().transpose(0, 1)  # (n, T, P)
        w = data.weight[rows, s : s + 256].double().T[..., None]  # (n, T, 1)
        y = data.target[rows, s : s + 256].double().T[..., None]
        # batched products per neuron: a three-operand einsum materialises (T, n, P, P)
        gram.index_add_(0, unit[s : s + 256], torch.bmm((x * w).transpose(1, 2), x))
        rhs.index_add_(0, unit[s : s + 256], (x * (w * y)).sum(1))
    return gram, rhs


def _ridge_solve(
    normal: tuple[torch.Tensor, torch.Tensor], labels: np.ndarray, alpha: float
) -> torch.Tensor:
    """(G, P) ridge coefficients of one filter per group of units (``labels``: (U,) groups)."""
    gram_u, rhs_u = normal
    n_groups = int(labels.max()) + 1
    index = torch.as_tensor(labels, device=gram_u.device)
    gram = torch.zeros(n_groups, *gram_u.shape[1:], dtype=gram_u.dtype, device=gram_u.device)
    rhs = torch.zeros(n_groups, rhs_u.shape[1], dtype=rhs_u.dtype, device=rhs_u.device)
    gram.index_add_(0, index, gram_u)
    rhs.index_add_(0, index, rhs_u)
    scale = torch.diagonal(gram, dim1=1, dim2=2).mean(1).clamp(min=1e-9)
    eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + alpha * scale[:, None, None] * eye, rhs).float()


def _cross_errors(
    phi: torch.Tensor, data: _EmData, rows: torch.Tensor, coef: torch.Tensor
) -> torch.Tensor:
    """(N, V) mean weighted error of every neuron under every candidate unit's filter."""
    out = []
    for s in range(0, phi.shape[1], 256):
        pred = torch.einsum("tnp,vp->tnv", phi[rows, s : s + 256], coef)
        e = (pred - data.target[rows, s : s + 256, None]) ** 2
        w = data.weight[rows, s : s + 256, None]
        out.append((e * w).sum(0) / (w > 0).sum(0).clamp(min=1))
    return torch.cat(out, 0)


def _affine_cross_errors(
    phi: torch.Tensor,
    data: _EmData,
    rows: torch.Tensor,
    coef: torch.Tensor,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """(N, V) mean weighted error of every neuron under every candidate unit's filter after a
    per-neuron affine refit: the target regressed on [prediction, own state, 1] (weighted
    least squares per neuron and filter, on the scored frames themselves).

    A neuron whose update is x + s (r + g (F - r) - x), with its own speed s and gain g, is
    fitted exactly by any filter that predicts F, whatever the filter's own neuron's s and g,
    so the cross-prediction between communities of one motif no longer depends on them.
    ``phi[..., 0]`` is the neuron's own state (the first feature of :func:`_features`).
    """
    out = []
    for s in range(0, phi.shape[1], 256):
        x = phi[rows, s : s + 256].double()  # (T, n, P)
        pred = torch.einsum("tnp,vp->tnv", x, coef.double())  # (T, n, V)
        z, w = x[..., 0], data.weight[rows, s : s + 256].double()
        y = data.target[rows, s : s + 256].double()
        wp = w[..., None] * pred
        shape = pred.shape[1:]
        # weighted sums over frames: Gram of [prediction, own state, 1] and its right side
        spp, spz, sp = (wp * pred).sum(0), (wp * z[..., None]).sum(0), wp.sum(0)
        szz, sz, s1 = [(w * v).sum(0)[:, None].expand(shape) for v in (z * z, z, 1.0 + 0 * z)]
        gram = torch.stack([
            torch.stack([spp, spz, sp], -1),
            torch.stack([spz, szz, sz], -1),
            torch.stack([sp, sz, s1], -1),
        ], -2)  # (n, V, 3, 3)
        sy = [(w * v * y).sum(0)[:, None].expand(shape) for v in (z, 1.0 + 0 * z)]
        rhs = torch.stack([(wp * y[..., None]).sum(0), *sy], -1)  # (n, V, 3)
        scale = torch.diagonal(gram, dim1=-2, dim2=-1).mean(-1).clamp(min=1e-12)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        beta = torch.linalg.solve(gram + ridge * scale[..., None, None] * eye, rhs)
        syy = (w * y * y).sum(0)[:, None]
        fitted = torch.einsum("nvi,nvij,nvj->nv", beta, gram, beta)
        resid = (syy - 2 * (beta * rhs).sum(-1) + fitted).clamp(min=0)
        out.append(resid / (w > 0).sum(0).clamp(min=1)[:, None])
    return torch.cat(out, 0).float()


def _linkage_groups(cost: np.ndarray, k: int) -> np.ndarray:
    """k groups of the U units by average linkage of the symmetric cross-prediction distance.

    ``cost[u, v]`` is unit u's mean log error under unit v's filter; the distance of u and v
    is how much worse each predicts the other than itself, summed over both directions (a
    noise unit is predicted well by any filter but its own filter predicts nothing else).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    u = cost.shape[0]
    if u <= k:
        return np.arange(u)
    rel = cost - np.diag(cost)[:, None]
    dist = np.clip(rel + rel.T, 0, None)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return fcluster(tree, t=k, criterion="maxclust") - 1


def _profile_linkage(cost: np.ndarray) -> np.ndarray:
    """Complete-linkage tree (scipy's (U-1, 4) format) of the units' cross-prediction profiles.

    A unit's profile is how much worse every unit's filter predicts it than its own (its row
    of ``cost``) beside how much worse its filter predicts every unit (its column); the
    distance of two units is one minus the correlation of their profiles.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    rel = cost - np.diag(cost)[:, None]
    dist = np.nan_to_num(pdist(np.hstack([rel, rel.T]), metric="correlation"), nan=1.0)
    return linkage(dist, method="complete")


def _profile_groups(cost: np.ndarray, k: int) -> np.ndarray:
    """k groups of the U units by complete linkage of their cross-prediction profiles.

    Units of one motif have correlated profiles (:func:`_profile_linkage`) even where the
    loss itself does not separate them (a pooled filter can fit two simple motifs at once
    while a heterogeneous motif is split, so the lowest pooled loss is not the true grouping;
    measured on the dev families).
    """
    from scipy.cluster.hierarchy import fcluster

    u = cost.shape[0]
    if u <= k:
        return np.arange(u)
    return fcluster(_profile_linkage(cost), t=k, criterion="maxclust") - 1


def profile_motif_count(cost: np.ndarray, max_motifs: int, cut_distance: float) -> int:
    """Number of motifs: the groups left when the profile tree is cut at ``cut_distance``.

    Every merge of the complete-linkage tree above ``cut_distance`` (profile correlation
    distance, :func:`_profile_linkage`) is undone, so any two units whose profiles correlate
    less than ``1 - cut_distance`` end up in different motifs; capped at ``max_motifs``.
    ``cost`` is the (U, U) cross-prediction cost of the candidate units.
    """
    u = cost.shape[0]
    if u <= 1:
        return max(1, min(u, max_motifs))
    heights = _profile_linkage(cost)[:, 2]
    return int(min(max_motifs, int((heights > cut_distance).sum()) + 1))


def _loss_linkage(cost: np.ndarray, quantile: float = 0.9) -> np.ndarray:
    """Complete-linkage tree of the units' symmetric cross-prediction loss, per-brain scaled.

    The distance of units u and v is the mean of how much worse v's filter predicts u than
    u's own and u's filter predicts v than v's own (mean log-error ratios, negative ones
    clipped to 0), divided by the ``quantile`` of these distances over all pairs of the
    brain: a cut is a fraction of the brain's typical between-motif penalty, so it does not
    depend on how predictable the brain's families are.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    rel = np.clip(cost - np.diag(cost)[:, None], 0, None)
    dist = 0.5 * (rel + rel.T)
    np.fill_diagonal(dist, 0.0)
    flat = squareform(dist, checks=False)
    return linkage(flat / max(float(np.quantile(flat, quantile)), 1e-12), method="complete")


def loss_motif_count(cost: np.ndarray, max_motifs: int, cut: float) -> int:
    """Number of motifs: the groups left when :func:`_loss_linkage`'s tree is cut at ``cut``
    (a fraction of the brain's 90th-percentile symmetric loss), at most ``max_motifs``."""
    u = cost.shape[0]
    if u <= 2:
        return max(1, min(u, max_motifs))
    heights = _loss_linkage(cost)[:, 2]
    return int(min(max_motifs, int((heights > cut).sum()) + 1))


def _wiring_scale(
    wiring: np.ndarray, labels: np.ndarray, use: np.ndarray, floor: float
) -> np.ndarray:
    """(Q,) spread of one motif's community signatures: per feature, the median over the
    ``labels`` groups (two or more ``use`` members) of the signatures' standard deviation
    inside the group, at least ``floor`` (the median keeps a group that mixes two wirings
    from setting the scale)."""
    spreads = [
        wiring[m].std(0, ddof=1)
        for g in np.unique(labels)
        if (m := np.flatnonzero((labels == g) & use)).size >= 2
    ]
    scale = np.median(spreads, axis=0) if spreads else np.zeros(wiring.shape[1])
    return np.maximum(scale, floor)


def wiring_motif_groups(
    cost: np.ndarray,
    wiring: np.ndarray,
    size: np.ndarray,
    max_motifs: int,
    cut_distance: float = 0.1,
    merge_distance: float = 0.5,
    tolerance: float = 5.0,
    min_size: int = 3,
    floor: float = 0.02,
    veto_tolerance: float | None = None,
) -> np.ndarray:
    """Motif groups of the units from both views: dynamics profiles and sub-circuit wiring.

    Instances of one family share the rule that wires them, and unlike the dynamics their
    wiring does not change with a neuron's speed or gain. Units with ``min_size`` members or
    more are *wired* (a synapse inside the unit: ``wiring`` row not all zero) or *unwired*;
    smaller ones are unknown (too few members for a signature) and agree with any unit.

    1. Veto: two known units disagree when one is wired and the other not, or when both are
       wired and some signature feature differs by more than ``veto_tolerance`` (None:
       ``tolerance``; a large value keeps only the wired / unwired veto) x sqrt(2) x its
       scale (:func:`_wiring_scale` over the plain profile cut's groups, at least
       ``floor``). Their profile distance (:func:`_profile_linkage`, at most 2) gets 2
       added, so the complete-linkage tree cut at ``cut_distance`` never joins them.
    2. Merge: two groups whose known units are all wired merge, closest first, while their
       complete-linkage profile distance is below ``merge_distance`` (a looser cut) and their
       mean signatures differ by at most ``tolerance`` standard errors (scale x sqrt(1 / n_a
       + 1 / n_b), n the groups' known units) on every feature. Unwired groups never merge
       here: their empty signatures say nothing, the dynamics alone separate them.

    More groups than ``max_motifs``: the vetoed tree is cut into ``max_motifs`` instead.
    ``cost`` is the (U, U) cross-prediction cost of the units, ``wiring`` (U, Q) their
    signatures, ``size`` (U,) their member counts. Returns (U,) labels 0..G-1.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform

    u = cost.shape[0]
    if u <= 1:
        return np.zeros(u, dtype=np.int64)
    rel = cost - np.diag(cost)[:, None]
    dist = squareform(np.nan_to_num(pdist(np.hstack([rel, rel.T]), metric="correlation"), nan=1.0))
    wiring = np.asarray(wiring, dtype=np.float64)
    wired = np.abs(wiring).sum(1) > 0
    known = np.asarray(size) >= min_size
    plain = fcluster(linkage(squareform(dist, checks=False), "complete"), cut_distance,
                     "distance")
    scale = _wiring_scale(wiring, plain, wired & known, floor)
    veto_at = tolerance if veto_tolerance is None else veto_tolerance
    differ = (np.abs(wiring[:, None] - wiring[None]) / (scale * np.sqrt(2.0))).max(-1) > veto_at
    both = known[:, None] & known[None]
    veto = both & ((wired[:, None] != wired[None]) | (wired[:, None] & wired[None] & differ))
    dist = np.where(veto, 2.0 + dist, dist)  # above any profile distance, ties kept apart
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), "complete")
    labels = fcluster(tree, cut_distance, "distance") - 1
    labels = _merge_wired_groups(
        dist, labels, wiring, known, wired, scale, merge_distance, tolerance
    )
    if int(labels.max()) + 1 > max_motifs:
        labels = fcluster(tree, max_motifs, "maxclust") - 1
    return labels


def _merge_wired_groups(
    dist: np.ndarray,
    labels: np.ndarray,
    wiring: np.ndarray,
    known: np.ndarray,
    wired: np.ndarray,
    scale: np.ndarray,
    merge_distance: float,
    tolerance: float,
) -> np.ndarray:
    """Step 2 of :func:`wiring_motif_groups`: merge the closest pair of all-wired groups with
    one wiring while their complete-linkage distance is below ``merge_distance``. The group
    distances follow the Lance-Williams update of complete linkage (the larger of the two),
    so every step costs O(G^2 Q) for G groups and Q signature features."""
    n_groups = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(n_groups))
    sub = dist[np.ix_(order, order)]
    gd = np.maximum.reduceat(np.maximum.reduceat(sub, starts, axis=0), starts, axis=1)
    use = known.astype(float)
    count = np.bincount(labels, use, n_groups)
    mean = np.stack(
        [np.bincount(labels, use * wiring[:, q], n_groups) for q in range(wiring.shape[1])], 1
    ) / np.maximum(count, 1)[:, None]
    ok = (count > 0) & (np.bincount(labels, known & ~wired, n_groups) == 0)
    ids = np.arange(n_groups)  # the label each remaining group carries
    while ids.size > 1:
        err = scale * np.sqrt(1 / np.maximum(count, 1)[:, None, None]
                              + 1 / np.maximum(count, 1)[None, :, None])
        same = (np.abs(mean[:, None] - mean[None]) / err).max(-1) <= tolerance
        allowed = np.triu(ok[:, None] & ok[None] & same & (gd < merge_distance), 1)
        if not allowed.any():
            break
        a, b = np.unravel_index(np.argmin(np.where(allowed, gd, np.inf)), gd.shape)
        labels = np.where(labels == ids[b], ids[a], labels)
        mean[a] = (count[a] * mean[a] + count[b] * mean[b]) / (count[a] + count[b])
        count[a] += count[b]
        gd[a] = gd[:, a] = np.maximum(gd[a], gd[b])
        keep = np.arange(ids.size) != b
        gd, mean, count, ok, ids = gd[keep][:, keep], mean[keep], count[keep], ok[keep], ids[keep]
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _group_ridge_em(
    phi: torch.Tensor,
    data: _EmData,
    rows: tuple[torch.Tensor, torch.Tensor],
    normal: tuple[torch.Tensor, torch.Tensor],
    units: AssignmentUnits,
    labels: np.ndarray,
    k: int,
    alpha: float,
    iterations: int,
) -> tuple[np.ndarray, float]:
    """Hard EM with one pooled (linearised) filter per group: fit on ``rows[0]``, move every
    unit to the group whose filter predicts it best on ``rows[1]``. Returns labels, loss."""
    loss = np.inf
    for _ in range(iterations):
        cost = group_costs(phi, data, rows, normal, units, labels, k, alpha)
        new = cost.argmin(1)
        loss = pooled_loss(cost, new, units)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, loss


def group_costs(
    phi: torch.Tensor,
    data: _EmData,
    rows: tuple[torch.Tensor, torch.Tensor],
    normal: tuple[torch.Tensor, torch.Tensor],
    units: AssignmentUnits,
    labels: np.ndarray,
    k: int,
    alpha: float,
) -> np.ndarray:
    """(U, >= k) held-in cost of every unit under the pooled filter of every group of
    ``labels`` (fitted on ``rows[0]``, scored on ``rows[1]``)."""
    coef = _ridge_solve(normal, labels, alpha)
    if coef.shape[0] < k:
        coef = torch.cat([coef, coef[:1].expand(k - coef.shape[0], -1)], 0)
    return _unit_cost(_cross_errors(phi, data, rows[1], coef), units)


def pooled_loss(cost: np.ndarray, labels: np.ndarray, units: AssignmentUnits) -> float:
    """Held-in loss of ``labels`` under ``cost``, averaged over neurons (units by size)."""
    size = np.bincount(units.unit, minlength=units.n_units).astype(float)
    return float((cost[np.arange(len(labels)), labels] * size).sum() / size.sum())


def _plus_plus_labels(cost: np.ndarray, size: np.ndarray, k: int, rng) -> np.ndarray:
    """Labels from k seed units drawn k-means++-style: the next seed is drawn with probability
    growing with how much worse the seeds so far predict a unit than its own filter."""
    rel = np.clip(cost - np.diag(cost)[:, None], 0, None)
    seeds = [int(rng.choice(len(size), p=size / size.sum()))]
    while len(seeds) < min(k, len(size)):
        gap = rel[:, seeds].min(1) ** 2 * size
        if gap.sum() <= 0:
            break
        seeds.append(int(rng.choice(len(size), p=gap / gap.sum())))
    return cost[:, seeds].argmin(1)


def discover_assignment(
    net: MesoscaleNet,
    units: AssignmentUnits,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    frames: tuple[int, int],
    cfg: ModelConfig,
    seed: int = 0,
) -> dict[str, float]:
    """Find the motifs by prediction loss before training (``assignment="em"``).

    Every unit (community) gets its own linearised filter: a ridge regression of its members'
    next state on the filters' inputs (:func:`_features`) and a fixed random-feature
    expansion of them (:func:`_expand`), fitted on even frames of a random stretch of the
    training block; every unit's filter then predicts every other unit on the odd frames
    (held-in), each neuron's error normalised by its variance and averaged in log over the
    unit. With ``discover_grouping="profile"`` (the default) complete linkage of the
    correlation between units' cross-prediction profiles (:func:`_profile_groups`) starts hard
    EM with one pooled filter per group (``discover_iterations`` alternations of fitting the
    groups' filters and moving every unit to the group that predicts it best). With
    ``"loss"``, average linkage of the symmetrised cross-prediction loss and
    ``discover_restarts`` draws of k-means++ seeds on it start the EM, and the start ending
    with the lowest held-in loss wins. The number of groups is ``n_filters``, or with
    ``discover_motif_count="profile_cut"`` the count of :func:`profile_motif_count` (at most
    ``n_filters``); with ``"wiring_cut"`` the groups of :func:`wiring_motif_groups` start the
    EM (``units.wiring`` None, i.e. no connectome: the profile cut). With
    ``discover_initial_start`` the initialisation's own grouping (:func:`initial_unit_groups`)
    starts one more EM and the start ending with the lowest held-in loss wins. The groups
    become the assignment logits. With ``input_lags=2`` the
    linearised filters still see the one-step features only (see :func:`_em_data`).
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    data = _em_data(net, tensors, units, frames, 2 * cfg.reassign_frames, rng)
    f = data.feats.shape[-1]
    proj = torch.randn(f, 32, generator=gen).to(data.feats) / f**0.5
    phi = _expand(data.feats, proj, 0.5 * torch.randn(32, generator=gen).to(data.feats))
    rows = (torch.arange(0, phi.shape[0], 2), torch.arange(1, phi.shape[0], 2))
    k, alpha, iters = cfg.n_filters, 1e-3, cfg.discover_iterations
    candidates = _candidate_units(units, 256)
    normal = _unit_normal_equations(phi, data, rows[0], units)
    coef = _ridge_solve(normal, np.arange(units.n_units), alpha)[candidates]
    cost = _unit_cost(_cross_errors(phi, data, rows[1], coef), units)  # (U, V)
    size = np.bincount(units.unit, minlength=units.n_units).astype(float)
    square = cost[candidates]
    if cfg.discover_motif_count in ("profile_cut", "merge_test", "merge_t"):
        k = profile_motif_count(square, cfg.n_filters, cfg.discover_cut_distance)
    elif cfg.discover_motif_count == "loss_cut":
        k = loss_motif_count(square, cfg.n_filters, cfg.discover_loss_cut)
    elif cfg.discover_motif_count == "affine_cut":
        affine = _unit_cost(_affine_cross_errors(phi, data, rows[1], coef), units)[candidates]
        k = profile_motif_count(affine, cfg.n_filters, cfg.discover_affine_cut_distance)
    wiring_start = None
    if cfg.discover_motif_count == "wiring_cut" and units.wiring is None:
        k = profile_motif_count(square, cfg.n_filters, cfg.discover_cut_distance)
    elif cfg.discover_motif_count == "wiring_cut":
        wiring_start = wiring_motif_groups(
            square, units.wiring[candidates], size[candidates], cfg.n_filters,
            cfg.discover_cut_distance, cfg.discover_wiring_merge_distance,
            cfg.discover_wiring_tolerance, veto_tolerance=cfg.discover_wiring_veto_tolerance,
        )
        k = int(wiring_start.max()) + 1
    if wiring_start is not None:
        starts = [wiring_start]
    elif cfg.discover_grouping == "profile":
        starts = [_profile_groups(square, k)]
    else:
        starts = [_linkage_groups(square, k)]
        starts += [
            _plus_plus_labels(square, size[candidates], k, rng)
            for _ in range(cfg.discover_restarts)
        ]
    full_starts = [_extend_labels(cost, candidates, labels, k) for labels in starts]
    if cfg.discover_initial_start:
        full_starts.append(initial_unit_groups(net, units))
    best_loss, best, best_start = np.inf, None, 0
    for i, full in enumerate(full_starts):
        labels, loss = _group_ridge_em(phi, data, rows, normal, units, full, k, alpha, iters)
        if loss < best_loss:
            best_loss, best, best_start = loss, labels, i
    if cfg.discover_motif_count in ("merge_test", "merge_t"):
        statistic = "t" if cfg.discover_motif_count == "merge_t" else "mean"
        threshold = cfg.discover_merge_t if statistic == "t" else cfg.discover_merge_tolerance
        best = merge_indistinct_groups(
            phi, data, rows, normal, units, best, alpha, threshold, statistic
        )
        k = int(best.max()) + 1
        best, best_loss = _group_ridge_em(phi, data, rows, normal, units, best, k, alpha, iters)
    _set_logits(net, best[units.unit], units.slot, (cfg.init_strength, cfg.location_strength))
    return {
        "discover_loss": best_loss,
        "n_motifs": float(len(np.unique(best))),
        "discover_k": float(k),
        "discover_from_initial": float(cfg.discover_initial_start and best_start == len(starts)),
    }


def initial_unit_groups(net: MesoscaleNet, units: AssignmentUnits) -> np.ndarray:
    """(U,) every unit's group under the net's assignment before the discovery (the
    initialisation's): the filter most of its neurons use, numbered 0.. in order of use."""
    filt = net.logits.detach().sum(1).argmax(-1).cpu().numpy()
    votes = np.zeros((units.n_units, net.logits.shape[-1]))
    np.add.at(votes, (units.unit, filt), 1)
    return np.unique(votes.argmax(1), return_inverse=True)[1].astype(np.int64)


def merge_indistinct_groups(
    phi: torch.Tensor,
    data: _EmData,
    rows: tuple[torch.Tensor, torch.Tensor],
    normal: tuple[torch.Tensor, torch.Tensor],
    units: AssignmentUnits,
    labels: np.ndarray,
    alpha: float,
    tolerance: float,
    statistic: str = "mean",
) -> np.ndarray:
    """Merge groups whose pooled filter predicts both as well as their own filters.

    For every pair of groups a pooled (linearised) filter is fitted on ``rows[0]`` and scored
    on the held-out ``rows[1]``; every neuron's increase of log error over its own group's
    filter is summarised per group by its mean (``statistic="mean"``: 0.02 = 2 % more
    error) or its paired t statistic (``"t"``: mean over standard error). A pair's cost is
    the larger of its two groups'; the cheapest pair merges while its cost is below
    ``tolerance``. Returns the (U,) labels renumbered 0..G-1.
    """
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() > 0:
        n_groups = int(labels.max()) + 1
        pairs = [(a, b) for a in range(n_groups) for b in range(a + 1, n_groups)]
        outside = [((labels != a) & (labels != b)).astype(int) for a, b in pairs]
        pooled = [_ridge_solve(normal, rest, alpha)[0] for rest in outside]
        coef = torch.cat([_ridge_solve(normal, labels, alpha), torch.stack(pooled)], 0)
        log_err = np.log(_cross_errors(phi, data, rows[1], coef).double().cpu().numpy() + 1e-6)
        group = labels[units.unit]
        increase = log_err[:, n_groups:] - log_err[np.arange(len(group)), group][:, None]
        worst = np.array([
            max(_summary(increase[group == g, p], statistic) for g in pair)
            for p, pair in enumerate(pairs)
        ])
        p = int(np.argmin(worst))
        if worst[p] >= tolerance:
            break
        merged = np.where(labels == pairs[p][1], pairs[p][0], labels)
        labels = np.unique(merged, return_inverse=True)[1]
    return labels


def _summary(increase: np.ndarray, statistic: str) -> float:
    """Mean, or paired t statistic, of the neurons' increases of log error."""
    if statistic == "mean" or increase.size < 2:
        return float(increase.mean()) if increase.size else 0.0
    return float(increase.mean() / (increase.std(ddof=1) / np.sqrt(increase.size) + 1e-12))


def _candidate_units(units: AssignmentUnits, limit: int) -> np.ndarray:
    """The largest ``limit`` units: their filters are the ones every unit is scored under
    (keeps the cross-prediction linear in N)."""
    size = np.bincount(units.unit, minlength=units.n_units)
    return np.sort(np.argsort(-size, kind="stable")[:limit])


def _extend_labels(cost: np.ndarray, candidates: np.ndarray, labels: np.ndarray, k: int):
    """Labels of all units from those of the candidates: the group whose candidates' filters
    predict the unit best (mean log error)."""
    if len(candidates) == cost.shape[0]:
        return labels
    score = np.full((cost.shape[0], k), np.inf)
    for g in np.unique(labels):
        score[:, g] = cost[:, labels == g].mean(1)
    out = score.argmin(1)
    out[candidates] = labels
    return out
