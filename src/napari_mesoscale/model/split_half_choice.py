"""Choose the fit's motif start by split-half agreement (``ModelConfig.motif_choice="split_half"``).

The default fit keeps the dynamics initialisation's motifs; ``assignment="em"`` from a random
start takes the discovery's (model/reassign.py). On some brains one is right and the other
wrong, and neither their held-in loss nor the fits' validation error tells which (wrong
groupings predict within 1-2 %, docs/results/motifs.md). This asks how well each method agrees
with itself: both run, untrained, on the first and on the second half of the training block
(each half a recording of its own, all of it the initialisation's frames), and the fit starts
from the discovery only when the discovery's two halves agree better (ARI of their motif
labels) than the initialisation's; ties keep the default.

Measured (benchmarks/split_half_agreement_dev.py, rule R7 committed before its data; dev
families only): with halves of the whole recording the choice picked the better of the two on
28 and 26 of 32 dev brains where their motif ARIs differ, and R7 passed; this option, which
uses halves of the training block only, picked the better on 24, 24, 18 and 22 of 32, 32, 25
and 25 (R7's brains and fresh check brains, plain and heterogeneous) and failed R7 on three
of the four sets: where it takes the discovery it is worse than the initialisation on 19 brains
and better on 2. So it is not a default (docs/results/motifs.md).

Cost: four untrained starts (two methods, two halves) before the fit, each an initialisation
on half of the training block (and the discovery for the em start), nothing trained. Measured
beside one default initialisation of the whole recording (benchmarks/split_half_choice_cost.py,
dev zoo brains of 1,500 frames, one thread): 0.82 against 0.85 CPU s at 240 neurons (0.97 x),
8.6 against 4.2 at 2,000 (2.1 x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.progress import Progress

if TYPE_CHECKING:
    from napari_mesoscale.model.prepare import PreparedData

__all__ = ["MotifChoice", "choose_motif_start", "half_recording", "start_labels"]

METHODS = ("initial", "discovery")


@dataclass
class MotifChoice:
    """What :func:`choose_motif_start` measured: the chosen start (``"initial"`` or
    ``"discovery"``) and each method's split-half agreement (ARI)."""

    chosen: str
    agreement_initial: float
    agreement_discovery: float

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "split_half", "chosen": self.chosen,
                "agreement_initial": self.agreement_initial,
                "agreement_discovery": self.agreement_discovery}

    def summary(self) -> str:
        start = "the discovery's motifs" if self.chosen == "discovery" else "the initialisation's"
        return (f"motifs: {start} (split-half agreement {self.agreement_initial:.2f} "
                f"initialisation, {self.agreement_discovery:.2f} discovery)")


def start_labels(
    half: PreparedData, connectome: Any, cfg: ModelConfig, method: str, seed: int = 0
) -> np.ndarray:
    """(N,) motif labels an untrained fit of ``half`` (prepared by :func:`half_recording`)
    starts from: ``method="initial"`` the dynamics initialisation's (the default fit's),
    ``"discovery"`` the discovery's (``assignment="em"`` from a random start)."""
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.training import run_discovery

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    cfg = _whole_training(cfg)
    if method == "discovery":
        cfg = cfg.replace(assignment="em", init="random")
    init = initialise_model(half, cfg, connectome, seed)
    if method == "discovery":
        run_discovery(init.net, init.units, half, init.config, seed)
    return init.net.choice()[2].cpu().numpy()


def half_recording(data: PreparedData, frames: tuple[int, int], cfg: ModelConfig) -> PreparedData:
    """Frames ``frames`` of ``data`` prepared as a recording of their own, all of it the
    training block (what both methods' untrained starts read)."""
    from napari_mesoscale.model.prepare import prepare_data

    a, b = frames
    activity = np.where(data.finite[a:b], data.z[a:b], np.nan)
    stimulus = None if data.u is None else data.u[a:b]
    return prepare_data(activity, data.positions, stimulus, _whole_training(cfg))


def _whole_training(cfg: ModelConfig) -> ModelConfig:
    return cfg.replace(split=(1.0, 0.0, 0.0), motif_choice="initialisation")


def choose_motif_start(
    data: PreparedData,
    connectome: Any,
    cfg: ModelConfig,
    seed: int = 0,
    progress: Progress | None = None,
) -> MotifChoice:
    """Which start the fit of ``data`` takes: both methods on the two halves of its training
    block, the discovery when its halves agree strictly better than the initialisation's.
    ``progress`` hears of each of the four starts (and may cancel between them)."""
    from sklearn.metrics import adjusted_rand_score

    progress = progress or Progress()
    t0, t1 = data.blocks["train"]
    mid = (t0 + t1) // 2
    halves = [half_recording(data, frames, cfg) for frames in ((t0, mid), (mid, t1))]
    agreement = {}
    for i, method in enumerate(METHODS):
        labels = []
        for j, half in enumerate(halves):
            progress.report((2 * i + j) / 4, f"motif choice: {method}, half {j + 1}")
            labels.append(start_labels(half, connectome, cfg, method, seed))
        agreement[method] = float(adjusted_rand_score(*labels))
    chosen = "discovery" if agreement["discovery"] > agreement["initial"] else "initial"
    choice = MotifChoice(chosen, agreement["initial"], agreement["discovery"])
    progress.report(1.0, choice.summary())
    return choice
