"""Fit stage 3, *train*: Adam over windows of the training block, with early stopping.

Within a window the first step is teacher-forced and the next ``rollout - 1`` steps feed the
model's own prediction back (truncated back-propagation through time). The softmax
temperature of the assignment is annealed, then the last epochs run straight-through one-hot
assignments. Early stopping keeps the state with the best validation one-step error reached
after annealing.

Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
``torch.nn.parallel.DistributedDataParallel`` (gloo on CPU, NCCL on CUDA); every rank takes a
slice of each global batch of windows and the data term is rescaled so that the averaged
gradient equals the single-process one. Only rank 0 calls the progress callback; a cancel
there is agreed by every rank at the same step.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_mesoscale.io import atomic_path
from napari_mesoscale.io.atomic import remove_stale_temporaries
from napari_mesoscale.io.torch_files import load_torch_file
from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import (
    MesoscaleNet,
    both_finite,
    frames_per_pass,
    previous_frames,
)
from napari_mesoscale.model.prepare import PreparedData
from napari_mesoscale.model.reassign import (
    AssignmentUnits,
    discover_assignment,
    reassign_after_epoch,
)
from napari_mesoscale.progress import Cancelled, Progress

__all__ = ["CHECKPOINT_NAME", "RunOptions", "TrainingState", "dist_info", "train_model"]

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class RunOptions:
    """Where and how one training run happens (not hyper-parameters: not saved with the fit)."""

    device: torch.device
    seed: int = 0
    checkpoint_dir: str | os.PathLike | None = None
    resume: bool = False
    rank: int = 0
    world: int = 1


@dataclass
class TrainingState:
    """What changes while training: optimiser, best state, history and how training ended."""

    opt: torch.optim.Optimizer
    start_epoch: int = 0
    best_val: float = math.inf
    best_state: dict | None = None
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    stopped: str = "completed"
    #: ``linear_skip``: validation loss of the untrained state (the linear start), else None
    start_val: float | None = None


@dataclass
class _Tensors:
    """The recording on the training device and the window starts of the training block."""

    z: torch.Tensor
    mask: torch.Tensor
    u: torch.Tensor | None
    starts: np.ndarray
    steps: int
    window: int
    val: tuple[int, int]
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None


class _LossModule(nn.Module):
    """Wraps the net so that one ``forward`` returns the loss (what DDP needs)."""

    def __init__(self, net: MesoscaleNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        z: torch.Tensor,
        m: torch.Tensor,
        u: torch.Tensor | None,
        tau: float,
        mode: str,
        cfg: ModelConfig,
        data_scale: float,
        balance_weight: float,
        n_roll: int = 0,
        roll_scale: float = 1.0,
        denom: torch.Tensor | None = None,
        regularise: bool = True,
        z_prev: torch.Tensor | None = None,
        bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
        probe_rows: tuple[torch.Tensor, float] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        net = self.net
        # z, m: (K+1, Bt, N) windows (filled state, finite-mask); u: (K+1, Bt, S) or None.
        # z_prev: (Bt, N) the frame before each window (input_lags=2), else None.
        # A micro-batch passes the whole batch's ``denom`` and adds the regularisers once.
        # probe_rows: (rows of this pass that run the range probe, weight), None = every
        # rollout window with weight 1 (range_probe_share=1).
        slots, pi = net.routed(tau, mode, cfg.routing)
        tgt, msk = z[1], m[1]
        denom = msk.sum().clamp(min=1) if denom is None else denom
        out, pred = net.evaluate(z[0], None if u is None else u[0], pi, slots, z_prev)
        err_pred = ((pred - tgt) ** 2 * msk).sum() / denom
        err_local = (((out - tgt[..., None, None]) ** 2) * pi).sum(dim=(-1, -2))
        err_local = (err_local * msk).sum() / denom
        terms = {"prediction": err_pred, "local": err_local}
        terms["rollout"] = _rollout_error(net, z, m, u, pred, pi, slots, cfg, n_roll, roll_scale)
        if cfg.lambda_range > 0 and bounds is not None:
            probe = (z[0], None if u is None else u[0], z_prev)
            terms["range"] = _range_penalty(
                net, probe, pi, slots, cfg, n_roll, roll_scale, bounds, probe_rows
            )
        regs = _regularisers(net, tau)
        terms.update(regs if regularise else {k: torch.zeros_like(v) for k, v in regs.items()})
        data = cfg.lambda_prediction * err_pred + cfg.lambda_local * err_local
        reg = (
            cfg.lambda_entropy * terms["entropy"]
            + cfg.lambda_sparsity * terms["sparsity"]
            + cfg.lambda_balance * balance_weight * terms["balance"]
            + cfg.lambda_complexity * terms["complexity"]
            + cfg.lambda_interface * terms["interface"]
        )
        total = data * data_scale + cfg.lambda_rollout * terms["rollout"] + reg
        if "range" in terms:
            total = total + cfg.lambda_range * terms["range"]
        return total, terms


def _rollout_error(
    net: MesoscaleNet,
    z: torch.Tensor,
    m: torch.Tensor,
    u: torch.Tensor | None,
    pred: torch.Tensor,
    pi: torch.Tensor,
    slots: torch.Tensor,
    cfg: ModelConfig,
    n_roll: int,
    roll_scale: float,
) -> torch.Tensor:
    """Free-running error of the first ``n_roll`` windows (this rank's share of the rollout).

    With ``input_lags=2`` the previous state is carried: the recorded first frame, then the
    model's own predictions.
    """
    roll = torch.zeros((), device=z.device)
    k = z.shape[0] - 1
    nb = int(n_roll)
    if k <= 1 or cfg.lambda_rollout <= 0 or nb <= 0:
        return roll
    previous, state = z[0, :nb], pred[:nb]
    for s in range(1, k):
        u_s = None if u is None else u[s, :nb]
        previous, state = state, net.evaluate(state, u_s, pi, slots, previous)[1]
        ms = m[s + 1, :nb]
        per_frame = ((state - z[s + 1, :nb]) ** 2 * ms).sum(-1) / ms.sum(-1).clamp(min=1)
        roll = roll + per_frame.sum()
    return roll * roll_scale / (k - 1)


def _range_penalty(
    net: MesoscaleNet,
    probe: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    pi: torch.Tensor,
    slots: torch.Tensor,
    cfg: ModelConfig,
    n_roll: int,
    roll_scale: float,
    bounds: tuple[torch.Tensor, torch.Tensor],
    probe_rows: tuple[torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """Squared excess beyond the training range of predictions from out-of-range states.

    The first ``n_roll`` windows' states (z, u, z_prev) are pushed ``range_probe_scale`` times
    further from each neuron's training-range midpoint. A filter whose response grows
    without bound (a chain member repeating its predecessor with a gain above one beyond the
    recorded range) amplifies a pulse at every hop of a free-running rollout; the penalty asks
    for a response that returns into the range instead. The assignment is detached: the term
    shapes the filters and interfaces, never which filter a neuron uses.

    ``probe_rows`` = (rows, weight): only those rollout windows are probed and their sum is
    multiplied by ``weight`` (windows of the whole rollout / windows probed), so that the
    expected penalty of a random share equals the penalty of them all.
    """
    z0, u0, z_prev = probe
    nb = int(n_roll)
    rows, weight = (slice(0, nb), 1.0) if probe_rows is None else probe_rows
    if nb <= 0 or (probe_rows is not None and len(rows) == 0):
        return torch.zeros((), device=z0.device)
    lo, hi = bounds
    mid, scale = 0.5 * (lo + hi), cfg.range_probe_scale
    band = cfg.range_margin * (hi - lo)
    state = mid + scale * (z0[rows] - mid)
    previous = None if z_prev is None else mid + scale * (z_prev[rows] - mid)
    u_b = None if u0 is None else u0[rows]
    pred = net.evaluate(state, u_b, pi.detach(), slots, previous)[1]
    excess = torch.relu(pred - (hi + band)) + torch.relu((lo - band) - pred)
    penalty = excess.pow(2).mean(-1).sum() * roll_scale
    return penalty if probe_rows is None else penalty * weight


def probe_windows(
    n_roll_global: int, share: float, seed: int, rank: int = 0, world: int = 1
) -> tuple[np.ndarray, float] | None:
    """This rank's local rollout windows that run the range probe, and their weight.

    A random ``share`` of the ``n_roll_global`` rollout windows of a step (at least one),
    drawn from ``seed`` (deterministic per step); ``weight`` = windows / windows drawn keeps
    the penalty's expectation. ``None`` for ``share >= 1`` (every window, weight 1).
    """
    if share >= 1.0 or n_roll_global <= 0:
        return None
    drawn = max(1, int(round(share * n_roll_global)))
    g = torch.Generator().manual_seed(int(seed))
    chosen = np.sort(torch.randperm(n_roll_global, generator=g)[:drawn].numpy())
    local = (chosen[chosen % world == rank] - rank) // world
    return local.astype(np.int64), n_roll_global / drawn


def _regularisers(net: MesoscaleNet, tau: float) -> dict[str, torch.Tensor]:
    soft = net.assignment(tau, "soft")
    n = soft.shape[0]
    flat = soft.reshape(n, -1)
    usage_n = soft.sum(1)  # (N, B)
    usage = usage_n.mean(0)
    return {
        "entropy": -(flat * torch.log(flat.clamp(min=1e-12))).sum(-1).mean(),
        "sparsity": usage_n.pow(2).mean(0).clamp(min=1e-12).sqrt().sum(),
        "balance": (usage * torch.log(usage.clamp(min=1e-12) * usage.numel())).sum(),
        "complexity": net.bank.complexity().sum(),
        "interface": net.interface_penalty(),
    }


def _schedule(cfg: ModelConfig, epoch: int) -> tuple[float, str, float, bool]:
    """Temperature, assignment mode, balance weight and whether the assignment is frozen."""
    anneal_epochs = max(1, int(round(cfg.anneal_fraction * cfg.epochs)))
    start = cfg.freeze_assignment_epochs
    frac = min(1.0, max(0.0, (epoch - start) / max(1, anneal_epochs - start)))
    tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac
    hard_start = cfg.epochs - int(round(cfg.hard_fraction * cfg.epochs))
    mode = "straight_through" if epoch >= max(hard_start, anneal_epochs) else "soft"
    balance_w = 1.0 - frac
    frozen = epoch < cfg.freeze_assignment_epochs or keeps_initial_assignment(cfg)
    return tau, mode, balance_w, frozen


def keeps_initial_assignment(cfg: ModelConfig) -> bool:
    """Whether the assignment logits stay at their initialisation for the whole fit
    (``activity_assignment="initial"`` on activity from the dynamics start; a random start has
    nothing to keep, and the calcium path freezes them through ``freeze_assignment_epochs``
    instead, see ``observation.calcium_config``)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment == "initial"


def keeps_initial_motifs(cfg: ModelConfig) -> bool:
    """Whether every neuron's filter stays the initialisation's while its field learns
    (``activity_assignment="motifs"``, and ``"motifs_moved"`` until training ends, on activity
    from the dynamics start)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment in ("motifs", "motifs_moved")


def validates_assignment(cfg: ModelConfig) -> bool:
    """Whether the fit trains twice, keeping the initial motifs and training the assignment,
    and keeps one by validation error (``activity_assignment="validated"`` on activity from
    the dynamics start; see :mod:`napari_mesoscale.model.validated_assignment`)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment == "validated"


def restores_assignment(cfg: ModelConfig) -> bool:
    """Whether the trained assignment's moves that did not lower a neuron's validation error
    go back to the initial filter after training (``activity_assignment="restored"`` on
    activity from the dynamics start; see :mod:`napari_mesoscale.model.restored_assignment`)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment == "restored"


def reverts_assignment(cfg: ModelConfig) -> bool:
    """Whether the trained fit's moves off the initial filters are reverted and the filters
    retrained around the initial motifs (``activity_assignment="reverted"`` on activity from
    the dynamics start; see :mod:`napari_mesoscale.model.reverted_assignment`)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment == "reverted"


def moves_assignment(cfg: ModelConfig) -> bool:
    """Whether neurons move to another filter after the kept-motif training where it lowers
    their validation error by more than ``move_margin`` (``activity_assignment="motifs_moved"``
    on activity from the dynamics start; see :mod:`napari_mesoscale.model.moved_assignment`)."""
    return _kept_on_activity(cfg) and cfg.activity_assignment == "motifs_moved"


def _kept_on_activity(cfg: ModelConfig) -> bool:
    return cfg.observation == "activity" and cfg.init == "dynamics" and cfg.assignment == "gradient"


def other_filters(groups: np.ndarray, n_filters: int) -> torch.Tensor:
    """(N, 1, B) bool: every filter but the neuron's own (``groups``), for every field."""
    other = torch.ones(len(groups), 1, n_filters, dtype=torch.bool)
    other[np.arange(len(groups)), :, np.asarray(groups)] = False
    return other


def lock_motifs(net: MesoscaleNet, groups: np.ndarray) -> Any:
    """Zero the gradient of the logits of every filter but the neuron's own (``groups``) while
    training (``initial_model.lock_motif_logits`` has set them ``MOTIF_LOCK`` below the rest),
    so no neuron's filter can change; returns the hook's handle (``.remove()`` ends it)."""
    locked = other_filters(groups, net.logits.shape[-1]).to(net.logits.device)
    return net.logits.register_hook(lambda grad: grad.masked_fill(locked, 0.0))


def _hard_start(cfg: ModelConfig) -> int:
    anneal_end = max(1, int(round(cfg.anneal_fraction * cfg.epochs)))
    return max(anneal_end, cfg.epochs - int(round(cfg.hard_fraction * cfg.epochs)))


def dist_info() -> tuple[int, int, bool]:
    """(rank, world_size, initialised_here) — initialises torch.distributed under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


# ---------------------------------------------------------------------------- the loop
def train_model(
    net: MesoscaleNet,
    data: PreparedData,
    cfg: ModelConfig,
    run: RunOptions,
    progress: Progress,
    units: AssignmentUnits | None = None,
    kept_motifs: np.ndarray | None = None,
) -> TrainingState:
    """Train ``net`` in place; return the state (history, ``stopped``).

    ``units`` (``assignment="alternating"``): the communities reassigned between epochs.
    ``kept_motifs`` (``activity_assignment="motifs"``): every neuron's initial motif group,
    whose filter it keeps.

    ``progress`` covers the whole of training: epoch ``e``, step ``s`` of ``steps`` reports
    the fraction ``(e + (s + 1) / steps) / epochs``. A cancel (callback returned False or
    raised a :class:`~napari_mesoscale.progress.Cancelled`) ends training with
    ``stopped == "cancelled"`` and the current (not the best) weights.
    """
    torch.manual_seed(run.seed)
    net.to(run.device)
    tensors = _to_device(data, cfg, run.device)
    module: nn.Module = _LossModule(net)
    if run.world > 1:
        module = nn.parallel.DistributedDataParallel(module)
    state = TrainingState(opt=_optimiser(net, cfg))
    ckpt_path = Path(run.checkpoint_dir) / CHECKPOINT_NAME if run.checkpoint_dir else None
    if ckpt_path is not None and run.rank == 0:
        remove_stale_temporaries(ckpt_path)  # a killed run's partial writes, even if none follows
    if run.resume and ckpt_path is not None and ckpt_path.exists():
        _resume(state, net, ckpt_path, data, run, cfg)
    lock = (
        lock_motifs(net, kept_motifs)
        if kept_motifs is not None and keeps_initial_motifs(cfg)
        else None
    )
    try:
        if units is not None and cfg.assignment == "em" and state.start_epoch == 0:
            _discover(net, units, tensors, cfg, run, progress)
        if net.linear_skip and state.start_epoch == 0:
            _linear_start(net, tensors, state)
        for epoch in range(state.start_epoch, cfg.epochs):
            t_epoch = time.perf_counter()
            sums = _train_epoch(module, net, tensors, state, cfg, run, epoch, progress)
            if state.stopped == "cancelled":
                break
            moves = (
                {}
                if units is None or cfg.assignment != "alternating"
                else reassign_after_epoch(net, units, tensors, cfg, epoch, run.seed)
            )
            _end_epoch(net, tensors, state, cfg, epoch, sums, time.perf_counter() - t_epoch)
            state.history[-1].update(moves)
            if ckpt_path is not None and run.rank == 0:
                _save_checkpoint(net, state, cfg, run, epoch, data.z.shape, ckpt_path)
            info = _epoch_info(state, cfg, epoch, sums, tensors.steps)
            if _stop_requested(progress, (epoch + 1) / cfg.epochs, info, run):
                state.stopped = "cancelled"
                break
            if state.bad_epochs >= cfg.patience:
                state.stopped = "early_stopping"
                break
    finally:
        if lock is not None:  # the mask lives on the training device
            lock.remove()
    if state.best_state is not None and state.stopped != "cancelled":
        net.load_state_dict(state.best_state)
    return state


def _linear_start(net: MesoscaleNet, tensors: _Tensors, state: TrainingState) -> None:
    """With ``linear_skip``: the untrained state (its linear path's ridge prediction) is the
    first candidate of the best state, so that training keeps a later state only when it
    validates better (one validation pass)."""
    v0, v1 = tensors.val
    if v1 <= v0:
        return
    val = _validation_loss(net, tensors.z, tensors.mask, tensors.u, v0, v1)
    state.start_val = val
    if not math.isnan(val):
        state.best_val = val
        state.best_state = copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()})


def _discover(
    net: MesoscaleNet,
    units: AssignmentUnits,
    tensors: _Tensors,
    cfg: ModelConfig,
    run: RunOptions,
    progress: Progress,
) -> None:
    """The discovery EM of ``assignment="em"`` on the training block (same on every rank)."""
    t_start = time.perf_counter()
    figures = _discovery(net, units, tensors, cfg, run.seed)
    figures["discover_seconds"] = time.perf_counter() - t_start
    if run.rank == 0:
        progress.report(0.0, "motifs discovered", **figures)


def run_discovery(
    net: MesoscaleNet, units: AssignmentUnits, data: PreparedData, cfg: ModelConfig, seed: int
) -> dict[str, float]:
    """The discovery of ``assignment="em"`` alone, on the CPU and nothing trained: sets
    ``net``'s assignment logits to the motifs it finds and returns its figures."""
    return _discovery(net, units, _to_device(data, cfg, torch.device("cpu")), cfg, seed)


def _discovery(
    net: MesoscaleNet, units: AssignmentUnits, tensors: _Tensors, cfg: ModelConfig, seed: int
) -> dict[str, float]:
    """:func:`~napari_mesoscale.model.reassign.discover_assignment` over the training
    windows of ``tensors``; its figures."""
    frames = (int(tensors.starts[0]), int(tensors.starts[-1]) + 2)
    return discover_assignment(net, units, (tensors.z, tensors.mask, tensors.u), frames, cfg,
                               seed)


def _to_device(data: PreparedData, cfg: ModelConfig, dev: torch.device) -> _Tensors:
    zt = torch.as_tensor(data.z32, device=dev)
    u32 = data.u32
    k = max(1, cfg.rollout)
    tr0, tr1 = data.blocks["train"]
    starts = np.arange(tr0, tr1 - k)
    finite = torch.as_tensor(data.finite, device=dev)
    bounds = _training_range(zt[tr0:tr1], finite[tr0:tr1]) if cfg.lambda_range > 0 else None
    return _Tensors(
        z=zt,
        mask=finite,  # bool: a float copy is 2 GiB at 72k x 7.9k
        u=None if u32 is None else torch.as_tensor(u32, device=dev),
        starts=starts,
        steps=max(1, math.ceil(len(starts) / cfg.batch_frames)),
        window=k,
        val=data.blocks["val"],
        bounds=bounds,
    )


def _training_range(z: torch.Tensor, finite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron (lowest, highest) finite state of the training block (0 where none is)."""
    lo = torch.where(finite, z, torch.full_like(z, math.inf)).amin(0)
    hi = torch.where(finite, z, torch.full_like(z, -math.inf)).amax(0)
    seen = torch.isfinite(lo)
    return torch.where(seen, lo, 0.0), torch.where(seen, hi, 0.0)


def _optimiser(net: MesoscaleNet, cfg: ModelConfig) -> torch.optim.Optimizer:
    assign_params = [net.logits] + ([net.field_logits] if net.shared_field_logits else [])
    ids = {id(p) for p in assign_params}
    other = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.Adam(
        [{"params": other, "lr": cfg.lr}, {"params": assign_params, "lr": cfg.lr_assignment}]
    )


def _resume(
    state: TrainingState,
    net: MesoscaleNet,
    path: Path,
    data: PreparedData,
    run: RunOptions,
    cfg: ModelConfig,
) -> None:
    ck = load_torch_file(
        path, "training checkpoint", map_location=run.device, required=_CHECKPOINT_KEYS
    )
    shape = list(data.z.shape)
    if ck.get("shape") != shape or ck.get("seed") != run.seed:
        raise ValueError(
            f"checkpoint {path} was written for data of shape {ck.get('shape')} and seed "
            f"{ck.get('seed')}; it cannot resume this fit (shape {shape}, seed {run.seed})."
        )
    _check_resume_config(path, ck.get("config"), cfg)
    try:
        net.load_state_dict(ck["net"])
        state.opt.load_state_dict(ck["opt"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"checkpoint {path} does not fit this model ({first[:200]}); "
            "start without --resume or point to the checkpoint of the same settings."
        ) from error
    state.start_epoch = ck["epoch"] + 1
    state.best_val, state.bad_epochs = ck["best_val"], ck["bad_epochs"]
    state.best_state = ck["best_state"]
    state.start_val = ck.get("start_val")
    state.history.extend(ck["history"])


_CHECKPOINT_KEYS = ("net", "opt", "epoch", "best_val", "bad_epochs", "best_state", "history")
# settings a resumed run may change: how long to train and how patient to be
_RESUMABLE_CHANGES = frozenset({"epochs", "patience"})


def _check_resume_config(path: Path, saved: Any, cfg: ModelConfig | None) -> None:
    """Refuse to resume when a setting other than epochs/patience differs from the checkpoint."""
    if cfg is None or not isinstance(saved, dict):
        return
    current = cfg.to_dict()
    differing = [
        f"{name}: checkpoint {saved[name]!r}, now {current[name]!r}"
        for name in sorted(current)
        if name in saved and name not in _RESUMABLE_CHANGES and saved[name] != current[name]
    ]
    if differing:
        raise ValueError(
            f"checkpoint {path} was trained with other settings ({'; '.join(differing)}); "
            "resume with the checkpoint's settings, or start a new fit without --resume."
        )


def _train_epoch(
    module: nn.Module,
    net: MesoscaleNet,
    tensors: _Tensors,
    state: TrainingState,
    cfg: ModelConfig,
    run: RunOptions,
    epoch: int,
    progress: Progress,
) -> dict[str, float]:
    """One pass over the training windows; sets ``state.stopped`` on a cancel."""
    tau, mode, bal_w, frozen = _schedule(cfg, epoch)
    frozen = frozen or cfg.assignment != "gradient"
    g = torch.Generator().manual_seed(int(run.seed) * 100_003 + epoch)
    perm = tensors.starts[torch.randperm(len(tensors.starts), generator=g).numpy()]
    sums: dict[str, float] = {}
    net.train()
    for step in range(tensors.steps):
        batch = perm[step * cfg.batch_frames : (step + 1) * cfg.batch_frames]
        probe_seed = (int(run.seed) * 100_003 + epoch) * 1_000_003 + step
        total, terms = _step(
            module, net, state.opt, tensors, batch, cfg, run, (tau, mode, bal_w), frozen,
            probe_seed,
        )
        losses = {key: float(val.detach()) for key, val in terms.items()}
        for key, val in losses.items():
            sums[key] = sums.get(key, 0.0) + val
        sums["total"] = sums.get("total", 0.0) + float(total.detach())
        info = {
            "stage": "train",
            "epoch": epoch,
            "epochs": cfg.epochs,
            "step": step,
            "steps": tensors.steps,
            "losses": losses,
            "val_loss": state.history[-1]["val_loss"] if state.history else None,
            "tau": tau,
        }
        fraction = (epoch + (step + 1) / tensors.steps) / cfg.epochs
        if _stop_requested(progress, fraction, info, run):
            state.stopped = "cancelled"
            break
    return sums


def _step(
    module: nn.Module,
    net: MesoscaleNet,
    opt: torch.optim.Optimizer,
    tensors: _Tensors,
    batch: np.ndarray,
    cfg: ModelConfig,
    run: RunOptions,
    schedule: tuple[float, str, float],
    frozen: bool,
    probe_seed: int = 0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One Adam step on this rank's share of ``batch`` (window starts), in one or several
    forward/backward passes (:func:`micro_batches`) whose gradients add up; ``probe_seed``
    draws the windows of the range probe (``cfg.range_probe_share`` < 1)."""
    dev, rank, world = run.device, run.rank, run.world
    local = batch[rank::world]
    scale = len(local) * world / len(batch)
    # global rollout frames: the first rollout_frames positions of the global batch
    n_roll_global = min(cfg.rollout_frames, len(batch))
    n_roll = len(range(rank, n_roll_global, world))
    roll_scale = world / max(n_roll_global, 1)
    probed = probe_windows(n_roll_global, cfg.range_probe_share, probe_seed, rank, world)
    offsets = np.arange(tensors.window + 1)[:, None]
    passes = micro_batches(len(local), tensors.z.shape[1], _pairs_per_neuron(net, cfg), cfg, run)
    denom = None
    if len(passes) > 1:  # the loss is normalised by the whole batch's finite targets
        targets = torch.as_tensor(local + 1, device=dev)
        denom = tensors.mask[targets].sum().to(tensors.z.dtype).clamp(min=1)
    use_amp = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")
    tau, mode, bal_w = schedule
    opt.zero_grad(set_to_none=True)
    total, terms = torch.zeros((), device=dev), {}
    try:
        for first, last in passes:
            idx = torch.as_tensor(local[None, first:last] + offsets, device=dev)
            zb, mb = tensors.z[idx], tensors.mask[idx].to(tensors.z.dtype)
            ub = None if tensors.u is None else tensors.u[idx]
            # the frame before each window (the first frame stands in for its own predecessor)
            zp = tensors.z[(idx[0] - 1).clamp(min=0)] if net.input_lags == 2 else None
            rolled = max(0, min(n_roll, last) - first)
            rows = _pass_rows(probed, first, last, dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                part, parts = module(
                    zb, mb, ub, tau, mode, cfg, scale, bal_w, rolled, roll_scale, denom,
                    first == 0, zp, tensors.bounds, rows,
                )
            part.backward()
            total = total + part.detach()
            for key, value in parts.items():
                terms[key] = terms.get(key, 0.0) + value.detach()
    except torch.OutOfMemoryError as error:
        raise MemoryError(
            f"out of memory on {dev} with N={tensors.z.shape[1]} neurons, batch_frames="
            f"{cfg.batch_frames}, n_filters={cfg.n_filters}, hidden={cfg.hidden}: reduce "
            "batch_frames (first; or micro_batch_frames, the same step in smaller passes), "
            "rollout, rf_diameter (fewer candidate fields), n_filters or hidden, or use "
            "device='cpu'."
        ) from error
    if frozen:
        net.logits.grad = None
        if net.shared_field_logits:
            net.field_logits.grad = None
    opt.step()
    return total, terms


def _pass_rows(
    probed: tuple[np.ndarray, float] | None, first: int, last: int, dev: torch.device
) -> tuple[torch.Tensor, float] | None:
    """The probed windows that fall in the pass ``first:last``, relative to it."""
    if probed is None:
        return None
    local, weight = probed
    inside = local[(local >= first) & (local < last)] - first
    return torch.as_tensor(inside, device=dev), weight


#: Automatic micro-batches on the CPU: (window, neuron, pair) evaluations per pass. A pass
#: with gradients holds about 1 KB per evaluation (zebrafish scale: 72k neurons x 4 pairs x
#: 32 windows took 10 GiB in one pass; 7 windows per pass keep it near 3 GiB).
CPU_PASS_EVALUATIONS = 2**21


def _pairs_per_neuron(net: MesoscaleNet, cfg: ModelConfig) -> int:
    slots = 1 if cfg.routing == "best_slot" else int(net.cand.shape[1])
    return slots * int(net.n_filters)


def micro_batches(
    n_windows: int, n_neurons: int, pairs: int, cfg: ModelConfig, run: RunOptions
) -> list[tuple[int, int]]:
    """(first, last) window ranges of the forward/backward passes of one step.

    ``cfg.micro_batch_frames`` windows per pass, or automatically: the whole batch on an
    accelerator, on the CPU at most :data:`CPU_PASS_EVALUATIONS` evaluations per pass. Under
    DistributedDataParallel every rank makes one pass (each backward would all-reduce).
    """
    size = int(cfg.micro_batch_frames)
    if size <= 0:
        on_cpu = run.device.type == "cpu"
        size = CPU_PASS_EVALUATIONS // max(1, n_neurons * pairs) if on_cpu else n_windows
    if run.world > 1:
        size = n_windows
    size = max(1, min(size, n_windows))
    return [(a, min(n_windows, a + size)) for a in range(0, max(n_windows, 1), size)]


def _end_epoch(
    net: MesoscaleNet,
    tensors: _Tensors,
    state: TrainingState,
    cfg: ModelConfig,
    epoch: int,
    sums: dict[str, float],
    seconds: float,
) -> None:
    """Validation loss, history row and the best state for early stopping."""
    v0, v1 = tensors.val
    val = _validation_loss(net, tensors.z, tensors.mask, tensors.u, v0, v1) if v1 > v0 else math.nan
    tau, mode, _, _ = _schedule(cfg, epoch)
    state.history.append(
        {
            "epoch": epoch,
            "tau": tau,
            "mode": mode,
            **{f"train_{key}": v / tensors.steps for key, v in sums.items()},
            "val_loss": val,
            "seconds": seconds,
        }
    )
    hard_start = _hard_start(cfg)
    if epoch >= hard_start - 1 or epoch + 1 >= cfg.epochs:
        if not math.isnan(val) and val < state.best_val - 1e-6:
            state.best_val, state.bad_epochs = val, 0
            state.best_state = copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()})
        elif epoch >= hard_start:
            state.bad_epochs += 1


def _epoch_info(
    state: TrainingState, cfg: ModelConfig, epoch: int, sums: dict[str, float], steps: int
) -> dict[str, Any]:
    return {
        "stage": "epoch",
        "epoch": epoch,
        "epochs": cfg.epochs,
        "step": steps - 1,
        "steps": steps,
        "losses": {key: v / steps for key, v in sums.items()},
        "val_loss": state.history[-1]["val_loss"],
        "tau": state.history[-1]["tau"],
    }


def _save_checkpoint(
    net: MesoscaleNet,
    state: TrainingState,
    cfg: ModelConfig,
    run: RunOptions,
    epoch: int,
    shape: tuple[int, ...],
    path: Path,
) -> None:
    payload = {
        "net": net.state_dict(),
        "opt": state.opt.state_dict(),
        "epoch": epoch,
        "best_val": state.best_val,
        "bad_epochs": state.bad_epochs,
        "best_state": state.best_state,
        "start_val": state.start_val,
        "history": state.history,
        "shape": list(shape),
        "seed": run.seed,
        "config": cfg.to_dict(),
    }
    remove_stale_temporaries(path)  # left by a killed run; rank 0 is the only writer
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def _stop_requested(
    progress: Progress, fraction: float, info: dict[str, Any], run: RunOptions
) -> bool:
    """Report progress (rank 0 only) and whether the callback asked to stop, agreed by all ranks.

    Under DDP every rank must stop at the same step, or the others wait forever in the next
    all-reduce.
    """
    stop = False
    if run.rank == 0:
        try:
            progress.report(fraction, f"epoch {info['epoch'] + 1}/{info['epochs']}", **info)
        except Cancelled:
            stop = True
    if run.world <= 1:
        return stop
    import torch.distributed as dist

    t = torch.tensor([1.0 if stop else 0.0], device=run.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def _validation_loss(
    net: MesoscaleNet,
    zt: torch.Tensor,
    mt: torch.Tensor,
    ut: torch.Tensor | None,
    v0: int,
    v1: int,
    chunk: int = 64,
) -> float:
    """Hard one-step MSE (normalised units) over frames v0..v1 (predicting v0+1..v1)."""
    net.eval()
    num, den = 0.0, 0.0
    chunk = frames_per_pass(zt.shape[1], net.n_filters, chunk)
    for s in range(v0, v1 - 1, chunk):
        e = min(v1 - 1, s + chunk)
        prev = previous_frames(zt, s, e) if net.input_lags == 2 else None
        pred = net.predict_hard(zt[s:e], None if ut is None else ut[s:e], prev)
        m = both_finite(mt, s, e, zt.dtype)
        num += float((((pred - zt[s + 1 : e + 1]) ** 2) * m).sum())
        den += float(m.sum())
    net.train()
    return num / max(den, 1.0)
