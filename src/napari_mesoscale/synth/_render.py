"""Deprecated import path of :mod:`napari_mesoscale.synth.render` (kept for one release).

The module object is the public one, so attributes patched through either name are shared.
"""

import sys
import warnings

from napari_mesoscale.synth import render as _public

warnings.warn(
    "napari_mesoscale.synth._render is deprecated; import napari_mesoscale.synth.render "
    "(or the names re-exported by napari_mesoscale.synth) instead.",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _public
