"""Training of the mesoscale model: ``fit_mesoscale``, a short sequence of stages.

1. *prepare* (:mod:`napari_mesoscale.model.prepare`): validate, split in time, normalise,
   mask NaNs;
2. *initialise* (:mod:`napari_mesoscale.model.initial_model`): receptive-field grid, drive
   edges, initial assignment, the network;
3. *train* (:mod:`napari_mesoscale.model.training`): Adam with annealing, early stopping,
   checkpoints and DistributedDataParallel under ``torchrun``;
4. *package* (:meth:`napari_mesoscale.model.result.MesoscaleFit._from_training`): domains,
   confidence, held-out scores.

Progress goes through :class:`napari_mesoscale.progress.Progress`, one fraction of the whole
fit that only rises: prepare 0-2 %, initialise 2-10 %, train 10-97 % (by epoch and step),
package 97-100 %.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.initial_model import (
    InitialModel,
    as_adjacency,
    auto_diameter,
    initialise_model,
)
from napari_mesoscale.model.prepare import (
    PreparedData,
    prepare_data,
    split_blocks,
    validate_inputs,
)
from napari_mesoscale.model.training import (
    CHECKPOINT_NAME,
    RunOptions,
    dist_info,
    moves_assignment,
    restores_assignment,
    reverts_assignment,
    train_model,
    validates_assignment,
)
from napari_mesoscale.progress import Cancelled, EpochsNumberedOn, Progress, ProgressCallback

__all__ = [
    "CHECKPOINT_NAME",
    "FitCancelled",
    "auto_diameter",
    "fit_mesoscale",
    "resolve_device",
    "split_blocks",
    "validate_inputs",
]

_STAGES = {"prepare": (0.0, 0.02), "initialise": (0.02, 0.10), "train": (0.10, 0.97)}
_PACKAGE = (0.97, 1.0)
_as_adjacency = as_adjacency  # former private name


class FitCancelled(Cancelled):
    """Raise from a ``callback`` to stop training cleanly (same effect as returning False).

    A :class:`napari_mesoscale.progress.Cancelled`: ``except Cancelled`` catches it too.
    """


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
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device; use auto, cpu, cuda or mps."
        ) from error
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if not available.get(chosen.type, False):
        raise ValueError(
            f"device={device!r} is not available with this torch ({torch.__version__}); "
            "use device='auto' or 'cpu'."
        )
    return chosen


def fit_mesoscale(
    activity: Any,
    positions: Any,
    *,
    connectome: Any = None,
    stimulus: Any = None,
    n_filters: int | None = None,
    rf_diameter: float | None = None,
    stride: float | None = None,
    epochs: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    callback: ProgressCallback | Progress | None = None,
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
        the loss; inf is refused.
    positions : array_like, shape (N, 3)
        Neuron positions in µm, (z, y, x).
    connectome : Connectome or scipy.sparse matrix (N, N), optional
        Pre -> post adjacency: one drive weight per edge (else a local gather, see
        ``ModelConfig.gather_radius``).
    stimulus : array_like, shape (T,) or (T, S), optional
        Stimulus time series, given to every filter.
    n_filters, rf_diameter, stride, epochs : optional
        Shortcuts for the :class:`ModelConfig` fields of the same name; ``None`` keeps the
        value of ``config`` (or the :class:`ModelConfig` default).
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        ``"auto"`` picks CUDA, then MPS, then CPU (see ``ModelConfig.precision``).
    seed : int
        Seed of every random choice. On CPU two runs with the same seed and the same number
        of torch threads are bit-identical (the model's gathers sum their gradients in a fixed
        order); a different number of threads changes the order of sums, and results then
        agree to rounding (about 1e-6 relative), not bit for bit.
    callback : callable or Progress, optional
        Progress protocol of :mod:`napari_mesoscale.progress`: called with ``fraction`` (of the
        whole fit, rising), ``message`` and ``stage``; training steps add ``epoch``, ``epochs``,
        ``step``, ``steps``, ``losses`` per term, ``val_loss`` and ``tau`` (``stage`` is
        ``"train"`` after a step and ``"epoch"`` at the end of an epoch). Returning ``False``
        or raising any :class:`~napari_mesoscale.progress.Cancelled` (e.g.
        :class:`FitCancelled`) during training stops it cleanly: the fit so far is returned
        with ``fit.cancelled`` true (``fit.stopped == "cancelled"``). A cancel before
        training starts raises :class:`FitCancelled` (there is nothing to return yet).
    checkpoint_dir, resume : path, bool
        Write a checkpoint (atomically) after every epoch; continue from it with ``resume``.
    config : ModelConfig, optional
        All other hyper-parameters; keyword ``options`` override single fields
        (e.g. ``hidden=16, lambda_complexity=0.1``), as do the shortcuts above.

    Returns
    -------
    MesoscaleFit
    """
    from napari_mesoscale.model.result import package_versions

    cfg = (config if config is not None else ModelConfig()).merged(
        n_filters=n_filters, rf_diameter=rf_diameter, stride=stride, epochs=epochs, **options
    )
    cfg.check(has_connectome=connectome is not None)
    rank_zero = int(os.environ.get("RANK", "0")) == 0
    progress = Progress.wrap(callback if rank_zero else None, FitCancelled)
    stage = {name: progress.stage(*span, name) for name, span in _STAGES.items()}
    calcium = _calcium_latent(activity) if cfg.observation == "calcium" else None
    if calcium is not None:
        from napari_mesoscale.model.observation import calcium_config

        cfg = calcium_config(cfg)
    data = prepare_data(activity if calcium is None else calcium[0], positions, stimulus, cfg)
    if calcium is not None and data.z_neuron is not None:
        from napari_mesoscale.model.observation import feature_block

        data = replace(data, z_neuron=feature_block(calcium[2], data.blocks["train"]))
    message = f"{data.n_neurons} neurons, {data.z.shape[0]} frames"
    lag_probe = None
    if cfg.input_lags == "auto":
        from napari_mesoscale.model.lag_probe import probe_input_lags

        lag_probe = probe_input_lags(data, connectome)
        cfg = cfg.replace(input_lags=lag_probe.lags)
        message += f"; {lag_probe.summary()}"
    motif_choice = None
    if cfg.motif_choice == "split_half":
        from napari_mesoscale.model.split_half_choice import choose_motif_start

        motif_choice = choose_motif_start(
            data, connectome, cfg, seed, stage["prepare"].stage(0.5, 1.0, "motif choice")
        )
        cfg = cfg.replace(motif_choice="initialisation")  # resolved, as input_lags is
        if motif_choice.chosen == "discovery":
            cfg = cfg.replace(assignment="em", init="random")
        message += f"; {motif_choice.summary()}"
    stage["prepare"].report(1.0, message)
    run = RunOptions(resolve_device(device), seed, checkpoint_dir, resume)
    init = initialise_model(data, cfg, connectome, seed, stage["initialise"], run.device)
    if validates_assignment(init.config):
        init, training, choice = _train_validated(init, data, run, stage["train"])
    elif reverts_assignment(init.config):
        init, training, choice = _train_reverted(init, data, run, stage["train"])
    else:
        training, choice = _train(init, data, run, stage["train"]), None
        if restores_assignment(init.config) and training.stopped != "cancelled":
            from napari_mesoscale.model.restored_assignment import restore_initial_motifs

            # on the training device; _package scores there too and leaves the net on the CPU
            choice = restore_initial_motifs(
                init.net.to(run.device), data, init.init_groups, init.config.restore_tolerance
            )
        if moves_assignment(init.config) and training.stopped != "cancelled":
            from napari_mesoscale.model.moved_assignment import move_where_it_pays

            choice = move_where_it_pays(init.net.to(run.device), data, init.config.move_margin)
    fit = _package(init, data, training, run, package_versions())
    if choice is not None:
        fit.assignment_choice = fit._p["assignment_choice"] = choice
    if lag_probe is not None:
        fit.lag_probe = fit._p["lag_probe"] = lag_probe.to_dict()
    if motif_choice is not None:
        fit.motif_choice = fit._p["motif_choice"] = motif_choice.to_dict()
    if calcium is not None:
        from napari_mesoscale.model.observation import attach_readout

        attach_readout(fit, activity, calcium[0], calcium[1], stimulus)
    _report_done(progress.stage(*_PACKAGE, "package"), fit)
    return fit


def _calcium_latent(dff: Any) -> tuple[Any, float, Any]:
    """For calcium input: the latent the filters evolve, the decay used, and the signal the
    initialisation's dynamics features are computed on."""
    import numpy as np

    from napari_mesoscale.model.observation import estimate_decay, innovation, to_latent

    dff = np.asarray(dff, dtype=np.float64)
    decay = estimate_decay(dff)
    return to_latent(dff, decay), decay, innovation(dff, decay)


def _train(init: InitialModel, data: PreparedData, run: RunOptions, progress: Progress) -> Any:
    """Train on this process (and its torchrun peers); the net ends on the CPU in float32."""
    run.rank, run.world, dist_here = dist_info()
    try:
        training = train_model(
            init.net, data, init.config, run, progress, init.units, init.init_groups
        )
    finally:
        if dist_here:
            import torch.distributed as dist

            dist.destroy_process_group()
    init.net.to("cpu").float()
    return training


def _train_validated(
    init: InitialModel, data: PreparedData, run: RunOptions, progress: Progress
) -> tuple[InitialModel, Any, dict]:
    """``activity_assignment="validated"``: train the trained and the kept-motif assignment
    from the same initial network, each over half of ``progress``; keep the one that
    :func:`~napari_mesoscale.model.validated_assignment.choose_assignment` picks. A cancel
    during the first returns it as the (partial) fit."""
    from napari_mesoscale.model.validated_assignment import (
        ARMS,
        arm_run,
        arm_starts,
        choose_assignment,
    )

    starts = arm_starts(init)
    arms: dict[str, tuple[InitialModel, Any]] = {}
    for i, arm in enumerate(ARMS):
        start = starts[arm]
        part = progress.stage(i / len(ARMS), (i + 1) / len(ARMS))
        arms[arm] = (start, _train(start, data, arm_run(run, arm), part))
        if arms[arm][1].stopped == "cancelled":
            return (*arms[arm], {"chosen": arm, "cancelled": True})
    choice = choose_assignment(arms["trained"][1], arms["motifs"][1])
    chosen, training = arms[choice["chosen"]]
    return replace(chosen, config=init.config), training, choice


def _train_reverted(
    init: InitialModel, data: PreparedData, run: RunOptions, progress: Progress
) -> tuple[InitialModel, Any, dict]:
    """``activity_assignment="reverted"``: train as ``"trained"``; if neurons moved off their
    initial filter, retrain a copy with the moves reverted and keep the one that
    :func:`~napari_mesoscale.model.reverted_assignment.choose_reverted` picks. The retraining
    checkpoints in its own subfolder; a cancel during it returns it as the (partial) fit."""
    from napari_mesoscale.model.reverted_assignment import (
        choose_reverted,
        moved_neurons,
        reverted_start,
    )
    from napari_mesoscale.model.validated_assignment import arm_run

    cfg = init.config
    share = cfg.epochs / max(1, cfg.epochs + cfg.revert_epochs)
    training = _train(init, data, run, progress.stage(0.0, share))
    moved = moved_neurons(init)
    choice = {"mode": "reverted", "chosen": "trained", "moved": int(moved.size)}
    if training.stopped == "cancelled":
        return init, training, {**choice, "cancelled": True}
    if moved.size == 0 or cfg.revert_epochs == 0:
        return init, training, choice
    start = reverted_start(init, cfg.revert_epochs)
    after = EpochsNumberedOn(progress.stage(share, 1.0, "moves reverted"), len(training.history))
    retraining = _train(start, data, arm_run(run, "reverted"), after)
    retraining.history = training.history + [  # the epochs after the reversion, numbered on
        {**row, "epoch": row["epoch"] + len(training.history), "reverted": True}
        for row in retraining.history
    ]
    if retraining.stopped == "cancelled":
        cancelled = {**choice, "chosen": "reverted", "cancelled": True}
        return replace(start, config=cfg), retraining, cancelled
    init.net.to(run.device)
    start.net.to(run.device)
    choice = choose_reverted(init, start, data, moved.size, cfg.revert_tolerance)
    init.net.to("cpu")
    start.net.to("cpu")
    if choice["chosen"] == "reverted":
        return replace(start, config=cfg), retraining, choice
    return init, training, choice


def _package(init: Any, data: Any, training: Any, run: RunOptions, versions: dict) -> Any:
    from napari_mesoscale.model.result import MesoscaleFit

    return MesoscaleFit._from_training(
        init,
        data,
        training,
        seed=run.seed,
        versions=versions,
        device=str(run.device),
        compute_device=run.device,
    )


def _report_done(progress: Progress, fit: Any) -> None:
    """The last report; a cancel this late only marks the (complete) fit as cancelled."""
    try:
        progress.report(1.0, f"{fit.domains.shape[0]} domains", test_mse=fit.scores["test_mse"])
    except Cancelled:
        fit.stopped = fit._p["stopped"] = "cancelled"
