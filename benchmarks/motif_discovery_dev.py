"""Choose the discovery's grouping on DEVELOPMENT zoo brains only (``assignment="em"``).

For each development brain (``make_zoo_brain(..., "dev")``, seeds 1000 and up; the test
families of ``benchmarks/motif_zoo.py`` are never touched here) a real ``fit_mesoscale`` with
``assignment="em", init="random"`` runs up to the discovery; its inputs (network, candidate
communities, tensors, frames, config) are captured there and the fit stops. Every grouping
(``discover_grouping`` = ``"profile"`` / ``"loss"``) then runs the discovery on a copy of the
same inputs, and its labels are scored against the true motifs (ARI). This is how the
default grouping was chosen; the figures are of the discovery alone, before any training.

    python benchmarks/motif_discovery_dev.py --brains 24
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from _results import write_json
from napari_mesoscale import fit_mesoscale
from napari_mesoscale.model import reassign, training
from napari_mesoscale.synth.motif_zoo import make_zoo_brain

GROUPINGS = ("profile", "loss")
RESULTS = Path(__file__).parent / "results"


class _Captured(Exception):
    """Raised inside the fit once the discovery's inputs are held."""


def capture_discovery_inputs(brain, k: int, with_connectome: bool = True) -> tuple:
    """Run a real em fit on ``brain`` until its discovery; return the discovery's arguments
    (``with_connectome=False``: fitted without one, as the toy brain's em figures are)."""
    held: dict = {}

    def grab(*args, **kwargs):
        held["args"], held["kwargs"] = args, kwargs
        raise _Captured

    with mock.patch.object(training, "discover_assignment", grab):
        try:
            fit_mesoscale(
                brain.activity, brain.positions,
                connectome=brain.connectome() if with_connectome else None,
                stimulus=brain.stimulus, n_filters=k, epochs=1, seed=0, device="cpu",
                assignment="em", init="random",
            )
        except _Captured:
            pass
    if "args" not in held:
        raise RuntimeError("the fit never reached the discovery (is assignment='em' wired?)")
    return held["args"], held["kwargs"]


def score_grouping(captured: tuple, grouping: str, motif: np.ndarray) -> dict:
    """Discovery with ``grouping`` on a copy of the captured inputs; ARI and CPU seconds."""
    (net, units, tensors, frames, cfg, *rest), kwargs = captured
    net = copy.deepcopy(net)
    cfg = dataclasses.replace(cfg, discover_grouping=grouping)
    cpu = time.process_time()
    reassign.discover_assignment(net, units, tensors, frames, cfg, *rest, **kwargs)
    labels = net.logits.sum(1).argmax(-1).cpu().numpy()
    return {"motif_ari": float(adjusted_rand_score(motif, labels)),
            "cpu_s": time.process_time() - cpu}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for grouping in GROUPINGS:
        aris = np.array([row[grouping]["motif_ari"] for row in rows])
        out[grouping] = {"median": float(np.median(aris)), "mean": float(aris.mean()),
                         "min": float(aris.min()), "at_least_0.9": int((aris >= 0.9).sum()),
                         "brains": len(aris)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brains", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "motif_discovery_dev.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.brains):
        brain = make_zoo_brain(args.neurons, args.frames, "dev", n_families=4, seed=seed)
        captured = capture_discovery_inputs(brain, len(brain.motif_names))
        row = {"seed": seed, "families": list(brain.motif_names)}
        row.update({g: score_grouping(captured, g, brain.motif) for g in GROUPINGS})
        rows.append(row)
        print(seed, " ".join(f"{g}={row[g]['motif_ari']:.2f}" for g in GROUPINGS), flush=True)
    write_json(args.out, {
        "what": "discovery-only motif ARI on development zoo brains, per grouping",
        "neurons": args.neurons, "frames": args.frames, "threads": args.threads,
        "load_average": os.getloadavg(), "summary": summarise(rows), "brains": rows,
    })
    print(summarise(rows))


if __name__ == "__main__":
    main()
