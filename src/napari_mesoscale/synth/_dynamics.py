"""Deprecated import path of :mod:`napari_mesoscale.synth.dynamics` (kept for one release).

The module object is the public one, so attributes patched through either name are shared.
"""

import sys

from napari_mesoscale.synth import dynamics as _public

sys.modules[__name__] = _public
