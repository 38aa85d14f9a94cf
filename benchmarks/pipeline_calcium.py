"""Benchmark of the calcium path: detection → traces → fit, side by side with an oracle.

Writes ``benchmarks/results/pipeline_calcium_<preset>.json`` and prints a markdown table.

Usage::

    python benchmarks/pipeline_calcium.py --preset realistic --seeds 0 1 2 --frames 200 600
    python benchmarks/pipeline_calcium.py --preset classic --seeds 0 --frames 200 2000

Every brain is made with the bundled sample's settings (``scripts/make_sample_data.py``: 100
neurons, 20 x 48 x 48 voxels of 3 x 1.5 x 1.5 µm, 5 frames/s), the given number of frames and
calcium preset (:mod:`napari_mesoscale.synth.calcium_presets`). Cells are detected once per
movie (:func:`napari_mesoscale.segment.detect_point_sources`) and registered to the
connectome; then, on the same cells, the same split and the same held-out (test) frames:

* ``dF/F`` — the model fitted to the detected dF/F as activity (``observation="activity"``,
  what :func:`~napari_mesoscale.workflow.run_pipeline` did before);
* ``calcium`` — ``observation="calcium"``: filters fitted to the deconvolved latent, read out
  to dF/F through the per-neuron indicator fit (:mod:`napari_mesoscale.model.observation`);
  the motifs and domains of fitting the deconvolved activity alone are this fit's (the
  readout is fitted after the filters and does not change them);
* ``oracle`` — the model fitted to the true activity of the matched cells (scored on that
  activity): the cost of the indicator is the gap between it and the rows above.

Every model uses :func:`~napari_mesoscale.workflow.pipeline_config` (connectome kernels,
frozen). For each, every baseline (:func:`napari_mesoscale.baselines.default_baselines`) is
fitted on the model's training block of the same signal and all are scored on the test
block: one-step MSE and its ratio to the model's (> 1: the model is better), and the 8-step
free-running R² (1 - SSE / SST, SST around each neuron's test mean). Motif / domain ARI are
those of the matched cells against the truth. ``--feature-ari`` adds the motif ARI of the
initialisation's k-means of dynamics features on activity, dF/F and the latent.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS_DIR = Path(__file__).parent / "results"
HORIZON = 8
VARIANTS = ("dF/F", "calcium", "oracle")


def _sample_parameters() -> dict:
    path = Path(__file__).parents[1] / "scripts" / "make_sample_data.py"
    spec = importlib.util.spec_from_file_location("make_sample_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = dict(module.SAMPLE_PARAMETERS)
    params.pop("em_voxel_size", None)
    return params


def _r2(pred: np.ndarray, rec: np.ndarray, frames: slice) -> float:
    p, r = pred[frames], rec[frames]
    ok = np.isfinite(p) & np.isfinite(r)
    mu = np.nanmean(np.where(ok, r, np.nan), axis=0)
    sse = np.sum(np.where(ok, (p - r) ** 2, 0.0))
    sst = np.sum(np.where(ok, (r - mu) ** 2, 0.0))
    return float(1.0 - sse / max(sst, 1e-12))


def _mse(pred: np.ndarray, rec: np.ndarray, frames: slice) -> float:
    d = (pred[frames] - rec[frames]) ** 2
    return float(np.nanmean(d))


def score(fit, signal, adjacency, stimulus) -> dict:
    """Model and every baseline on the fit's test block: one-step MSE, ratio, 8-step R²."""
    from napari_mesoscale.baselines import default_baselines

    train, test = slice(*fit.blocks["train"]), slice(*fit.blocks["test"])
    models = {"model": fit}
    for name, baseline in default_baselines(adjacency, seed=0).items():
        baseline.fit(signal[train], stimulus=stimulus[train])
        models[name] = baseline
    rows = {}
    for name, m in models.items():
        one = m.predict(signal, steps=1, stimulus=stimulus)
        many = m.predict(signal, steps=HORIZON, stimulus=stimulus)
        rows[name] = {"mse": _mse(one, signal, test), f"r2_{HORIZON}step": _r2(many, signal, test)}
    ref = rows["model"]["mse"]
    for r in rows.values():
        r["mse_ratio_to_model"] = r["mse"] / ref
    return rows


def _ari(truth: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(truth, labels))


def feature_ari(signals: dict, positions, adjacency, stimulus, motif) -> dict:
    """Motif ARI of the initialisation's k-means groups on each signal (no training)."""
    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.workflow import pipeline_config

    cfg = pipeline_config()
    out = {}
    for name, (x, rows) in signals.items():
        data = prepare_data(x, positions, stimulus, cfg)
        init = initialise_model(data, cfg, adjacency, 0)
        out[name] = _ari(motif, init.init_groups[rows])
    return out


def run_movie(
    seed: int,
    frames: int,
    preset: str,
    epochs: int,
    features: bool,
    variants=VARIANTS,
    save_fits: Path | None = None,
) -> dict:
    import scipy.sparse as sp

    from napari_mesoscale.connectome import register_point_sources
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.model.observation import estimate_decay, innovation, to_latent
    from napari_mesoscale.segment import detect_point_sources
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.workflow import pipeline_config, restrict_adjacency

    out: dict = {"seed": seed, "frames": frames, "preset": preset, "variants": {}}
    params = {**_sample_parameters(), "n_frames": frames}
    try:
        brain = make_toy_brain(**params, render="eager", em=False, seed=seed, calcium_preset=preset)
    except ValueError as error:  # e.g. somata that do not fit the sample's small volume
        out["skipped"] = str(error)
        return out
    sources = detect_point_sources(
        brain.movie, voxel_size=brain.voxel_size, cell_diameter=8.0, frame_rate=brain.frame_rate
    )
    reg = register_point_sources(sources.positions, brain.positions)
    det, neu = reg.matches[:, 0], reg.matches[:, 1]
    dff = np.asarray(sources.dff, dtype=float)
    adjacency = sp.csr_matrix(restrict_adjacency(brain.adjacency, reg.matches, dff.shape[1]))
    stim = brain.stimulus.astype(float)
    motif, instance = brain.motif[neu], brain.instance[neu]
    out.update(cells=int(dff.shape[1]), matched=int(len(det)))
    oracle_adj = adjacency[det][:, det]
    runs = {
        "dF/F": (dff, sources.positions, adjacency, "activity", det),
        "calcium": (dff, sources.positions, adjacency, "calcium", det),
        "oracle": (
            brain.activity[:, neu].astype(float),
            sources.positions[det],
            oracle_adj,
            "activity",
            np.arange(len(det)),
        ),
    }
    cfg = pipeline_config()
    runs = {name: run for name, run in runs.items() if name in variants}
    for name, (signal, positions, adj, observation, rows) in runs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        fit = fit_mesoscale(
            signal,
            positions,
            connectome=adj,
            stimulus=stim,
            config=cfg,
            epochs=epochs,
            seed=0,
            device="cpu",
            observation=observation,
        )
        if save_fits is not None:
            tag = name.replace("/", "")
            fit.save(Path(save_fits) / f"{preset}_{frames}_{seed}_{tag}.pt")
        entry = {
            "scores": score(fit, signal, adj, stim),
            "motif_ari": _ari(motif, fit.motif_labels[rows]),
            "domain_ari": _ari(instance, fit.domain_labels[rows]),
            "init_motif_ari": _ari(motif, fit.init_groups[rows]),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
        }
        if fit.indicator is not None:
            ind = fit.indicator.iloc[det]
            entry["indicator"] = {
                "deconvolution_decay": float(ind["deconvolution_decay"].iloc[0]),
                "median_decay": float(ind["decay"].median()),
                "true_decay_per_frame": float(
                    np.median(np.exp(-1 / (brain.frame_rate * _true_tau(brain)[neu])))
                ),
            }
        out["variants"][name] = entry
        s = entry["scores"]
        print(
            f"{preset} seed {seed} frames {frames} {name}: motif {entry['motif_ari']:.2f} "
            f"domain {entry['domain_ari']:.2f} ratios "
            + " ".join(f"{k}={v['mse_ratio_to_model']:.2f}" for k, v in s.items())
            + f" r2_8 model {s['model']['r2_8step']:.2f}",
            flush=True,
        )
    if features:
        decay = estimate_decay(dff)
        latent = to_latent(dff, decay)
        features = innovation(dff, decay)
        signals = {
            "activity": (brain.activity[:, neu].astype(float), np.arange(len(det))),
            "dF/F": (dff[:, det], np.arange(len(det))),
            "latent": (latent[:, det], np.arange(len(det))),
            "innovation": (features[:, det], np.arange(len(det))),
        }
        out["feature_motif_ari"] = feature_ari(
            signals, sources.positions[det], oracle_adj, stim, motif
        )
    return out


def _true_tau(brain) -> np.ndarray:
    truth = brain.calcium_truth
    if truth is None:
        return np.full(brain.n_neurons, brain.params["tau_decay"])
    return np.asarray(truth["tau_decay"])


def summarise(movies: list[dict]) -> dict:
    summary = {}
    for frames in sorted({m["frames"] for m in movies}):
        group = [m for m in movies if m["frames"] == frames and "skipped" not in m]
        if not group:
            continue
        entry: dict = {"movies": len(group), "seeds": [m["seed"] for m in group]}
        names = list(dict.fromkeys(n for m in group for n in m["variants"]))
        for name in names:
            rows = [m["variants"][name] for m in group if name in m["variants"]]
            models = rows[0]["scores"].keys()
            entry[name] = {
                "movies": len(rows),
                "motif_ari": float(np.median([r["motif_ari"] for r in rows])),
                "domain_ari": float(np.median([r["domain_ari"] for r in rows])),
                "init_motif_ari": float(np.median([r["init_motif_ari"] for r in rows])),
                "median_ratio": {
                    b: float(np.median([r["scores"][b]["mse_ratio_to_model"] for r in rows]))
                    for b in models
                },
                f"median_r2_{HORIZON}step": {
                    b: float(np.median([r["scores"][b][f"r2_{HORIZON}step"] for r in rows]))
                    for b in models
                },
                "beats_every_baseline": int(
                    sum(
                        min(v["mse_ratio_to_model"] for k, v in r["scores"].items() if k != "model")
                        > 1.0
                        for r in rows
                    )
                ),
            }
        if "feature_motif_ari" in group[0]:
            entry["feature_motif_ari"] = {
                k: float(np.median([m["feature_motif_ari"][k] for m in group]))
                for k in group[0]["feature_motif_ari"]
            }
        summary[str(frames)] = entry
    return summary


def markdown(summary: dict) -> str:
    lines = [
        "| frames | fit | motif ARI | domain ARI | persistence | connectome-linear | ridge VAR "
        f"| GRU | beats all | R² {HORIZON}-step model / conn.-linear / persistence |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for frames, entry in summary.items():
        for name in ("dF/F", "calcium", "oracle"):
            if name not in entry:
                continue
            r = entry[name]
            m, q = r["median_ratio"], r[f"median_r2_{HORIZON}step"]
            lines.append(
                f"| {frames} | {name} | {r['motif_ari']:.2f} | {r['domain_ari']:.2f} | "
                f"{m['persistence']:.2f} | {m['connectome_linear']:.2f} | {m['ridge_var']:.2f} | "
                f"{m['gru']:.2f} | {r['beats_every_baseline']}/{r['movies']} | "
                f"{q['model']:.2f} / {q['connectome_linear']:.2f} / {q['persistence']:.2f} |"
            )
    return "\n".join(lines)


def _join_variants(movies: list[dict]) -> list[dict]:
    """One entry per (preset, frames, seed): the variants of runs split by variant joined."""
    joined: dict[tuple, dict] = {}
    for movie in movies:
        key = (movie.get("preset"), movie["frames"], movie["seed"])
        if key not in joined:
            joined[key] = {**movie, "variants": dict(movie.get("variants", {}))}
        else:
            joined[key]["variants"].update(movie.get("variants", {}))
    return list(joined.values())


def merge(paths: list[Path], output: Path) -> None:
    """One result of the movies of several runs (e.g. one process per seed), re-summarised."""
    import json

    parts = [json.loads(Path(p).read_text()) for p in paths]
    result = {
        "benchmark": "pipeline_calcium",
        "merged_from": [str(p) for p in paths],
        "settings": [p["settings"] for p in parts],
        "machine": [p["machine"] for p in parts],
        "seconds": [p.get("seconds") for p in parts],
        "movies": _join_variants([m for p in parts for m in p["movies"]]),
    }
    result["summary"] = summarise(result["movies"])
    write_json(output, result)
    print(markdown(result["summary"]))


def _apply_fit_options(options: list[str]) -> None:
    """Add ``NAME=VALUE`` options to :data:`~napari_mesoscale.workflow.PIPELINE_FIT_OVERRIDES`."""
    import json

    from napari_mesoscale import workflow

    for option in options:
        name, _, text = option.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        workflow.PIPELINE_FIT_OVERRIDES[name] = value
    workflow.pipeline_config().validate()  # an unknown name or a bad value fails here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", choices=("classic", "realistic", "heldout"), default="realistic"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="summarise the movies of these JSON files (runs split over processes) into --output",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 600, 2000])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--feature-ari", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--save-fits", type=Path, default=None, help="folder for every fit")
    parser.add_argument(
        "--fit-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ModelConfig field the pipeline's fit configuration takes on top of "
        "PIPELINE_FIT_OVERRIDES for this run (repeatable; VALUE read as JSON, else a string)",
    )
    args = parser.parse_args()
    _apply_fit_options(args.fit_option)
    import torch

    torch.set_num_threads(args.threads)
    path = args.output or RESULTS_DIR / f"pipeline_calcium_{args.preset}.json"
    if args.merge:
        merge(args.merge, path)
        return
    result = {
        "benchmark": "pipeline_calcium",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "movies": [],
    }
    t0 = time.perf_counter()
    for frames in args.frames:
        for seed in args.seeds:
            result["movies"].append(
                run_movie(
                    seed,
                    frames,
                    args.preset,
                    args.epochs,
                    args.feature_ari,
                    args.variants,
                    args.save_fits,
                )
            )
            result["summary"] = summarise(result["movies"])
            result["seconds"] = time.perf_counter() - t0
            result["machine"]["loadavg_now"] = os.getloadavg()
            write_json(path, result)
    print(markdown(result["summary"]))


if __name__ == "__main__":
    main()
