"""Parameters of building a connectome: table values, node features, grid, transmission graphs.

:class:`ConnectomeParams` is the single source of the defaults of
:func:`~napari_mesoscale.connectome.build_connectome`, of ``napari-mesoscale connect`` and of
the "Build connectome" widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_mesoscale.params import Params, param

__all__ = ["ConnectomeParams"]


@dataclass
class ConnectomeParams(Params):
    """How a connectome, its node features, grid and transmission-response graphs are built."""

    value: str = param(
        "count",
        "adjacency entries: signed synapse counts or summed synapse weights",
        label="adjacency values",
        choices=("count", "weight"),
    )
    hops: int = param(
        2,
        "neighbourhood size counts the neurons within this many undirected hops (0 = skip)",
        label="neighbourhood hops",
        minimum=0,
        maximum=4,
    )
    grid_diameter: float = param(
        0.0,
        "receptive-field diameter of the grid (0 = no grid)",
        unit="µm",
        label="field diameter (0 = none)",
        minimum=0.0,
        step=5.0,
    )
    grid_stride: float | None = param(
        None,
        "lattice stride of the receptive-field grid (None = half the diameter)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    bin_size: int = param(
        10,
        "frames per transmission-response graph",
        unit="frames",
        label="TRG bin",
        minimum=1,
    )
    delay: int = param(
        3,
        "a post-synaptic event within this many frames of a pre-synaptic one counts as a response",
        unit="frames",
        label="TRG delay",
        minimum=1,
    )
    threshold: float = param(
        2.0,
        "event threshold on each neuron's z-scored activity",
        unit="z",
        label="event threshold",
        minimum=-100.0,
        maximum=100.0,
        step=0.5,
    )
