"""File ▸ Open Sample ▸ napari-mesoscale ▸ C. elegans: connectome and signal-propagation atlas.

Needs the ``worm`` data packages (see :mod:`napari_mesoscale.datasets.celegans`). The neurons
layer carries the same ``metadata`` as the toy brain's ``neurons (truth)`` (``activity``
(T, N), ``stimulus``, ``adjacency``), so the fit and connectome widgets work on it unchanged;
``activity`` is the atlas as one trial per stimulated neuron (``stimulation_trials``).

Colour the neurons by their measured response to one stimulated neuron from the console::

    from napari_mesoscale.napari._worm_sample import colour_by_response
    colour_by_response(viewer.layers["C. elegans neurons"], "AVAL")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from napari_mesoscale.napari._layers import LayerDataTuple, edge_vectors_layer, points_layer

NEURONS_LAYER = "C. elegans neurons"
DEFAULT_STIMULATED = "AVJR"


def worm_sample(source: str = "white_1986", strain: str = "wt") -> list[LayerDataTuple]:
    """Worm neurons (Points coloured by class), chemical synapses (Vectors), atlas as features."""
    from napari_mesoscale.datasets import celegans

    data = celegans.load_celegans(source, strain)
    neurons = data.neurons
    names = neurons["id"].tolist()
    index = {name: row for row, name in enumerate(names)}
    positions = neurons[["z", "y", "x"]].to_numpy()
    features = neurons.drop(columns=["z", "y", "x"])
    response = celegans.response_to(DEFAULT_STIMULATED, strain)
    features["response"] = features["id"].map(response).to_numpy(dtype=float)
    layer = points_layer(
        positions, NEURONS_LAYER, features=features, size=4.0, color_by="neuron_class"
    )
    chemical = data.chemical
    pre = chemical["pre"].map(index).to_numpy()
    post = chemical["post"].map(index).to_numpy()
    activity, stimulus, stimulated = celegans.stimulation_trials(names, strain)
    layer[1]["metadata"] = {
        "activity": activity,
        "stimulus": stimulus,
        "stimulated": stimulated,
        "adjacency": sp.csr_matrix(
            (chemical["synapses"].to_numpy(), (pre, post)), shape=(len(names), len(names))
        ),
        "atlas": data.atlas.drop(columns=["kernel", "dff_trials"]),
        "strain": strain,
        "source": source,
    }
    edges = edge_vectors_layer(
        positions[pre],
        positions[post],
        "C. elegans chemical synapses",
        features=chemical,
        edge_color="#8888ff",
        opacity=0.4,
    )
    return [edges, layer]


def colour_by_response(layer: Any, stimulated: str, strain: str | None = None) -> np.ndarray:
    """Colour a worm neurons layer by the measured response (ΔF/F) to ``stimulated``.

    Responders never observed are grey; the stimulated neuron is white. Returns the responses
    (NaN where unobserved), also stored as the layer's ``response`` feature.
    """
    from napari_mesoscale.datasets import celegans

    strain = strain or (layer.metadata or {}).get("strain", "wt")
    names = layer.features["id"].astype(str)
    response = names.map(celegans.response_to(stimulated, strain)).to_numpy(dtype=float)
    layer.features["response"] = response
    scale = np.nanmax(np.abs(response)) if np.isfinite(response).any() else 1.0
    value = np.clip(np.nan_to_num(response / max(scale, 1e-12)), -1, 1)
    colours = np.ones((len(response), 4))
    colours[:, 0] = np.where(value > 0, 1.0, 1.0 + value)  # red: excited, blue: inhibited
    colours[:, 1] = 1.0 - np.abs(value)
    colours[:, 2] = np.where(value < 0, 1.0, 1.0 - value)
    colours[~np.isfinite(response), :3] = 0.4
    colours[(names == celegans.canonical_name(stimulated)).to_numpy(), :3] = 1.0
    layer.face_color = colours
    return response


__all__ = ["colour_by_response", "worm_sample"]
