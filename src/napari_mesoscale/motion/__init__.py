"""Motion correction of calcium movies (rigid and piecewise non-rigid), and simulated motion."""

from napari_mesoscale.motion.params import MotionParams
from napari_mesoscale.motion.register import (
    MotionCancelled,
    MotionCorrection,
    check_movie,
    correct_motion,
)

__all__ = [
    "MotionCancelled",
    "MotionCorrection",
    "MotionParams",
    "apply_motion",
    "check_movie",
    "correct_motion",
    "estimate_motion",
    "register_if_moving",
]


def __getattr__(name: str):
    if name == "apply_motion":
        from napari_mesoscale.motion.simulate import apply_motion

        return apply_motion
    if name in ("estimate_motion", "register_if_moving"):
        from napari_mesoscale.motion import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
