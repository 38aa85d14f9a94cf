"""Motif and domain ARI of the calcium path's initial assignment (= the frozen fit's labels).

    python benchmarks/calcium_init_ari.py realistic,heldout [--frames 600 200]
        [--variants calcium dff_init oracle_init] [--tag NAME]

With ``calcium_assignment="initial"`` (the default for ``observation="calcium"``) the trained
fit's motifs and domains are its initialisation's, so they are scored here without training:
for each brain (the bundled sample's settings, seeds 0 1 2 3 5; seed 4's somata do not fit)
the detected cells' dF/F through the calcium path (``calcium``), the same dF/F as activity
(``dff_init``) and the matched cells' true activity (``oracle_init``), at 600 and 200 frames.
Writes ``benchmarks/results/pipeline_calcium_init_ari_<presets>[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from _results import write_json

SEEDS = (0, 1, 2, 3, 5)
VARIANTS = ("calcium", "dff_init", "oracle_init")


def labels(x, pos, adj, stim, calcium: bool) -> tuple[np.ndarray, np.ndarray]:
    """(motif, domain) labels of the initial network fitted to ``x``."""
    from napari_mesoscale.model.fit import _calcium_latent
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.observation import calcium_config, feature_block
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.workflow import pipeline_config

    cfg = pipeline_config().merged(epochs=60, observation="calcium" if calcium else "activity")
    if calcium:
        latent, _, features = _calcium_latent(x)
        cfg = calcium_config(cfg)
        data = prepare_data(latent, pos, stim, cfg)
        data = replace(data, z_neuron=feature_block(features, data.blocks["train"]))
    else:
        data = prepare_data(x, pos, stim, cfg)
    init = initialise_model(data, cfg, adj, 0)
    _, field, filt = init.net.choice()
    pair = field.numpy().astype(np.int64) * cfg.n_filters + filt.numpy()
    return init.init_groups, np.unique(pair, return_inverse=True)[1]


def load(preset: str, frames: int, seed: int) -> dict:
    """Detected cells' dF/F, positions, adjacency and truth of one sample-like movie."""
    import scipy.sparse as sp

    from napari_mesoscale.connectome import register_point_sources
    from napari_mesoscale.segment import detect_point_sources
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.workflow import restrict_adjacency
    from pipeline_calcium import _sample_parameters

    params = {**_sample_parameters(), "n_frames": frames}
    brain = make_toy_brain(**params, render="eager", em=False, seed=seed, calcium_preset=preset)
    src = detect_point_sources(
        brain.movie, voxel_size=brain.voxel_size, cell_diameter=8.0, frame_rate=brain.frame_rate
    )
    reg = register_point_sources(src.positions, brain.positions)
    det, neu = reg.matches[:, 0], reg.matches[:, 1]
    dff = np.asarray(src.dff, dtype=float)
    adj = sp.csr_matrix(restrict_adjacency(brain.adjacency, reg.matches, dff.shape[1]))
    return {
        "dff": dff,
        "pos": src.positions,
        "adj": adj,
        "stim": brain.stimulus.astype(float),
        "det": det,
        "motif": brain.motif[neu],
        "instance": brain.instance[neu],
        "act": brain.activity[:, neu].astype(float),
        "spikes": brain.spikes[:, neu].astype(float),
        "oracle_adj": adj[det][:, det],
    }


def score_movie(d: dict, variants=VARIANTS) -> dict:
    from sklearn.metrics import adjusted_rand_score as ari

    det, row = d["det"], {}
    if "calcium" in variants:
        m, dom = labels(d["dff"], d["pos"], d["adj"], d["stim"], True)
        row["calcium"] = (ari(d["motif"], m[det]), ari(d["instance"], dom[det]))
    if "dff_init" in variants:
        m, dom = labels(d["dff"], d["pos"], d["adj"], d["stim"], False)
        row["dff_init"] = (ari(d["motif"], m[det]), ari(d["instance"], dom[det]))
    if "oracle_init" in variants:
        m, dom = labels(d["act"], d["pos"][det], d["oracle_adj"], d["stim"], False)
        row["oracle_init"] = (ari(d["motif"], m), ari(d["instance"], dom))
    return row


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="?", default="realistic")
    parser.add_argument("--frames", type=int, nargs="+", default=[600, 200])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--tag", default="", help="suffix of the JSON's name")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict = {"frames": args.frames, "variants": args.variants}
    for preset in args.presets.split(","):
        for frames in args.frames:
            rows = []
            for seed in SEEDS:
                scores = score_movie(load(preset, frames, seed), args.variants)
                rows.append({"seed": seed, **scores})
                print(preset, frames, rows[-1], flush=True)
            med = {
                k: [float(np.median([r[k][j] for r in rows])) for j in (0, 1)]
                for k in args.variants
            }
            out[f"{preset}_{frames}"] = {"movies": rows, "median_motif_domain": med}
            print(preset, frames, "median (motif, domain)", med, flush=True)
    out["machine_loadavg"] = os.getloadavg()
    name = f"pipeline_calcium_init_ari_{args.presets.replace(',', '_')}"
    name += f"_{args.tag}.json" if args.tag else ".json"
    write_json(Path(__file__).parent / "results" / name, out)


if __name__ == "__main__":
    main()
