"""The viewer used by hand: menus clicked, docks looked at, layers chosen as a user finds them.

Each test follows what a user does in a fresh viewer (File ▸ Open Sample, Plugins ▸ Mesoscale)
and failed before the fix it guards.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import QPoint

from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget
from napari_mesoscale.progress import Progress

pytestmark = pytest.mark.viewer

WIDGET_TITLES = (
    "Correct motion (calcium)",
    "Detect point sources (calcium)",
    "Detect somata (EM)",
    "Train soma detector (EM)",
    "Build connectome",
    "Fit mesoscale model",
    "Score predictions",
)


def _menu_action(viewer, *words):
    """The one menu-bar QAction whose path (e.g. "Plugins > Mesoscale > Fit…") has ``words``."""

    def actions(menu, path):
        menu.aboutToShow.emit()  # napari fills its dynamic menus when they are about to show
        for action in menu.actions():
            text = f"{path} > {action.text().replace('&', '')}"
            if action.menu() is not None:
                yield from actions(action.menu(), text)
            else:
                yield text, action

    menu_bar = viewer.window._qt_window.menuBar()
    found = [
        action
        for top in menu_bar.actions()
        if top.menu() is not None
        for text, action in actions(top.menu(), top.text().replace("&", ""))
        if all(word in text for word in words)
    ]
    assert len(found) == 1, f"{len(found)} menu actions match {words}"
    return found[0]


def _dock_from_menu(viewer, qtbot, title):
    _menu_action(viewer, "Plugins", "Mesoscale", title).trigger()
    qtbot.wait(50)
    [name] = [name for name in viewer.window.dock_widgets if name.startswith(title)]
    return viewer.window.dock_widgets[name]


@pytest.mark.parametrize("title", WIDGET_TITLES)
def test_widget_docked_from_the_plugins_menu_fits_its_dock(make_napari_viewer, qtbot, title):
    """The controls were cut off at the dock's right and top edges (a stale, wider size)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    widget = _dock_from_menu(viewer, qtbot, title)
    qtbot.wait(100)
    dock = widget.native
    while type(dock).__name__ != "QtViewerDockWidget":
        dock = dock.parent()
    for control in (widget[0], widget._run_button):
        native = control.native
        corner = native.mapTo(dock, QPoint(0, 0))
        assert corner.x() >= 0 and corner.y() >= 0, (control, corner)
        assert corner.x() + native.width() <= dock.width(), (control, corner, dock.width())
    assert widget._run_button.native.visibleRegion().boundingRect().width() == (
        widget._run_button.native.width()
    )


@pytest.mark.parametrize("dock_first", [False, True])
def test_pickers_choose_the_neurons_not_the_synapses(make_napari_viewer, qtbot, dock_first):
    """After File ▸ Open Sample ▸ connectome, Fit/Score/Build offered the ``synapses`` layer."""
    viewer = make_napari_viewer()
    docked = {}
    titles = ("Fit mesoscale model", "Score predictions", "Build connectome")
    if dock_first:
        docked = {title: _dock_from_menu(viewer, qtbot, title) for title in titles}
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    if not dock_first:
        docked = {title: _dock_from_menu(viewer, qtbot, title) for title in titles}
    assert "synapses" in viewer.layers
    assert docked["Fit mesoscale model"].cells.value == "neurons (truth)"
    assert docked["Score predictions"]._points.value == "neurons (truth)"
    build = docked["Build connectome"]
    assert build._source.value == "Points layer"
    assert build._neurons_layer.value == "neurons (truth)"
    assert build._synapses_layer.value == "synapses"  # the layer with pre/post features


def test_build_connectome_as_docked_on_the_sample(make_napari_viewer, qtbot):
    """With the synapses left at '(none)' the build added an empty transmission layer."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    build = _dock_from_menu(viewer, qtbot, "Build connectome")
    build._run_button.native.click()
    qtbot.waitUntil(lambda: not build.is_running, timeout=120_000)
    assert build.last_error is None, build.last_error
    adjacency = viewer.layers["neurons (truth)"].metadata["adjacency"]
    connectome = viewer.layers["neurons (truth)"].metadata["connectome"]  # built from it
    assert connectome.adjacency.nnz == adjacency.nnz
    [transmission] = [layer for layer in viewer.layers if layer.name.startswith("transmission")]
    assert len(transmission.data) > 0
    # the status said only "Done."
    built = build.last_result
    transmitted = int(np.count_nonzero(built.transmission.counts))
    assert build._status.value == (
        f"{connectome.n_neurons} neurons, {connectome.n_synapses:,} synapses, "
        f"{adjacency.nnz:,} edges, {transmitted:,} edges transmitted in "
        f"{built.transmission.n_bins} bins of 10 frames. Node features and the connectome "
        "written into 'neurons (truth)'. Its synapses are those of 'synapses': not added again."
    ), build._status.value


def test_fit_takes_the_rois_connectome_and_stimulus_the_cells_carry(make_napari_viewer, qtbot):
    """On the connectome sample the fit ran without ROIs (no layers added), connectome, stimulus."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    assert fit.cells.value == "neurons (truth)"
    assert fit.rois.value == "somata (truth)"
    assert fit.connectome.value == "neurons (truth)"
    assert fit.stimulus.value == "neurons (truth)"
    fit.connectome.value = "(none)"  # the user's choice survives layers coming and going
    viewer.add_points([[1.0, 2.0, 3.0]], name="clicked")
    assert fit.connectome.value == "(none)"


def test_long_fit_summary_wraps_inside_the_dock(make_napari_viewer, qtbot):
    """The one-line summary of a fit widened the controls past the dock's edge (clipped)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    fit.summary.value = "12 domains, 4 motifs; best held-out one-step: mesoscale; converged " * 3
    qtbot.wait(100)
    scroll = fit.root_native_widget
    assert scroll.widget().width() <= scroll.viewport().width()
    label = fit.summary.native
    assert label.mapTo(scroll.viewport(), QPoint(label.width(), 0)).x() <= scroll.viewport().width()


def test_domain_table_docks_with_room_for_its_rows(make_napari_viewer, qtbot):
    """The 'Functional domains' dock opened squeezed to about one row beside the fit widget."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    fit._add_docks()
    qtbot.wait(100)
    fit._domain_dock.raise_()  # its tab, beside the fit widget's, clicked
    qtbot.wait(100)
    table = fit.domain_table
    assert table.height() >= 6 * table.verticalHeader().defaultSectionSize()


def test_training_on_instance_labels_is_refused_before_it_starts(make_napari_viewer, qtbot):
    """With the EM sample open, Train picked its truth (labels 1..100) and failed after ~10 s."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "EM volume").trigger()
    train = _dock_from_menu(viewer, qtbot, "Train soma detector (EM)")
    assert train._annotations.value == "EM somata (truth)"
    train._run_button.native.click()
    assert not train.is_running
    status = train._status.value
    assert status.startswith("Error: annotations 'EM somata (truth)' hold labels 0..100")
    assert "New annotation layer" in status and len(status) < 300, status
    train._new_annotations.native.click()
    annotations = viewer.layers[train._annotations.value]
    assert annotations.name == "EM volume annotations"
    train._run_button.native.click()  # nothing painted yet: refused, naming what is missing
    assert not train.is_running
    assert "need both labels 1 and 2" in train._status.value


def test_fit_pickers_follow_the_cells_the_user_switches_to(make_napari_viewer, qtbot):
    """ROIs filled in for one cells layer stayed for the next: the fit crashed painting them."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    rng = np.random.default_rng(0)
    other = viewer.add_points(rng.random((30, 3)) * 40, name="my cells")
    other.metadata["activity"] = rng.random((60, 30))
    viewer.add_labels(np.zeros((16, 16), dtype=np.uint8), name="a 2D mask")
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    assert fit.rois.value == "somata (truth)"
    fit.cells.value = "my cells"
    assert (fit.rois.value, fit.connectome.value, fit.stimulus.value) == ("(none)",) * 3
    fit.cells.value = "neurons (truth)"
    assert fit.rois.value == "somata (truth)" and fit.connectome.value == "neurons (truth)"

    fit.cells.value = "my cells"
    fit.rois.value = "a 2D mask"  # a wrong pick by hand is refused before the worker starts
    fit._run_button.native.click()
    assert not fit.is_running
    assert "ROI masks 'a 2D mask' must be a 3D Labels layer" in fit._status.value


def _report_often(*, callback=None) -> int:
    """A core that reports on every step, so that reports are queued when the viewer closes."""
    progress = Progress.wrap(callback)
    for step in range(2_000_000):
        progress.report(step / 2_000_000, "step")
    return step


class _ReportingWidget(CoreTaskWidget):
    def __init__(self, viewer):
        super().__init__(viewer)
        self.add_controls()

    def prepare(self) -> CoreCall:
        return CoreCall(_report_often)

    def on_result(self, result) -> None:
        self.result = result


def test_closing_the_viewer_while_a_widget_runs(make_napari_viewer, qtbot):
    """Reports queued before the close reached deleted widgets: PyQt aborted the process."""
    viewer = make_napari_viewer()
    widget = _ReportingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.start()
    time.sleep(0.2)  # no events processed: the worker's reports pile up in the queue
    viewer.close()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=20_000)
    qtbot.wait(200)  # the queued reports, the cancel and the worker's end are all delivered


@pytest.mark.parametrize("title", ["Correct motion (calcium)", "Fit mesoscale model"])
def test_status_uses_the_docks_width(make_napari_viewer, qtbot, title):
    """A one-line result stood word by word in a narrow column at the dock's right edge."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    widget = _dock_from_menu(viewer, qtbot, title)
    labels = [widget._status] + ([widget.summary] if hasattr(widget, "summary") else [])
    for label in labels:
        label.value = "largest shift 0.09 µm; 0 outlier frame(s)."
    qtbot.wait(100)
    viewport = widget.root_native_widget.viewport().width()
    for label in labels:
        assert label.native.width() >= 0.8 * viewport, (label.native.width(), viewport)
        assert label.native.height() < 3 * label.native.fontMetrics().height()


def test_motion_plot_keeps_the_quality_axis_on_the_right(qtbot):
    """After a run, 'quality (r)' was written over 'shift (µm)' on the left axis."""
    from types import SimpleNamespace

    from napari_mesoscale.napari._motion_widget import MotionPlot

    frames = 30
    result = SimpleNamespace(
        n_frames=frames,
        shifts_um=np.zeros((frames, 3)),
        block_shifts_um=None,
        quality=np.linspace(0.9, 1.0, frames),
        outliers=np.zeros(frames, dtype=bool),
    )
    plot = MotionPlot()
    plot.show(result)
    plot.show(result)  # a second run clears the axes again
    quality = plot.quality_axes.yaxis
    assert quality.get_label_position() == "right" and quality.get_ticks_position() == "right"
    assert plot.axes.yaxis.get_label_position() == "left"
    labels = [text.get_text() for text in plot.axes.get_legend().get_texts()]  # the one legend
    assert "quality" in labels and labels.count("shift z") == 1  # not doubled by the rerun


@pytest.mark.slow  # about 90 s on a loaded machine: the second run registers the movie
def test_detecting_on_a_movie_of_noise_finds_no_cells(make_napari_viewer, qtbot):
    # noise blurred over about a voxel (as after registration), no cells: dozens of sources
    # before the blob response was calibrated on the movie's own noise
    from scipy import ndimage

    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    rng = np.random.default_rng([13, 0x5EED])
    noise = ndimage.gaussian_filter(rng.standard_normal((100, 16, 48, 48)), (0, 0.5, 1, 1))
    viewer = make_napari_viewer()
    viewer.add_image((100 + 40 * noise).astype(np.float32), name="noise", scale=(1, 2, 1, 1))
    widget = DetectPointSourcesWidget(viewer)
    widget._movie.value = "noise"
    widget._diameter.value = 8.0
    widget._motion.value = "no"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=180_000)
    assert widget.last_error is None, widget.last_error
    assert len(widget.last_result) == 0
    points = [layer for layer in viewer.layers if layer.name.endswith("points")]
    assert all(len(layer.data) == 0 for layer in points)
    # registering pure noise ("auto" finds motion in it) imprints the registration template
    # on the mean image: a few bright blobs remain, and their activity_z flags them silent
    widget._motion.value = "auto"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=180_000)
    assert widget.last_error is None, widget.last_error
    features = widget.last_result.features
    assert len(features) == 0 or features["activity_z"].max() < 3


def test_somata_from_the_toy_truth_labels_are_all_found(make_napari_viewer, qtbot):
    # the toy brain's soma labels on its calcium grid (2 x 1 x 1 µm): 97 of 100 before the
    # bodies were measured whole (their eroded cores were 1-4 voxels, "elongated")
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget
    from napari_mesoscale.segment import match_points
    from napari_mesoscale.synth import make_toy_brain

    truth = make_toy_brain(100, n_frames=10, em=False, seed=0, render=None)
    viewer = make_napari_viewer()
    viewer.add_labels(np.asarray(truth.soma_labels), name="truth", scale=truth.voxel_size)
    widget = DetectSomataWidget(viewer)
    widget._method.value = "from a labels layer"
    widget._segmentation.value = "truth"
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    points = viewer.layers["truth somata points"]
    match = match_points(points.data, truth.positions, 2.0)
    assert match.n_matched == len(points.data) == 100


def test_score_states_the_median_predictivity_where_the_user_looks(make_napari_viewer, qtbot):
    """Score predictions ended on "Done.": the median it computed reached only its metadata."""
    from trial_data import population

    viewer = make_napari_viewer()
    truth, rng = population(150, 30)
    trials = truth[None] + 0.5 * rng.standard_normal((6, *truth.shape))
    cells = viewer.add_points(rng.uniform(0, 80, (30, 3)), name="cells", metadata={
        "trials": trials, "predicted": truth})
    score = _dock_from_menu(viewer, qtbot, "Score predictions")
    score._points.value = score._pred_layer.value = "cells"
    score._n_splits.value = 10
    score._run_button.native.click()
    qtbot.waitUntil(lambda: not score.is_running, timeout=60_000)
    assert score.last_error is None, score.last_error
    scores = cells.features["predictivity"].to_numpy()[cells.features["reliable"].to_numpy()]
    median = float(np.median(scores))
    assert median == pytest.approx(1.0, abs=0.1)  # the truth predicts itself
    assert score._status.value == (
        f"median predictivity {median:.3f} over {scores.size} neurons; points coloured by "
        "predictivity."
    ), score._status.value


def test_detection_takes_the_movie_just_registered(make_napari_viewer, qtbot):
    """After Correct motion, Detect point sources stayed on the raw movie (it registered it
    again); it now moves to the registered one, once: the user's return to the raw movie stays."""
    from test_motion_widget import _moving_movie

    from napari_mesoscale.napari._detect_widgets import DetectPointSourcesWidget

    viewer = make_napari_viewer()
    viewer.add_image(_moving_movie()[0], name="movie", scale=(1.0, 2.0, 1.0, 1.0))
    detect = _dock_from_menu(viewer, qtbot, "Detect point sources (calcium)")
    motion = _dock_from_menu(viewer, qtbot, "Correct motion (calcium)")
    assert detect._movie.value == motion._movie.value == "movie"
    motion._params["block_size_um"].value = 24.0
    motion._plot_dock.value = False
    motion._run_button.native.click()
    qtbot.waitUntil(lambda: not motion.is_running, timeout=120_000)
    assert motion.last_error is None, motion.last_error
    assert detect._movie.value == "movie registered"
    docked_later = DetectPointSourcesWidget(viewer)
    assert docked_later._movie.value == "movie registered"
    detect._movie.value = "movie"  # the user goes back to the raw movie
    viewer.add_points(np.zeros((1, 3)), name="a click")
    assert detect._movie.value == "movie"
    docked_later.close()


def test_loss_plot_keeps_its_curves_in_a_narrow_dock(qtbot):
    """Docked beside three other plots (~250 px), the legend took the whole width and the
    curves were squeezed into a sliver ("Tight layout not applied")."""
    from napari_mesoscale.napari._plots import LossPlot

    terms = ("balance", "complexity", "entropy", "interface", "local", "prediction", "rollout",
             "sparsity")
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(250, 230)
    plot.show()
    qtbot.waitExposed(plot)
    for epoch in range(60):  # a default fit's 60 epochs; entropy falls to ~0 midway
        losses = {name: 1.0 / (epoch + 1 + k) for k, name in enumerate(terms)}
        losses["entropy"] = 1e-6 if epoch > 30 else losses["entropy"]
        plot.add({"epoch": epoch, "losses": losses, "val_loss": 0.5 / (epoch + 1)})
        if epoch % 12 == 0:
            plot.canvas.draw()  # as the fit's reports arrive
    assert plot.axes.get_position().width > 0.5, plot.axes.get_position()
    labels = [text.get_text() for text in plot.axes.get_legend().get_texts()]
    assert set(labels) == {*terms, "validation"}
    plot.resize(900, 220)  # a wide dock gets the two-column legend back
    qtbot.wait(50)
    plot.add({"epoch": 60, "losses": dict.fromkeys(terms, 0.1), "val_loss": 0.1})
    plot.canvas.draw()
    assert plot.axes.get_position().width > 0.5
    assert plot.axes.get_legend()._ncols == 2


def test_build_connectome_on_the_em_sample_says_what_it_needs(make_napari_viewer, qtbot):
    """On the EM sample (somata, no synapses) Build connectome stopped with "choose a neurons
    table": the widget had kept its table-files default. Now one notification names what a
    connectome needs, the somata layer is refused the same way, and a synapses layer added
    later makes the layers the source."""
    from napari.utils.notifications import notification_manager

    from napari_mesoscale.napari._connectome_widget import NOTHING_TO_BUILD

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "em")
    build = _dock_from_menu(viewer, qtbot, "Build connectome")
    somata = np.array([[10.0, 20.0, 20.0], [12.0, 40.0, 30.0], [14.0, 30.0, 50.0]])
    viewer.add_points(somata, name="EM volume somata points")  # as Detect somata adds them
    assert build._source.value == "table files"  # nothing in the viewer holds synapses
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(n.message))
    build._run_button.native.click()
    assert build.last_error == NOTHING_TO_BUILD
    assert len(messages) == 1 and NOTHING_TO_BUILD in messages[0], messages
    assert "Traceback" not in messages[0]
    build._source.value = "Points layer"
    assert build._neurons_layer.value == "EM volume somata points"
    build._run_button.native.click()
    assert build.last_error.startswith("'EM volume somata points' carries no synapses.")
    assert build.last_error.endswith(NOTHING_TO_BUILD)
    assert not build.is_running and len(viewer.layers) == 3  # nothing was built or added
    build._source.value = "table files"
    synapses = pd.DataFrame({"pre": [0, 1, 2], "post": [1, 2, 0]})
    viewer.add_points(somata, name="synapses", features=synapses)
    assert build._source.value == "Points layer" and build._synapses_layer.value == "synapses"


def _worm_like_cells(viewer, n_cells=24, n_frames=240):
    """A Points layer like the worm's: activity, stimulus and adjacency, but no ROI masks."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 100, size=(n_cells, 3))
    activity = np.cumsum(rng.normal(size=(n_frames, n_cells)), axis=0) * 0.1
    adjacency = sp.random(n_cells, n_cells, density=0.2, random_state=0, format="csr")
    adjacency.data[:] = 1.0
    stimulus = (np.arange(n_frames) % 40 < 5).astype(float)[:, None]
    return viewer.add_points(
        positions,
        name="worm-like cells",
        metadata={"activity": activity, "stimulus": stimulus, "adjacency": adjacency},
    )


def _fit_and_cancel_after_an_epoch(fit, qtbot, messages):
    messages.clear()
    fit._run_button.native.click()
    qtbot.waitUntil(lambda: len(fit.loss_plot.epochs) >= 1, timeout=60_000)
    fit._cancel_button.native.click()
    qtbot.waitUntil(lambda: not fit.is_running, timeout=60_000)
    assert fit.last_error == "cancelled"
    return fit.last_result.fit


def test_cancelled_fit_says_what_it_left_and_how_to_resume(make_napari_viewer, qtbot, tmp_path):
    """Cancelled on the worm, the fit said "partial result shown" and no layer appeared: the
    cells had no ROI masks to paint into, and no checkpoint folder had been chosen, so there was
    nothing to resume. The status and the notification now say what the partial fit changed
    and whether (and how) it resumes; a resumed fit completes."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    cells = _worm_like_cells(viewer)
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    assert fit.cells.value == cells.name and fit.rois.value == "(none)"
    fit.epochs.value = 40
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(n.message))
    partial = _fit_and_cancel_after_an_epoch(fit, qtbot, messages)
    done = len(partial.history)
    assert partial.cancelled and 1 <= done < 40
    status = fit._status.value
    assert status.startswith(f"Cancelled: partial result shown; fit stopped after {done} of 40")
    assert "no layers added (the cells have no ROI masks" in status
    assert "No checkpoint folder was chosen, so Fit starts over" in status
    assert [m for m in messages if "Cancelled" in m] == [f"napari-mesoscale: {status}"]
    assert not any("done." in m for m in messages), messages
    assert [layer.name for layer in viewer.layers] == [cells.name]  # as the status says
    np.testing.assert_array_equal(cells.features["motif"], partial.motif_labels)

    fit.checkpoints.value = tmp_path
    partial = _fit_and_cancel_after_an_epoch(fit, qtbot, messages)
    done = len(partial.history)
    assert f"To continue after epoch {done}, tick 'resume from checkpoint'" in fit._status.value
    fit.resume.value = True
    fit.epochs.value = done + 2
    fit._run_button.native.click()
    qtbot.waitUntil(lambda: not fit.is_running, timeout=120_000)
    assert fit.last_error is None, fit.last_error
    resumed = fit.last_result.fit
    assert resumed.stopped in ("completed", "early_stopping")
    assert resumed.history["epoch"].tolist()[:done] == list(range(done))
    assert len(resumed.history) > done
    assert any(m.startswith("napari-mesoscale: done.") for m in messages)


def _docked_together(viewer, qtbot):
    """Correct motion, Detect point sources, Fit and Score docked from the menu, in that order,
    then the docks their runs add: the shift plot, the point-source traces, and the fit's loss
    curves, traces and domain table (docked when a fit starts)."""
    from types import SimpleNamespace

    titles = (
        "Correct motion (calcium)", "Detect point sources (calcium)",
        "Fit mesoscale model", "Score predictions",
    )
    widgets = {title: _dock_from_menu(viewer, qtbot, title) for title in titles}
    frames = 30
    widgets["Correct motion (calcium)"].show_plot(
        SimpleNamespace(
            n_frames=frames, shifts_um=np.zeros((frames, 3)), block_shifts_um=None,
            quality=np.ones(frames), outliers=np.zeros(frames, dtype=bool),
        )
    )
    cells = viewer.add_points(np.zeros((3, 3)), name="cells")
    widgets["Detect point sources (calcium)"].show_traces(
        cells, SimpleNamespace(activity=np.zeros((frames, 3)), parameters={"frame_rate": 5.0})
    )
    widgets["Fit mesoscale model"]._add_docks()
    qtbot.wait(200)
    return widgets


def _dock_needs(dock):
    """Height (px) the dock shows of its contents, and the height they need: a widget's whole
    column of controls (it scrolls), a plot's or the table's minimum height."""
    from qtpy.QtWidgets import QScrollArea

    inner = dock.widget()
    scroll = inner if isinstance(inner, QScrollArea) else inner.findChild(QScrollArea)
    if scroll is not None and scroll.widget() is not None and scroll.widget().layout():
        return scroll.viewport().height(), scroll.widget().sizeHint().height()
    if isinstance(inner, QScrollArea):  # the domain table
        return inner.height(), inner.minimumHeight()
    return inner.height(), inner.minimumSizeHint().height()


def test_docks_opened_together_each_keep_the_height_they_need(make_napari_viewer, qtbot):
    """Four widgets and five result docks in a 1280 x 800 window: each widget was stacked
    under the earlier ones, every one then showing 67 px of its 330-500 px of controls, and the
    window grew to 920 px. Now the plugin's docks are tabs: the one in front of each area has
    the height its contents need, and every other one is a tab whose title is on a tab bar."""
    from qtpy.QtWidgets import QDockWidget, QTabBar

    from napari_mesoscale.napari._docks import in_front

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    qtbot.wait(100)
    _docked_together(viewer, qtbot)
    ours = {
        "Correct motion (calcium)", "Detect point sources (calcium)", "Fit mesoscale model",
        "Score predictions", "motion", "point-source traces", "Loss curves",
        "Traces: recorded vs predicted", "Functional domains",
    }
    docks = [
        dock for dock in window.findChildren(QDockWidget)
        if dock.windowTitle().split(" (Mesoscale)")[0] in ours
    ]
    assert len(docks) == len(ours)
    tab_titles = {
        bar.tabText(i) for bar in window.findChildren(QTabBar) if bar.isVisible()
        for i in range(bar.count())
    }
    shown_docks = []
    for dock in docks:
        if not in_front(dock):  # behind another tab: its title is on the tab bar
            assert window.tabifiedDockWidgets(dock), dock.windowTitle()
            assert dock.windowTitle() in tab_titles, (dock.windowTitle(), tab_titles)
            continue
        shown_docks.append(dock.windowTitle())
        shown, needed = _dock_needs(dock)
        assert shown >= needed, (dock.windowTitle(), shown, needed)
    # the widget opened last is in front on the right (the domain table docked behind it)
    # and the live loss curves in front at the bottom
    assert sorted(shown_docks) == ["Loss curves", "Score predictions (Mesoscale)"]
    assert window.height() <= 800 + 10  # the docks' minimum heights no longer grow the window
    # a tab clicked brings its dock forward with the height it needs
    fit = next(dock for dock in docks if dock.windowTitle().startswith("Fit mesoscale"))
    fit.raise_()
    qtbot.wait(100)
    shown, needed = _dock_needs(fit)
    assert in_front(fit) and shown >= needed


def test_other_docks_are_left_where_napari_puts_them(make_napari_viewer, qtbot):
    """Only the plugin's docks become tabs: another dock in the right area stays stacked."""
    from qtpy.QtWidgets import QLabel

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    other = viewer.window.add_dock_widget(QLabel("someone else's"), name="other", area="right")
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    score = _dock_from_menu(viewer, qtbot, "Score predictions")
    qtbot.wait(100)
    window = viewer.window._qt_window
    assert not window.tabifiedDockWidgets(other)
    fit_dock = fit.native.parent()
    while fit_dock is not None and fit_dock.windowTitle() != "Fit mesoscale model (Mesoscale)":
        fit_dock = fit_dock.parent()
    tabs = {dock.windowTitle() for dock in window.tabifiedDockWidgets(fit_dock)}
    assert tabs == {"Score predictions (Mesoscale)"}
    assert score.native.visibleRegion().boundingRect().height() > 0


def test_a_widget_docked_later_by_a_script_joins_the_tabs(make_napari_viewer, qtbot):
    """A widget built, then docked after the event loop ran (a script), still becomes a tab."""
    from napari_mesoscale.napari._docks import dock_of, in_front
    from napari_mesoscale.napari._score_widget import ScorePredictionsWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    score = ScorePredictionsWidget(viewer)
    qtbot.wait(50)
    dock = viewer.window.add_dock_widget(score, name="Score (script)")
    qtbot.wait(100)
    window = viewer.window._qt_window
    assert [other.windowTitle() for other in window.tabifiedDockWidgets(dock)] == [
        "Fit mesoscale model (Mesoscale)"
    ]
    assert in_front(dock) and not in_front(dock_of(fit.native))


def test_fit_docked_by_a_script_runs_and_docks_its_plots_as_tabs(make_napari_viewer, qtbot):
    """``viewer.window.add_plugin_dock_widget`` (a script, ``napari -w``) hands the widget a
    proxy of the viewer: Fit stopped at once with "dockWidgetArea(...): argument 1 has
    unexpected type 'PublicOnlyProxy'", and the plots of Correct motion / Detect point sources
    stayed side by side instead of tabs (the error was swallowed there)."""
    from napari_mesoscale.napari._docks import dock_of, in_front

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    cells = _worm_like_cells(viewer, n_cells=12, n_frames=80)
    _, fit = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Fit mesoscale model")
    assert fit.cells.value == cells.name
    fit.epochs.value = 1
    fit._run_button.clicked()
    qtbot.waitUntil(lambda: not fit.is_running, timeout=60_000)
    assert fit.last_error is None, fit.last_error
    assert fit.last_result.fit.stopped == "completed"
    window = viewer.window._qt_window
    traces, loss = dock_of(fit.trace_plot), dock_of(fit.loss_plot)
    assert window.tabifiedDockWidgets(loss) == [traces]
    assert in_front(traces) and not in_front(loss)  # the fitted traces come to the front


@pytest.mark.parametrize("dock_first", [False, True])
def test_build_connectome_takes_the_neurons_its_synapses_refer_to(
    make_napari_viewer, qtbot, dock_first
):
    """Cells detected in the calcium movie (activity, ids from 1), then the connectome sample:
    Build connectome paired the detected cells with the sample's synapses and failed at once
    ("synapses table refers to neuron ids that are not in the neurons table ([0])")."""
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_points(
        rng.uniform(0, 60, size=(103, 3)), name="calcium movie points",
        features=pd.DataFrame({"id": np.arange(1, 104)}),
        metadata={"activity": rng.normal(size=(200, 103))},
    )
    if dock_first:
        build = _dock_from_menu(viewer, qtbot, "Build connectome")
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    if not dock_first:
        build = _dock_from_menu(viewer, qtbot, "Build connectome")
    assert build._synapses_layer.value == "synapses"
    assert build._neurons_layer.value == "neurons (truth)"
    build._neurons_layer.value = "calcium movie points"  # a choice the user makes stays
    viewer.add_points([[1.0, 2.0, 3.0]], name="clicked")
    assert build._neurons_layer.value == "calcium movie points"


def test_a_plot_docked_in_3d_keeps_the_window_on_the_screen(make_napari_viewer, qtbot):
    """Build connectome switches to 3D; napari's layer controls of the neurons are then 422 px
    tall, and with the layer list over a plot docked at the bottom (184 px) the 1280 x 800
    window grew to 852 px, its status bar and the plots' tab titles off the screen."""
    from napari_mesoscale.napari._docks import add_plugin_dock
    from napari_mesoscale.napari._plots import TracePlot

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    viewer.dims.ndisplay = 3
    viewer.layers.selection.active = viewer.layers["neurons (truth)"]
    qtbot.wait(100)
    plot = TracePlot()
    add_plugin_dock(viewer, plot, "Traces", "bottom")
    qtbot.wait(200)
    assert window.height() <= 800 + 10
    assert plot.height() >= plot.minimumSizeHint().height()


def test_detect_somata_docked_by_a_script_finds_the_detector_just_trained(
    make_napari_viewer, qtbot
):
    """Docked with ``viewer.window.add_plugin_dock_widget``, each widget got its own proxy of
    the viewer: after Train, Detect somata with the U-Net said "no soma detector yet"."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "EM volume").trigger()
    _, detect = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Detect somata (EM)")
    _, train = viewer.window.add_plugin_dock_widget("napari-mesoscale", "Train soma detector (EM)")
    train._new_annotations.clicked()
    annotations = viewer.layers[train._annotations.value]
    painted = np.zeros(annotations.data.shape, dtype=annotations.data.dtype)
    truth = viewer.layers["EM somata (truth)"].data
    for label in np.unique(truth)[1:4]:
        painted[truth == label] = 2
    painted[:2, :10, :10] = 1
    annotations.data = painted
    train._epochs.value, train._steps.value = 1, 2
    train._run_button.clicked()
    qtbot.waitUntil(lambda: not train.is_running, timeout=60_000)
    assert train.last_error is None, train.last_error
    detect._method.value = detect._method.choices[1]  # U-Net (trained detector)
    assert detect.trained_detector() is train.detector


def test_cells_detected_in_the_sample_movie_carry_its_stimulus_to_fit(make_napari_viewer, qtbot):
    """The sample movie holds its stimulus; the detected cells did not, so Fit started with
    stimulus "(none)" and fitted them without it (the demo's pipeline uses it)."""
    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "calcium movie").trigger()
    movie = viewer.layers["calcium movie"]
    detect = _dock_from_menu(viewer, qtbot, "Detect point sources (calcium)")
    detect._motion.value = "no"
    detect._run_button.clicked()
    qtbot.waitUntil(lambda: not detect.is_running, timeout=60_000)
    assert detect.last_error is None, detect.last_error
    cells = viewer.layers["calcium movie points"]
    np.testing.assert_array_equal(cells.metadata["stimulus"], movie.metadata["stimulus"])
    fit = _dock_from_menu(viewer, qtbot, "Fit mesoscale model")
    assert (fit.cells.value, fit.stimulus.value) == (cells.name, cells.name)


def test_bundle_keeps_the_transmission_on_the_time_slider(make_napari_viewer, qtbot, tmp_path):
    """Saved and reopened, the transmission Vectors (a time axis of bins of 10 frames, scale
    10) came back at scale 1: bin k's edges showed at frame k instead of 10 k."""
    from napari_mesoscale.napari._writer import write_bundle

    viewer = make_napari_viewer()
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    build = _dock_from_menu(viewer, qtbot, "Build connectome")
    build._run_button.clicked()
    qtbot.waitUntil(lambda: not build.is_running, timeout=60_000)
    [transmission] = [layer for layer in viewer.layers if layer.name.startswith("transmission")]
    assert transmission.scale[0] == 10
    [path] = write_bundle(str(tmp_path / "run"), [transmission.as_layer_data_tuple()])
    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-mesoscale")
    np.testing.assert_allclose(reopened.layers[transmission.name].scale, transmission.scale)
    np.testing.assert_allclose(reopened.layers[transmission.name].data, transmission.data)
