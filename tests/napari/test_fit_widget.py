"""The "Fit mesoscale model" widget driven in a real viewer on the bundled sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.napari._fit_widget import FitWidget


@pytest.fixture
def sample_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mesoscale", "connectome")
    viewer.layers["somata (truth)"].visible = True
    return viewer


def _cells_and_connectome(viewer, epochs):
    """The Fit widget on the sample's cells with their connectome, for ``epochs`` epochs."""
    widget = FitWidget(viewer)
    widget.cells.value = "neurons (truth)"
    widget.connectome.value = "neurons (truth)"
    widget.epochs.value = epochs
    return widget


def _run(widget, qtbot, timeout=240_000):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)
    assert widget.last_error is None, widget.last_error


@pytest.mark.viewer
def test_fit_widget_paints_domains_motifs_and_predictions(sample_viewer, qtbot, tmp_path):
    viewer = sample_viewer
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.cells.value = "neurons (truth)"
    widget.rois.value = "somata (truth)"
    widget.connectome.value = "neurons (truth)"
    widget.stimulus.value = "neurons (truth)"
    widget.epochs.value = 4
    _run(widget, qtbot)

    cells = viewer.layers["neurons (truth)"]
    fit = widget.report.fit
    n = len(cells.data)
    assert {"domain", "motif", "confidence"} <= set(cells.features.columns)
    np.testing.assert_array_equal(cells.features["domain"], fit.domain_labels)
    # confidence as opacity, with a floor of 0.4 so that uncertain cells stay visible
    np.testing.assert_allclose(cells.face_color[:, 3], np.clip(fit.confidence, 0.4, 1.0))

    somata = np.asarray(viewer.layers["somata (truth)"].data)
    domains = np.asarray(viewer.layers["functional domains"].data)
    inside = somata > 0
    np.testing.assert_array_equal(domains[inside], fit.domain_labels[somata[inside] - 1] + 1)
    assert (domains[~inside] == 0).all()
    motifs = np.asarray(viewer.layers["motifs"].data)
    np.testing.assert_array_equal(motifs[inside], fit.motif_labels[somata[inside] - 1] + 1)

    predicted = viewer.layers["predicted activity"]
    activity = cells.metadata["activity"]
    assert predicted.data.shape == (activity.shape[0], *somata.shape)
    assert tuple(predicted.scale[1:]) == tuple(viewer.layers["somata (truth)"].scale)
    frame = 50
    painted = np.asarray(predicted.data[frame])
    cell = int(somata[inside][0]) - 1
    assert painted[somata == cell + 1][0] == pytest.approx(
        widget.report.predicted[frame, cell], rel=1e-5
    )
    residual = np.asarray(viewer.layers["residual"].data[frame])
    assert residual[somata == cell + 1][0] == pytest.approx(
        activity[frame, cell] - widget.report.predicted[frame, cell], rel=1e-4, abs=1e-6
    )

    # the domain table selects the cells of a domain
    assert widget.domain_table.rowCount() == len(fit.domains)
    widget.select_domain_row(0)
    chosen = fit.domains.iloc[0]["domain"]
    assert cells.selected_data == set(np.flatnonzero(fit.domain_labels == chosen).tolist())
    # a click on the "size" header sorts the rows by size (as numbers), and a sorted row
    # still selects its own domain's cells
    _click_header(qtbot, widget.domain_table, "size")
    _click_header(qtbot, widget.domain_table, "size")  # the second click: largest first
    sizes = [float(widget.domain_table.item(r, 2).text()) for r in range(len(fit.domains))]
    assert sizes == sorted(fit.domains["size"].astype(float), reverse=True)
    widget.select_domain_row(0)
    largest = int(widget.domain_table.item(0, 0).text())
    assert cells.selected_data == set(np.flatnonzero(fit.domain_labels == largest).tolist())
    assert len(cells.selected_data) == sizes[0]
    # the trace dock shows the selected cell and follows the time slider
    assert set(widget.trace_plot.shown) <= cells.selected_data
    viewer.dims.set_current_step(0, 120)
    assert widget.trace_plot._marker.get_xdata()[0] == 120
    assert len(widget.loss_plot.epochs) >= 1

    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].reshape(-1, 3)
    assert shot.std() > 5
    colours = {tuple(c) for c in np.unique(shot // 32, axis=0)}
    assert len(colours) > 8, "the domain colours do not show"
    paths = widget.save_plots(tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
    assert n == activity.shape[1]


def _click_header(qtbot, table, name: str) -> None:
    from qtpy.QtCore import QPoint, Qt

    header = table.horizontalHeader()
    column = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())].index(name)
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


@pytest.mark.viewer
def test_fit_widget_refuses_layers_without_activity(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_points(np.random.default_rng(0).random((10, 3)) * 50, name="cells")
    widget = FitWidget(viewer)
    widget.cells.value = "cells"
    widget.start()
    assert not widget.is_running
    assert "carries no activity" in widget.last_error


@pytest.mark.viewer
def test_fit_widget_passes_population_filters_and_drive(sample_viewer):
    viewer = sample_viewer
    widget = FitWidget(viewer)
    widget.cells.value = "neurons (truth)"
    widget.n_filters.value = 5
    widget.population_filters.value = 2
    assert widget.drive.value == "connectome kernels, frozen"  # the pipeline's default
    assert widget.connectome.value == "neurons (truth)"  # filled from the cells it carries
    widget.connectome.value = "(none)"
    call = widget.prepare()  # no connectome chosen: the drive choice does not apply
    assert call.kwargs["population_filters"] == 2
    assert not {"edge_init", "freeze_edges"} & set(call.kwargs)
    widget.connectome.value = "neurons (truth)"
    call = widget.prepare()
    assert call.kwargs["edge_init"] == "connectome" and call.kwargs["freeze_edges"] is True
    assert "population_filters=2" in call.python and "freeze_edges=True" in call.python
    widget.drive.value = "trained (ridge start)"
    widget.population_filters.value = 0
    call = widget.prepare()
    assert not {"population_filters", "edge_init", "freeze_edges"} & set(call.kwargs)


@pytest.mark.viewer
def test_fit_widget_defaults_are_model_config_defaults(make_napari_viewer):
    from napari_mesoscale.model import ModelConfig
    from napari_mesoscale.napari._fit_widget import DRIVE_CHOICES
    from napari_mesoscale.workflow import pipeline_config

    widget = FitWidget(make_napari_viewer())
    defaults = ModelConfig()
    for name in ("n_filters", "population_filters", "epochs"):
        control = getattr(widget, name)
        spec = ModelConfig.specs()[name]
        assert control.value == getattr(defaults, name), name
        assert control.min == spec.minimum and control.max == spec.maximum, name
        assert spec.help in control.tooltip
    assert widget.rf_diameter.value == 0.0  # 0 = None = derived from the positions
    assert widget.input_lags.value == defaults.input_lags
    assert ModelConfig.specs()["input_lags"].help in widget.input_lags.tooltip
    drive = {"edge_init": "ridge", "freeze_edges": False, **DRIVE_CHOICES[widget.drive.value]}
    pipeline = pipeline_config()
    assert drive == {"edge_init": pipeline.edge_init, "freeze_edges": pipeline.freeze_edges}


@pytest.mark.viewer
def test_fit_widget_reports_the_lag_probe(sample_viewer, qtbot):
    """With the default input_lags="auto" the summary says what the probe picked and why."""
    widget = _cells_and_connectome(sample_viewer, epochs=1)
    _run(widget, qtbot)
    fit = widget.report.fit
    assert fit.lag_probe is not None and fit.config.input_lags == fit.lag_probe["lags"]
    assert f"input lags {fit.lag_probe['lags']} (auto:" in widget.summary.value
    widget.input_lags.value = 2  # the user overrides the probe
    _run(widget, qtbot)
    forced = widget.report.fit
    assert forced.lag_probe is None and forced.config.input_lags == 2
    assert "input lags" not in widget.summary.value


def _moves_to_revert(monkeypatch):
    """Initial groups that differ from the initialisation's on every third of the first 30
    cells, so that the trained fit has moved them and the default reverts them."""
    from dataclasses import replace

    from napari_mesoscale.model import fit as fit_module

    real = fit_module.initialise_model

    def moved(*args, **kwargs):
        init = real(*args, **kwargs)
        groups = np.asarray(init.net.choice()[2].cpu().numpy()).copy()
        every_third = np.arange(0, 30, 3)
        groups[every_third] = (groups[every_third] + 1) % init.net.n_filters
        return replace(init, init_groups=groups)

    monkeypatch.setattr(fit_module, "initialise_model", moved)


@pytest.mark.viewer
def test_fit_widget_says_what_the_reversion_did(sample_viewer, qtbot, monkeypatch):
    """The default gives moved cells their initial motif back and retrains: the summary says
    how many moved and which fit was kept, the loss plot draws the retraining's epochs after
    the first training's, and a cancel inside the retraining says so."""
    from napari_mesoscale.napari import _fit_widget

    _moves_to_revert(monkeypatch)
    widget = _cells_and_connectome(sample_viewer, epochs=2)
    _run(widget, qtbot)
    fit = widget.report.fit
    choice = fit.assignment_choice
    assert choice["mode"] == "reverted" and choice["moved"] == 10
    assert "training moved 10 cells off their initial motif, " in widget.summary.value
    assert ("given back" if choice["chosen"] == "reverted" else "kept") in widget.summary.value
    revert_epochs = fit.config.revert_epochs
    assert widget.loss_plot.epochs == list(range(2 + revert_epochs))

    real = _fit_widget.fit_and_score
    monkeypatch.setattr(
        _fit_widget, "fit_and_score", lambda *a, **k: real(*a, revert_epochs=500, **k)
    )
    widget._run_button.native.click()
    qtbot.waitUntil(lambda: len(widget.loss_plot.epochs) > 3, timeout=120_000)
    widget._cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_error == "cancelled"
    partial = widget.last_result.fit
    after = len(partial.history) - 2
    assert partial.assignment_choice["cancelled"] and 1 <= after < 500
    assert (
        f"fit stopped after {after} of 500 epochs of the retraining after the moves were "
        "reverted (2 trained before)" in widget._status.value
    )


@pytest.mark.viewer
def test_fit_keeps_the_samples_true_motif(sample_viewer, qtbot):
    """Fit wrote its motif labels over the sample's true ``motif`` (60 of 100 cells changed,
    ``motif_name`` left as it was): the truth was lost. The fitted motif now goes beside it, to
    ``fitted_motif``, which a second fit overwrites; the cells are coloured by it as before."""
    from napari_mesoscale.napari._overlays import motif_point_colors

    cells = sample_viewer.layers["neurons (truth)"]
    truth = cells.features[["motif", "motif_name", "instance"]].copy()
    widget = _cells_and_connectome(sample_viewer, epochs=3)
    widget.seed.value = 0
    for epochs in (3, 2):  # a second fit replaces the first one's columns
        widget.epochs.value = epochs
        _run(widget, qtbot)
        fit = widget.report.fit
        features = cells.features
        assert not any(str(c).startswith("fitted_fitted") for c in features.columns)
        assert {"domain", "fitted_motif", "confidence"} <= set(features.columns)
        np.testing.assert_array_equal(features["fitted_motif"], fit.motif_labels)
        np.testing.assert_array_equal(features["domain"], fit.domain_labels)
        np.testing.assert_allclose(features["confidence"], fit.confidence)
        pd.testing.assert_frame_equal(features[truth.columns], truth)
        np.testing.assert_allclose(
            cells.face_color, motif_point_colors(fit.motif_labels, fit.confidence)
        )


def test_fitted_columns_go_beside_the_layers_own():
    from napari_mesoscale.napari._overlays import fitted_column

    assert fitted_column([], "motif", fitted_before=False) == "motif"
    assert fitted_column(["motif"], "motif", fitted_before=False) == "fitted_motif"  # truth
    assert fitted_column(["motif"], "motif", fitted_before=True) == "motif"  # the fit's own
    assert fitted_column(["motif", "fitted_motif"], "motif") == "fitted_motif"
    assert fitted_column(["domain", "fitted_domain"], "domain") == "fitted_domain"  # Score
