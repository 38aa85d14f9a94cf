"""The "Fit mesoscale model" widget: fit from the viewer, see domains and predicted activity.

Inputs are read from layers:

- a Points layer of cells (µm world coordinates) whose metadata holds the ``activity`` (T, N)
  (the metadata contract is :mod:`napari_mesoscale.napari._contract`);
- optionally ROI masks: a Labels layer (label i + 1 = cell i), by default the cells layer's
  ``roi_labels`` (set by *Detect point sources*);
- optionally a connectome: the ``connectome`` (a Connectome) or ``adjacency`` (sparse N × N) of
  a Points layer; a connectome of other neurons is registered first;
- optionally a stimulus: the ``stimulus`` (T,) or (T, S) of any layer.

The fit runs :func:`napari_mesoscale.workflow.fit_and_score` in a worker (every stage named on
the progress bar). Results: the
cells coloured by motif with confidence as opacity (``features``: domain, motif, confidence;
``fitted_motif`` etc. where the layer already had such a column, as the toy sample's true motif),
functional domains and motifs as Labels, predicted activity and residual as (T, Z, Y, X) images
painted into the ROIs, a domain table whose rows select their cells, a trace dock (recorded vs
predicted and baselines for the selected cell, following the time slider) and live loss curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    SpinBox,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._docks import add_plugin_dock
from napari_mesoscale.napari._layers import world_positions
from napari_mesoscale.napari._overlays import (
    FIT_COLUMNS,
    activity_layers,
    domain_layers,
    fitted_column,
    motif_point_colors,
)
from napari_mesoscale.napari._plots import LossPlot, TracePlot
from napari_mesoscale.napari._runner import (
    CoreCall,
    CoreTaskWidget,
    layer_removed,
    span_dock_width,
    wrapping_label,
)
from napari_mesoscale.workflow import fit_and_score

_NONE = "(none)"
#: fewest cells a fit accepts (each cell is predicted from the others)
MIN_CELLS = 2


#: Drive options of the fit widget -> keyword arguments of fit_mesoscale.
DRIVE_CHOICES: dict[str, dict[str, Any]] = {
    "trained (ridge start)": {},
    "connectome kernels, trained": {"edge_init": "connectome"},
    "connectome kernels, frozen": {"edge_init": "connectome", "freeze_edges": True},
}


def default_drive() -> str:
    """The drive choice of the pipeline's fit configuration (``workflow.pipeline_config``)."""
    from napari_mesoscale.workflow import pipeline_config

    config = pipeline_config()
    chosen = {"edge_init": config.edge_init, "freeze_edges": config.freeze_edges}
    for name, options in DRIVE_CHOICES.items():
        if {"edge_init": "ridge", "freeze_edges": False, **options} == chosen:
            return name
    return next(iter(DRIVE_CHOICES))


#: The filters' view of each cell's own past (``ModelConfig.input_lags``): label -> value.
INPUT_LAG_CHOICES = [
    ("auto (a probe decides)", "auto"),
    ("1: x[t]", 1),
    ("2: x[t] and x[t-1]", 2),
]


def _config_control(name: str, **overrides: Any) -> Any:
    """A magicgui control for a :class:`ModelConfig` field: value, range and tooltip from it."""
    from napari_mesoscale.model import ModelConfig
    from napari_mesoscale.napari._param_controls import param_control

    return param_control(ModelConfig, name, **overrides)


def available_devices() -> list[str]:
    """Devices torch can use here, ``auto`` first (e.g. ``["auto (cpu)", "cpu"]``)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.insert(0, "mps")
    return [f"auto ({found[0]})", *found]


def layer_activity(layer: Any) -> np.ndarray:
    """(T, N) activity stored with a Points layer (see the module docstring)."""
    activity = _contract.read(layer).activity
    if activity is not None:
        return np.asarray(activity, dtype=float)
    raise ValueError(
        f"Layer {layer.name!r} carries no activity. Detect point sources first (their layer "
        "holds the traces), or set layer.metadata['activity'] = activity  # (T, N)."
    )


def _write_fit_features(layer: Any, fit: Any) -> None:
    """Write the fitted domain, motif and confidence of each cell into ``layer.features``:
    beside the layer's own columns, never over them (the toy sample's true ``motif`` stays;
    the fitted one goes to ``fitted_motif``, see :func:`fitted_column`)."""
    n_cells = len(fit.domain_labels)
    features = (
        layer.features.copy()
        if len(layer.features) == n_cells
        else pd.DataFrame(index=range(n_cells))
    )
    fitted_before = _contract.read(layer).fit is not None
    values = (fit.domain_labels, fit.motif_labels, fit.confidence)
    for name, column in zip(FIT_COLUMNS, values, strict=True):
        features[fitted_column(features.columns, name, fitted_before)] = column
    layer.features = features.reset_index(drop=True)


class FitWidget(CoreTaskWidget):
    """Fit the mesoscale model to the activity of a layer of cells."""

    run_text = "Fit"

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.cells = ComboBox(label="cells (Points)", choices=self._points_layers)
        self.rois = ComboBox(label="ROI masks (Labels)", choices=self._labels_layers)
        self.connectome = ComboBox(label="connectome", choices=self._connectome_layers)
        self.stimulus = ComboBox(label="stimulus", choices=self._stimulus_layers)
        self.n_filters = _config_control("n_filters")
        self.population_filters = _config_control(
            "population_filters", label="of which population filters"
        )
        self.drive = ComboBox(
            label="connectome drive",
            choices=list(DRIVE_CHOICES),
            value=default_drive(),
            tooltip="Weights of the synaptic drive on the connectome's edges (used when a "
            "connectome is chosen): the connectome kernels (Chu et al. 2022) kept frozen "
            "(fewer parameters; better on calcium recordings) or trained, or weights trained "
            "from a ridge start (better on long, clean activity).",
        )
        self.rf_diameter = _config_control(
            "rf_diameter",
            widget_type="FloatSpinBox",
            value=0.0,
            label="field diameter (µm, 0 = auto)",
            options={"max": 10_000.0, "step": 5.0},
        )
        self.epochs = _config_control("epochs")
        self.input_lags = _config_control(
            "input_lags", label="input lags", options={"choices": INPUT_LAG_CHOICES}
        )
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.device = ComboBox(label="device", choices=available_devices())
        self.checkpoints = FileEdit(label="checkpoint folder", mode="d", value="")
        self.resume = CheckBox(label="resume from checkpoint", value=False)
        self.summary = wrapping_label()
        self.add_controls(
            self.cells,
            self.rois,
            self.connectome,
            self.stimulus,
            self.n_filters,
            self.population_filters,
            self.drive,
            self.rf_diameter,
            self.epochs,
            self.input_lags,
            self.seed,
            self.device,
            self.checkpoints,
            self.resume,
        )
        self.append(self.summary)
        span_dock_width(self.summary)
        self.loss_plot = LossPlot()
        self.trace_plot = TracePlot()
        self.domain_table = QTableWidget()
        self.domain_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.domain_table.itemSelectionChanged.connect(self._select_domain_cells)
        # docked under the fit widget, Qt gave the table about one row
        rows_shown = 8
        self.domain_table.setMinimumHeight(
            (rows_shown + 1) * self.domain_table.verticalHeader().defaultSectionSize()
        )
        self.report = None
        self._inputs: dict[str, Any] = {}
        self._docks_added = False
        self._trace_dock = self._domain_dock = None
        napari_viewer.layers.events.inserted.connect(self._refresh_choices)
        napari_viewer.layers.events.removed.connect(self._refresh_choices)
        self.cells.changed.connect(self._follow_cells)
        self._refresh_choices()
        self._follow_cells()
        napari_viewer.dims.events.current_step.connect(self._follow_time)

    # -- layer choices --------------------------------------------------------------------
    def _points_layers(self, _widget: Any = None) -> list[str]:
        return _contract.layer_names(self._viewer, napari.layers.Points, prefer=("activity",))

    def _refresh_choices(self, _event: Any = None) -> None:
        self.reset_choices()
        self.prefer_layer(self.cells, ("activity",))

    def _follow_cells(self, *_: Any) -> None:
        """Choose the ROI masks, connectome and stimulus the chosen cells carry (if unset).

        A layer that holds its own connectome, stimulus or ROIs (the connectome sample, a
        detection) is fitted with them without four picks by hand. A choice the user made is
        kept; one filled in here follows the cells to their own (or back to none).
        """
        layer = self._viewer.layers[self.cells.value] if self.cells.value else None
        if layer is None:
            return
        roi_labels = _contract.read(layer).roi_labels
        own = {
            self.rois: roi_labels,
            self.connectome: layer.name,
            self.stimulus: layer.name,
        }
        for picker, name in own.items():
            self.fill_picker(picker, name, _NONE)

    def _labels_layers(self, _widget: Any = None) -> list[str]:
        return [_NONE, *_contract.layer_names(self._viewer, napari.layers.Labels)]

    def _connectome_layers(self, _widget: Any = None) -> list[str]:
        having = ("connectome", "adjacency")
        return [_NONE, *_contract.layer_names(self._viewer, napari.layers.Layer, having=having)]

    def _stimulus_layers(self, _widget: Any = None) -> list[str]:
        having = ("stimulus",)
        return [_NONE, *_contract.layer_names(self._viewer, napari.layers.Layer, having=having)]

    # -- running --------------------------------------------------------------------------
    def prepare(self) -> CoreCall:
        if not self.cells.value:
            raise ValueError("Choose a Points layer of cells (detect point sources first).")
        layer = self._viewer.layers[self.cells.value]
        activity = layer_activity(layer)
        positions = world_positions(layer)
        if activity.ndim != 2 or activity.shape[1] != positions.shape[0]:
            raise ValueError(
                f"Layer {layer.name!r} has {positions.shape[0]} cells but its activity has shape "
                f"{activity.shape}; expected (T, {positions.shape[0]})."
            )
        if activity.shape[0] < 20:
            raise ValueError(f"Only {activity.shape[0]} frames: the fit needs at least 20.")
        if positions.shape[0] < MIN_CELLS:
            raise ValueError(
                f"Layer {layer.name!r} has {positions.shape[0]} cell(s); the model predicts each "
                f"cell from the others and groups cells into domains, so it needs at least "
                f"{MIN_CELLS}. Choose a layer of detected cells."
            )
        kwargs: dict[str, Any] = {
            "n_filters": self.n_filters.value,
            "epochs": self.epochs.value,
            "input_lags": self.input_lags.value,
            "seed": self.seed.value,
            "device": self.device.value.split(" ")[0],
            "rf_diameter": self.rf_diameter.value or None,
        }
        connectome = self._chosen_connectome()
        if self.population_filters.value:
            kwargs["population_filters"] = self.population_filters.value
        if connectome is not None:
            kwargs.update(DRIVE_CHOICES[self.drive.value])
        stimulus = self._chosen_stimulus()
        checkpoint = str(self.checkpoints.value or "")
        if checkpoint not in ("", "."):
            kwargs["checkpoint_dir"] = checkpoint
            kwargs["resume"] = bool(self.resume.value)
        elif self.resume.value:
            raise ValueError("Choose the checkpoint folder to resume from.")
        self._inputs = {
            "layer": layer,
            "activity": activity,
            "rois": self._chosen_rois(layer),
            "checkpoint": kwargs.get("checkpoint_dir"),
        }
        options = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        python = (
            "report = napari_mesoscale.workflow.fit_and_score(activity, positions"
            + (", connectome=connectome" if connectome is not None else "")
            + (", stimulus=stimulus" if stimulus is not None else "")
            + f", {options})"
        )
        self.loss_plot.clear()
        self._add_docks()
        return CoreCall(
            fit_and_score,
            {
                "activity": activity,
                "positions": positions,
                "connectome": connectome,
                "stimulus": stimulus,
                **kwargs,
            },
            python=python,
            console_names={
                "activity": activity,
                "positions": positions,
                "connectome": connectome,
                "stimulus": stimulus,
            },
            result_name="report",
        )

    def _chosen_connectome(self) -> Any:
        if self.connectome.value in (None, _NONE):
            return None
        meta = _contract.read(self._viewer.layers[self.connectome.value])
        return meta.connectome if meta.connectome is not None else meta.adjacency

    def _chosen_stimulus(self) -> np.ndarray | None:
        if self.stimulus.value in (None, _NONE):
            return None
        return _contract.read(self._viewer.layers[self.stimulus.value]).stimulus

    def _chosen_rois(self, layer: Any) -> tuple[np.ndarray, tuple[float, ...]] | None:
        name = self.rois.value
        if name in (None, _NONE):
            name = _contract.read(layer).roi_labels  # the ROIs detected with these cells
        if name is None or name not in self._viewer.layers:
            return None
        labels = self._viewer.layers[name]
        data = np.asarray(labels.data)
        n_cells = len(layer.data)
        ndim = 2 if np.ndim(layer.data) == 2 and np.shape(layer.data)[1] == 2 else 3
        if data.ndim != ndim or int(data.max(initial=0)) > n_cells:
            shape = "3D Labels layer (Z, Y, X)" if ndim == 3 else "2D Labels layer (Y, X)"
            raise ValueError(
                f"ROI masks {name!r} must be a {shape} whose label i + 1 is "
                f"cell i of {layer.name!r} (labels 1..{n_cells}); got shape {data.shape} with "
                f"labels up to {int(data.max(initial=0))}. Choose '(none)' or the cells' ROIs."
            )
        return data, tuple(float(s) for s in labels.scale[-ndim:])

    def on_progress(self, info: dict[str, Any]) -> None:
        self.loss_plot.add(info)

    # -- results --------------------------------------------------------------------------
    def on_result(self, report: Any) -> None:
        layer = self._inputs["layer"]
        if layer not in self._viewer.layers:  # the fit would colour a layer no longer shown
            raise layer_removed(layer.name, self.result_name)
        self.report = report
        fit = report.fit
        _write_fit_features(layer, fit)
        layer.face_color = motif_point_colors(fit.motif_labels, fit.confidence)
        _contract.write(layer, predicted=report.predicted, fit=fit)
        rois = self._inputs["rois"]
        if rois is not None:
            labels, voxel_size = rois
            self.replace_layers(
                [
                    *domain_layers(
                        labels,
                        voxel_size,
                        fit.domain_labels,
                        fit.motif_labels,
                        domain_table=fit.domains,
                    ),
                    *activity_layers(labels, voxel_size, report.activity, report.predicted),
                ],
                key=layer.name,
                like=layer.name,
            )
        self._fill_domain_table(fit.domains)
        layer.selected_data.events.items_changed.connect(self._show_selected_trace)
        self._show_trace(0)
        if self._trace_dock is not None:  # the fitted traces come to the front of the plots
            self._trace_dock.raise_()
        best = report.scores.sort_values("mse").iloc[0]["model"]
        stopped = fit.stopped
        if fit.cancelled:
            stopped = self._status.value = self.cancelled_note(fit, layer.name, rois is not None)
        self.summary.value = (
            f"{len(np.unique(fit.domain_labels))} domains, "
            f"{len(np.unique(fit.motif_labels))} motifs; best held-out one-step: {best}; {stopped}"
        )
        from napari_mesoscale.model.reverted_assignment import describe_choice

        reversion = describe_choice(getattr(fit, "assignment_choice", None))
        if reversion:
            self.summary.value += f"; {reversion}"
        probe = getattr(fit, "lag_probe", None)
        if probe:  # input_lags="auto": what the probe measured and picked
            from napari_mesoscale.model.lag_probe import describe_probe

            self.summary.value += f"; {describe_probe(probe)}"

    def cancelled_note(self, fit: Any, cells: str, painted: bool) -> str:
        """What a cancelled fit left in the viewer, and whether and how it can be resumed.

        The walk on the worm read "partial result shown" and found no new layer: without ROI
        masks a fit only recolours the cells, and no checkpoint folder meant no resume.
        """
        from napari_mesoscale.model.reverted_assignment import retraining_epochs

        done = len(fit.history)
        after = retraining_epochs(fit.history)
        stage = (
            f"{after} of {fit.config.revert_epochs} epochs of the retraining after the moves "
            f"were reverted ({done - after} trained before)"
            if after
            else f"{done} of {fit.config.epochs} epochs"
        )
        shown = (
            f"fit stopped after {stage}; its weights at the cancel "
            f"(not the best epoch) colour {cells!r} by motif, with domain, motif and "
            "confidence in its features and the predictions in the trace dock"
        )
        if painted:
            shown += ", and paint the domain, motif and activity layers"
        else:
            shown += "; no layers added (the cells have no ROI masks to paint domains into)"
        checkpoint = self._inputs.get("checkpoint")
        if checkpoint and done:
            resume = (
                f"To continue after epoch {done}, tick 'resume from checkpoint' and press Fit "
                f"(checkpoint in {checkpoint})."
            )
        elif checkpoint:
            resume = "No epoch was completed, so nothing was saved to resume from."
        else:
            resume = (
                "No checkpoint folder was chosen, so Fit starts over; choose one to make a fit "
                "resumable."
            )
        return f"{shown}. {resume}"

    def _add_docks(self) -> None:
        if self._docks_added:
            return
        # tabs of the plugin's docks: the live loss in front at the bottom, the domain table
        # behind the fit widget on the right (its tab comes forward when the fit ends)
        self._trace_dock = add_plugin_dock(
            self._viewer, self.trace_plot, "Traces: recorded vs predicted", "bottom"
        )
        add_plugin_dock(self._viewer, self.loss_plot, "Loss curves", "bottom")
        self._domain_dock = add_plugin_dock(
            self._viewer, self.domain_table, "Functional domains", "right", raise_=False
        )
        self._docks_added = True

    def _fill_domain_table(self, domains: pd.DataFrame) -> None:
        """One row per domain; a click on a column's header sorts by it (numbers as numbers),
        and each row keeps its domain's id, so a sorted row still selects its own cells."""
        columns = [c for c in ("domain", "motif", "size", "local_loss") if c in domains]
        columns += [c for c in domains.columns if c not in columns and c != "centre"][:3]
        table = self.domain_table
        table.setSortingEnabled(False)  # sorting while filling would move rows under the loop
        table.clear()
        table.setColumnCount(len(columns))
        table.setRowCount(len(domains))
        table.setHorizontalHeaderLabels(columns)
        for row, (domain, record) in enumerate(
            zip(domains["domain"], domains[columns].itertuples(index=False), strict=True)
        ):
            for column, value in enumerate(record):
                table.setItem(row, column, _TableValue(value, domain))
        table.setSortingEnabled(True)

    def _select_domain_cells(self) -> None:
        if self.report is None:
            return
        rows = sorted({index.row() for index in self.domain_table.selectedIndexes()})
        if not rows:
            return
        chosen = [self.domain_table.item(row, 0).data(_DOMAIN_ROLE) for row in rows]
        cells = np.flatnonzero(np.isin(self.report.fit.domain_labels, chosen))
        layer = self._inputs["layer"]
        layer.selected_data = set(cells.tolist())
        if len(cells):
            self._show_trace(int(cells[0]))

    def select_domain_row(self, row: int) -> None:
        """Select a row of the domain table (as a click would)."""
        self.domain_table.selectRow(row)

    def _show_selected_trace(self, _event: Any = None) -> None:
        selected = sorted(self._inputs["layer"].selected_data)
        if selected:
            self._show_trace(selected[0])

    def _show_trace(self, cell: int) -> None:
        report = self.report
        predictions = {"mesoscale model": report.predicted, **report.baselines}
        fit = report.fit
        title = (
            f"cell {cell}: domain {fit.domain_labels[cell]}, motif {fit.motif_labels[cell]}, "
            f"confidence {fit.confidence[cell]:.2f}"
        )
        self.trace_plot.show_cell(
            cell, report.activity, predictions, frame=self._current_frame(), title=title
        )

    def _current_frame(self) -> int:
        steps = self._viewer.dims.current_step
        return int(steps[0]) if self._viewer.dims.ndim >= 4 else 0

    def _follow_time(self, _event: Any = None) -> None:
        if self.report is not None:
            self.trace_plot.mark_frame(self._current_frame())

    def save_plots(self, folder: str | Path) -> list[Path]:
        """Export the loss and trace plots as PNG into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "loss_curves.png", folder / "traces.png"]
        self.loss_plot.save(str(paths[0]))
        self.trace_plot.save(str(paths[1]))
        return paths


#: where a domain table's item keeps the id of its row's domain
_DOMAIN_ROLE = Qt.ItemDataRole.UserRole
_VALUE_ROLE = Qt.ItemDataRole.UserRole + 1


class _TableValue(QTableWidgetItem):
    """A cell of the domain table: shown to 4 digits, sorted by its number (as text, "10"
    came before "9"), and carrying its row's domain id."""

    def __init__(self, value: Any, domain: Any) -> None:
        number = isinstance(value, int | float | np.integer | np.floating)
        text = f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)
        super().__init__(text)
        self.setData(_VALUE_ROLE, float(value) if number else None)
        self.setData(_DOMAIN_ROLE, int(domain))

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(_VALUE_ROLE), other.data(_VALUE_ROLE)
        if mine is not None and theirs is not None:
            return bool(mine < theirs)
        return super().__lt__(other)
