"""Initial motif / domain ARI of the calcium path (= the frozen fit's) on realistic dev brains.

    python benchmarks/calcium_dev_ari.py [--cache DIR]

Compares ``run_pipeline``'s fit configuration (:data:`napari_mesoscale.workflow.
PIPELINE_FIT_OVERRIDES`) with the earlier passes' (third: grid stride half the receptive-field
diameter, one smoothing pass of the dynamics features; fourth: stride a third of the
diameter, two smoothing passes; fifth, now: and one more pass over the connectome partners,
``connectome_smoothing``), on the detected cells of realistic-preset movies (the bundled
sample's settings; seeds 0–3 and 5 are the calcium benchmark's, 6–14 more dev brains; no
held-out preset). Diagnostics of the features at each length: the motif ARI of k-means on each
feature group alone (``per_feature``), of the features pooled over each cell's true motif
instance (``instance_pooled``: what many cells of one instance carry together) and the ARI of
Louvain communities of the lagged correlations (unmasked) with the instances.
``--cache DIR`` keeps each loaded movie (detection, registration) as a pickle there.
Writes ``benchmarks/results/calcium_init_ari_dev_fifth_pass.json``.
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np

from _results import write_json

CONFIGS = {
    "third pass (stride 1/2, 1 smoothing pass)": {
        "stride_fraction": 0.5,
        "smooth_passes": 1,
        "connectome_smoothing": 0.0,
    },
    "fourth pass (stride 1/3, 2 smoothing passes)": {"connectome_smoothing": 0.0},
    "fifth pass (+ connectome partners, weight 0.3; final)": {},
}
SEEDS = (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)


def _movie(frames: int, seed: int, cache: Path | None) -> dict:
    import calcium_init_ari as cia

    path = None if cache is None else cache / f"r_{frames}_{seed}.pkl"
    if path is not None and path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    movie = cia.load("realistic", frames, seed)
    if path is not None:
        with open(path, "wb") as f:
            pickle.dump(movie, f)
    return movie


def _diagnostics(movie: dict, captured: dict) -> dict:
    """Per-feature-group, instance-pooled and community ARIs of one movie's features."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    from napari_mesoscale.model.initialise import group_neurons, lagged_affinity

    det, feats, names = movie["det"], captured["feats"], captured["names"]
    connected = np.bincount(np.asarray(movie["adj"].nonzero()).ravel(), minlength=len(feats)) > 0
    k = captured["k"]

    def kmeans_ari(x: np.ndarray) -> float:
        km = KMeans(k, n_init=10, random_state=0).fit(x[connected])
        return float(ari(movie["motif"], km.predict(x)[det]))

    out = {g: kmeans_ari(feats[:, names == g]) for g in dict.fromkeys(names)}
    out["all"] = kmeans_ari(feats)
    instance = np.arange(len(feats)) + int(movie["instance"].max()) + 1
    instance[det] = movie["instance"]
    instance = np.unique(instance, return_inverse=True)[1]
    sums = np.zeros((instance.max() + 1, feats.shape[1]))
    np.add.at(sums, instance, feats)
    out["instance_pooled"] = kmeans_ari(sums[instance] / np.bincount(instance)[instance][:, None])
    aff = lagged_affinity(captured["z"], captured["spatial"])
    communities = group_neurons(len(feats), captured["spatial"], aff, seed=0)
    out["correlation_communities_vs_instances"] = float(ari(movie["instance"], communities[det]))
    return out


def _feature_names(ridge: dict, u: np.ndarray | None, n_lags: int) -> np.ndarray:
    """The group of each column of :func:`~napari_mesoscale.model.initialise.dynamics_features`."""
    names = ["autocorrelation"] * n_lags + ["stimulus ridge"] * ridge["stimulus"].shape[1]
    names += ["self ridge"] * 3 + ["drive", "ridge r2", "skewness", "kurtosis"]
    if u is not None and u.shape[1]:
        names += ["stimulus correlation"] * u.shape[1]
    return np.array(names)


def _capture(captured: dict):
    """A stand-in for ``motif_features`` that keeps the fourth pass's features of each call."""
    import napari_mesoscale.model.initialise as ini

    def features(z, ridge, edges, u, spatial, correlation, cfg, partners=None):
        fourth = cfg.replace(connectome_smoothing=0.0)
        feats = ini.motif_features(z, ridge, edges, u, spatial, correlation, fourth)
        n_lags = min(10, z.shape[0] - 2)
        captured.update(feats=feats, names=_feature_names(ridge, u, n_lags), z=z, spatial=spatial)
        captured["k"] = cfg.n_filters
        return ini.motif_features(z, ridge, edges, u, spatial, correlation, cfg, partners)

    return features


def main() -> None:
    import torch
    from sklearn.metrics import adjusted_rand_score as ari

    import calcium_init_ari as cia
    import napari_mesoscale.model.initial_model as initial_model
    import napari_mesoscale.workflow as wf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = dict(wf.PIPELINE_FIT_OVERRIDES)
    out: dict = {"preset": "realistic", "seeds": SEEDS}
    original, captured = initial_model.motif_features, {}
    for frames in (200, 600):
        movies = [_movie(frames, seed, args.cache) for seed in SEEDS]
        for name, over in CONFIGS.items():
            wf.PIPELINE_FIT_OVERRIDES.update({**base, **over})
            rows, diagnostics = [], []
            for d in movies:
                initial_model.motif_features = _capture(captured)
                m, dom = cia.labels(d["dff"], d["pos"], d["adj"], d["stim"], True)
                initial_model.motif_features = original
                rows.append([ari(d["motif"], m[d["det"]]), ari(d["instance"], dom[d["det"]])])
                if not over:  # the final configuration: diagnostics of the fourth pass's features
                    diagnostics.append(_diagnostics(d, captured))
            rows = np.array(rows)
            entry = {
                "per_brain_motif_domain": rows.round(4).tolist(),
                "median_all": np.median(rows, 0).round(4).tolist(),
                "median_benchmark_5": np.median(rows[:5], 0).round(4).tolist(),
                "min_all": rows.min(0).round(4).tolist(),
            }
            if diagnostics:
                entry["fourth_pass_features_motif_ari_median"] = {
                    k: round(float(np.median([g[k] for g in diagnostics])), 4)
                    for k in diagnostics[0]
                }
            out[f"{frames} | {name}"] = entry
            print(frames, name, entry["median_all"], flush=True)
            print(entry.get("fourth_pass_features_motif_ari_median", ""), flush=True)
        wf.PIPELINE_FIT_OVERRIDES.update(base)
    out["machine_loadavg"] = os.getloadavg()
    write_json(Path(__file__).parent / "results" / "calcium_init_ari_dev_fifth_pass.json", out)


if __name__ == "__main__":
    main()
