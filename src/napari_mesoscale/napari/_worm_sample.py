"""File ▸ Open Sample ▸ napari-mesoscale ▸ C. elegans: connectome and signal-propagation atlas.

Needs the ``worm`` data packages (see :mod:`napari_mesoscale.datasets.celegans`). The neurons
layer carries the same ``metadata`` as the toy brain's ``neurons (truth)`` (``activity``
(T, N), ``stimulus``, ``adjacency``), so the fit and connectome widgets work on it unchanged;
``activity`` is the atlas as one trial per stimulated neuron (``stimulation_trials``).

Colour the neurons by their measured response to one stimulated neuron from the console::

    from napari_mesoscale.napari._worm_sample import colour_by_response
    colour_by_response(viewer.layers["C. elegans neurons"], "AVAL")

or by the response the response field predicts for it, fitted without AVAL's own column
(``celegans.predict_response``; the first call per neuron fits in a background thread)::

    colour_by_response(viewer.layers["C. elegans neurons"], "AVAL", predicted=True)
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
    features["predicted_response"] = np.nan  # filled by colour_by_response(..., predicted=True)
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


def colour_by_response(
    layer: Any, stimulated: str, strain: str | None = None, predicted: bool = False
) -> Any:
    """Colour a worm neurons layer by the response (ΔF/F) to stimulating ``stimulated``.

    Parameters
    ----------
    layer : napari Points layer
        The sample's neurons layer (features ``id``).
    stimulated : str
        Neuron name.
    strain : {"wt", "unc31"}, optional
        Default: the layer's metadata ``strain`` (else wild type).
    predicted : bool
        False: the measured response (atlas), stored as the ``response`` feature. True: the
        response predicted by the response field fitted without ``stimulated``'s own column
        (:func:`napari_mesoscale.datasets.celegans.predict_response`), stored as
        ``predicted_response``; if that fit is not cached yet it runs in a background thread
        with a progress bar, the layer is coloured when it ends, and the worker is returned
        (its ``returned`` signal carries the responses).

    Returns
    -------
    ndarray or worker
        The responses, one per point (NaN where unobserved), or the background worker.
        Unobserved responders are grey, the stimulated neuron white, excited red, inhibited
        blue.
    """
    from napari_mesoscale.datasets import celegans

    strain = strain or (layer.metadata or {}).get("strain", "wt")
    if not predicted:
        response = celegans.response_to(stimulated, strain)
        return _paint(layer, stimulated, response, "response")
    if celegans.response_field_cached(stimulated, strain):
        response = celegans.predict_response(stimulated, strain)
        return _paint(layer, stimulated, response, "predicted_response")
    return _predict_in_background(layer, stimulated, strain)


def _paint(layer: Any, stimulated: str, by_name: Any, feature: str) -> np.ndarray:
    """Store ``by_name`` (responses keyed by neuron name) as ``feature`` and colour by it."""
    from napari_mesoscale.datasets import celegans

    names = layer.features["id"].astype(str)
    response = names.map(by_name).to_numpy(dtype=float)
    layer.features[feature] = response
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


def _predict_in_background(layer: Any, stimulated: str, strain: str) -> Any:
    """Fit and predict in a worker thread; a napari progress bar follows the fit's callback
    (relayed to the GUI thread by a Qt signal); the layer is coloured on return."""
    from napari.qt.threading import create_worker
    from napari.utils import progress as progress_bar
    from napari.utils.notifications import show_error
    from qtpy.QtCore import QCoreApplication

    from napari_mesoscale.datasets import celegans
    from napari_mesoscale.napari._runner import _ProgressRelay

    steps = 1000
    bar = progress_bar(total=steps, desc=f"predicting the response to {stimulated}")
    relay = _ProgressRelay(QCoreApplication.instance())

    def advance(info: dict) -> None:
        target = int(round(float(info.get("fraction", 0.0)) * steps))
        if target > bar.n:
            bar.update(target - bar.n)

    def finish(*_: Any) -> None:
        relay.progress.disconnect(advance)
        bar.close()

    relay.progress.connect(advance)
    worker = create_worker(
        celegans.predict_response, stimulated, strain, callback=relay.progress.emit
    )
    worker.returned.connect(
        lambda predicted: _paint(layer, stimulated, predicted, "predicted_response")
    )
    worker.errored.connect(lambda error: show_error(f"prediction failed: {error}"))
    worker.finished.connect(finish)
    worker.relay = relay  # kept alive as long as the worker
    worker.start()
    return worker


__all__ = ["colour_by_response", "worm_sample"]
