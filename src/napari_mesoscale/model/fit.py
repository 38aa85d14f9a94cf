"""Training of the mesoscale model: ``fit_mesoscale``.

Data handling
-------------
* The recording is cut into three contiguous blocks in time (train / validation / test,
  ``ModelConfig.split``); the model never sees validation or test frames while learning.
* Activity is normalised per neuron with the training block's mean and standard deviation.
* **NaNs are masked**: a NaN frame of a neuron does not enter the loss and enters the inputs
  as the neuron's training mean (0 after normalisation). A neuron without any finite value in
  the training block, or any infinite value, is refused with a ``ValueError``.

Training
--------
Adam over batches of windows from the training block; within a window the first step is
teacher-forced and the next ``rollout - 1`` steps feed the model's own prediction back
(truncated back-propagation through time). The softmax temperature of the assignment is
annealed, then the last epochs run straight-through one-hot assignments. Early stopping keeps
the state with the best validation one-step error reached after annealing.

Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
``torch.nn.parallel.DistributedDataParallel`` (gloo on CPU, NCCL on CUDA); every rank takes a
slice of each global batch of windows and the data term is rescaled so that the averaged
gradient equals the single-process one.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.model.initialise import (
    connectome_edges,
    dynamics_features,
    group_neurons,
    lagged_affinity,
    local_edges,
    location_scores,
    motif_init,
    neighbour_correlation,
    per_neuron_ridge,
    pick_fields,
    vote,
)

CHECKPOINT_NAME = "checkpoint.pt"


class FitCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raise from a ``callback`` to stop training cleanly (same effect as returning False)."""


# ---------------------------------------------------------------------------- helpers
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else Apple MPS, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def auto_diameter(positions: np.ndarray) -> float:
    """Default receptive-field diameter: 5 x median distance to the 8th-nearest neuron.

    The diameter is an upper bound on a domain's extent (seed 000, section 4.4): a field must
    be able to enclose a whole motif instance. On the default toy brain this is about 80 µm
    (instances have radii up to 20 µm); 2.5 x gave domain ARI <= 0.70 even with true motifs.
    """
    from scipy.spatial import cKDTree

    n = positions.shape[0]
    k = min(9, n)
    if k < 2:
        return 1.0
    dist, _ = cKDTree(positions).query(positions, k=k)
    d = float(np.median(dist[:, -1])) * 5.0
    return d if d > 0 else 1.0


def _as_adjacency(connectome: Any, n: int) -> sp.csr_matrix:
    adj = getattr(connectome, "adjacency", connectome)
    if not sp.issparse(adj):
        adj = np.asarray(adj)
        if adj.ndim != 2:
            raise ValueError("connectome must be a Connectome or an (N, N) (sparse) matrix")
        adj = sp.csr_matrix(adj)
    if adj.shape != (n, n):
        raise ValueError(
            f"connectome adjacency has shape {adj.shape} but activity has N={n} neurons; "
            "match the connectome's neurons to the recorded ones first (register_point_sources)."
        )
    return sp.csr_matrix(adj)


def validate_inputs(
    activity: Any, positions: Any, stimulus: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes and values; return float arrays (activity (T,N), positions (N,3), stim)."""
    activity = np.asarray(activity, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if activity.ndim != 2:
        raise ValueError(
            f"activity must be a (T, N) matrix (time x neurons); got shape {activity.shape}. "
            "Traces stored as (N, T) must be transposed."
        )
    if activity.size == 0:
        raise ValueError("activity is empty.")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3) in µm (z, y, x); got {positions.shape}")
    if positions.shape[0] != activity.shape[1]:
        raise ValueError(
            f"activity has N={activity.shape[1]} neurons (columns) but positions has "
            f"{positions.shape[0]} rows; they must describe the same neurons in the same order."
        )
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or inf.")
    if np.isinf(activity).any():
        raise ValueError("activity contains inf; replace it by NaN (masked) or a finite value.")
    if stimulus is not None:
        stimulus = np.asarray(stimulus, dtype=np.float64)
        if stimulus.ndim == 1:
            stimulus = stimulus[:, None]
        if stimulus.ndim != 2 or stimulus.shape[0] != activity.shape[0]:
            raise ValueError(
                f"stimulus must be (T, S) with T={activity.shape[0]} frames like activity; "
                f"got {stimulus.shape}"
            )
        if not np.all(np.isfinite(stimulus)):
            raise ValueError("stimulus contains NaN or inf.")
    return activity, positions, stimulus


def split_blocks(n_frames: int, split: tuple[float, float, float], rollout: int) -> dict:
    """Contiguous train / validation / test frame ranges ``{"train": (start, stop), ...}``."""
    fr = np.asarray(split, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or fr[0] <= 0:
        raise ValueError(f"split must be three non-negative fractions; got {split}")
    fr = fr / fr.sum()
    n_train = int(math.floor(fr[0] * n_frames))
    n_val = int(math.floor(fr[1] * n_frames))
    n_test = n_frames - n_train - n_val
    need_train = rollout + 9
    min_total = need_train + (3 if fr[1] > 0 else 0) + (3 if fr[2] > 0 else 0)
    if n_train < need_train or (fr[1] > 0 and n_val < 3) or (fr[2] > 0 and n_test < 3):
        raise ValueError(
            f"too few time points ({n_frames}) for the split {tuple(np.round(fr, 3))}: the "
            f"training block needs at least {need_train} frames (rollout={rollout}) and the "
            f"validation and test blocks 3 each; record longer (about {min_total} frames or "
            "more), reduce rollout or change split."
        )
    return {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n_frames),
    }


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
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        net = self.net
        # z, m: (K+1, Bt, N) windows (filled state, finite-mask); u: (K+1, Bt, S) or None
        slots, pi = net.routed(tau, mode, cfg.routing)
        tgt, msk = z[1], m[1]
        denom = msk.sum().clamp(min=1)
        out, pred = net.evaluate(z[0], None if u is None else u[0], pi, slots)
        err_pred = ((pred - tgt) ** 2 * msk).sum() / denom
        err_local = (((out - tgt[..., None, None]) ** 2) * pi).sum(dim=(-1, -2))
        err_local = (err_local * msk).sum() / denom
        terms = {"prediction": err_pred, "local": err_local}
        roll = torch.zeros((), device=z.device)
        k = z.shape[0] - 1
        nb = int(n_roll)
        if k > 1 and cfg.lambda_rollout > 0 and nb > 0:
            # the first n_roll frames of this rank's slice are its share of the global
            # rollout frames; per-frame means are summed and scaled by roll_scale
            state = pred[:nb]
            for s in range(1, k):
                _, state = net.evaluate(state, None if u is None else u[s, :nb], pi, slots)
                ms = m[s + 1, :nb]
                per_frame = ((state - z[s + 1, :nb]) ** 2 * ms).sum(-1) / ms.sum(-1).clamp(min=1)
                roll = roll + per_frame.sum()
            roll = roll * roll_scale / (k - 1)
        terms["rollout"] = roll
        soft = net.assignment(tau, "soft")
        n = soft.shape[0]
        flat = soft.reshape(n, -1)
        ent = -(flat * torch.log(flat.clamp(min=1e-12))).sum(-1).mean()
        usage_n = soft.sum(1)  # (N, B)
        usage = usage_n.mean(0)
        sparsity = usage_n.pow(2).mean(0).clamp(min=1e-12).sqrt().sum()
        balance = (usage * torch.log(usage.clamp(min=1e-12) * usage.numel())).sum()
        terms.update(
            entropy=ent,
            sparsity=sparsity,
            balance=balance,
            complexity=net.bank.complexity().sum(),
            interface=net.interface_penalty(),
        )
        data = cfg.lambda_prediction * err_pred + cfg.lambda_local * err_local
        reg = (
            cfg.lambda_entropy * ent
            + cfg.lambda_sparsity * sparsity
            + cfg.lambda_balance * balance_weight * balance
            + cfg.lambda_complexity * terms["complexity"]
            + cfg.lambda_interface * terms["interface"]
        )
        total = data * data_scale + cfg.lambda_rollout * roll + reg
        return total, terms


def _schedule(cfg: ModelConfig, epoch: int) -> tuple[float, str, float, bool]:
    """Temperature, assignment mode, balance weight and whether the assignment is frozen."""
    anneal_epochs = max(1, int(round(cfg.anneal_fraction * cfg.epochs)))
    start = cfg.freeze_assignment_epochs
    frac = min(1.0, max(0.0, (epoch - start) / max(1, anneal_epochs - start)))
    tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac
    hard_start = cfg.epochs - int(round(cfg.hard_fraction * cfg.epochs))
    mode = "straight_through" if epoch >= max(hard_start, anneal_epochs) else "soft"
    balance_w = 1.0 - frac
    frozen = epoch < cfg.freeze_assignment_epochs
    return tau, mode, balance_w, frozen


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _dist_info() -> tuple[int, int, bool]:
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


# ---------------------------------------------------------------------------- the fit
def fit_mesoscale(
    activity: Any,
    positions: Any,
    *,
    connectome: Any = None,
    stimulus: Any = None,
    n_filters: int = 4,
    rf_diameter: float | None = None,
    stride: float | None = None,
    epochs: int = 60,
    device: str | torch.device = "auto",
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    config: ModelConfig | None = None,
    **options: Any,
):
    """Fit the mesoscale model: domains, motifs and a runnable one-step predictor.

    Parameters
    ----------
    activity : array_like, shape (T, N)
        Activity of N neurons over T frames (normalised dF/F or rates). NaNs are masked in
        the loss (see module notes); inf is refused.
    positions : array_like, shape (N, 3)
        Neuron positions in µm, (z, y, x).
    connectome : Connectome or scipy.sparse matrix (N, N), optional
        Pre -> post adjacency. The synaptic drive then uses one learned weight per existing
        edge. Without it, a local gather over the ``max_neighbors`` nearest neurons within
        ``gather_radius`` is used.
    stimulus : array_like, shape (T,) or (T, S), optional
        Stimulus time series, given to every filter.
    n_filters : int
        Number of basis filters (candidate motifs) B.
    rf_diameter, stride : float, optional
        Receptive-field grid (µm); see :func:`napari_mesoscale.connectome.receptive_field_grid`.
    epochs : int
        Passes over the training block.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        ``"auto"`` picks CUDA, then MPS, then CPU; CUDA runs in bfloat16 mixed precision.
    seed : int
        Seed of every random choice; on CPU two runs with the same seed are identical.
    callback : callable, optional
        Called after every step with a progress dict (``stage``, ``epoch``, ``epochs``,
        ``step``, ``steps``, ``losses`` per term, ``val_loss``, ``tau``). Returning ``False`` or
        raising :class:`FitCancelled` stops training cleanly; the fit so far is returned with
        ``fit.stopped == "cancelled"``.
    checkpoint_dir : path, optional
        Write a checkpoint (atomically) after every epoch.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` if there is one.
    config : ModelConfig, optional
        All other hyper-parameters; keyword ``options`` override single fields
        (e.g. ``hidden=16, lambda_complexity=0.1``).

    Returns
    -------
    MesoscaleFit
    """
    from napari_mesoscale.connectome import receptive_field_grid
    from napari_mesoscale.model.result import MesoscaleFit, package_versions

    cfg = config if config is not None else ModelConfig()
    cfg = cfg.replace(
        n_filters=n_filters,
        epochs=epochs,
        **({"rf_diameter": rf_diameter} if rf_diameter is not None else {}),
        **({"stride": stride} if stride is not None else {}),
        **options,
    )
    if cfg.n_filters < 1:
        raise ValueError(f"n_filters must be >= 1; got {cfg.n_filters}")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32'; got {cfg.precision!r}")
    if not 0 <= cfg.population_filters <= cfg.n_filters:
        raise ValueError(
            f"population_filters={cfg.population_filters} must lie between 0 and n_filters="
            f"{cfg.n_filters}: it says how many of the filters are population filters."
        )
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {cfg.epochs}")
    if cfg.edge_init not in ("ridge", "connectome"):
        raise ValueError(f"edge_init must be 'ridge' or 'connectome'; got {cfg.edge_init!r}")
    if cfg.edge_init == "connectome" and connectome is None:
        raise ValueError(
            "edge_init='connectome' needs connectome= (the drive weights start from its "
            "kernels); pass a connectome or use edge_init='ridge'."
        )
    activity, positions, stim = validate_inputs(activity, positions, stimulus)
    n_frames, n = activity.shape
    blocks = split_blocks(n_frames, cfg.split, max(1, cfg.rollout))
    tr0, tr1 = blocks["train"]

    finite = np.isfinite(activity)
    train = activity[tr0:tr1]
    n_finite = np.isfinite(train).sum(0)
    if np.any(n_finite < 2):
        bad = np.flatnonzero(n_finite < 2)
        raise ValueError(
            f"neuron(s) {bad[:10].tolist()} have fewer than 2 finite values in the training "
            "block (frames "
            f"{tr0}-{tr1}); drop them or fill their NaNs."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_n = np.nanmean(train, axis=0)
        std_n = np.nanstd(train, axis=0)
    std_n = np.where(std_n > 1e-12, std_n, 1.0)
    if cfg.normalise == "neuron":
        mean, std = mean_n, std_n
    elif cfg.normalise == "global":
        g_std = float(np.nanstd(train))
        mean = np.full(n, float(np.nanmean(train)))
        std = np.full(n, g_std if g_std > 1e-12 else 1.0)
    else:
        raise ValueError(f"normalise must be 'global' or 'neuron'; got {cfg.normalise!r}")
    z = np.where(finite, (activity - mean) / std, 0.0)
    zn = np.where(finite, (activity - mean_n) / std_n, 0.0)  # per-neuron, for features
    if stim is not None:
        s_mean, s_std = stim[tr0:tr1].mean(0), stim[tr0:tr1].std(0)
        s_std = np.where(s_std > 1e-12, s_std, 1.0)
        u_all = (stim - s_mean) / s_std
    else:
        s_mean = s_std = u_all = None

    # ---------------------------------------------------------------- grid and edges
    d = float(cfg.rf_diameter) if cfg.rf_diameter else auto_diameter(positions)
    cfg = cfg.replace(rf_diameter=d)
    grid = receptive_field_grid(positions, diameter=d, stride=cfg.stride)
    cfg = cfg.replace(stride=float(grid.stride))
    gather_r = float(cfg.gather_radius) if cfg.gather_radius else d / 2
    init_r = float(cfg.init_radius) if cfg.init_radius else d / 4
    spatial = local_edges(positions, init_r, cfg.init_neighbors)  # for the initialisation
    edge_weight_struct = None
    edge_kernel = None
    if connectome is not None:
        adj = _as_adjacency(connectome, n)
        edges, edge_weight_struct = connectome_edges(adj)
        if cfg.edge_init == "connectome":
            from napari_mesoscale.model.connectome_filters import connectome_kernels

            # row i of the kernels = neuron i's presynaptic partners: value of edge (pre, post)
            kern = connectome_kernels(adj, orientation="in", normalise="l1")
            edge_kernel = np.asarray(kern[edges[1], edges[0]]).ravel()
    else:
        edges = local_edges(positions, gather_r, cfg.max_neighbors)
    cand = grid.candidates
    relpos = np.where(
        grid.mask[..., None],
        (positions[:, None, :] - grid.centers[np.clip(cand, 0, None)]) / d,
        0.0,
    )

    # ---------------------------------------------------------------- initialisation
    ztr = zn[tr0:tr1]
    utr = None if u_all is None else u_all[tr0:tr1]
    ridge = per_neuron_ridge(ztr, edges, utr)
    ridge_model = ridge if cfg.normalise == "neuron" else per_neuron_ridge(z[tr0:tr1], edges, utr)
    corr = neighbour_correlation(ztr, spatial)
    pos_w = np.clip(corr, 0, None)
    gen = torch.Generator().manual_seed(int(seed))
    b = cfg.n_filters
    if cfg.init == "dynamics":
        feats = dynamics_features(
            ztr,
            ridge,
            edges,
            utr,
            smooth_pairs=spatial if cfg.smooth_features else None,
            smooth_weights=pos_w**2 if cfg.smooth_features else None,
        )
        groups = motif_init(feats, b, seed=seed)
        if cfg.group_init:
            aff = lagged_affinity(ztr, spatial) * (groups[spatial[0]] == groups[spatial[1]])
            communities = group_neurons(n, spatial, aff, seed=seed)
            groups = vote(communities, groups, b)
            label = np.zeros(communities.max() + 1, dtype=np.int64)
            label[communities] = groups
            slot = pick_fields(communities, label, cand, grid.mask, grid.centers, positions, d)
        else:
            loc = location_scores(positions, cand, grid.mask, grid.centers, d, spatial, pos_w)
            slot = np.where(grid.mask, loc, -np.inf).argmax(1)
        loc_onehot = np.zeros(cand.shape)
        loc_onehot[np.arange(n), slot] = 1.0
        logits0 = (
            cfg.init_strength * np.eye(b)[groups][:, None, :]
            + cfg.location_strength * loc_onehot[:, :, None]
        )
        logits0 = torch.as_tensor(logits0, dtype=torch.float32)
        logits0 = logits0 + 0.01 * torch.randn(logits0.shape, generator=gen)
    elif cfg.init == "random":
        groups = None
        logits0 = 0.01 * torch.randn(n, cand.shape[1], b, generator=gen)
    else:
        raise ValueError(f"init must be 'dynamics' or 'random'; got {cfg.init!r}")

    net = MesoscaleNet(
        torch.as_tensor(cand),
        torch.as_tensor(relpos, dtype=torch.float32),
        grid.n_fields,
        torch.as_tensor(edges),
        n_filters=b,
        n_stimulus=0 if stim is None else stim.shape[1],
        hidden=cfg.hidden,
        depth=cfg.depth,
        activations=tuple(cfg.activations),
        logits_init=logits0,
        edge_weight_init=torch.as_tensor(
            ridge_model["edge"] if edge_kernel is None else edge_kernel, dtype=torch.float32
        ),
        stim_weight_init=None
        if stim is None
        else torch.as_tensor(ridge_model["stimulus"], dtype=torch.float32),
        shared_field_logits=cfg.shared_field_logits,
        population_filters=cfg.population_filters,
        generator=gen,
    )
    if cfg.freeze_edges:
        net.edge_weight.requires_grad_(False)

    # ---------------------------------------------------------------- training
    dev = resolve_device(device)
    rank, world, dist_here = _dist_info()
    history: list[dict] = []
    stopped = "completed"
    try:
        state = _train(
            net,
            z.astype(np.float32),
            finite,
            None if u_all is None else u_all.astype(np.float32),
            blocks,
            cfg,
            dev,
            seed,
            callback,
            checkpoint_dir,
            resume,
            rank,
            world,
            history,
        )
        stopped = state["stopped"]
    finally:
        if dist_here:
            import torch.distributed as dist

            dist.destroy_process_group()
    net = net.to("cpu").float()

    fit = MesoscaleFit._from_training(
        net=net,
        config=cfg,
        seed=seed,
        z=z.astype(np.float32),
        finite=finite,
        u=None if u_all is None else u_all.astype(np.float32),
        blocks=blocks,
        mean=mean,
        std=std,
        stim_mean=s_mean,
        stim_std=s_std,
        positions=positions,
        grid=grid,
        edges=edges,
        edge_weight_struct=edge_weight_struct,
        init_groups=groups,
        history=history,
        stopped=stopped,
        versions=package_versions(),
        device=str(dev),
    )
    return fit


def _train(
    net: MesoscaleNet,
    z: np.ndarray,
    finite: np.ndarray,
    u: np.ndarray | None,
    blocks: dict,
    cfg: ModelConfig,
    dev: torch.device,
    seed: int,
    callback: Callable[[dict], Any] | None,
    checkpoint_dir: Any,
    resume: bool,
    rank: int,
    world: int,
    history: list[dict],
) -> dict:
    torch.manual_seed(seed)
    net.to(dev)
    zt = torch.as_tensor(z, device=dev)
    mt = torch.as_tensor(finite, dtype=zt.dtype, device=dev)
    ut = None if u is None else torch.as_tensor(u, device=dev)
    module: nn.Module = _LossModule(net)
    if world > 1:
        module = nn.parallel.DistributedDataParallel(module)
    assign_params = [net.logits] + ([net.field_logits] if net.shared_field_logits else [])
    ids = {id(p) for p in assign_params}
    other = [p for p in net.parameters() if id(p) not in ids]
    opt = torch.optim.Adam(
        [{"params": other, "lr": cfg.lr}, {"params": assign_params, "lr": cfg.lr_assignment}]
    )
    use_amp = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")
    k = max(1, cfg.rollout)
    tr0, tr1 = blocks["train"]
    starts_all = np.arange(tr0, tr1 - k)
    v0, v1 = blocks["val"]
    best_val, best_state, bad_epochs, start_epoch = math.inf, None, 0, 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck.get("shape") != list(z.shape) or ck.get("seed") != seed:
            raise ValueError(
                f"checkpoint {ckpt_path} was written for data of shape {ck.get('shape')} and seed "
                f"{ck.get('seed')}; it cannot resume this fit (shape {list(z.shape)}, seed {seed})."
            )
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        start_epoch = ck["epoch"] + 1
        best_val, bad_epochs = ck["best_val"], ck["bad_epochs"]
        best_state = ck["best_state"]
        history.extend(ck["history"])
    anneal_end = max(1, int(round(cfg.anneal_fraction * cfg.epochs)))
    hard_start = max(anneal_end, cfg.epochs - int(round(cfg.hard_fraction * cfg.epochs)))
    stopped = "completed"
    n_starts = len(starts_all)
    steps = max(1, math.ceil(n_starts / cfg.batch_frames))
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        tau, mode, bal_w, frozen = _schedule(cfg, epoch)
        g = torch.Generator().manual_seed(int(seed) * 100_003 + epoch)
        perm = starts_all[torch.randperm(n_starts, generator=g).numpy()]
        sums: dict[str, float] = {}
        net.train()
        for step in range(steps):
            batch = perm[step * cfg.batch_frames : (step + 1) * cfg.batch_frames]
            local = batch[rank::world]
            scale = len(local) * world / len(batch)
            # global rollout frames: the first rollout_frames positions of the global batch
            n_roll_global = min(cfg.rollout_frames, len(batch))
            n_roll = len(range(rank, n_roll_global, world))
            roll_scale = world / max(n_roll_global, 1)
            idx = torch.as_tensor(local[None, :] + np.arange(k + 1)[:, None], device=dev)
            zb, mb = zt[idx], mt[idx]
            ub = None if ut is None else ut[idx]
            opt.zero_grad(set_to_none=True)
            try:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    total, terms = module(
                        zb, mb, ub, tau, mode, cfg, scale, bal_w, n_roll, roll_scale
                    )
                total.backward()
            except torch.OutOfMemoryError as error:
                raise MemoryError(
                    f"out of memory on {dev} with N={z.shape[1]} neurons, batch_frames="
                    f"{cfg.batch_frames}, n_filters={cfg.n_filters}, hidden={cfg.hidden}: reduce "
                    "batch_frames (first), rollout, rf_diameter (fewer candidate fields), "
                    "n_filters or hidden, or use device='cpu'."
                ) from error
            if frozen:
                net.logits.grad = None
                if net.shared_field_logits:
                    net.field_logits.grad = None
            opt.step()
            losses = {key: float(val.detach()) for key, val in terms.items()}
            for key, val in losses.items():
                sums[key] = sums.get(key, 0.0) + val
            sums["total"] = sums.get("total", 0.0) + float(total.detach())
            info = {
                "stage": "train",
                "epoch": epoch,
                "epochs": cfg.epochs,
                "step": step,
                "steps": steps,
                "losses": losses,
                "val_loss": history[-1]["val_loss"] if history else None,
                "tau": tau,
            }
            if _stop_requested(callback, info, rank, world, dev):
                stopped = "cancelled"
                break
        if stopped == "cancelled":
            break
        val = _validation_loss(net, zt, mt, ut, v0, v1) if v1 > v0 else math.nan
        record = {
            "epoch": epoch,
            "tau": tau,
            "mode": mode,
            **{f"train_{key}": v / steps for key, v in sums.items()},
            "val_loss": val,
            "seconds": time.perf_counter() - t_epoch,
        }
        history.append(record)
        done = epoch + 1 >= cfg.epochs
        if epoch >= hard_start - 1 or done:
            if not math.isnan(val) and val < best_val - 1e-6:
                best_val, bad_epochs = val, 0
                best_state = copy.deepcopy({kk: vv.cpu() for kk, vv in net.state_dict().items()})
            elif epoch >= hard_start:
                bad_epochs += 1
        if ckpt_path is not None and rank == 0:
            _atomic_torch_save(
                {
                    "net": net.state_dict(),
                    "opt": opt.state_dict(),
                    "epoch": epoch,
                    "best_val": best_val,
                    "bad_epochs": bad_epochs,
                    "best_state": best_state,
                    "history": history,
                    "shape": list(z.shape),
                    "seed": seed,
                    "config": cfg.to_dict(),
                },
                ckpt_path,
            )
        info = {
            "stage": "epoch",
            "epoch": epoch,
            "epochs": cfg.epochs,
            "step": steps - 1,
            "steps": steps,
            "losses": {kk: v / steps for kk, v in sums.items()},
            "val_loss": val,
            "tau": tau,
        }
        if _stop_requested(callback, info, rank, world, dev):
            stopped = "cancelled"
            break
        if bad_epochs >= cfg.patience:
            stopped = "early_stopping"
            break
    if best_state is not None and stopped != "cancelled":
        net.load_state_dict(best_state)
    return {"stopped": stopped}


def _stop_requested(
    callback: Callable[[dict], Any] | None,
    info: dict,
    rank: int,
    world: int,
    dev: torch.device,
) -> bool:
    """Report progress (rank 0 only) and whether the callback asked to stop, agreed by all ranks.

    Under DDP every rank must stop at the same step, or the others wait forever in the next
    all-reduce.
    """
    stop = callback is not None and rank == 0 and _call(callback, info) is False
    if world <= 1:
        return stop
    import torch.distributed as dist

    t = torch.tensor([1.0 if stop else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _call(callback: Callable[[dict], Any], info: dict) -> Any:
    try:
        return callback(info)
    except FitCancelled:
        return False


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
    for s in range(v0, v1 - 1, chunk):
        e = min(v1 - 1, s + chunk)
        pred = net.predict_hard(zt[s:e], None if ut is None else ut[s:e])
        m = mt[s + 1 : e + 1] * mt[s:e]
        num += float((((pred - zt[s + 1 : e + 1]) ** 2) * m).sum())
        den += float(m.sum())
    net.train()
    return num / max(den, 1.0)
