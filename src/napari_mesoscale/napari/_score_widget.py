"""The "Score predictions" widget: per-neuron noise-corrected predictivity painted on points.

Where the arrays come from
--------------------------
Recorded activity is read from the ``metadata`` of a Points layer of point sources, under the
first of these keys that is present (or the key chosen in the widget):

``trials``   (n_trials, T, N)  repeated recordings of the same stimulus sequence
``activity`` (T, N)            one recording (cut into repeats with "repeats in recording")

Predictions are read from a Points layer's ``metadata`` (``predicted``: (T, N) or
(n_trials, T, N)), which may be the same layer, or from a ``.npy`` file. The keys are those of
the metadata contract, :mod:`napari_mesoscale.napari._contract`.

The scoring runs :func:`napari_mesoscale.evaluate.score_predictions` in a worker;
the result lands in ``layer.features`` (``predictivity``, ``raw``, ``reliability``,
``reliable`` and, when asked, ``eig_0 .. eig_{k-1}`` correlation-eigenvector features) and the
points are coloured by the column chosen in "colour by" (any eigenvector too). With no
predictions chosen and "eigenvector features" above 0, the widget only adds the ``eig_k``
columns (:func:`napari_mesoscale.evaluate.eigenvector_features_frame`) so that the
points can be coloured by any eigenvector. When the layer's features hold a ``domain`` column,
the median ± s.e.m. per domain is kept in ``layer.metadata['predictivity_by_domain']``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, FileEdit

from napari_mesoscale.evaluate import (
    ScoringParams,
    eigenvector_features_frame,
    score_predictions,
    summarize_scores,
)
from napari_mesoscale.io import read_npy
from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._overlays import fitted_column
from napari_mesoscale.napari._param_controls import param_control
from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget, layer_removed

RECORDED_KEYS = ("trials", "activity")
PREDICTED_KEYS = ("predicted",)
_NONE = "(none)"
_AUTO = "auto"


def _metadata_array(layer: Any, key: str, keys: tuple[str, ...]) -> tuple[np.ndarray, str]:
    meta = _contract.read(layer)
    candidates = keys if key == _AUTO else (key,)
    for k in candidates:
        if getattr(meta, k, None) is not None:
            return np.asarray(getattr(meta, k)), k
    raise ValueError(
        f"layer {layer.name!r} holds no {' / '.join(candidates)} array in its metadata; put "
        f"activity there (e.g. layer.metadata['activity'] = activity  # (T, N)) or choose "
        "another layer."
    )


def color_points_by(
    layer: napari.layers.Points, column: str, *, colormap: str = "viridis"
) -> tuple[float, float]:
    """Colour a Points layer by a numeric ``features`` column; NaN values are painted grey.

    Returns the (low, high) values mapped to the ends of the colormap (2nd and 98th
    percentiles of the finite values).
    """
    from napari.utils.colormaps import ensure_colormap

    if column not in layer.features:
        raise ValueError(f"layer {layer.name!r} has no features column {column!r}.")
    values = pd.to_numeric(layer.features[column], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        layer.face_color = "gray"
        return (np.nan, np.nan)
    low, high = np.percentile(values[finite], [2, 98])
    if high <= low:
        high = low + 1e-12
    scaled = np.clip((np.where(finite, values, low) - low) / (high - low), 0, 1)
    colors = ensure_colormap(colormap).map(scaled)
    colors[~finite] = [0.5, 0.5, 0.5, 1.0]
    layer.face_color = colors
    _contract.write(layer, colored_by={"column": column, "limits": (float(low), float(high))})
    return float(low), float(high)


#: what makes a Points layer scorable: recorded activity (or trials) and predictions
_SCORED = ("predicted", "trials", "activity")


class ScorePredictionsWidget(CoreTaskWidget):
    """Score predicted against recorded activity per neuron and paint it onto point sources."""

    run_text = "Score predictions"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._points = ComboBox(label="point sources", choices=self._points_names)
        self._recorded_key = ComboBox(
            label="recorded key", choices=(_AUTO, *RECORDED_KEYS), value=_AUTO
        )
        self._pred_layer = ComboBox(label="predictions layer", choices=self._pred_names)
        self._pred_file = FileEdit(label="or predictions .npy", mode="r", filter="*.npy")
        # the scoring options: defaults, ranges and help from ScoringParams
        self._n_repeats = param_control(ScoringParams, "n_repeats")
        self._lag = param_control(ScoringParams, "lag")
        self._n_splits = param_control(ScoringParams, "n_splits")
        self._estimator = param_control(ScoringParams, "estimator")
        self._threshold = param_control(ScoringParams, "reliability_threshold")
        self._n_eig = param_control(ScoringParams, "n_eigenvectors")
        self._color_by = ComboBox(label="colour by", choices=self._color_choices)
        self._color_by.changed.connect(self._recolor)
        self.add_controls(
            self._points,
            self._recorded_key,
            self._pred_layer,
            self._pred_file,
            self._n_repeats,
            self._lag,
            self._n_splits,
            self._estimator,
            self._threshold,
            self._n_eig,
            self._color_by,
        )
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    # -- choices -------------------------------------------------------------------------
    def _points_names(self, *_: Any) -> list[str]:
        return _contract.layer_names(self._viewer, napari.layers.Points, prefer=_SCORED)

    def _pred_names(self, *_: Any) -> list[str]:
        return [_NONE, *self._points_names()]

    def _color_choices(self, *_: Any) -> list[str]:
        names = ["predictivity", "raw", "reliability"]
        layer = self._selected_points()
        if layer is not None:
            names += [c for c in layer.features.columns if str(c).startswith("eig_")]
        return names

    def _refresh(self, *_: Any) -> None:
        self.prefer_layer(self._points, _SCORED)  # refreshes its choices first
        self._pred_layer.reset_choices()
        self._color_by.reset_choices()  # the chosen points' features
        if self._pred_layer.value in (None, _NONE) and self._points.value is not None:
            layer = self._selected_points()
            if layer is not None and _contract.read(layer).predicted is not None:
                self._pred_layer.value = layer.name

    def _selected_points(self) -> napari.layers.Points | None:
        name = self._points.value
        if name is None or name not in self._viewer.layers:
            return None
        return self._viewer.layers[name]

    # -- running -------------------------------------------------------------------------
    def _has_predictions(self) -> bool:
        path = self._pred_file.value
        file_given = path is not None and str(path) not in ("", ".") and Path(path).is_file()
        return file_given or self._pred_layer.value not in (None, _NONE)

    def _predicted(self) -> tuple[np.ndarray, str]:
        path = self._pred_file.value
        if path is not None and str(path) not in ("", ".") and Path(path).is_file():
            return read_npy(path, "predictions"), f"np.load({str(path)!r})"
        name = self._pred_layer.value
        if name in (None, _NONE):
            raise ValueError(
                "choose a predictions layer (with metadata['predicted']) or a .npy file of "
                "predicted activity (T, N); or, to colour by eigenvectors only, set "
                "'eigenvector features' above 0."
            )
        arr, key = _metadata_array(self._viewer.layers[name], _AUTO, PREDICTED_KEYS)
        return arr, f"viewer.layers[{name!r}].metadata[{key!r}]"

    def _eigenvectors_only(self, layer: Any, recorded: np.ndarray, rec_key: str) -> CoreCall:
        activity = recorded.reshape(-1, recorded.shape[-1])  # trials are concatenated in time
        n_eig = int(self._n_eig.value)
        source = f"viewer.layers[{layer.name!r}].metadata[{rec_key!r}]"
        if recorded.ndim == 3:
            source += f".reshape(-1, {recorded.shape[-1]})"
        self._target = layer
        return CoreCall(
            function=eigenvector_features_frame,
            kwargs={"activity": activity, "n_eigenvectors": n_eig},
            python=f"eig = eigenvector_features_frame({source}, n_eigenvectors={n_eig})",
            console_names={"eigenvector_features_frame": eigenvector_features_frame},
            result_name="eig",
        )

    def prepare(self) -> CoreCall:
        layer = self._selected_points()
        if layer is None:
            raise ValueError("add a Points layer of point sources first.")
        recorded, rec_key = _metadata_array(layer, self._recorded_key.value, RECORDED_KEYS)
        n_points = len(layer.data)
        if recorded.shape[-1] != n_points:
            raise ValueError(
                f"recorded activity has {recorded.shape[-1]} neurons but layer {layer.name!r} "
                f"has {n_points} points; they must match one to one."
            )
        if not self._has_predictions() and int(self._n_eig.value) > 0:
            return self._eigenvectors_only(layer, recorded, rec_key)
        predicted, pred_src = self._predicted()
        if predicted.shape[-1] != n_points:
            raise ValueError(
                f"predictions have {predicted.shape[-1]} neurons but layer {layer.name!r} has "
                f"{n_points} points."
            )
        kwargs = {"predicted": predicted, "recorded": recorded, **self.params()}
        python = (
            "scores = score_predictions("
            f"{pred_src}, viewer.layers[{layer.name!r}].metadata[{rec_key!r}], "
            + ", ".join(
                f"{k}={v!r}" for k, v in kwargs.items() if k not in ("predicted", "recorded")
            )
            + ")"
        )
        self._target = layer
        return CoreCall(
            function=score_predictions,
            kwargs=kwargs,
            python=python,
            console_names={"score_predictions": score_predictions},
            result_name="scores",
        )

    def params(self) -> dict[str, Any]:
        """The scoring options chosen in the controls (validated against ScoringParams)."""
        options = ScoringParams().replace(
            n_repeats=int(self._n_repeats.value),
            lag=int(self._lag.value),
            n_splits=int(self._n_splits.value),
            estimator=self._estimator.value,
            reliability_threshold=float(self._threshold.value),
            n_eigenvectors=int(self._n_eig.value),
        )
        values = options.validate().to_dict()
        for hidden in ("max_neighbors", "seed"):  # not controls: the defaults apply
            values.pop(hidden)
        return values

    def on_result(self, result: pd.DataFrame) -> None:
        layer = self._target
        if layer not in self._viewer.layers:
            raise layer_removed(layer.name, self.result_name)
        features = layer.features.copy()
        if len(features) != len(result):
            features = pd.DataFrame(index=range(len(result)))
        features = features.drop(columns=[c for c in features.columns if str(c).startswith("eig_")])
        for column in result.columns:
            features[column] = result[column].to_numpy()
        layer.features = features.reset_index(drop=True)
        self._color_by.reset_choices()
        scored = "predictivity" in result.columns
        if self._color_by.value not in result.columns:
            self._color_by.value = "predictivity" if scored else result.columns[0]
        self._recolor()
        if not scored:  # eigenvector features only
            self.last_summary = f"{result.shape[1]} eigenvector features added"
            self._status.value = f"{self.last_summary}."
            return
        domain = fitted_column(features.columns, "domain")  # the fit's, not a true domain
        if domain in features.columns:
            by_domain = summarize_scores(
                result["predictivity"], features[domain], mask=result["reliable"]
            )
            _contract.write(layer, predictivity_by_domain=by_domain)
        reliable = result["reliable"].to_numpy(dtype=bool)
        median = (
            float(np.nanmedian(result["predictivity"].to_numpy()[reliable]))
            if reliable.any()
            else np.nan
        )
        self.last_summary = f"median predictivity {median:.3f} over {int(reliable.sum())} neurons"
        if not reliable.any():  # "median predictivity nan over 0 neurons" on the worm sample
            self.last_summary = (
                f"no neuron could be scored: predictivity is NaN for all {len(result)} neurons "
                "(the score leaves out every time point where a value is NaN)"
            )
        _contract.write(layer, predictivity_summary=self.last_summary)
        # the figure the run was for, where the user looks ("Done." alone said nothing)
        column = self._color_by.value
        shown = np.asarray(result[column], dtype=float) if column in result.columns else None
        if shown is not None and not np.isfinite(shown).any():
            self._status.value = f"{self.last_summary}; nothing to colour the points by."
        else:
            self._status.value = f"{self.last_summary}; points coloured by {column}."

    def _recolor(self, *_: Any) -> None:
        layer = self._selected_points()
        column = self._color_by.value
        if layer is None or column is None or column not in layer.features:
            return
        color_points_by(layer, column)
