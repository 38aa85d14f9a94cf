"""The one Adam training loop of the forecasters (GRU baseline, graph-kernel forecaster).

:func:`adam_loop` runs ``epochs`` passes; each pass takes the batches ``batches(epoch)``
yields, one Adam step per batch on ``loss(batch)``. With ``validate`` it early-stops on the
validation loss and restores the best parameters. Progress and cancel follow
:mod:`napari_mesoscale.progress`: a cancel (the callback returned False or raised a
:class:`~napari_mesoscale.progress.Cancelled`) ends training; the result says so
(``cancelled=True``) and keeps the parameters reached (the best ones if validated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from napari_mesoscale.progress import Cancelled, Progress, ProgressCallback

__all__ = ["AdamRun", "ForecasterCancelled", "adam_loop"]


class ForecasterCancelled(Cancelled):
    """A forecaster's training was cancelled through its progress callback."""


@dataclass
class AdamRun:
    """How a run of :func:`adam_loop` went: per-step losses, epochs run, whether cancelled."""

    losses: list[float] = field(default_factory=list)
    epochs_run: int = 0
    best_val: float = math.inf
    cancelled: bool = False


def adam_loop(
    module: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    loss: Callable[[Any], torch.Tensor],
    *,
    epochs: int,
    lr: float,
    validate: Callable[[], float] | None = None,
    patience: int = 10,
    callback: ProgressCallback | Progress | None = None,
    report_every: int = 1,
    unit: str = "epoch",
) -> AdamRun:
    """Train ``module``'s parameters with Adam; return an :class:`AdamRun`.

    Parameters
    ----------
    module : the parameters to train (all of ``module.parameters()``).
    batches : ``epoch -> iterable of batches``; drawn lazily, so random draws keep their order.
    loss : ``batch -> scalar loss``.
    epochs, lr : passes and Adam learning rate.
    validate : optional ``() -> validation loss``, called after every pass; early stopping
        after ``patience`` passes without an improvement of 1e-7, best parameters restored.
    callback : progress protocol; reported every ``report_every`` passes and after the last
        with figures ``loss`` and ``epoch`` / ``epochs`` (0-based), or ``step`` / ``steps``
        (1-based) with ``unit="step"`` (when every pass is one Adam step).
    """
    progress = Progress.wrap(callback, ForecasterCancelled)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    run, best_state, bad = AdamRun(), None, 0
    for epoch in range(epochs):
        for batch in batches(epoch):
            opt.zero_grad()
            value = loss(batch)
            value.backward()
            opt.step()
            run.losses.append(float(value.detach()))
        run.epochs_run = epoch + 1
        if validate is not None:
            val = validate()
            if val < run.best_val - 1e-7:
                run.best_val, bad = val, 0
                best_state = {k: v.clone() for k, v in module.state_dict().items()}
            else:
                bad += 1
        if epoch % report_every == 0 or epoch == epochs - 1:
            try:
                counter = {unit: epoch + (unit == "step"), f"{unit}s": epochs}
                last = run.losses[-1] if run.losses else math.nan
                progress.report(
                    (epoch + 1) / epochs, f"{unit} {epoch + 1}/{epochs}", loss=last, **counter
                )
            except Cancelled:
                run.cancelled = True
                break
        if validate is not None and bad >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    return run
