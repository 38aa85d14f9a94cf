"""The paths a new user takes through the viewer (issue 17), each driven as a click would be.

Every test here failed before the fix it guards: reopening with ``viewer.open`` and no plugin
argument, the console line, the EM widget's labels, layers added in 3D view, bundle styling and
adjacency, the user's layers surviving a widget run, the layout, and input that must be refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from qtpy.QtWidgets import QLabel

from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget

pytestmark = pytest.mark.viewer


def _run(widget, qtbot, timeout=120_000):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)


# -- 3: opening files without naming the plugin ------------------------------------------------
def test_open_without_plugin_argument_reads_bundles_ome_tiff_and_tables(
    make_napari_viewer, tmp_path, reader_preferences
):
    from napari_mesoscale.io import write_tiff

    viewer = make_napari_viewer()
    neurons = pd.DataFrame({"id": [4, 5, 6], "z": [1.0, 2, 3], "y": [4.0, 5, 6], "x": [7.0, 8, 9]})
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    write_tiff(
        str(tmp_path / "em.ome.tif"),
        np.random.default_rng(0).random((4, 8, 8)).astype("float32"),
        voxel_size=(2.0, 0.5, 0.5),
        axes="ZYX",
    )
    [table] = viewer.open(tmp_path / "neurons.csv", plugin=None)
    np.testing.assert_allclose(table.data, neurons[["z", "y", "x"]].to_numpy())
    assert list(table.features["id"]) == [4, 5, 6]
    [volume] = viewer.open(tmp_path / "em.ome.tif", plugin=None)
    np.testing.assert_allclose(volume.scale, (2.0, 0.5, 0.5))

    from napari_mesoscale.napari._writer import write_bundle

    [bundle] = write_bundle(str(tmp_path / "run"), [table.as_layer_data_tuple()])
    [reopened] = viewer.open(bundle, plugin=None)
    np.testing.assert_allclose(reopened.data, table.data)
    assert list(reopened.features["id"]) == [4, 5, 6]


def test_napari_csv_still_opens_with_the_plugin_preferred(
    make_napari_viewer, tmp_path, reader_preferences
):
    viewer = make_napari_viewer()
    points = viewer.add_points(np.array([[1.0, 2.0], [3.0, 4.0]]), name="clicked")
    path = tmp_path / "clicked.csv"
    viewer.layers.save(str(path), selected=False, plugin="napari")
    viewer.layers.remove(points)
    [layer] = viewer.open(path, plugin=None)
    np.testing.assert_allclose(layer.data, [[1.0, 2.0], [3.0, 4.0]])


def test_without_preferences_napari_offers_the_plugin(
    make_napari_viewer, tmp_path, unsaved_settings
):
    from napari.errors import MultipleReaderError

    unsaved_settings.plugins.extension2reader = {}
    viewer = make_napari_viewer()
    pd.DataFrame({"id": [1], "z": [1.0], "y": [1.0], "x": [1.0]}).to_csv(tmp_path / "n.csv")
    with pytest.raises(MultipleReaderError) as error:  # the GUI shows a choice dialog here
        viewer.open(tmp_path / "n.csv", plugin=None)
    assert "napari-mesoscale" in error.value.available_plugins


# -- 4: the console line runs --------------------------------------------------------------------
def test_console_line_reproduces_detection_connectome_and_somata(
    make_napari_viewer, qtbot, console_names
):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")

    build = ConnectomeWidget(viewer)
    build._source.value = "Points layer"
    build._neurons_layer.value = "neurons (truth)"
    build._synapses_layer.value = "synapses"
    build._view_3d.value = False
    _run(build, qtbot)
    assert build.last_error is None, build.last_error
    console = dict(console_names)
    exec(console["last_call"], console)
    np.testing.assert_allclose(
        console["build"].connectome.adjacency.toarray(),
        build.last_result.connectome.adjacency.toarray(),
    )

    somata = DetectSomataWidget(viewer)
    somata._method.value = "from a labels layer"
    somata._segmentation.value = "somata (truth)"
    _run(somata, qtbot)
    assert somata.last_error is None, somata.last_error
    console = dict(console_names)
    exec(console["last_call"], console)
    np.testing.assert_allclose(console["somata"].positions, somata.last_result.positions)


# -- 5: the EM widget keeps its control labels -----------------------------------------------
def test_em_widget_shows_control_labels_before_any_data(make_napari_viewer):
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    widget = DetectSomataWidget(viewer)
    assert widget.labels is True
    texts = {label.text() for label in widget.native.findChildren(QLabel)}
    assert {"method", "EM volume", "cell diameter (µm)"} <= texts


# -- 6: layers added in 3D view -----------------------------------------------------------------
class _AddsLabels(CoreTaskWidget):
    """A widget whose result is a Labels layer with features, like the fit's domains."""

    def __init__(self, viewer, labels):
        super().__init__(viewer)
        self.labels_data = labels
        self.add_controls()

    def prepare(self):
        return CoreCall(function=lambda callback=None: 1, python="1")

    def on_result(self, result):
        features = pd.DataFrame({"index": [0, 1, 2], "domain": [np.nan, 0, 1]})
        self.replace_layers(
            [(self.labels_data, {"name": "domains", "features": features}, "labels")], key="x"
        )


def test_labels_with_features_are_added_in_3d_with_the_mouse_still(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "connectome")
    viewer.dims.ndisplay = 3
    viewer.mouse_over_canvas = True  # the mouse rests on the canvas, unmoved since the switch
    widget = _AddsLabels(viewer, np.asarray(viewer.layers["somata (truth)"].data) % 3)
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    assert "domains" in viewer.layers


# -- 7: bundles keep styling and the adjacency ---------------------------------------------------
def test_bundle_keeps_colormaps_opacity_and_adjacency(
    make_napari_viewer, tmp_path, reader_preferences
):
    from napari.utils.colormaps import DirectLabelColormap

    from napari_mesoscale.napari._writer import write_bundle

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    somata = np.asarray(viewer.layers["somata (truth)"].data)
    viewer.add_image(
        np.random.default_rng(0).random((3, *somata.shape)).astype("float32"),
        name="predicted",
        colormap="magma",
        contrast_limits=(0.1, 0.9),
        opacity=0.5,
        blending="additive",
    )
    viewer.add_image(somata.astype("float32"), name="residual", colormap="PiYG")
    colors = {None: [0, 0, 0, 0], 0: [0, 0, 0, 0], 1: [1, 0, 0, 1], 2: [0, 1, 0, 1]}
    viewer.add_labels(somata % 3, name="domains", colormap=DirectLabelColormap(color_dict=colors))
    neurons = viewer.layers["neurons (truth)"]
    layers = [layer.as_layer_data_tuple() for layer in viewer.layers]
    [path] = write_bundle(str(tmp_path / "run"), layers)

    reopened = make_napari_viewer()
    reopened.open(path, plugin=None)
    predicted = reopened.layers["predicted"]
    assert predicted.colormap.name == "magma"
    assert predicted.opacity == pytest.approx(0.5) and predicted.blending == "additive"
    np.testing.assert_allclose(predicted.contrast_limits, (0.1, 0.9))
    assert reopened.layers["residual"].colormap.name == "PiYG"
    domains = reopened.layers["domains"].colormap
    np.testing.assert_allclose(domains.color_dict[1], [1, 0, 0, 1])
    np.testing.assert_allclose(domains.color_dict[2], [0, 1, 0, 1])
    np.testing.assert_allclose(reopened.layers["neurons (truth)"].face_color, neurons.face_color)
    adjacency = reopened.layers["neurons (truth)"].metadata["adjacency"]
    np.testing.assert_allclose(adjacency.toarray(), neurons.metadata["adjacency"].toarray())


def _assert_same_metadata(again: dict, before: dict, layer: str) -> None:
    import scipy.sparse as sp

    assert set(again) == set(before), layer
    for key, value in before.items():
        if sp.issparse(value):
            assert sp.issparse(again[key]) and (again[key] != value).nnz == 0, (layer, key)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(again[key], value, err_msg=f"{layer}: {key}")
            assert again[key].dtype == value.dtype, (layer, key)
        else:
            assert again[key] == value, (layer, key)


def test_bundle_reopens_with_the_metadata_fit_needs(make_napari_viewer, tmp_path):
    """Driving the viewer by hand: a bundle saved through the plugin's writer reopened without
    the cells' ``roi_labels``, ``voxel_size_um``, ``frame_rate_hz`` or the movie's stimulus, so
    *Fit* no longer chose its ROI masks. Now every layer's metadata comes back as it was, *Fit*
    fills its pickers as on the sample, and a value the writer cannot store is named once."""
    from napari.utils.notifications import notification_manager

    from napari_mesoscale.napari._fit_widget import FitWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    viewer.open_sample("napari-mesoscale", "calcium")
    cells = viewer.layers["neurons (truth)"]
    cells.metadata.update(voxel_size_um=(3.0, 1.5, 1.5), frame_rate_hz=5.0)  # as detections have
    viewer.layers["synapses"].metadata["fit"] = object()  # no bundle can hold this
    sample_fit = FitWidget(viewer)
    picked = [sample_fit.rois.value, sample_fit.connectome.value, sample_fit.stimulus.value]
    assert picked == ["somata (truth)", "neurons (truth)", "neurons (truth)"]
    before = {layer.name: dict(layer.metadata) for layer in viewer.layers}
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(n.message))
    [path] = viewer.layers.save(str(tmp_path / "session.mesoscale"), plugin="napari-mesoscale")
    assert len(messages) == 1 and "'synapses': fit" in messages[0], messages

    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-mesoscale")
    assert [layer.name for layer in reopened.layers] == list(before)
    del before["synapses"]["fit"]
    for name, metadata in before.items():
        _assert_same_metadata(dict(reopened.layers[name].metadata), metadata, name)
    assert reopened.layers["neurons (truth)"].metadata["roi_labels"] == "somata (truth)"
    assert reopened.layers["calcium movie"].metadata["stimulus"].shape == (200, 6)
    fit = FitWidget(reopened)
    assert fit.cells.value == "neurons (truth)"
    assert [fit.rois.value, fit.connectome.value, fit.stimulus.value] == picked
    np.testing.assert_array_equal(fit._chosen_stimulus(), sample_fit._chosen_stimulus())
    assert (fit._chosen_connectome() != sample_fit._chosen_connectome()).nnz == 0


# -- 8: widgets never delete the user's layers -------------------------------------------------
def test_build_connectome_keeps_the_users_synapses_layer(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    users = viewer.layers["synapses"]
    widget = ConnectomeWidget(viewer)
    widget._source.value = "Points layer"
    widget._neurons_layer.value = "neurons (truth)"
    widget._synapses_layer.value = "synapses"
    widget._view_3d.value = False
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    assert users in viewer.layers and viewer.layers["synapses"] is users
    first = {layer.name for layer in widget._added["connectome"]}
    _run(widget, qtbot)  # a rerun replaces its own layers only
    assert users in viewer.layers
    assert {layer.name for layer in widget._added["connectome"]} == first


def test_build_on_the_connectome_sample_adds_no_second_copy_of_its_synapses(
    make_napari_viewer, qtbot
):
    """Driving the viewer by hand: Build connectome on the connectome sample added
    ``synapses_2``, a copy of the sample's ``synapses`` it was built from. The sample's four
    layers stay, the build writes its node features and the connectome into ``neurons
    (truth)``, the layer it was built from (their own columns unchanged), and adds edges and
    transmission (no receptive fields at the default diameter 0; it added a second ``neurons``
    layer of the same points until viewer-r), a rebuild replaces those two, and Fit still finds
    its cells."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget
    from napari_mesoscale.napari._fit_widget import FitWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "connectome")
    sample = [layer.name for layer in viewer.layers]
    truth = viewer.layers["neurons (truth)"]
    own = truth.features.copy()
    widget = ConnectomeWidget(viewer)  # its pickers choose the sample's layers by themselves
    widget._view_3d.value = False
    for _ in range(2):  # build, then rebuild
        _run(widget, qtbot)
        assert widget.last_error is None, widget.last_error
        names = [layer.name for layer in viewer.layers]
        assert not any(name.startswith("synapses") for name in names if name != "synapses")
        assert names[: len(sample)] == sample and len(names) == len(sample) + 2 == 6
        added = sorted(name.split(" ")[0] for name in names[len(sample) :])
        assert added == ["edges", "transmission"]
        assert "'synapses': not added again" in widget._status.value
        assert "written into 'neurons (truth)'" in widget._status.value
        assert truth.metadata["connectome"] is widget.last_result.connectome
        pd.testing.assert_frame_equal(truth.features[own.columns], own)
        assert {"degree", "information_flow"} <= set(truth.features.columns)
    fit = FitWidget(viewer)
    assert fit.cells.value == "neurons (truth)"
    assert fit.connectome.value == "neurons (truth)"


def test_em_methods_keep_each_others_results(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "em")
    user = viewer.add_points(np.zeros((1, 3)), name="EM volume somata points")
    widget = DetectSomataWidget(viewer)
    widget._volume.value = "EM volume"
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    assert user in viewer.layers
    classical = viewer.layers["EM volume somata points_2"]
    assert classical.metadata["roi_labels"] == "EM volume somata ROIs"
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "EM somata (truth)"
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    assert classical in viewer.layers and user in viewer.layers
    assert "EM somata (truth) somata points" in viewer.layers


# -- 9: the summary stays -----------------------------------------------------------------------
def test_result_summary_is_not_overwritten(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "em")
    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "EM somata (truth)"
    _run(widget, qtbot)
    qtbot.wait(50)
    assert widget._status.value.endswith("somata."), widget._status.value


# -- 10: layout ---------------------------------------------------------------------------------
def test_long_error_wraps_instead_of_widening_the_dock(make_napari_viewer):
    from napari_mesoscale.napari._fit_widget import FitWidget

    viewer = make_napari_viewer(show=True)
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget)
    before = widget.native.sizeHint().width()
    widget._fail("a very long message " * 40)
    assert widget._status.native.wordWrap()
    assert widget.native.sizeHint().width() <= max(before, 600)


def test_loss_plot_axis_spans_the_real_losses(qtbot):
    from napari_mesoscale.napari._plots import LossPlot

    plot = LossPlot()
    assert not plot.axes.axison  # a placeholder, not bare 0-1 axes
    for epoch, total in enumerate([2.0, 1.0, 0.5]):
        plot.add(
            {
                "epoch": epoch,
                "losses": {"total": total, "entropy": 1e-21 * (epoch > 0)},
                "val_loss": total * 1.1,
            }
        )
    low, high = plot.axes.get_ylim()
    assert 0.1 < low < 0.5 and 2.2 <= high < 10


def test_loss_plot_shows_epoch_means_not_the_first_step(qtbot):
    """The plot took each epoch's first step report (one batch, the previous epoch's
    validation) and then skipped the epoch's own report, which has the same epoch number."""
    from napari_mesoscale.napari._plots import LossPlot

    plot = LossPlot()
    for epoch, (first_step, mean, val) in enumerate([(9.0, 2.0, 2.2), (8.0, 1.0, 1.1)]):
        plot.add(
            {
                "stage": "train",
                "epoch": epoch,
                "step": 0,
                "losses": {"total": first_step},
                "val_loss": None if epoch == 0 else 2.2,
            }
        )
        plot.add({"stage": "epoch", "epoch": epoch, "losses": {"total": mean}, "val_loss": val})
    assert plot.epochs == [0.0, 1.0]
    assert plot.curves["total"] == [2.0, 1.0]
    assert plot.curves["validation"] == [2.2, 1.1]


def test_trace_plot_starts_with_a_placeholder(qtbot):
    from napari_mesoscale.napari._plots import TracePlot

    plot = TracePlot()
    assert not plot.axes.axison
    assert any("Select points" in text.get_text() for text in plot.axes.texts)


def test_uncertain_cells_stay_visible():
    from napari_mesoscale.napari._overlays import motif_point_colors

    colors = motif_point_colors(np.array([0, 1, 2]), np.array([0.05, 0.5, 0.95]))
    np.testing.assert_allclose(colors[:, 3], [0.4, 0.5, 0.95])


def test_sliders_are_named_t_z_y_x(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "calcium")
    assert tuple(viewer.dims.axis_labels) == ("t", "z", "y", "x")


# -- 11: input that must be refused -------------------------------------------------------------
def test_em_volume_is_refused_as_a_calcium_movie(make_napari_viewer):
    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "em")
    widget = DetectPointSourcesWidget(viewer)
    widget._movie.value = "EM volume"
    widget.start()
    assert not widget.is_running
    assert "not a calcium movie" in widget.last_error


def test_fit_refuses_a_one_point_layer(make_napari_viewer):
    from napari_mesoscale.napari._fit_widget import FitWidget

    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((1, 3)), name="one", metadata={"activity": np.ones((100, 1))})
    widget = FitWidget(viewer)
    widget.cells.value = "one"
    widget.start()
    assert not widget.is_running
    assert "at least 2" in widget.last_error


@pytest.mark.parametrize("width", [260, 900])
def test_trace_plot_legend_leaves_the_curves_uncovered(qtbot, width):
    """The traces' legend sat inside the axes, over the recorded and predicted curves; it now
    sits above them, within the canvas, in a narrow and in a wide dock."""
    from napari_mesoscale.napari._plots import TracePlot

    plot = TracePlot()
    qtbot.addWidget(plot)
    plot.resize(width, 300)
    plot.show()
    qtbot.waitExposed(plot)
    rng = np.random.default_rng(0)
    recorded = rng.random((200, 3))
    predicted = {
        name: rng.random((200, 3))
        for name in ("mesoscale model", "connectome only", "shuffled connectome", "mean")
    }
    title = "cell 1: domain 3, motif 2, confidence 0.87"  # as the fit widget titles it
    plot.show_cell(1, recorded, predicted, frame=10, title=title)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layout that cannot fit the legend warns
        plot.canvas.draw()
    renderer = plot.canvas.get_renderer()
    legend = plot._legend.get_window_extent(renderer)
    data_area = plot.axes.get_window_extent(renderer)
    figure = plot.figure.bbox
    assert not legend.overlaps(data_area), (legend, data_area)
    assert figure.x0 - 1 <= legend.x0 and legend.x1 <= figure.x1 + 1, (legend, figure)
    assert legend.y1 <= figure.y1 + 1, (legend, figure)
    assert data_area.height > 0.3 * figure.height  # the curves keep room
    assert len(plot._legend.get_texts()) == 5
    assert plot.axes.get_legend() is None  # nothing left inside the axes
