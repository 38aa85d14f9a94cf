"""The whole job in one core call: detect → connectome → register → fit → evaluate.

Plain numpy / pandas / torch (no Qt): the napari demo, the CLI and scripts call
:func:`run_pipeline` and turn its :class:`PipelineResult` into layers or files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from napari_mesoscale.io import ResultsBundle, Volume
from napari_mesoscale.progress import Progress, ProgressCallback


@dataclass
class PipelineResult:
    """Everything one run of :func:`run_pipeline` produced.

    Attributes
    ----------
    point_sources : PointSources
        Cells found in the calcium movie, with ROI labels and traces.
    connectome : Connectome
        The structural graph built from the neuron and synapse tables.
    registration : Registration
        Transform and one-to-one matches, point source (moving) → connectome neuron (fixed).
    fit : MesoscaleFit
        The fitted mesoscale model over the point sources.
    activity : ndarray (T, N)
        The activity the model was fitted to (dF/F of the point sources).
    predicted : ndarray (T, N)
        One-step predictions (row 0 is NaN).
    baselines : dict of str to ndarray (T, N)
        One-step predictions of the baselines, for the trace plot.
    scores : pandas.DataFrame
        Held-out one-step error of the model and of every baseline, side by side.
    summary : dict
        Headline figures (counts, F1 and ARI where ground truth is given).
    motion : MotionCorrection or None
        Shifts and per-frame quality when the movie was registered first, else None.
    """

    point_sources: Any
    connectome: Any
    registration: Any
    fit: Any
    activity: np.ndarray
    predicted: np.ndarray
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: dict[str, Any] = field(default_factory=dict)
    motion: Any = None

    def to_bundle(self, model_folder: Any = None) -> ResultsBundle:
        """The run as a results bundle whose ``metadata["layers"]`` restores every layer.

        Parameters
        ----------
        model_folder : path, optional
            A scratch folder; when given, the fitted model is saved there and attached, so
            that ``MesoscaleFit.load(bundle.files["model"] / "model.pt")`` restores it.
        """
        sources = self.point_sources
        fit = self.fit
        table = pd.DataFrame(np.asarray(sources.positions, dtype=float), columns=["z", "y", "x"])
        features = sources.features.reset_index(drop=True)
        table = pd.concat(
            [table, features.drop(columns=[c for c in ("z", "y", "x") if c in features])], axis=1
        )
        table["domain"] = fit.domain_labels
        table["motif"] = fit.motif_labels
        table["confidence"] = fit.confidence
        matches = pd.DataFrame(self.registration.matches, columns=["point_source", "neuron_row"])
        voxel_size = tuple(float(v) for v in sources.voxel_size)
        neuron_table = self.connectome.neurons.copy()
        files = {}
        if model_folder is not None:
            fit.save(Path(model_folder) / "model.pt")
            files["model"] = Path(model_folder)
        return ResultsBundle(
            tables={
                "point_sources": table,
                "connectome_neurons": neuron_table,
                "synapses": self.connectome.synapses,
                "domains": fit.domains.drop(
                    columns=[c for c in fit.domains.columns if fit.domains[c].dtype == object]
                ),
                "matches": matches,
                "scores": self.scores,
                **({} if self.motion is None else {"motion_shifts": self.motion.to_table()}),
            },
            arrays={
                "activity": self.activity,
                "predicted": self.predicted,
                **{f"baseline_{_slug(name)}": values for name, values in self.baselines.items()},
            },
            volumes={"roi_labels": Volume(np.asarray(sources.labels), "ZYX", voxel_size)},
            metadata={"summary": self.summary, "layers": RESULT_LAYERS},
            files=files,
        )


#: How a pipeline bundle's contents become napari layers (read by the bundle reader).
RESULT_LAYERS: list[dict[str, Any]] = [
    {
        "name": "ROI masks",
        "type": "labels",
        "source": "volumes/roi_labels",
        "kwargs": {"opacity": 0.3, "visible": False},
    },
    {
        "name": "functional domains",
        "type": "labels",
        "source": "paint/domain",
        "rois": "roi_labels",
        "table": "point_sources",
    },
    {
        "name": "motifs",
        "type": "labels",
        "source": "paint/motif",
        "rois": "roi_labels",
        "table": "point_sources",
        "kwargs": {"visible": False},
    },
    {
        "name": "predicted activity",
        "type": "image",
        "source": "paint/predicted",
        "rois": "roi_labels",
        "recorded": "activity",
    },
    {
        "name": "point sources",
        "type": "points",
        "source": "tables/point_sources",
        "kwargs": {"size": 6.0, "color_by": "motif"},
    },
    {
        "name": "connectome neurons",
        "type": "points",
        "source": "tables/connectome_neurons",
        "kwargs": {"size": 4.0, "visible": False},
    },
]


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


PIPELINE_FIT_OVERRIDES: dict[str, Any] = {
    "edge_init": "connectome",
    "freeze_edges": True,
    "observation": "calcium",
    "init_centres": "connected",
    "stride_fraction": 1 / 3,
    "smooth_passes": 2,
    "connectome_smoothing": 0.3,
    "wiring_scope": "neuron",
}
"""Where :func:`run_pipeline`'s fit differs from :class:`ModelConfig`'s defaults, and why.

The drive weights stay at the connectome kernels (Chu et al. 2022): on sample-like calcium
movies this gave a lower held-out error than trained weights on all 12 movies measured
(11–20 % lower at 200 frames, where trained weights lose to persistence; 0–3 % at 600;
``benchmarks/pipeline_calcium.py``). The pipeline's input is the cells' dF/F, so the fit
takes it as calcium (``observation="calcium"``, :mod:`napari_mesoscale.model.observation`):
on the bundled sample (``scripts/demo.sh``, 60 epochs) motif ARI 0.53 against 0.37 with
``"activity"`` (0.55 before ``init_centres="connected"``, which raised the realistic
preset's median from 0.73 to 0.91 at 600 frames), and held-out one-step MSE ratios
persistence 1.30 / connectome-linear 1.39 against 1.13 / 1.22. ``init_centres="connected"``
keeps the sources that registration matched to no connectome neuron (no edge) from placing
the motif centres; it is the pipeline's and not :class:`ModelConfig`'s default because a
connectome of its own may have real neurons without edges (the motif zoo's brains do: 33
of 120 in a dev brain), where it would change the initialisation for no reason.
``stride_fraction=1/3``: with the model's grid (stride half the diameter) a community of
correlated neighbours lying between lattice points did not fit in one field and its outlying
members became domains of their own (realistic calcium, the 5 dev brains of the benchmark,
600 frames: 3–19 members per brain; domain ARI median 0.71 -> 0.77, motifs unchanged; the
held-out one-step error rose by 0.7–3.4 %). ``smooth_passes=2``: calcium features are noisy,
so the dynamics features are smoothed over correlated neighbours twice (14 dev brains,
initial motif / domain ARI medians: 200 frames 0.60 / 0.52 -> 0.62 / 0.60, 600 frames
0.86 / 0.77 -> 0.88 / 0.77; the demo's motif ARI 0.53 -> 0.69). Both are the pipeline's and
not :class:`ModelConfig`'s defaults so that fits of one's own data keep their grid and
features. ``connectome_smoothing=0.3``: one more smoothing pass of the features over each
cell's connectome partners (weight 0.3 each; a motif instance is wired within, and 200
frames of one cell's calcium are too few): initial motif / domain ARI medians of the 14 dev
brains 0.62 / 0.60 -> 0.97 / 0.82 at 200 frames and 0.88 / 0.77 -> 0.98 / 0.81 at 600
(``benchmarks/calcium_dev_ari.py``). ``wiring_scope="neuron"``: the wiring signature
(``ModelConfig.wiring_features``) joins each cell's features, but no community is relabelled
by its sub-circuit's wiring: on the detected cells of the 5 realistic dev brains (600 frames)
that relabel lowers the initial motif ARI, which the calcium path keeps, from 1.00 to 0.93
(median; seed 3 0.97 -> 0.74), where the per-cell signature alone keeps 1.00 on 5 of 5
(``benchmarks/wiring_calcium_dev.py``). Everything else, epochs included, is
:class:`ModelConfig`'s (the pipeline's former 40-epoch default was never used: the demo and
the calcium benchmark always passed 60).
"""


def pipeline_config() -> Any:
    """The :class:`~napari_mesoscale.model.ModelConfig` :func:`run_pipeline` fits with."""
    from napari_mesoscale.model import ModelConfig

    return ModelConfig().replace(**PIPELINE_FIT_OVERRIDES)


def restrict_adjacency(adjacency: sp.csr_matrix, matches: np.ndarray, n_sources: int):
    """Connectome edges among point sources: edge a → b where a's and b's neurons connect."""
    neuron_of = np.full(n_sources, -1, dtype=np.int64)
    neuron_of[matches[:, 0]] = matches[:, 1]
    matched = np.flatnonzero(neuron_of >= 0)
    sub = adjacency[neuron_of[matched]][:, neuron_of[matched]].tocoo()
    return sp.csr_matrix(
        (sub.data, (matched[sub.row], matched[sub.col])), shape=(n_sources, n_sources)
    )


@dataclass
class FitReport:
    """A fitted model with its predictions and scores against the baselines.

    Attributes
    ----------
    fit : MesoscaleFit
    activity : ndarray (T, N)
        The activity the model was fitted to.
    predicted : ndarray (T, N)
        One-step predictions (row 0 is NaN).
    baselines : dict of str to ndarray (T, N)
        One-step predictions of each baseline.
    scores : pandas.DataFrame
        Held-out (test block) one-step error of the model and every baseline.
    registration : Registration or None
        Matching of the cells to connectome neurons, when a connectome of other neurons
        was given.
    """

    fit: Any
    activity: np.ndarray
    predicted: np.ndarray
    baselines: dict[str, np.ndarray]
    scores: pd.DataFrame
    registration: Any = None


def connectome_adjacency(connectome: Any, positions: np.ndarray, callback: Any = None):
    """Adjacency among the cells at ``positions``: direct, or through registration.

    A sparse matrix or a Connectome of the same N neurons is used as it is; a Connectome of
    other neurons is first registered to the cells and restricted to the matched pairs.
    """
    if connectome is None:
        return None, None
    if sp.issparse(connectome):
        return sp.csr_matrix(connectome), None
    n = positions.shape[0]
    if connectome.n_neurons == n and np.allclose(connectome.positions, positions, atol=1e-6):
        return connectome.adjacency, None
    from napari_mesoscale.connectome import register_point_sources

    registration = register_point_sources(positions, connectome.positions, callback=callback)
    return restrict_adjacency(connectome.adjacency, registration.matches, n), registration


#: Share of :func:`fit_and_score`'s progress taken by the fit (the baselines take the rest).
FIT_SHARE = 0.8


def fit_and_score(
    activity: Any,
    positions: Any,
    *,
    connectome: Any = None,
    stimulus: Any = None,
    callback: Callable[[dict], Any] | None = None,
    **fit_kwargs: Any,
) -> FitReport:
    """Fit the mesoscale model and score it against every baseline on held-out time.

    Parameters
    ----------
    activity : array_like (T, N)
    positions : array_like (N, 3), µm
    connectome : Connectome or sparse (N, N), optional
        A Connectome of other neurons is registered to the cells first.
    stimulus : array_like (T,) or (T, S), optional
    callback : callable, optional
        Progress protocol (:mod:`napari_mesoscale.progress`): the fit covers the first
        :data:`FIT_SHARE` of the run, then prediction and the baselines report their own named
        stages. Returning False or raising a ``Cancelled`` stops training; the partial fit
        (``fit.cancelled`` true) is returned at once with the model's own scores only.
    **fit_kwargs
        Passed to :func:`napari_mesoscale.fit_mesoscale` (``config``, ``n_filters``,
        ``epochs``, ...); unset options take :class:`ModelConfig`'s defaults.

    Returns
    -------
    FitReport
    """
    from napari_mesoscale.model import fit_mesoscale

    progress = Progress.wrap(callback)
    activity = np.asarray(activity, dtype=float)
    positions = np.asarray(positions, dtype=float)
    adjacency, registration = connectome_adjacency(connectome, positions)
    fit = fit_mesoscale(
        activity,
        positions,
        connectome=adjacency,
        stimulus=stimulus,
        callback=progress.stage(0.0, FIT_SHARE, "fit"),
        **fit_kwargs,
    )
    cancelled = fit.stopped == "cancelled"
    if not cancelled:
        progress.report(FIT_SHARE, "predicting the activity")
    predicted = fit.predict(activity, stimulus=stimulus)
    if cancelled:  # the partial fit is shown at once, not after the baselines' minutes of work
        scores = _model_scores(fit, activity, predicted)
        return FitReport(fit, activity, predicted, {}, scores, registration)
    progress.report(FIT_SHARE + 0.02, "fitting and scoring the baselines (held-out block)")
    baselines, scores = score_against_baselines(
        fit, activity, predicted, adjacency=adjacency, stimulus=stimulus, seed=fit.seed
    )
    progress.report(1.0, "scored against the baselines")
    return FitReport(fit, activity, predicted, baselines, scores, registration)


def _model_scores(fit: Any, activity: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """The model's own held-out one-step scores (the table's first row, no baselines)."""
    from napari_mesoscale.evaluate import evaluate_forecast

    scores = evaluate_forecast(predicted, activity, frames=slice(*fit.blocks["test"]))[1]
    row = {k: float(v) for k, v in scores.items() if k not in ("horizon", "n")}
    return pd.DataFrame([{"model": "mesoscale model", **row, "mse_ratio_to_model": 1.0}])


def run_pipeline(
    movie: Any,
    *,
    voxel_size: Any,
    neurons: pd.DataFrame,
    synapses: pd.DataFrame,
    frame_rate: float | None = None,
    stimulus: np.ndarray | None = None,
    cell_diameter: float = 8.0,
    n_filters: int | None = None,
    epochs: int | None = None,
    rf_diameter: float | None = None,
    seed: int = 0,
    device: str = "auto",
    edge_init: str | None = None,
    freeze_edges: bool | None = None,
    register_motion: bool | str = "auto",
    registered_output: Any = None,
    callback: ProgressCallback | Progress | None = None,
    **fit_options: Any,
) -> PipelineResult:
    """Detect cells, build the connectome, register, fit the mesoscale model and score it.

    Parameters
    ----------
    movie : array_like or dask array, (T, Z, Y, X)
        Calcium movie.
    voxel_size : sequence of 3 floats
        Movie voxel size in µm, (z, y, x).
    neurons, synapses : pandas.DataFrame
        Connectome tables (see :meth:`Connectome.from_tables`), positions in µm.
    frame_rate : float, optional
        Frames per second of the movie.
    stimulus : ndarray (T,) or (T, S), optional
        Stimulus given to the model.
    cell_diameter : float
        Soma diameter in µm for detection.
    n_filters, epochs, rf_diameter, edge_init, freeze_edges, seed, device, fit_options
        Passed to :func:`fit_mesoscale`; ``None`` takes the pipeline's fit configuration,
        :func:`pipeline_config` (:class:`ModelConfig` with :data:`PIPELINE_FIT_OVERRIDES`).
    register_motion : True, False or "auto"
        Register the movie (:func:`napari_mesoscale.correct_motion`) before detection;
        ``"auto"`` does so when a quick estimate finds more than half a voxel of motion. The
        shifts are kept on the result (``result.motion``) and in its bundle.
    registered_output : path, optional
        Zarr folder for the registered movie (needed when the movie is lazy).
    callback : callable, optional
        Progress dictionaries (``fraction`` over the whole run, ``message``).

    Returns
    -------
    PipelineResult
    """
    from napari_mesoscale.connectome import Connectome
    from napari_mesoscale.motion.pipeline import register_if_moving
    from napari_mesoscale.segment import detect_point_sources

    progress = Progress.wrap(callback)
    config = pipeline_config().merged(
        n_filters=n_filters,
        epochs=epochs,
        rf_diameter=rf_diameter,
        edge_init=edge_init,
        freeze_edges=freeze_edges,
    )
    movie, motion, _ = register_if_moving(
        movie,
        voxel_size=voxel_size,
        register=register_motion,
        output=registered_output,
        callback=progress.stage(0.0, 0.1, "correcting motion"),
    )
    sources = detect_point_sources(
        movie,
        voxel_size=voxel_size,
        cell_diameter=cell_diameter,
        frame_rate=frame_rate,
        callback=progress.stage(0.1, 0.3, "detecting cells"),
    )
    if sources.n_sources < 2:
        raise ValueError(
            f"Only {sources.n_sources} cell(s) were found in the movie; check the voxel size "
            "and the cell diameter, or lower the detection threshold."
        )
    connectome = Connectome.from_tables(neurons, synapses)
    progress.report(0.32, "registering cells to the connectome")
    activity = np.asarray(sources.dff, dtype=float)
    report = fit_and_score(
        activity,
        sources.positions,
        connectome=connectome,
        stimulus=stimulus,
        config=config,
        seed=seed,
        device=device,
        callback=progress.stage(0.35, 0.97, "fitting"),
        **fit_options,
    )
    registration = report.registration
    summary = _summary(sources, registration, report.fit, report.scores)
    if motion is not None:
        summary["motion_registered"] = True
        summary["motion_max_shift_um"] = float(np.abs(motion.shifts_um).max())
    summary.update(_truth_scores(sources, registration, report.fit, neurons))
    progress.report(1.0, "done")
    return PipelineResult(
        sources,
        connectome,
        registration,
        report.fit,
        activity,
        report.predicted,
        report.baselines,
        report.scores,
        summary,
        motion,
    )


def score_against_baselines(
    fit: Any,
    activity: np.ndarray,
    predicted: np.ndarray,
    *,
    adjacency: Any = None,
    stimulus: Any = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """One-step predictions of every baseline and held-out scores of model and baselines.

    The baselines are fitted on the model's own training block and all are scored on its
    test block, side by side; ``mse_ratio_to_model`` > 1 means the model is better.
    """
    from napari_mesoscale.baselines import default_baselines
    from napari_mesoscale.evaluate import evaluate_forecast

    train = slice(*fit.blocks["train"])
    test = slice(*fit.blocks["test"])
    predictions = {"mesoscale model": predicted}
    for name, model in default_baselines(adjacency, seed=seed).items():
        model.fit(activity[train], stimulus=None if stimulus is None else stimulus[train])
        predictions[name] = model.predict(activity, steps=1, stimulus=stimulus)
    rows = []
    for name, values in predictions.items():
        scores = evaluate_forecast(values, activity, frames=test)[1]
        rows.append(
            {"model": name, **{k: float(v) for k, v in scores.items() if k not in ("horizon", "n")}}
        )
    table = pd.DataFrame(rows)
    reference = table.loc[table["model"] == "mesoscale model", "mse"].iloc[0]
    table["mse_ratio_to_model"] = table["mse"] / reference
    return {k: v for k, v in predictions.items() if k != "mesoscale model"}, table


def _summary(sources: Any, registration: Any, fit: Any, scores: pd.DataFrame) -> dict[str, Any]:
    return {
        "point_sources": int(sources.n_sources),
        "matched_to_connectome": int(len(registration.matches)),
        "median_match_residual_um": float(np.median(registration.residuals))
        if len(registration.residuals)
        else None,
        "domains": int(len(np.unique(fit.domain_labels))),
        "motifs_used": int(len(np.unique(fit.motif_labels))),
        "fit_stopped": fit.stopped,
        "test_one_step": scores.to_dict(orient="records"),
    }


def _truth_scores(sources: Any, registration: Any, fit: Any, neurons: pd.DataFrame):
    """Detection F1 and motif / domain ARI where the tables carry ground truth."""
    from sklearn.metrics import adjusted_rand_score

    truth: dict[str, Any] = {}
    if not {"motif", "instance"} <= set(neurons.columns) or len(registration.matches) < 2:
        return truth
    detected, neuron_rows = registration.matches[:, 0], registration.matches[:, 1]
    n_true = len(neurons)
    precision = len(detected) / max(sources.n_sources, 1)
    recall = len(detected) / max(n_true, 1)
    truth["detection_f1_vs_connectome"] = 2 * precision * recall / max(precision + recall, 1e-12)
    truth["motif_ari"] = float(
        adjusted_rand_score(neurons["motif"].to_numpy()[neuron_rows], fit.motif_labels[detected])
    )
    truth["domain_ari"] = float(
        adjusted_rand_score(
            neurons["instance"].to_numpy()[neuron_rows], fit.domain_labels[detected]
        )
    )
    return truth
