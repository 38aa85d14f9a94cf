"""Mesoscopic integrate-and-fire populations (René, Longtin & Macke 2020).

A microscopic GIF network simulator (:mod:`.microscopic`), the mesoscopic population model
with its binomial likelihood (:mod:`.mesoscopic`), maximum-likelihood fitting (:mod:`.fit`)
and placement of populations in 3D as a toy-brain-like ground truth (:mod:`.render`).
"""

from napari_mesoscale.reproductions.populations.fit import (
    MesoscopicBaseline,
    MesoscopicFit,
    fit_mesoscopic,
    log_prior,
)
from napari_mesoscale.reproductions.populations.mesoscopic import (
    MesoscopicModel,
    MesoscopicSimulation,
    history_length,
)
from napari_mesoscale.reproductions.populations.microscopic import (
    GIFParams,
    GIFSimulation,
    PopulationCancelled,
    four_population_params,
    ou_input,
    simulate_gif_network,
    sine_modulated_input,
    two_population_params,
)
from napari_mesoscale.reproductions.populations.render import PopulationBrain, make_population_brain

__all__ = [
    "GIFParams",
    "GIFSimulation",
    "PopulationCancelled",
    "MesoscopicBaseline",
    "MesoscopicFit",
    "MesoscopicModel",
    "MesoscopicSimulation",
    "PopulationBrain",
    "fit_mesoscopic",
    "four_population_params",
    "history_length",
    "log_prior",
    "make_population_brain",
    "ou_input",
    "simulate_gif_network",
    "sine_modulated_input",
    "two_population_params",
]
