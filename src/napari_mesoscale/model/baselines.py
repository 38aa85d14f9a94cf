"""Former home of the forecast baselines: see :mod:`napari_mesoscale.forecasters.baselines`."""

from napari_mesoscale.forecasters.baselines import *  # noqa: F403
from napari_mesoscale.forecasters.baselines import __all__  # noqa: F401
