"""Parameters of motion correction (one dataclass, the single source of defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_mesoscale.params import Params, param

__all__ = ["MotionParams"]


@dataclass
class MotionParams(Params):
    """Rigid and piecewise non-rigid registration of a calcium movie to a refined reference."""

    nonrigid: bool = param(True, "also estimate patch-wise (piecewise non-rigid) shifts")
    max_shift_um: float = param(
        12.0, "largest rigid shift searched, per axis", unit="µm", minimum=0.0, maximum=1e4
    )
    block_size_um: float = param(
        24.0, "edge of the patches of non-rigid registration", unit="µm", minimum=1.0
    )
    max_block_shift_um: float = param(
        4.0, "largest patch shift on top of the rigid one, per axis", unit="µm", minimum=0.0
    )
    nonrigid_iterations: int = param(
        3,
        "patch-shift passes (each on the frames corrected by the previous ones)",
        minimum=1,
        maximum=5,
    )
    field_interpolation: str = param(
        "cubic",
        "interpolation of the patch shifts into a smooth field between patch centres (a cubic "
        "spline follows smooth warps far closer than linear interpolation)",
        choices=("cubic", "linear"),
    )
    temporal_window_frames: int = param(
        1,
        "running mean of the patch shifts over this many frames (1 = none; within a batch)",
        unit="frames",
        minimum=1,
        maximum=99,
    )
    smooth_sigma_voxels: float = param(
        1.5,
        "Gaussian smoothing of the phase correlation",
        unit="voxels",
        minimum=0.0,
        maximum=10.0,
    )
    interpolation: str = param(
        "cubic",
        "resampling of the registered movie: cubic B-spline keeps every frame equally sharp "
        "(linear blurs each frame by an amount that depends on its subpixel shift)",
        choices=("cubic", "linear"),
    )
    n_reference_frames: int = param(
        60, "frames used to build the reference", minimum=2, maximum=100_000
    )
    reference_iterations: int = param(
        3,
        "refinements of the reference (register, then average the best)",
        minimum=0,
        maximum=50,
    )
    batch_frames: int = param(
        32, "frames registered at once (bounds memory)", minimum=1, maximum=100_000
    )
    outlier_mad: float = param(
        5.0,
        "a frame is an outlier when its quality is this many MADs below the median",
        minimum=0.0,
    )
    device: str = param("auto", "torch device: auto (GPU when available), cpu, cuda")
