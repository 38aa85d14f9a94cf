"""``activity_assignment="motifs_moved"``: the kept-motif fit, then the moves that pay.

The mirror of ``"restored"``. Training keeps every neuron's initial filter (its motif) and lets
only its field learn, as ``"motifs"`` does, so no neuron drifts to another family's filter
while the filters adapt. After training, the error of every candidate (field, filter) pair on
the validation block is measured in one pass (the domain context of the fit's own
assignment), and a neuron moves to another filter's best pair when that pair's validation
one-step error times ``1 + ModelConfig.move_margin`` is still below its own pair's: a neuron
the initialisation put with the wrong motif moves when the right filter predicts it clearly
better. The moves are undone as a whole if the fit's validation error rises. The test block
plays no part.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.model.prepare import PreparedData
from napari_mesoscale.model.restored_assignment import _give_back, neuron_validation_errors
from napari_mesoscale.model.result import _CpuTensors, _pair_errors

__all__ = ["MOVE_MARGIN", "best_other_pairs", "move_where_it_pays"]

#: a neuron moves when another filter's best pair has a validation error below its own pair's
#: divided by (1 + margin); the default of ``ModelConfig.move_margin``
MOVE_MARGIN = 0.25


def best_other_pairs(
    net: MesoscaleNet, data: PreparedData
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron: its own pair's validation one-step error, and the best pair of any other
    filter (error, slot, filter), from one pass over the validation block; (N,) each."""
    t = _CpuTensors.of(data)
    errors = _pair_errors(net, t.z, t.m, t.u, *data.blocks["val"]).numpy()  # (N, Lm, B)
    n = errors.shape[0]
    slot, _, filt = (x.cpu().numpy() for x in net.choice())
    own = errors[np.arange(n), slot, filt]
    other = errors.copy()
    other[np.arange(n), :, filt] = np.inf
    flat = other.reshape(n, -1).argmin(axis=1)
    best_slot, best_filter = np.divmod(flat, errors.shape[2])
    return own, other.reshape(n, -1)[np.arange(n), flat], best_slot, best_filter


@torch.no_grad()
def move_where_it_pays(net: MesoscaleNet, data: PreparedData, margin: float = MOVE_MARGIN) -> dict:
    """Move every neuron whose best pair of another filter predicts its validation block more
    than ``margin`` better (see the module); changes ``net``'s logits in place.

    Returns
    -------
    dict
        ``moved`` (neurons moved to another filter), ``val_before`` / ``val_after`` (the fit's
        validation one-step MSE, normalised units), ``margin`` and ``undone`` (the fit's
        error rose, so no neuron moved).
    """
    _, before = neuron_validation_errors(net, data)
    report = {
        "mode": "motifs_moved",
        "moved": 0,
        "val_before": before,
        "val_after": before,
        "margin": float(margin),
        "undone": False,
    }
    if not np.isfinite(before):
        return report
    own, best, best_slot, best_filter = best_other_pairs(net, data)
    movers = np.flatnonzero((1.0 + margin) * best < own)
    if movers.size == 0:
        return report
    kept_logits = net.logits.detach().clone()
    _give_back(net, movers, best_filter[movers], best_slot[movers])
    _, after = neuron_validation_errors(net, data)
    if after > before:
        net.logits.data.copy_(kept_logits)
        report["undone"] = True
        return report
    report.update(moved=int(movers.size), val_after=after)
    return report
