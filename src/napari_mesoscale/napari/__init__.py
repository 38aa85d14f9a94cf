"""The napari side: widgets, readers, writers, sample data and core-result → layer conversion.

Nothing here holds science: widgets collect parameters, run one core call in a worker
(:mod:`napari_mesoscale.napari._runner`) and turn its result into layers.
"""
