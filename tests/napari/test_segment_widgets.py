"""Detection widgets in a real viewer: layers, scale, features, console, trace dock, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_mesoscale.segment import match_points
from napari_mesoscale.synth import make_toy_brain

pytestmark = pytest.mark.viewer


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(
        50, n_frames=100, shape=(24, 64, 64), em=True, snr=3.0, seed=0, render="eager"
    )


def test_calcium_widget_adds_points_labels_and_traces(make_napari_viewer, qtbot, brain):
    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    viewer = make_napari_viewer()
    viewer.add_image(
        brain.movie,
        name="movie",
        scale=(1.0, *brain.voxel_size),
        metadata={"frame_rate_hz": brain.frame_rate},
    )
    # opened through the plugin manifest, as the Plugins menu does
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-mesoscale", "Detect point sources (calcium)"
    )
    assert isinstance(widget, DetectPointSourcesWidget)
    widget._diameter.value = 8.0
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None, widget.last_error
    result = widget.last_result
    points = viewer.layers["movie points"]
    labels = viewer.layers["movie ROIs"]
    np.testing.assert_allclose(points.data, result.positions)
    np.testing.assert_allclose(points.scale, 1.0)
    np.testing.assert_allclose(labels.scale, brain.voxel_size)
    assert list(points.features.columns[:4]) == ["id", "size", "brightness", "snr"]
    assert points.metadata["activity"].shape == (brain.movie.shape[0], len(result))
    match = match_points(points.data, brain.positions, 4.0)
    assert match.f1 >= 0.9
    assert "detect_point_sources(" in widget.last_call
    # the trace dock follows the selection
    plot = widget._plot
    assert plot is not None
    points.selected_data = {2}
    qtbot.waitUntil(lambda: plot.shown == [2], timeout=5_000)
    line = plot.axes.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), result.dff[:, 2])
    assert plot.axes.get_ylabel() == "dF/F"
    # a dashed line marks the time slider's frame, as in Fit's trace dock
    viewer.dims.set_current_step(0, 40)
    qtbot.waitUntil(lambda: plot.frame == 40, timeout=5_000)
    marker = plot.axes.get_lines()[-1]
    frame_rate = widget.last_result.parameters.get("frame_rate") or 1.0
    assert marker.get_linestyle() == "--" and marker.get_xdata()[0] == 40 / frame_rate
    points.selected_data = {3}  # a new selection keeps the marker where the slider is
    qtbot.waitUntil(lambda: plot.shown == [3], timeout=5_000)
    assert plot.axes.get_lines()[-1].get_xdata()[0] == 40 / frame_rate
    # a second run replaces the layers
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert len(viewer.layers) == 3


def test_calcium_widget_reports_bad_input(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    viewer = make_napari_viewer()
    widget = DetectPointSourcesWidget(viewer)
    widget.start()
    assert widget.last_error is not None and "calcium movie" in widget.last_error
    viewer.add_image(np.zeros((5, 8, 16, 16), np.float32), name="flat", scale=(1, 2, 1, 1))
    widget._movie.value = "flat"
    widget._diameter.value = 0.5  # below one voxel
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=30_000)
    assert "smaller than one voxel" in widget.last_error


def test_em_widgets_classical_training_and_unet(make_napari_viewer, qtbot, brain):
    import torch

    torch.set_num_threads(1)
    from napari_mesoscale.napari._detect_widgets import (
        DetectSomataWidget,
        TrainSomaDetectorWidget,
    )

    viewer = make_napari_viewer()
    em = viewer.add_image(brain.em, name="em", scale=brain.em_voxel_size)
    detect = DetectSomataWidget(viewer)
    detect._volume.value = "em"
    detect.start()
    qtbot.waitUntil(lambda: not detect.is_running, timeout=60_000)
    assert detect.last_error is None, detect.last_error
    points = viewer.layers["em somata points"]
    assert match_points(points.data, brain.positions, 4.0).f1 >= 0.9
    np.testing.assert_allclose(viewer.layers["em somata ROIs"].scale, brain.em_voxel_size)

    # U-Net without a trained detector: a clear message
    detect._method.value = "U-Net (trained detector)"
    detect.start()
    assert detect.last_error is not None and "train one" in detect.last_error

    train = TrainSomaDetectorWidget(viewer)
    train._volume.value = "em"
    annotations = train.add_annotation_layer()
    np.testing.assert_allclose(annotations.scale, em.scale)
    ids = np.unique(brain.em_labels[brain.em_labels > 0])[:3]
    data = np.zeros(brain.em.shape, np.uint8)
    data[np.isin(brain.em_labels, ids)] = 2
    far = ndimage.distance_transform_edt(brain.em_labels == 0) > 6
    data[:, :20, :20][far[:, :20, :20]] = 1
    annotations.data = data
    train._epochs.value = 2
    train._steps.value = 1
    train.start()
    qtbot.waitUntil(lambda: not train.is_running, timeout=120_000)
    assert train.last_error is None, train.last_error
    assert len(train.losses) == 2
    assert "train_soma_detector(" in train.last_call
    detect.start()  # now the U-Net method finds the trained detector
    qtbot.waitUntil(lambda: not detect.is_running, timeout=120_000)
    assert detect.last_error is None, detect.last_error
    assert detect.last_result.parameters["method"] == "unet"


def test_somata_from_labels_widget(make_napari_viewer, qtbot, brain):
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.add_labels(brain.em_labels, name="segmentation", scale=brain.em_voxel_size)
    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "segmentation"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    points = viewer.layers["segmentation somata points"]
    assert match_points(points.data, brain.positions, 2.0).f1 >= 0.95


def test_somata_from_an_empty_labels_layer_say_so(make_napari_viewer, qtbot):
    """An empty Labels layer gave an internal IndexError; now 0 somata, an empty points layer
    with the features' columns, and a status that says the segmentation looks empty."""
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((20, 40, 40), np.uint8), name="empty", scale=(1.5, 0.75, 0.75))
    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "empty"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    points = viewer.layers["empty somata points"]
    assert len(points.data) == 0 and "diameter_um" in points.features.columns
    assert widget._status.value.startswith("0 somata: 'empty' holds no segment")
    assert "empty?" in widget._status.value


def test_widget_controls_default_to_the_parameter_dataclasses(make_napari_viewer):
    from napari_mesoscale.napari._detect_widgets import (
        DetectPointSourcesWidget,
        DetectSomataWidget,
        TrainSomaDetectorWidget,
    )
    from napari_mesoscale.segment import (
        DetectionParams,
        SomaDetectionParams,
        SomaTrainingParams,
    )

    viewer = make_napari_viewer()
    calcium, em, train = (
        DetectPointSourcesWidget(viewer),
        DetectSomataWidget(viewer),
        TrainSomaDetectorWidget(viewer),
    )
    detection = DetectionParams()
    assert calcium._diameter.value == detection.cell_diameter
    assert calcium._neuropil.value == detection.neuropil_coefficient
    assert calcium._window.value == detection.baseline_window_s
    assert calcium._deconvolve.value == detection.deconvolve
    assert calcium._tau.value == detection.tau
    # 0 stands for "from the layer" / "auto", the dataclass's None / "auto"
    assert calcium._frame_rate.value == 0 and detection.frame_rate is None
    assert calcium._threshold.value == 0 and detection.threshold == "auto"
    soma = SomaDetectionParams()
    assert em._diameter.value == soma.cell_diameter
    assert em._resolution.value == soma.resolution
    assert em._probability.value == soma.probability_threshold
    assert em._fused.value is soma.fused_shell_pass is True
    assert em._threshold.value == 0 and soma.threshold == "auto"
    training = SomaTrainingParams()
    assert train._epochs.value == training.epochs
    assert train._steps.value == training.steps_per_epoch
    assert train._resolution.value == training.resolution
    assert train._device.value == training.device
    assert train._self_training.value == training.self_training
    assert train._diameter.value == training.cell_diameter
    # ranges come from the dataclass too
    assert calcium._neuropil.max == DetectionParams.specs()["neuropil_coefficient"].maximum
    # no detector is shared through module state: a fresh viewer's widget has none
    assert em.trained_detector() is None


def test_detect_widget_passes_the_fused_shell_pass(make_napari_viewer):
    from types import SimpleNamespace

    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 16, 16), np.float32), name="em", scale=(1.0, 0.5, 0.5))
    detect = DetectSomataWidget(viewer)
    detect._volume.value = "em"
    detect._method.value = "U-Net (trained detector)"
    detect.detector = SimpleNamespace(resolution=1.0)  # prepare() only reads its resolution
    assert not detect._fused.native.isHidden()  # shown for the U-Net (the dock is not shown)
    assert detect.prepare().kwargs["fused_shell_pass"] is True  # the default
    detect._fused.value = False
    call = detect.prepare()
    assert call.kwargs["fused_shell_pass"] is False and "fused_shell_pass=False" in call.python
    detect._method.value = "classical (contrast)"
    assert detect._fused.native.isHidden() and "fused_shell_pass" not in detect.prepare().kwargs


def test_train_widget_passes_cell_diameter_and_self_training(make_napari_viewer):
    from napari_mesoscale.napari._detect_widgets import TrainSomaDetectorWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 16, 16), np.float32), name="em", scale=(1.0, 0.5, 0.5))
    train = TrainSomaDetectorWidget(viewer)
    train._volume.value = "em"
    annotations = train.add_annotation_layer()
    data = np.zeros((8, 16, 16), np.uint8)
    data[2:5, 4:8, 4:8], data[:, 12:, 12:] = 2, 1
    annotations.data = data
    train._self_training.value = True
    train._diameter.value = 11.5
    call = train.prepare()
    assert call.kwargs["self_training"] is True
    assert call.kwargs["cell_diameter"] == 11.5
    assert "self_training=True" in call.python and "cell_diameter=11.5" in call.python
    train._self_training.value = False
    assert train.prepare().kwargs["self_training"] is False


def test_a_movie_without_cells_says_what_to_check(make_napari_viewer, qtbot):
    """On a noise movie the widget said only "0 point sources." beside "done": nothing told
    the user which of their settings (scale, cell diameter, threshold) to look at."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    noise = np.random.default_rng(0).poisson(100, size=(30, 4, 24, 24)).astype(np.float32)
    viewer.add_image(noise, name="noise", scale=(1.0, 3.0, 1.5, 1.5))
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-mesoscale", "Detect point sources (calcium)"
    )
    widget._movie.value = "noise"
    widget._motion.value = "no"
    widget._diameter.value = 6.0
    toasts = _record_notifications(notification_manager)
    widget._run_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)
    assert widget.last_error is None and len(widget.last_result) == 0
    status = widget._status.value
    threshold = widget.last_result.parameters["threshold_used"]
    assert status == (
        f"0 point sources: no cell-sized object above the threshold ({threshold:.3g} noise "
        "units, chosen automatically); lower the threshold or check the cell diameter (6 µm) "
        "and the voxel size. The voxel size is the layer's scale (now 3 × 1.5 × 1.5 µm)."
    )
    # the run's only toast: a "done" after it stacked over the warning and hid it
    assert toasts == [("warning", f"napari-mesoscale: {status}")], toasts


def _record_notifications(manager) -> list[tuple[str, str]]:
    """The (severity, message) of every notification from now on, in order."""
    shown: list[tuple[str, str]] = []
    manager.notification_ready.connect(lambda n: shown.append((str(n.severity), n.message)))
    return shown


def test_an_em_volume_without_somata_says_what_to_check(make_napari_viewer, qtbot):
    """A featureless EM volume said only "0 somata." under a "done" toast."""
    from napari.utils.notifications import notification_manager

    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    flat = np.random.default_rng(0).normal(128, 2, size=(16, 48, 48)).astype(np.float32)
    viewer.add_image(flat, name="flat", scale=(0.5, 0.25, 0.25))
    widget = DetectSomataWidget(viewer)
    widget._volume.value = "flat"
    toasts = _record_notifications(notification_manager)
    widget._run_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None and len(widget.last_result) == 0
    status = widget._status.value
    diameter = widget.last_result.parameters["cell_diameter"]
    assert status == (
        "0 somata: no body of a soma's size and shape above the threshold (chosen "
        f"automatically); lower the threshold or check the cell diameter ({diameter:g} µm) and "
        "the voxel size. The voxel size is the layer's scale (now 0.5 × 0.25 × 0.25 µm)."
    )
    assert toasts == [("warning", f"napari-mesoscale: {status}")], toasts
