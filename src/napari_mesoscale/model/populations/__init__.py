"""Former home of the population-model reproduction (René, Longtin & Macke 2020).

See :mod:`napari_mesoscale.reproductions.populations`.
"""

from napari_mesoscale.reproductions.populations import *  # noqa: F403
from napari_mesoscale.reproductions.populations import __all__  # noqa: F401
