"""File ▸ Open Sample ▸ napari-mesoscale: the toy brain of scripts/make_sample_data.py."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from napari_mesoscale.io import read_table, read_volume
from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._layers import (
    MOTIF_COLORS,
    LayerDataTuple,
    edge_vectors_layer,
    points_layer,
    volume_layer,
)
from napari_mesoscale.napari._units import in_micrometres

SAMPLE_FILES = {
    "calcium": "toy_calcium.ome.tif",
    "em": "toy_em.ome.tif",
    "em_somata": "toy_em_somata.ome.tif",
    "somata": "toy_somata.ome.tif",
    "neurons": "toy_neurons.csv",
    "synapses": "toy_synapses.csv",
    "activity": "toy_activity.npy",
    "stimulus": "toy_stimulus.npy",
}


def sample_path(key: str) -> Path:
    """Path of a bundled sample file (see ``SAMPLE_FILES``)."""
    path = Path(str(files("napari_mesoscale") / "sample_data" / SAMPLE_FILES[key]))
    if not path.exists():
        raise FileNotFoundError(
            f"Sample file {path.name} is missing; regenerate it with "
            "`python scripts/make_sample_data.py`."
        )
    return path


@in_micrometres
def calcium_sample() -> list[LayerDataTuple]:
    """The toy brain's calcium movie (T, Z, Y, X) with its voxel size in µm."""
    movie = read_volume(sample_path("calcium"))
    stimulus = np.load(sample_path("stimulus"))
    layer = volume_layer(movie, "calcium movie", colormap="gray", blending="additive")
    _contract.write(layer[1], stimulus=stimulus)
    return [layer]


@in_micrometres
def em_sample() -> list[LayerDataTuple]:
    """The toy brain's EM-like volume with its ground-truth somata."""
    em = read_volume(sample_path("em"))
    somata = read_volume(sample_path("em_somata"))
    return [
        volume_layer(em, "EM volume", colormap="gray"),
        volume_layer(somata, "EM somata (truth)", layer_type="labels", opacity=0.3),
    ]


@in_micrometres
def connectome_sample() -> list[LayerDataTuple]:
    """Neurons (coloured by motif), synapses, connections and true somata of the toy brain.

    The neurons layer's ``metadata`` holds the true ``activity`` (T, N), the ``stimulus``, the
    ``adjacency`` (synapse counts, pre → post) and ``roi_labels`` (the somata, label i + 1 =
    neuron i), so the model can be fitted to it directly.
    """
    neurons = read_table(sample_path("neurons"), required=["id", "z", "y", "x"])
    synapses = read_table(sample_path("synapses"), required=["pre", "post", "z", "y", "x"])
    somata = read_volume(sample_path("somata"))
    positions = neurons[["z", "y", "x"]].to_numpy()
    features = neurons.drop(columns=["z", "y", "x"])
    neuron_layer = points_layer(
        positions,
        "neurons (truth)",
        features=features,
        size=8.0,
        color_by="motif" if "motif" in features else None,
    )
    index = {neuron_id: row for row, neuron_id in enumerate(neurons["id"].to_numpy())}
    pairs = synapses.groupby(["pre", "post"]).size().reset_index(name="synapses")
    pre = pairs["pre"].map(index).to_numpy()
    post = pairs["post"].map(index).to_numpy()
    _contract.write(
        neuron_layer[1],
        roi_labels="somata (truth)",  # label i + 1 is neuron i
        activity=np.load(sample_path("activity")),
        stimulus=np.load(sample_path("stimulus")),
        adjacency=sp.csr_matrix(
            (pairs["synapses"].to_numpy(), (pre, post)), shape=(len(neurons), len(neurons))
        ),
    )
    synapse_layer = points_layer(
        synapses[["z", "y", "x"]].to_numpy(),
        "synapses",
        size=1.5,
        features=synapses.drop(columns=["z", "y", "x"]),
        face_color="white",
        visible=False,
    )
    edges = edge_vectors_layer(
        positions[pre],
        positions[post],
        "connections",
        features=pairs,
        edge_color="#8888ff",
        opacity=0.5,
    )
    somata_layer = volume_layer(
        somata, "somata (truth)", layer_type="labels", opacity=0.4, visible=False
    )
    return [somata_layer, edges, synapse_layer, neuron_layer]


__all__ = ["MOTIF_COLORS", "calcium_sample", "connectome_sample", "em_sample", "sample_path"]
