"""``activity_assignment="restored"``: the trained assignment, with the moves that did not pay
returned to the initialisation's filter.

Training the assignment moves some neurons to another filter. On the toy brain such a move can
fix a neuron the initialisation put with the wrong filter; on the zoo brains most moves were to
another family's filter with no gain in held-out error, and they cost motif labels. After the
usual training this mode looks at each neuron whose filter is no longer its initial one and
gives it back that filter (in its best field for it) when its validation one-step error rises
by at most ``ModelConfig.restore_tolerance``; the whole restoration is undone if the fit's
validation error rises by more than ``FIT_TOLERANCE``. Three passes over the validation block,
no second training. The test block plays no part.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.model.prepare import PreparedData
from napari_mesoscale.model.result import _block_errors, _CpuTensors

__all__ = [
    "FIT_TOLERANCE",
    "NEURON_TOLERANCE",
    "neuron_validation_errors",
    "restore_initial_motifs",
]

#: a moved neuron gets its initial filter back when its validation error is at most
#: (1 + tolerance) x its error with the trained filter; set before any measurement (the fit's
#: is ``ModelConfig.restore_tolerance``, whose default this is)
NEURON_TOLERANCE = 0.05
#: ... and the restoration stands only if the fit's validation error rises by at most this
FIT_TOLERANCE = 0.01


@torch.no_grad()
def neuron_validation_errors(net: MesoscaleNet, data: PreparedData) -> tuple[np.ndarray, float]:
    """Per-neuron (N,) and the fit's hard one-step MSE over the validation block (normalised
    units), as the fit's ``scores["val_mse"]`` counts it."""
    return _block_errors(net, _CpuTensors.of(data), *data.blocks["val"])


def _give_back(
    net: MesoscaleNet, neurons: np.ndarray, filters: np.ndarray, slots: np.ndarray | None = None
) -> None:
    """Make each neuron's pair (``slots``; None: its best by logit) for its given filter its
    choice, by swapping that pair's logit with the current winner's (the neuron's logits keep
    their values, reordered)."""
    if neurons.size == 0:
        return
    a = net.assignment_logits().detach()
    idx = torch.as_tensor(neurons, device=a.device)
    filt = torch.as_tensor(filters, device=a.device)
    slot, _, old_filter = net.choice()
    if slots is None:
        best_slot = a[idx, :, filt].argmax(dim=1)
    else:
        best_slot = torch.as_tensor(slots, device=a.device)
    gap = a[idx, slot[idx], old_filter[idx]] - a[idx, best_slot, filt]
    net.logits.data[idx, best_slot, filt] += gap
    net.logits.data[idx, slot[idx], old_filter[idx]] -= gap


def restore_initial_motifs(
    net: MesoscaleNet,
    data: PreparedData,
    initial_groups: np.ndarray,
    neuron_tolerance: float = NEURON_TOLERANCE,
    fit_tolerance: float = FIT_TOLERANCE,
) -> dict:
    """Give every neuron that training moved off its initial filter that filter back where
    its validation error allows (see the module); changes ``net``'s logits in place.

    Returns
    -------
    dict
        ``moved`` (neurons off their initial filter after training), ``restored`` (given it
        back), ``val_before`` / ``val_after`` (the fit's validation one-step MSE, normalised
        units), ``undone`` (the fit's error rose too much) and both tolerances.
    """
    groups = np.asarray(initial_groups)
    moved = np.flatnonzero(net.choice()[2].cpu().numpy() != groups)
    per_neuron, before = neuron_validation_errors(net, data)
    report = {
        "mode": "restored",
        "moved": int(moved.size),
        "restored": 0,
        "val_before": before,
        "val_after": before,
        "neuron_tolerance": float(neuron_tolerance),
        "fit_tolerance": float(fit_tolerance),
        "undone": False,
    }
    if moved.size == 0 or not np.isfinite(before):
        return report
    trained_logits = net.logits.detach().clone()
    _give_back(net, moved, groups[moved])
    per_neuron_back, _ = neuron_validation_errors(net, data)
    keep = per_neuron_back[moved] <= (1.0 + neuron_tolerance) * per_neuron[moved]
    net.logits.data.copy_(trained_logits)
    _give_back(net, moved[keep], groups[moved[keep]])
    _, after = neuron_validation_errors(net, data)
    if after > (1.0 + fit_tolerance) * before:
        net.logits.data.copy_(trained_logits)
        report["undone"] = True
        return report
    report.update(restored=int(keep.sum()), val_after=after)
    return report
