"""Former home of the connectome kernels and the graph-kernel forecaster.

See :mod:`napari_mesoscale.forecasters.graph_kernel`.
"""

from napari_mesoscale.forecasters.graph_kernel import *  # noqa: F403
from napari_mesoscale.forecasters.graph_kernel import (  # noqa: F401
    DENSE_LIMIT,
    MODES,
    __all__,
)
