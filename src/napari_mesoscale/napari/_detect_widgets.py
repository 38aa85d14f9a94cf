"""Widgets: "Detect point sources (calcium)", "Detect somata (EM)", "Train soma detector (EM)".

Each collects layers and parameters (voxel size from the layer's ``scale``), runs one core call
of :mod:`napari_mesoscale.segment` in a worker (progress, cancel) and adds the result as
layers: a Points layer of centres in µm (``features``: id, size, brightness, snr; calcium also
response, p_value, activity_z) and a Labels layer of ROIs at the input's voxel size. The result
object is pushed into napari's console (``sources``, ``somata``, ``detector``) with the one-line
Python equivalent.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, PushButton, Widget

from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._layers import output_name, points_layer
from napari_mesoscale.napari._param_controls import param_control
from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget
from napari_mesoscale.params import Params
from napari_mesoscale.segment.params import (
    DetectionParams,
    SomaDetectionParams,
    SomaTrainingParams,
)

_AUTO = "auto"


def _zero_means_none(params: type[Params], name: str, label: str, maximum: float) -> Widget:
    """A float control for an optional field (``None`` / ``"auto"``), shown as 0."""
    return param_control(
        params, name, value=0.0, annotation=float, label=label, options={"min": 0.0, "max": maximum}
    )


def _layer_names(viewer: napari.viewer.Viewer, kind: type, ndims: tuple[int, ...]) -> list[str]:
    return _contract.layer_names(viewer, kind, ndims=ndims)


def _layer_data(layer: Any) -> Any:
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    return data


def _spatial(layer: Any, n: int) -> tuple[tuple[float, ...], np.ndarray]:
    """Voxel size (µm) and translate of the last ``n`` axes of ``layer``."""
    scale = tuple(float(s) for s in np.asarray(layer.scale)[-n:])
    translate = np.asarray(layer.translate, dtype=float)[-n:]
    return scale, translate


def _path(value: Any) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(value)
    return None if str(path) in ("", ".") else path


class _LayerWidget(CoreTaskWidget):
    """Keeps layer pickers in step with the viewer's layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._pickers: list[ComboBox] = []
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)

    def _refresh(self, *_: Any) -> None:
        for picker in self._pickers:
            picker.reset_choices()


def source_layers(
    sources: Any,
    *,
    name: str,
    step: str = "",
    translate: np.ndarray | None = None,
    plane: bool = False,
    stimulus: np.ndarray | None = None,
) -> list[tuple[Any, dict[str, Any], str]]:
    """Points (µm, features) and Labels (voxel-size scale) layer tuples of point sources.

    They are named after ``name``, the layer (or file) they came from, with ``step`` (e.g.
    ``" somata"``) and " points" / " ROIs" (see :func:`._layers.output_name`). ``stimulus``
    (the movie's, one row per frame) goes into the Points' metadata with the activity, so that
    *Fit* takes it with the cells.
    """
    positions = np.asarray(sources.positions, dtype=float).reshape(-1, 3)
    ndim = 2 if plane else 3
    shift = np.zeros(ndim) if translate is None else np.asarray(translate, dtype=float)[-ndim:]
    coords = (positions[:, 1:] if plane else positions) + shift
    features = sources.features.reset_index(drop=True)
    diameter = float(
        sources.parameters.get("cell_diameter", sources.parameters.get("soma_diameter", 8.0))
    )
    rois_name = output_name(name, f"{step} ROIs")
    fields: dict[str, Any] = {"voxel_size_um": sources.voxel_size, "roi_labels": rois_name}
    if sources.dff is not None:
        fields["activity"] = sources.activity  # (T, N), read by the connectome and fit widgets
        fields["frame_rate_hz"] = sources.parameters.get("frame_rate")
        if stimulus is not None and len(stimulus) == len(sources.activity):
            fields["stimulus"] = stimulus
    metadata = _contract.metadata_dict(**fields)
    points = points_layer(
        coords,
        output_name(name, f"{step} points"),
        features=features,
        size=0.6 * diameter,
        face_color="transparent",
        border_color="yellow",
        metadata=metadata,
    )
    labels = (
        sources.labels,
        {
            "name": rois_name,
            "scale": tuple(sources.voxel_size)[-ndim:],
            "translate": tuple(shift),
            "opacity": 0.4,
            "features": features,
        },
        "labels",
    )
    return [labels, points]


# -- calcium ----------------------------------------------------------------------------------
def _no_sources_text(parameters: dict) -> str:
    """Why a movie gave no point sources (the core's reason) and where the voxel size is set."""
    reason = parameters.get("no_sources_reason", "nothing in the movie stood out from its noise.")
    return f"0 point sources: {reason}{_voxel_size_note(parameters)}"


def _no_somata_text(parameters: dict) -> str:
    """Why an EM volume gave no somata (the core's reason) and where the voxel size is set."""
    reason = parameters.get("no_somata_reason", "no body of a soma's size and shape was found.")
    return f"0 somata: {reason}{_voxel_size_note(parameters)}"


def _voxel_size_note(parameters: dict) -> str:
    size = " × ".join(f"{v:g}" for v in parameters.get("voxel_size", []))
    scale = f" (now {size} µm)" if size else ""
    return f" The voxel size is the layer's scale{scale}."


def _check_movie_axes(layer: Any, data: Any) -> None:
    """Refuse a volume offered as a movie: its first axis must be time."""
    axes = _contract.read(layer).axes
    if axes and not str(axes).upper().startswith("T"):
        raise ValueError(
            f"layer {layer.name!r} is a {axes} volume, not a calcium movie: the first axis must "
            "be time, (T, Z, Y, X) or (T, Y, X). Choose the movie layer."
        )
    first_scale = float(np.asarray(layer.scale)[0])
    if data.ndim == 3 and not axes and first_scale != 1.0:
        raise ValueError(
            f"layer {layer.name!r} is 3D with a scale of {first_scale:g} on its first axis, so it "
            "looks like a (Z, Y, X) volume; a (T, Y, X) movie has a time axis of scale 1. Set the "
            "layer's scale to (1, dy, dx) if it really is a movie."
        )


class DetectPointSourcesWidget(_LayerWidget):
    """Detect point sources (calcium): cells, ROIs and dF/F traces from a (T, [Z,] Y, X) movie."""

    run_text = "Detect point sources"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._movie = ComboBox(label="movie (T, Z, Y, X)", choices=self._movie_choices)
        self._diameter = param_control(DetectionParams, "cell_diameter", options={"max": 1000.0})
        self._frame_rate = _zero_means_none(
            DetectionParams, "frame_rate", "frame rate (Hz, 0 = from layer)", 10_000.0
        )
        self._threshold = _zero_means_none(
            DetectionParams, "threshold", "threshold (noise units, 0 = auto)", 1e6
        )
        self._neuropil = param_control(DetectionParams, "neuropil_coefficient")
        self._window = param_control(
            DetectionParams, "baseline_window_s", label="baseline window (s)", options={"max": 1e5}
        )
        self._deconvolve = param_control(
            DetectionParams, "deconvolve", label="deconvolve (AR(1) event rates)"
        )
        self._tau = param_control(DetectionParams, "tau", label="indicator decay τ (s)")
        self._trace_dock = CheckBox(label="show trace plot", value=True)
        self._motion = ComboBox(
            label="correct motion first", choices=["auto", "yes", "no"], value="auto"
        )
        self._pickers = [self._movie]
        self._plot = None
        self._offered_registered: set[int] = set()
        self.add_controls(
            self._movie,
            self._diameter,
            self._frame_rate,
            self._threshold,
            self._neuropil,
            self._window,
            self._deconvolve,
            self._tau,
            self._motion,
            self._trace_dock,
        )
        viewer.dims.events.current_step.connect(self._follow_time)
        self._prefer_registered()  # docked after Correct motion ran

    def _movie_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Image, (3, 4))

    def _refresh(self, *_: Any) -> None:
        super()._refresh()
        self._prefer_registered()

    def _prefer_registered(self) -> None:
        """Move the movie picker from a raw movie to its registered version, once per version.

        After *Correct motion* the picker stayed on the raw movie, so detection registered it
        again (or ran on the unregistered frames); a user who goes back to the raw movie keeps
        it, since each registered layer is offered only once.
        """
        offered = self._offered_registered
        layers = self._viewer.layers
        current = self._movie.value
        for name in reversed(list(self._movie.choices)):  # the newest registration first
            layer = layers[name] if name in layers else None
            if layer is None or "motion_shifts_um" not in (layer.metadata or {}):
                continue
            if id(layer) in offered:
                continue
            offered.add(id(layer))
            if current is not None and name.startswith(f"{current} registered"):
                self._movie.value = name
                return

    def prepare(self) -> CoreCall:
        from napari_mesoscale.segment import detect_point_sources

        name = self._movie.value
        if name is None:
            raise ValueError("add a calcium movie: an Image layer (T, Z, Y, X) or (T, Y, X).")
        layer = self._viewer.layers[name]
        data = _layer_data(layer)
        plane = data.ndim == 3
        _check_movie_axes(layer, data)
        voxel_size, translate = _spatial(layer, 2 if plane else 3)
        frame_rate = float(self._frame_rate.value) or _contract.read(layer).frame_rate_hz
        threshold: float | str = float(self._threshold.value) or _AUTO
        kwargs = {
            "voxel_size": voxel_size,
            "cell_diameter": float(self._diameter.value),
            "frame_rate": float(frame_rate) if frame_rate else None,
            "threshold": threshold,
            "neuropil_coefficient": float(self._neuropil.value),
            "baseline_window_s": float(self._window.value),
            "deconvolve": bool(self._deconvolve.value),
            "tau": float(self._tau.value),
            # a lazy movie would need a Zarr folder to register into: only when asked ("yes")
            "register_motion": {"yes": True, "no": False}.get(
                self._motion.value, "auto" if isinstance(data, np.ndarray) else False
            ),
        }
        self._context = {
            "translate": translate, "plane": plane, "name": name,
            "stimulus": _contract.read(layer).stimulus,
        }
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return CoreCall(
            function=detect_point_sources,
            kwargs={"movie": data, **kwargs},
            python=f"sources = detect_point_sources(viewer.layers[{name!r}].data, {args})",
            result_name="sources",
        )

    def on_result(self, result: Any) -> None:
        context = self._context
        layers = self.replace_layers(
            source_layers(
                result, name=context["name"], translate=context["translate"],
                plane=context["plane"], stimulus=context["stimulus"],
            ),
            key=context["name"],
            like=context["name"],
        )
        if len(result):
            self._status.value = f"{len(result)} point sources."
        else:
            self.warn_about_result(_no_sources_text(result.parameters))
        self.note_unset_voxel_size(context["name"])
        if self._trace_dock.value and len(result):
            self.show_traces(layers[-1], result)

    def show_traces(self, points: Any, result: Any) -> Any:
        """Dock a plot of the dF/F of the selected points (follows the selection)."""
        from napari_mesoscale.napari._docks import add_plugin_dock
        from napari_mesoscale.napari._plots import TracePlot

        if self._plot is None:
            self._plot = TracePlot()
            try:
                add_plugin_dock(self._viewer, self._plot, "point-source traces", "bottom")
            except Exception:  # noqa: BLE001 - headless viewers without a window
                pass
        frame_rate = result.parameters.get("frame_rate")
        self._plot.follow(
            points, result.activity, frame_rate=frame_rate, frame=self._current_frame(),
            ylabel="dF/F",
        )
        return self._plot

    def _current_frame(self) -> int | None:
        """The time slider's frame, when the viewer's first axis is time."""
        dims = self._viewer.dims
        return int(dims.current_step[0]) if dims.axis_labels[:1] == ("t",) else None

    def _follow_time(self, *_: Any) -> None:
        frame = self._current_frame()
        if self._plot is not None and frame is not None:
            self._plot.mark_frame(frame)


# -- EM ---------------------------------------------------------------------------------------
_CLASSICAL = "classical (contrast)"
_UNET = "U-Net (trained detector)"
_FROM_LABELS = "from a labels layer"


class DetectSomataWidget(_LayerWidget):
    """Detect somata (EM): classical pipeline, trained U-Net, or an existing segmentation."""

    run_text = "Detect somata"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._method = ComboBox(
            label="method", choices=(_CLASSICAL, _UNET, _FROM_LABELS), value=_CLASSICAL
        )
        self._volume = ComboBox(label="EM volume", choices=self._volume_choices)
        # not ``_labels``: magicgui's Container keeps its show-labels flag there
        self._segmentation = ComboBox(label="segmentation", choices=self._labels_choices)
        self._diameter = param_control(
            SomaDetectionParams, "cell_diameter", options={"max": 1000.0}
        )
        self._resolution = param_control(SomaDetectionParams, "resolution")
        self._threshold = _zero_means_none(
            SomaDetectionParams, "threshold", "contrast threshold (0 = auto)", 1e6
        )
        self._probability = param_control(
            SomaDetectionParams, "probability_threshold", label="soma probability threshold"
        )
        self._fused = param_control(SomaDetectionParams, "fused_shell_pass")
        #: the soma detector this widget uses when no file is given (see ``trained_detector``)
        self.detector: Any = None
        self._detector_file = FileEdit(
            label="detector file (empty = last trained)", mode="r", filter="*.pt"
        )
        self._pickers = [self._volume, self._segmentation]
        self._method.changed.connect(self._update_visibility)
        self.add_controls(
            self._method,
            self._volume,
            self._segmentation,
            self._diameter,
            self._resolution,
            self._threshold,
            self._probability,
            self._fused,
            self._detector_file,
        )
        self._update_visibility()

    def _volume_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Image, (3,))

    def _labels_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Labels, (3,))

    def _update_visibility(self, *_: Any) -> None:
        method = self._method.value
        self._volume.visible = method != _FROM_LABELS
        self._segmentation.visible = method == _FROM_LABELS
        self._threshold.visible = method == _CLASSICAL
        self._resolution.visible = method == _CLASSICAL
        self._detector_file.visible = method == _UNET
        self._probability.visible = method == _UNET
        self._fused.visible = method == _UNET

    def prepare(self) -> CoreCall:
        from napari_mesoscale.segment import SomaDetector, detect_somata_em, somata_from_labels

        method = self._method.value
        diameter = float(self._diameter.value)
        if method == _FROM_LABELS:
            name = self._segmentation.value
            if name is None:
                raise ValueError("add a Labels layer (Z, Y, X) holding a segmentation.")
            layer = self._viewer.layers[name]
            voxel_size, translate = _spatial(layer, 3)
            self._context = {"name": name, "translate": translate}
            return CoreCall(
                function=somata_from_labels,
                kwargs={
                    "labels": _layer_data(layer),
                    "voxel_size": voxel_size,
                    "cell_diameter": diameter,
                },
                python=(
                    f"somata = somata_from_labels(viewer.layers[{name!r}].data, "
                    f"voxel_size={voxel_size!r}, cell_diameter={diameter!r})"
                ),
                result_name="somata",
            )
        name = self._volume.value
        if name is None:
            raise ValueError("add an EM volume: a 3D Image layer (Z, Y, X).")
        layer = self._viewer.layers[name]
        voxel_size, translate = _spatial(layer, 3)
        kwargs: dict[str, Any] = {"voxel_size": voxel_size, "cell_diameter": diameter}
        python_detector = ""
        names: dict[str, Any] = {}
        if method == _UNET:
            path = _path(self._detector_file.value)
            if path is not None:
                if not path.is_file():
                    raise FileNotFoundError(f"detector file not found: {path}")
                detector = SomaDetector.load(path)
                python_detector = f", detector=SomaDetector.load({str(path)!r})"
                names["SomaDetector"] = SomaDetector
            elif self.trained_detector() is not None:
                detector = self.trained_detector()
                python_detector = ", detector=detector"
                names["detector"] = detector
            else:
                raise ValueError(
                    "no soma detector yet: train one with 'Train soma detector (EM)' or choose a "
                    "saved detector file."
                )
            kwargs["detector"] = detector
            kwargs["resolution"] = detector.resolution
            kwargs["probability_threshold"] = float(self._probability.value)
            kwargs["fused_shell_pass"] = bool(self._fused.value)
        else:
            kwargs["resolution"] = float(self._resolution.value)
            kwargs["threshold"] = float(self._threshold.value) or _AUTO
        self._context = {"name": name, "translate": translate}
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "detector")
        return CoreCall(
            function=detect_somata_em,
            kwargs={"volume": _layer_data(layer), **kwargs},
            python=(
                f"somata = detect_somata_em(viewer.layers[{name!r}].data, {args}{python_detector})"
            ),
            console_names=names,
            result_name="somata",
        )

    def trained_detector(self) -> Any:
        """This widget's ``detector``, else the latest one trained for the same viewer."""
        if self.detector is not None:
            return self.detector
        return TrainSomaDetectorWidget.latest_detector(self._viewer)

    def on_result(self, result: Any) -> None:
        context = self._context
        method = self._method.value
        suffix = {_UNET: " (U-Net)"}.get(method, "")  # classical keeps the plain name
        self.replace_layers(
            source_layers(
                result,
                name=context["name"],
                step=f" somata{suffix}",
                translate=context["translate"],
            ),
            key=(context["name"], method),
            like=context["name"],
        )
        self._status.value = f"{len(result)} somata."
        if len(result) == 0 and method == _FROM_LABELS:
            self.warn_about_result(_no_somata_in_labels(context["name"], result))
        elif len(result) == 0:
            self.warn_about_result(_no_somata_text(result.parameters))
        self.note_unset_voxel_size(context["name"])


def _no_somata_in_labels(name: str, result: Any) -> str:
    """Why a segmentation gave no somata: no segment thick enough (an empty one), or none of
    a soma's size and shape."""
    measured = int(result.parameters.get("n_labels", 0))
    if measured == 0:
        return (
            f"0 somata: {name!r} holds no segment thick enough for a soma "
            "(is the segmentation empty?)."
        )
    return f"0 somata: none of the {measured} segments of {name!r} has a soma's size and shape."


_NEW_ANNOTATIONS = "New annotation layer for the EM volume"


def painted_annotations(layer: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A Labels layer's data checked as training annotations (0, 1 bg, 2 soma) of ``shape``.

    Checked before the worker starts: a layer of instance labels (the default pick when the EM
    sample's truth is open) otherwise failed only after the volume was prepared, with every
    one of its label values listed.
    """
    data = np.asarray(layer.data)
    hint = f"paint somata with 2 and background with 1 (press {_NEW_ANNOTATIONS!r})"
    if data.shape != tuple(shape):
        raise ValueError(
            f"annotations {layer.name!r} have shape {data.shape}, the EM volume {tuple(shape)}: "
            f"{hint}."
        )
    low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if low < 0 or high > 2:
        raise ValueError(
            f"annotations {layer.name!r} hold labels {low}..{high} (a segmentation?), not only "
            f"1 (background) and 2 (soma): {hint}."
        )
    if not (data == 2).any() or not (data == 1).any():
        raise ValueError(f"annotations {layer.name!r} need both labels 1 and 2: {hint}.")
    return data


class TrainSomaDetectorWidget(_LayerWidget):
    """Train soma detector (EM): a small 3D U-Net from painted somata (2) and background (1)."""

    run_text = "Train"

    #: the training widgets alive, so that "Detect somata (EM)" finds their detectors
    _instances: weakref.WeakSet[TrainSomaDetectorWidget] = weakref.WeakSet()

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._volume = ComboBox(label="EM volume", choices=self._volume_choices)
        self._annotations = ComboBox(
            label="annotations (1 bg, 2 soma)", choices=self._labels_choices
        )
        self._new_annotations = PushButton(text=_NEW_ANNOTATIONS)
        self._epochs = param_control(SomaTrainingParams, "epochs")
        self._steps = param_control(SomaTrainingParams, "steps_per_epoch")
        self._resolution = param_control(SomaTrainingParams, "resolution")
        self._device = param_control(SomaTrainingParams, "device")
        self._self_training = param_control(SomaTrainingParams, "self_training")
        # self-training's detection pass looks for somata of this size
        self._diameter = param_control(
            SomaTrainingParams, "cell_diameter", options={"max": 1000.0}
        )
        # paint -> train -> correct -> retrain: the corrections painted into the annotation
        # layer (2 on missed somata, 1 on false ones) refine the last detector
        self._continue = CheckBox(
            text="continue from the last detector (retrain with corrections)", value=True
        )
        self._save = FileEdit(label="save detector to (optional)", mode="w", filter="*.pt")
        self._pickers = [self._volume, self._annotations]
        self.losses: list[float] = []
        self._save_path: Path | None = None
        #: the detector this widget trained last (None before the first training)
        self.detector: Any = None
        self._trained_count = 0
        TrainSomaDetectorWidget._instances.add(self)
        self._new_annotations.changed.connect(self.add_annotation_layer)
        self.add_controls(
            self._volume,
            self._annotations,
            self._new_annotations,
            self._epochs,
            self._steps,
            self._resolution,
            self._device,
            self._self_training,
            self._diameter,
            self._continue,
            self._save,
        )

    def _volume_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Image, (3,))

    def _labels_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Labels, (3,))

    def add_annotation_layer(self, *_: Any) -> Any:
        """Add an empty Labels layer over the chosen EM volume to paint 1 (bg) and 2 (soma)."""
        name = self._volume.value
        if name is None:
            self._fail("add an EM volume first.")
            return None
        layer = self._viewer.layers[name]
        annotations = self._viewer.add_labels(
            np.zeros(_layer_data(layer).shape, dtype=np.uint8),
            name=output_name(name, " annotations"),
            scale=layer.scale,
            translate=layer.translate,
            units=layer.units,
        )
        annotations.selected_label = 2
        self._annotations.value = annotations.name
        return annotations

    def prepare(self) -> CoreCall:
        from napari_mesoscale.segment import train_soma_detector

        name, ann_name = self._volume.value, self._annotations.value
        if name is None:
            raise ValueError("add an EM volume: a 3D Image layer (Z, Y, X).")
        if ann_name is None:
            raise ValueError(
                "add an annotation Labels layer: paint somata with 2, background with 1."
            )
        layer, ann = self._viewer.layers[name], self._viewer.layers[ann_name]
        annotations = painted_annotations(ann, _layer_data(layer).shape)
        voxel_size, _ = _spatial(layer, 3)
        kwargs = {
            "voxel_size": voxel_size,
            "epochs": int(self._epochs.value),
            "steps_per_epoch": int(self._steps.value),
            "resolution": float(self._resolution.value),
            "device": self._device.value,
            "self_training": bool(self._self_training.value),
            "cell_diameter": float(self._diameter.value),
        }
        self._save_path = self._checked_save_path()
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        if self._continue.value and self.detector is not None:
            # the first round starts from the shipped prior; later rounds from the last one
            kwargs["detector"] = self.detector
            kwargs.pop("resolution")
            args += ", detector=detector"
        return CoreCall(
            function=train_soma_detector,
            kwargs={"volume": _layer_data(layer), "annotations": annotations, **kwargs},
            python=(
                f"detector = train_soma_detector(viewer.layers[{name!r}].data, "
                f"viewer.layers[{ann_name!r}].data, {args})"
            ),
            result_name="detector",
        )

    def _checked_save_path(self) -> Path | None:
        """The chosen 'save detector to' file, refused before training when it is a folder
        (saving into it failed only after the whole training)."""
        path = _path(self._save.value)
        if path is not None and path.is_dir():
            raise ValueError(
                f"'save detector to' is a folder ({path}); choose a file in it, e.g. "
                f"{path / 'detector.pt'}, or leave it empty."
            )
        return path

    def on_progress(self, info: dict[str, Any]) -> None:
        if "loss" in info:
            self.losses.append(float(info["loss"]))
        message = str(info.get("message") or "")
        if self.losses and "loss" not in message and not self._cancel_requested.is_set():
            # step reports come between epochs: keep the last epoch's loss in view
            self._status.value = f"{message}; last epoch's loss {self.losses[-1]:.4f}"

    def start(self) -> None:
        self.losses: list[float] = []
        super().start()

    @classmethod
    def latest_detector(cls, viewer: napari.viewer.Viewer) -> Any:
        """The detector trained most recently by a training widget of ``viewer``, or None."""
        trained = [w for w in cls._instances if w._viewer is viewer and w.detector is not None]
        if not trained:
            return None
        return max(trained, key=lambda w: w._trained_count).detector

    def on_result(self, result: Any) -> None:
        self.detector = result
        self._trained_count = max((w._trained_count for w in self._instances), default=0) + 1
        message = f"trained: loss {result.history[-1]['loss']:.4f}"
        if self._save_path is not None:
            self._save_detector(result, self._save_path)
            message += f", saved to {self._save_path}"
        self._status.value = message + ". Use 'Detect somata (EM)' with the U-Net method."

    def _save_detector(self, detector: Any, path: Path) -> None:
        """Save ``detector``; when that fails, a ValueError saying that it is kept all the same."""
        try:
            detector.save(path)
        except (OSError, RuntimeError) as error:  # torch.save reports a failed write as Runtime…
            raise ValueError(
                f"the detector was trained but could not be saved to {path} ({error}). It is "
                "kept: 'Detect somata (EM)' uses it, and in the console "
                f"`{self.result_name}.save(path)` saves it."
            ) from error
