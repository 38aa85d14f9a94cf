"""``activity_assignment="reverted"``: the trained fit, its moves reverted and the filters
retrained around the initial motifs.

Training the assignment moves some neurons to another filter; on the zoo brains most such
moves went to another family's filter and cost motif labels, and giving them back after
training (``"restored"``) often costs error, because the filters have adapted to the moves.
This mode trains as ``"trained"``; if any neuron ended off its initial filter, every such
neuron gets that filter back (in its best field for it) and training goes on for
``ModelConfig.revert_epochs`` more epochs with every neuron's filter kept (``"motifs"``, at the
final temperature), so the filters adapt to the initial motifs. The retrained fit is kept when
its validation one-step error is at most ``ModelConfig.revert_tolerance`` (by default
``FIT_TOLERANCE``) above the trained fit's; otherwise the trained fit stands. A fit in which
nothing moved is the trained fit. The test block plays no part.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.initial_model import InitialModel, lock_motif_logits
from napari_mesoscale.model.prepare import PreparedData
from napari_mesoscale.model.restored_assignment import _give_back, neuron_validation_errors

__all__ = [
    "FIT_TOLERANCE",
    "choose_reverted",
    "describe_choice",
    "moved_neurons",
    "retraining_epochs",
    "reverted_start",
]

#: the retrained fit is kept when its validation error is at most (1 + this) x the trained
#: fit's: ``ModelConfig.revert_tolerance``'s default, written once, there
FIT_TOLERANCE: float = ModelConfig.defaults()["revert_tolerance"]


def moved_neurons(init: InitialModel) -> np.ndarray:
    """The neurons whose filter (motif) is no longer their initial group's."""
    return np.flatnonzero(init.net.choice()[2].cpu().numpy() != np.asarray(init.init_groups))


def reverted_start(init: InitialModel, epochs: int) -> InitialModel:
    """A copy of the trained ``init`` in which every neuron has its initial filter back (its
    best field for it) and keeps it, configured for ``epochs`` more epochs at the final
    temperature with no frozen start; ``init`` is left as it is."""
    if init.init_groups is None:
        raise ValueError("reverting to the initial motifs needs the dynamics initialisation")
    groups = np.asarray(init.init_groups)
    moved = moved_neurons(init)
    net = copy.deepcopy(init.net)
    with torch.no_grad():
        _give_back(net, moved, groups[moved])
        net.logits.copy_(lock_motif_logits(net.logits, groups))
    cfg = init.config.replace(
        activity_assignment="motifs",
        epochs=int(epochs),
        freeze_assignment_epochs=0,
        tau_start=init.config.tau_end,
        anneal_fraction=0.0,
        hard_fraction=1.0,
    )
    return replace(init, net=net, config=cfg)


def choose_reverted(
    trained: InitialModel,
    reverted: InitialModel,
    data: PreparedData,
    moved: int,
    tolerance: float = FIT_TOLERANCE,
) -> dict:
    """Keep the retrained fit (``"reverted"``) when its validation one-step error is at most
    ``(1 + tolerance)`` x the trained fit's, else ``"trained"``.

    Returns
    -------
    dict
        ``chosen``, ``moved`` (neurons training had moved off their initial filter), both
        validation errors (normalised units, the fit's ``val_mse``), their ratio
        ``val_reverted / val_trained`` and the tolerance.
    """
    _, val_t = neuron_validation_errors(trained.net, data)
    _, val_r = neuron_validation_errors(reverted.net, data)
    ratio = val_r / val_t if val_t > 0 else float("nan")
    return {
        "mode": "reverted",
        "chosen": "reverted" if val_r <= (1.0 + tolerance) * val_t else "trained",
        "moved": int(moved),
        "val_trained": float(val_t),
        "val_reverted": float(val_r),
        "ratio": float(ratio),
        "tolerance": float(tolerance),
    }


def describe_choice(choice: dict | None) -> str:
    """One line for a user on what the reversion did, ``""`` when there was nothing to do.

    Parameters
    ----------
    choice : dict or None
        A fit's ``assignment_choice`` (only ``mode == "reverted"`` is described).
    """
    if not choice or choice.get("mode") != "reverted" or not choice.get("moved"):
        return ""
    moved = f"training moved {choice['moved']} cells off their initial motif"
    if choice.get("cancelled"):
        return f"{moved}; cancelled before the fits were compared"
    ratio = choice["ratio"]
    if choice["chosen"] == "reverted":
        return (
            f"{moved}, given back: the fit retrained around the initial motifs has "
            f"{ratio:.3f} x the validation error with the moves"
        )
    return (
        f"{moved}, kept: retrained without the moves the validation error is {ratio:.3f} x, "
        f"over the {100 * choice['tolerance']:.0f} % bar"
    )


def retraining_epochs(history: Any) -> int:
    """How many epochs of a fit's history (a table or list of rows) ran after the reversion."""
    rows = history.to_dict("records") if hasattr(history, "to_dict") else list(history)
    return sum(1 for row in rows if row.get("reverted") in (True,))  # NaN, numpy bools
