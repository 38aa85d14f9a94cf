"""Connectome, spatial index, receptive-field grid, transmission-response graphs, registration."""

from napari_mesoscale.connectome.grid import Grid, receptive_field_grid

__all__ = ["Grid", "receptive_field_grid"]
