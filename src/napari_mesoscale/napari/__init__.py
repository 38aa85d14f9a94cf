"""Subpackage of napari-mesoscale."""
