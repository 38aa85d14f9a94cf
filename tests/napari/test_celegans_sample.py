"""The C. elegans sample in napari: layers, metadata the fit/connectome widgets read, colouring."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from napari_mesoscale.datasets import celegans

_MISSING = [p for p in (*celegans.DATA_PACKAGES, "h5py") if importlib.util.find_spec(p) is None]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"worm data packages {_MISSING} not installed ({celegans.INSTALL_COMMAND})",
)
napari = pytest.importorskip("napari")


@pytest.fixture(scope="module")
def sample():
    from napari_mesoscale.napari._worm_sample import worm_sample

    return worm_sample()


def _points(sample):
    data, attributes, kind = sample[1]
    assert kind == "points"
    return napari.layers.Points(data, **attributes)


def test_sample_layers_and_widget_inputs(sample):
    from napari_mesoscale.napari._connectome_widget import points_to_table
    from napari_mesoscale.napari._fit_widget import layer_activity

    (edges, edge_attributes, edge_kind), _ = sample
    assert edge_kind == "vectors"
    chemical = celegans.connectome("white_1986", "chemical")
    assert edges.shape == (len(chemical), 2, 3)
    layer = _points(sample)
    assert len(layer.data) == 302
    assert {"id", "neuron_class", "homologue", "response"} <= set(layer.features)
    # neurons of one class share one colour, and the classes are told apart
    colours = {tuple(c) for c in np.asarray(layer.face_color).round(3)}
    assert len(colours) == layer.features["neuron_class"].nunique()
    activity = layer_activity(layer)  # what the fit widget reads
    meta = layer.metadata
    assert activity.shape[1] == 302 and meta["stimulus"].shape == (len(activity), 1)
    assert meta["adjacency"].shape == (302, 302)
    assert meta["adjacency"].sum() == chemical["synapses"].sum()
    assert len(meta["stimulated"]) * 8 == len(activity)
    table = points_to_table(layer)  # what the connectome widget reads
    np.testing.assert_allclose(table[["z", "y", "x"]], celegans.neurons()[["z", "y", "x"]])


def test_colour_by_response_matches_atlas(sample):
    from napari_mesoscale.napari._worm_sample import colour_by_response

    layer = _points(sample)
    response = colour_by_response(layer, "AWCON")  # = AWCR
    measured = celegans.response_to("AWCR")
    names = layer.features["id"].tolist()
    for name, value in measured.dropna().items():
        assert response[names.index(name)] == pytest.approx(value)
    colours = np.asarray(layer.face_color)
    np.testing.assert_allclose(colours[names.index("AWCR"), :3], 1.0)
    unobserved = [i for i, n in enumerate(names) if n not in measured.index and n != "AWCR"]
    np.testing.assert_allclose(colours[unobserved, :3], 0.4)
    strongest = names.index(measured.drop("AWCR", errors="ignore").abs().idxmax())
    assert np.ptp(colours[strongest, :3]) > 0.9  # saturated red or blue


def test_sample_registered_in_manifest():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-mesoscale")
    keys = {s.key: s for s in manifest.contributions.sample_data}
    assert "celegans" in keys
    assert "C. elegans" in keys["celegans"].display_name


@pytest.mark.viewer
def test_fit_widget_takes_the_worm_unchanged(make_napari_viewer):
    from napari_mesoscale.napari._fit_widget import FitWidget
    from napari_mesoscale.napari._worm_sample import NEURONS_LAYER

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "celegans")
    names = {layer.name for layer in viewer.layers}
    assert {NEURONS_LAYER, "C. elegans chemical synapses"} <= names
    widget = FitWidget(viewer)
    widget.cells.value = NEURONS_LAYER
    widget.connectome.value = NEURONS_LAYER
    widget.stimulus.value = NEURONS_LAYER
    call = widget.prepare()
    layer = viewer.layers[NEURONS_LAYER]
    kwargs = call.kwargs
    np.testing.assert_allclose(kwargs["positions"], celegans.neurons()[["z", "y", "x"]])
    np.testing.assert_array_equal(kwargs["activity"], layer.metadata["activity"])
    assert kwargs["connectome"] is layer.metadata["adjacency"]
    assert kwargs["stimulus"].shape == (len(kwargs["activity"]), 1)


def test_readme_console_line_colours_by_response(make_napari_viewer):
    """The README's line named a function the console does not have (a NameError as typed)."""
    import re
    from pathlib import Path

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "celegans")
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    pattern = r"`(from napari_mesoscale\.napari import colour_by_response;[^`]*)`"
    [line] = re.findall(pattern, readme)
    console = {"viewer": viewer}
    exec(line, console)
    layer = viewer.layers["C. elegans neurons"]
    observed = np.isfinite(layer.features["response"].to_numpy())
    assert observed.sum() > 10
    stimulated = layer.features["id"].to_numpy() == "AVAL"
    np.testing.assert_allclose(layer.face_color[stimulated, :3], 1.0)  # white


def test_colour_by_predicted_response_runs_in_the_background(
    make_napari_viewer, qtbot, monkeypatch
):
    """``predicted=True``: the fit (without the neuron's own column) runs in a worker with a
    progress bar, the layer's ``predicted_response`` feature and colours follow on return; a
    second call reuses the fit and answers at once; the measured colouring is untouched.
    (A short fit, 20 steps, from an empty cache.)"""
    from functools import partial

    from napari_mesoscale.model import response_field
    from napari_mesoscale.napari import colour_by_response

    quick = partial(response_field.fit_response_field, steps=20)
    monkeypatch.setattr(response_field, "fit_response_field", quick)
    monkeypatch.setattr(celegans, "_RESPONSE_FIELDS", {})
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "celegans")
    layer = viewer.layers["C. elegans neurons"]
    assert layer.features["predicted_response"].isna().all()
    measured = colour_by_response(layer, "AVAL")
    worker = colour_by_response(layer, "AVAL", predicted=True)
    assert not isinstance(worker, np.ndarray)  # nothing cached: a worker
    filled = lambda: layer.features["predicted_response"].notna().any()  # noqa: E731
    qtbot.waitUntil(filled, timeout=120_000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    predicted = celegans.predict_response("AVAL")
    names = layer.features["id"]
    np.testing.assert_allclose(
        layer.features["predicted_response"], names.map(predicted).to_numpy(dtype=float)
    )
    np.testing.assert_array_equal(layer.features["response"], measured)
    stimulated = (names == "AVAL").to_numpy()
    np.testing.assert_allclose(layer.face_color[stimulated, :3], 1.0)
    strongest = names.map(predicted).abs().idxmax()
    assert np.ptp(layer.face_color[strongest, :3]) > 0.9  # saturated red or blue
    again = colour_by_response(layer, "AVAL", predicted=True)
    assert isinstance(again, np.ndarray)
    np.testing.assert_allclose(again, layer.features["predicted_response"])


def _canvas_width(viewer) -> float:
    return float(viewer.window._qt_viewer.canvas.native.width())


def test_opened_worm_is_shown_whole_from_its_side(make_napari_viewer, qtbot):
    """Opened from File ▸ Open Sample, the ~720 µm worm stood as a sliver down the middle of a
    2D view (one slice: one neuron) or, in 3D, under a sheet of 2,000+ synapse lines."""
    from napari_mesoscale.napari._worm_sample import SYNAPSES_LAYER, point_size_um, show_worm

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    qtbot.wait(50)
    viewer.add_image(np.zeros((4, 4)), name="already open")  # not the viewer's first layer
    viewer.open_sample("napari-mesoscale", "celegans")
    layer = viewer.layers["C. elegans neurons"]
    assert viewer.dims.ndisplay == 3
    assert not viewer.layers[SYNAPSES_LAYER].visible
    positions = celegans.neurons()[["z", "y", "x"]].to_numpy()
    assert np.allclose(layer.size, point_size_um(positions))
    assert 6 <= layer.size[0] <= 8  # about a soma: 1/100 of the worm's length
    camera = viewer.scene.camera
    view, up = np.asarray(camera.view_direction), np.asarray(camera.up_direction)
    right = np.cross(view, up)
    assert up[0] > 0.9 and abs(view[1]) < 1e-6  # dorsal (+z) up, body axis across the canvas
    assert right[1] > 0.99  # anterior (small y: the head) on the left
    width = _canvas_width(viewer)
    across = np.ptp(positions @ right) * camera.zoom / width
    assert 0.8 < across <= 1.0, across  # the whole worm fills the canvas's width
    # docking a widget narrows the canvas: the head and the tail were cut off
    from test_by_hand import _dock_from_menu

    _dock_from_menu(viewer, qtbot, "Build connectome")
    qtbot.waitUntil(lambda: _canvas_width(viewer) < 0.9 * width, timeout=5_000)
    qtbot.wait(100)
    refitted = np.ptp(positions @ right) * camera.zoom / _canvas_width(viewer)
    assert 0.8 < refitted <= 1.0, refitted
    camera.zoom *= 2  # the user zooms in: a later resize keeps that
    zoom = camera.zoom
    viewer.window._qt_window.resize(1000, 800)
    qtbot.wait(100)
    assert camera.zoom == zoom
    camera.angles, camera.zoom = (0.0, 0.0, 0.0), 0.2
    show_worm(viewer)
    assert np.ptp(positions @ right) * camera.zoom / _canvas_width(viewer) == pytest.approx(
        across, rel=1e-3
    )


def test_worm_opened_beside_a_movie_is_framed_with_its_dock(make_napari_viewer, qtbot):
    """Opened while a 4D layer (the calcium movie: t, z, y, x) was open, napari's fit_to_view
    raised IndexError on the 3D neurons: no C. elegans view dock, the worm not framed."""
    from napari_mesoscale.napari._worm_sample import VIEW_DOCK

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    qtbot.wait(50)
    viewer.add_image(np.zeros((3, 4, 4, 4), np.float32), name="movie")  # t, z, y, x
    viewer.open_sample("napari-mesoscale", "celegans")
    qtbot.wait(50)
    assert viewer.dims.ndim == 4 and viewer.dims.ndisplay == 3
    assert VIEW_DOCK in viewer.window.dock_widgets
    layer = viewer.layers["C. elegans neurons"]
    camera = viewer.scene.camera
    right = np.cross(camera.view_direction, camera.up_direction)
    positions = np.asarray(layer.data, dtype=float)
    across = np.ptp(positions @ right) * camera.zoom / _canvas_width(viewer)
    assert 0.8 < across <= 1.0, across  # the whole worm fills the canvas's width
    along = positions @ right
    centre = (along.min() + along.max()) / 2  # the worm's middle at the canvas's middle
    assert abs(np.asarray(camera.center) @ right - centre) < 0.05 * np.ptp(along)


def test_home_button_brings_back_the_side_view_of_the_worm(make_napari_viewer, qtbot):
    """napari's Home (reset view) zeroed the camera angles: the opened worm became an end-on
    sliver again. While the worm sample is all the viewer shows, Home frames it from its side;
    with other content Home is napari's own."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    qtbot.wait(50)
    viewer.open_sample("napari-mesoscale", "celegans")
    camera = viewer.scene.camera
    opened = (tuple(camera.angles), tuple(camera.center), camera.zoom)
    assert np.any(opened[0])
    camera.angles, camera.zoom = (10.0, 80.0, 30.0), camera.zoom * 3  # the user turns, zooms
    home = viewer.window._qt_viewer.viewerButtons.resetViewButton
    home.click()
    qtbot.wait(50)
    np.testing.assert_allclose(camera.angles, opened[0], atol=1e-6)
    np.testing.assert_allclose(camera.center, opened[1], atol=1e-6)
    assert camera.zoom == pytest.approx(opened[2], rel=1e-6)
    viewer.dims.ndisplay = 2  # in 2D, Home is napari's (the worm's view is 3D)
    home.click()
    assert viewer.dims.ndisplay == 2
    viewer.dims.ndisplay = 3
    viewer.add_image(np.zeros((4, 4, 4)), name="other content")
    home.click()
    qtbot.wait(50)
    np.testing.assert_allclose(camera.angles, 0.0, atol=1e-6)  # napari's own reset


def test_response_colours_have_a_colorbar_and_name_the_stimulated(sample):
    """The colours saturate at a stated limit shown by napari's colorbar; the stimulated neuron
    is named (its white read as "no response" before)."""
    from napari_mesoscale.napari._worm_sample import colour_by_response

    layer = _points(sample)
    response = colour_by_response(layer, "AVAL")
    names = layer.features["id"].to_numpy()
    responders = np.isfinite(response) & (names != "AVAL")
    observed = np.abs(response[responders])
    low, high = layer.face_contrast_limits
    assert high == -low == pytest.approx(np.quantile(observed, 0.95))
    assert 0 < high < observed.max()
    assert layer.face_colorbar.visible
    text = np.asarray(layer.text.values)
    assert text[names == "AVAL"].tolist() == ["AVAL"] and set(text[names != "AVAL"]) == {""}
    colours = np.asarray(layer.face_color)
    faint = responders & (np.abs(response) < 0.05 * high)
    np.testing.assert_allclose(colours[faint, :3], 1.0, atol=0.06)  # white: no response
    beyond = responders & (response > high)
    assert beyond.sum() > 0
    np.testing.assert_allclose(colours[beyond, :3], np.tile([1.0, 0.0, 0.0], (beyond.sum(), 1)))
    np.testing.assert_array_equal(layer.features["response"], response)  # raw, unclipped


def test_cancelling_the_predicted_response_leaves_the_layer(
    make_napari_viewer, qtbot, monkeypatch
):
    """The background fit of ``predicted=True`` had no cancel: now the activity dock's Cancel
    stops it, the layer keeps its colours and features, a notification says so; a rerun
    completes and fills ``predicted_response`` (short fits from an empty cache)."""
    from functools import partial

    from napari.utils.notifications import notification_manager

    from napari_mesoscale.model import response_field
    from napari_mesoscale.napari import colour_by_response

    monkeypatch.setattr(celegans, "_RESPONSE_FIELDS", {})
    long = partial(response_field.fit_response_field, steps=500)  # reports every 10
    monkeypatch.setattr(response_field, "fit_response_field", long)
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "celegans")
    layer = viewer.layers["C. elegans neurons"]
    colours, features = np.array(layer.face_color), layer.features.copy()
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(n.message))
    worker = colour_by_response(layer, "AVAL", predicted=True)
    qtbot.waitUntil(lambda: worker.progress_bar.n > 0, timeout=60_000)  # the fit is reporting
    dock = viewer.window._qt_window._activity_dialog
    button = dock.get_pbar_from_prog(worker.progress_bar).cancel_button
    assert button.isVisible() or not dock.isVisible()  # shown with the bar (dock may be shut)
    button.click()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)
    qtbot.wait(50)
    assert worker.progress_bar.n < 1000
    np.testing.assert_array_equal(layer.face_color, colours)
    assert layer.features.equals(features)
    assert any("cancelled" in m and "AVAL" in m for m in messages), messages
    assert not celegans.response_field_cached("AVAL")

    monkeypatch.setattr(
        response_field, "fit_response_field", partial(long.func, steps=20)
    )
    worker = colour_by_response(layer, "AVAL", predicted=True)
    filled = lambda: layer.features["predicted_response"].notna().any()  # noqa: E731
    qtbot.waitUntil(filled, timeout=120_000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    assert layer.features["predicted_response"].notna().sum() == 301  # all but AVAL itself


def test_build_connectome_clicked_on_the_worm(make_napari_viewer, qtbot):
    """Build connectome on the worm failed with "activity contains NaN" (the atlas's masked
    trials), and without a synapses Points layer it would have built no edges: it now takes the
    neurons' adjacency as synapses and builds without transmission graphs, saying both."""
    from test_by_hand import _dock_from_menu

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mesoscale", "celegans")
    build = _dock_from_menu(viewer, qtbot, "Build connectome")
    assert build._neurons_layer.value == "C. elegans neurons"
    build._run_button.native.click()
    qtbot.waitUntil(lambda: not build.is_running, timeout=60_000)
    assert build.last_error is None, build.last_error
    expected = viewer.layers["C. elegans neurons"].metadata["adjacency"]
    built = build.last_result.connectome
    assert built.n_neurons == 302
    assert abs(built.adjacency - expected).sum() == 0  # the same synapse counts, pre → post
    assert built.n_synapses == expected.sum()
    assert build.last_result.transmission is None
    status = build._status.value
    assert status.startswith(f"302 neurons, {int(expected.sum()):,} synapses, {expected.nnz:,}")
    assert "Synapses from the adjacency of 'C. elegans neurons'." in status
    assert "No transmission graphs" in status and "NaN" in status
    assert any(layer.name.startswith("edges") for layer in viewer.layers)


def _screen(viewer, positions):
    """Canvas pixel coordinates (x right, y down) of world positions (z, y, x), 3D view."""
    camera = viewer.scene.camera
    native = viewer.window._qt_viewer.canvas.native
    up = np.asarray(camera.up_direction)
    right = np.cross(camera.view_direction, up)
    offset = np.asarray(positions, dtype=float) - np.asarray(camera.center)
    return np.stack(
        [offset @ right * camera.zoom + native.width() / 2,
         -(offset @ up) * camera.zoom + native.height() / 2],
        axis=1,
    ), (native.width(), native.height())


def _named_at_cursor(viewer, layer, row):
    """The status bar's and the tooltip's text with the cursor on the centre of point ``row``."""
    viewer.layers.selection.active = layer
    viewer.cursor.position = tuple(np.asarray(layer.data[row], dtype=float))
    viewer.cursor._view_direction = np.asarray(viewer.scene.camera.view_direction)
    viewer.mouse_over_canvas = True
    status, tooltip = viewer._calc_status_from_cursor()
    viewer.mouse_over_canvas = False
    return str(status), tooltip


def test_head_view_in_one_click_names_the_neurons(make_napari_viewer, qtbot):
    """The whole-worm view put the head's 158 neurons in ~70 px (1 px apart on screen); the
    view dock's Head button frames them over the canvas a few pixels apart, the cursor names
    the neuron under it, and Whole worm brings the opened view back."""
    from scipy.spatial import cKDTree

    from napari_mesoscale.napari._worm_sample import VIEW_DOCK, point_size_um, worm_part

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    qtbot.wait(50)
    viewer.open_sample("napari-mesoscale", "celegans")
    qtbot.wait(50)
    layer = viewer.layers["C. elegans neurons"]
    positions = np.asarray(layer.data, dtype=float)
    head = worm_part(positions, "head")
    assert head.sum() == 158
    camera = viewer.scene.camera
    opened = (tuple(camera.angles), camera.zoom)
    width = _canvas_width(viewer)
    screen, _ = _screen(viewer, positions[head])
    assert np.ptp(screen[:, 0]) / width < 0.15  # the head as opened: a small knot
    buttons = viewer.window.dock_widgets[VIEW_DOCK]._worm_view_control.buttons
    assert _canvas_width(viewer) == width  # the dock under the layer list leaves the canvas
    buttons["head"].click()
    qtbot.wait(50)
    np.testing.assert_allclose(camera.angles, opened[0], atol=1e-6)  # the same side view
    screen, (w, h) = _screen(viewer, positions[head])
    assert max(np.ptp(screen[:, 0]) / w, np.ptp(screen[:, 1]) / h) >= 0.8
    assert ((screen >= 0) & (screen <= (w, h))).all()  # every head neuron on the canvas
    spacing = np.median(cKDTree(screen).query(screen, k=2)[0][:, 1])
    diameter = float(np.median(layer.size)) * camera.zoom
    assert spacing >= 8 and diameter <= 2 * spacing, (spacing, diameter)
    # the cursor on a neuron names it, in the tooltip napari shows at the cursor as well
    assert viewer.tooltip.visible
    names = layer.features["id"].astype(str).to_numpy()
    rows = np.flatnonzero(head)
    named = [f"id: {names[row]}" in _named_at_cursor(viewer, layer, row)[0] for row in rows]
    assert np.mean(named) >= 0.75, np.mean(named)  # the rest hide behind a nearer neighbour
    row = rows[int(np.argmax(named))]
    assert _named_at_cursor(viewer, layer, row)[1].startswith(f"id: {names[row]}\n")
    # ticked, Names writes the neurons' names a point diameter above them, those that fit
    # without overlapping (tests/napari/test_worm_names.py); unticked, the text shown before
    # (here none) comes back
    control = viewer.window.dock_widgets[VIEW_DOCK]._worm_view_control
    before = layer.text.string  # the encoding of the text shown (here: none)
    control.names.setChecked(True)
    written = np.asarray(layer.text.values, dtype=str)
    assert ((written == names) | (written == "")).all() and layer.text.visible
    assert (written[head] != "").sum() >= 40
    assert layer.text.translation[0] == pytest.approx(np.median(layer.size))
    buttons["tail"].click()
    qtbot.wait(50)
    tail = worm_part(positions, "tail")
    screen, (w, h) = _screen(viewer, positions[tail])
    assert max(np.ptp(screen[:, 0]) / w, np.ptp(screen[:, 1]) / h) >= 0.8
    buttons["whole"].click()
    qtbot.wait(50)
    np.testing.assert_allclose(camera.angles, opened[0], atol=1e-6)
    assert camera.zoom == pytest.approx(opened[1], rel=1e-6)
    np.testing.assert_allclose(layer.size, point_size_um(positions))
    assert layer.text.translation[0] == pytest.approx(np.median(layer.size))  # names follow
    control.names.setChecked(False)
    assert layer.text.string == before


def test_names_off_brings_back_the_stimulated_label(sample):
    from napari_mesoscale.napari._worm_sample import colour_by_response, show_names

    layer = _points(sample)
    colour_by_response(layer, "AVAL")
    labels = np.asarray(layer.text.values).copy()
    assert "AVAL" in labels
    show_names(layer, True)
    assert list(layer.text.values) == list(layer.features["id"].astype(str))
    show_names(layer, False)
    np.testing.assert_array_equal(layer.text.values, labels)
    assert layer.text.translation[0] == pytest.approx(30.0)  # its own raise, back
