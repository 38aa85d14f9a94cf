"""Parameters of scoring predictions against recordings (noise-corrected predictivity).

:class:`ScoringParams` is the single source of the defaults of
:func:`~napari_mesoscale.evaluate.score_predictions`, of the scoring options of
``napari-mesoscale evaluate`` and of the "Score predictions" widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_mesoscale.params import Params, param

__all__ = ["ScoringParams"]


@dataclass
class ScoringParams(Params):
    """How predicted activity is scored against recorded activity, per neuron."""

    n_repeats: int = param(
        1,
        "a (T, N) recording holds this many consecutive repeats of the same stimulus sequence "
        "(1 = no noise correction possible)",
        label="repeats in recording",
        minimum=1,
        maximum=10_000,
    )
    lag: int = param(
        0,
        "row t of the predictions predicts row t + lag of the recording",
        unit="frames",
        label="lag",
        minimum=0,
        maximum=1000,
    )
    n_splits: int = param(
        50,
        "random split halves of the trials averaged by the noise correction",
        label="split halves",
        minimum=2,
        maximum=2000,
    )
    estimator: str = param(
        "half",
        "noise-correction estimator: half-split (unbiased), full-data Spearman–Brown, or the "
        "thesis's printed form (biased low, for comparison)",
        choices=("half", "full", "thesis"),
    )
    reliability_threshold: float = param(
        0.0,
        "neurons whose Spearman–Brown split-half reliability is below this get no corrected "
        "score (0 = keep every neuron with a positive reliability)",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )
    n_eigenvectors: int = param(
        0,
        "also add this many correlation-eigenvector features eig_0.. of the recording (0 = none)",
        label="eigenvector features",
        minimum=0,
        maximum=64,
    )
    max_neighbors: int = param(
        64,
        "correlations kept per neuron by the sparse eigenvector method (large recordings)",
        minimum=1,
        gui=False,
    )
    seed: int = param(0, "seed of the random split halves and of the eigensolver", gui=False)
