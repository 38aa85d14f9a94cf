"""Connectome, spatial index, receptive-field grid, transmission-response graphs, registration."""

from napari_mesoscale.connectome._util import ConnectomeCancelled
from napari_mesoscale.connectome.build import ConnectomeBuild, build_connectome
from napari_mesoscale.connectome.features import neighbourhood_size, node_features
from napari_mesoscale.connectome.graph import Connectome
from napari_mesoscale.connectome.graph_ops import (
    condensation,
    degree_preserving_shuffle,
    graph_features,
    longest_path_lengths,
    node_type_labels,
    perturb_graph,
    smooth_graph,
)
from napari_mesoscale.connectome.grid import (
    FieldSubgraphs,
    Grid,
    enclosed_subgraphs,
    field_members,
    receptive_field_grid,
)
from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.connectome.registration import (
    Registration,
    assign_one_to_one,
    fit_transform,
    register_point_sources,
)
from napari_mesoscale.connectome.transmission import (
    TransmissionResponseGraphs,
    detect_events,
    transmission_response_graphs,
)

__all__ = [
    "condensation",
    "degree_preserving_shuffle",
    "graph_features",
    "longest_path_lengths",
    "node_type_labels",
    "perturb_graph",
    "smooth_graph",
    "Connectome",
    "ConnectomeBuild",
    "ConnectomeCancelled",
    "ConnectomeParams",
    "FieldSubgraphs",
    "Grid",
    "Registration",
    "TransmissionResponseGraphs",
    "assign_one_to_one",
    "build_connectome",
    "detect_events",
    "enclosed_subgraphs",
    "field_members",
    "fit_transform",
    "neighbourhood_size",
    "node_features",
    "receptive_field_grid",
    "register_point_sources",
    "transmission_response_graphs",
]
