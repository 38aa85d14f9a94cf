"""Locating neurons from their activity: a reproduction of Dyer & Griffin 2022.

:func:`localise_neurons` assigns held-out neurons to locations from correlation-eigenvector
features (:func:`napari_mesoscale.evaluate.correlation_eigenfeatures`) with a bank of random
forests and the Hungarian algorithm; :func:`layerwise_graph_error` scores the assignment.
:mod:`.lenet_digits` runs the paper's experiment on a small LeNet trained on scikit-learn's
digits (torch is imported only there).
"""

from napari_mesoscale.reproductions.localisation.localise import (
    ClassifierBank,
    LocalisationResult,
    assign_one_to_one,
    layerwise_graph_error,
    localise_neurons,
)

__all__ = [
    "ClassifierBank",
    "LocalisationResult",
    "assign_one_to_one",
    "layerwise_graph_error",
    "localise_neurons",
]
