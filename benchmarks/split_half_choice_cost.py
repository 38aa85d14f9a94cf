"""Cost of ``motif_choice="split_half"`` against the initialisation it comes before.

The choice runs four untrained starts (the initialisation and the discovery, each on both
halves of the training block). This times it beside one default initialisation of the whole
recording, side by side in one run (CPU seconds, one thread advised: ``OMP_NUM_THREADS=1``),
on dev zoo brains of each size (seed 1100, four dev families, 1,500 frames).

    python benchmarks/split_half_choice_cost.py --neurons 240 2000 \
        --out benchmarks/results/split_half_choice_cost.json
"""

from __future__ import annotations

import argparse
import os
import time

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.initial_model import initialise_model
from napari_mesoscale.model.prepare import prepare_data
from napari_mesoscale.model.split_half_choice import choose_motif_start
from napari_mesoscale.synth.motif_zoo import make_zoo_brain


def time_one(n: int, frames: int) -> dict:
    brain = make_zoo_brain(n, frames, "dev", seed=1100, n_families=4)
    cfg = ModelConfig().merged(n_filters=len(brain.motif_names), input_lags=1)
    data = prepare_data(brain.activity, brain.positions, brain.stimulus, cfg)
    connectome = brain.connectome()
    t0 = time.process_time()
    initialise_model(data, cfg, connectome, 0)
    initialisation = time.process_time() - t0
    t0 = time.process_time()
    choice = choose_motif_start(data, connectome, cfg, 0)
    chosen = time.process_time() - t0
    return {"neurons": n, "frames": frames, "initialisation_cpu_s": initialisation,
            "choice_cpu_s": chosen, "ratio": chosen / initialisation,
            "chosen": choice.chosen, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[240, 2000])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from _results import run_record, write_json  # benchmarks/ is on the path as a script

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = []
    for n in args.neurons:
        rows.append(time_one(n, args.frames))
        print(rows[-1], flush=True)
    write_json(args.out, {"args": vars(args), "rows": rows, **run_record(t0, cpu0, load)})


if __name__ == "__main__":
    main()
