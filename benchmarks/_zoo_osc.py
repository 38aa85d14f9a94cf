"""Dev zoo brains with a second-order family built here (not the zoo's test families).

``with_oscillators(brain)`` replaces the neurons of instance 0 by damped oscillators kicked by
the brain's first stimulus channel, exactly as ``input_lags_auto_dev.py``'s ``zoo_osc`` cases
do (the same activity to the last digit; with ``instances`` > 1 instances 1, 2, ... too, each
its own draw of periods and noise), and gives them their own motif label
(``oscillator_dev``) so that motif and domain recovery can be scored; their synapses are
removed. The families are renumbered over the ones still present.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from input_lags_auto_dev import OSCILLATOR_C2, oscillator_c1, oscillators

OSCILLATOR_FAMILY = "oscillator_dev"


def _oscillator_expected(x: np.ndarray, kicks: np.ndarray, seed: int) -> np.ndarray:
    """Row t: the oscillators' update before noise (row 0 = x[0]), as ``oscillators`` draws it."""
    c1 = oscillator_c1(np.random.default_rng(seed), x.shape[1])
    expected = x.copy()
    expected[2:] = c1 * x[1:-1] + OSCILLATOR_C2 * x[:-2] + kicks[1:-1, None]
    return expected


def with_oscillators(brain, seed: int, instances: int = 1):
    """The zoo brain with the neurons of instances 0 .. ``instances`` - 1 replaced by damped
    oscillators (see module)."""
    replaced = range(min(instances, len(brain.instance_motif)))
    members = np.flatnonzero(np.isin(brain.instance, list(replaced)))
    activity = np.array(brain.activity, dtype=np.float64)
    expected = np.array(brain.expected, dtype=np.float64)
    stim = np.asarray(brain.stimulus, dtype=np.float64)[:, 0]
    kicks = 0.3 * (stim - stim.mean()) / max(stim.std(), 1e-12)
    scale_to = np.median(activity.std(0))
    for i in replaced:
        own = np.flatnonzero(brain.instance == i)
        draw = seed + 100_003 * i  # instance 0: the zoo_osc cases' own draw
        osc = oscillators(len(own), activity.shape[0], kicks, draw)
        scale = scale_to / max(osc.std(), 1e-12)
        mean = activity[:, own].mean(0)
        activity[:, own] = mean + scale * osc
        expected[:, own] = mean + scale * _oscillator_expected(osc, kicks, draw)

    motif = np.array(brain.motif)
    motif[members] = len(brain.motif_names)
    names = (*brain.motif_names, OSCILLATOR_FAMILY)
    present, motif = np.unique(motif, return_inverse=True)
    names = tuple(names[f] for f in present)
    renumber = {int(f): i for i, f in enumerate(present)}
    instance_motif = np.array(brain.instance_motif)
    instance_motif[list(replaced)] = len(brain.motif_names)
    instance_motif = np.array([renumber[int(f)] for f in instance_motif])

    neurons = brain.neurons.copy()
    neurons["motif"] = motif
    neurons["motif_name"] = [names[f] for f in motif]
    ids = set(neurons["id"].to_numpy()[members].tolist())
    synapses = brain.synapses[~(brain.synapses["pre"].isin(ids) | brain.synapses["post"].isin(ids))]
    adjacency = brain.adjacency.tolil(copy=True)
    adjacency[members, :] = 0
    adjacency[:, members] = 0
    return replace(
        brain,
        activity=activity.astype(np.float32),
        expected=expected.astype(np.float32),
        motif=motif,
        motif_names=names,
        neurons=neurons,
        synapses=synapses.reset_index(drop=True),
        adjacency=adjacency.tocsr(),
        instance_motif=instance_motif,
        params={
            **brain.params,
            "oscillators": {
                "instance": 0, "instances": list(replaced), "neurons": int(members.size)
            },
        },
    )
