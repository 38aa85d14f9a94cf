"""Dock plots: live loss curves of a fit, and recorded vs predicted traces of a selected cell."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

#: height (pixels) below which a plot dock is not squeezed when other docks crowd the window
MIN_PLOT_HEIGHT = 160
#: canvas width (pixels) from which the loss plot's legend has two columns
WIDE_LEGEND_PX = 450


class _PlotDock(QWidget):
    #: what an empty plot says, instead of showing bare 0-1 axes
    placeholder = ""

    def __init__(self, height: float = 2.6) -> None:
        super().__init__()
        self.figure = Figure(figsize=(5, height), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(MIN_PLOT_HEIGHT)
        self.axes = self.figure.add_subplot(111)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.show_placeholder()

    def show_placeholder(self) -> None:
        """Clear the axes and say what will appear there."""
        self.axes.clear()
        self.axes.set_axis_off()
        self.axes.text(0.5, 0.5, self.placeholder, ha="center", va="center", color="grey",
                       transform=self.axes.transAxes, wrap=True)
        self.canvas.draw_idle()

    def save(self, path: str) -> None:
        """Export the plot (PNG, SVG or PDF by the suffix)."""
        self.figure.savefig(path, dpi=150)


class LossPlot(_PlotDock):
    """Training and validation loss, and each loss term, per epoch (log scale).

    The log axis spans the losses that stay positive; terms that reach 0 (entropy, interface)
    are drawn but clipped, rather than stretch the axis to 1e-20 and flatten the rest.
    """

    placeholder = "Loss curves appear here while a fit trains."

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[float] = []
        self.curves: dict[str, list[float]] = {}

    def clear(self) -> None:
        self.epochs.clear()
        self.curves.clear()
        self._draw()

    def add(self, info: dict[str, Any]) -> None:
        """Append one progress dictionary (uses ``epoch``, ``losses`` and ``val_loss``).

        Training's step reports (``stage == "train"``) carry one batch's losses and the previous
        epoch's validation loss: only the epoch's own report (its mean losses) is plotted.
        """
        if info.get("epoch") is None or not info.get("epoch_end", True):
            return
        if info.get("stage") == "train":
            return
        epoch = float(info["epoch"])
        if self.epochs and epoch <= self.epochs[-1]:
            return
        self.epochs.append(epoch)
        values = dict(info.get("losses") or {})
        if info.get("val_loss") is not None:
            values["validation"] = info["val_loss"]
        for name in set(self.curves) | set(values):
            series = self.curves.setdefault(name, [np.nan] * (len(self.epochs) - 1))
            series.append(float(values.get(name, np.nan)))
        self._draw()

    def _draw(self) -> None:
        if not self.curves:
            self.show_placeholder()
            return
        self.axes.clear()
        self.axes.set_axis_on()
        for name, series in sorted(self.curves.items()):
            style = "-" if name in ("total", "prediction", "validation") else ":"
            self.axes.plot(self.epochs, np.abs(series), style, label=name)
        self.axes.set_xlabel("epoch")
        self.axes.set_ylabel("loss")
        self.axes.set_yscale("log")
        limits = self.y_limits()
        if limits is not None:
            self.axes.set_ylim(*limits)
        # out of the tight layout: in a narrow dock the legend, laid out with the axes, pushed
        # them into a sliver at the right edge; one column where two do not fit
        columns = 2 if self.canvas.width() >= WIDE_LEGEND_PX else 1
        self.axes.legend(fontsize=7, ncol=columns).set_in_layout(False)
        self.canvas.draw_idle()

    def y_limits(self) -> tuple[float, float] | None:
        """Log-axis limits spanning the curves whose values all stay above 1e-12 × the largest."""
        values = [np.abs(np.asarray(v, dtype=float)) for v in self.curves.values()]
        values = [v[np.isfinite(v)] for v in values]
        largest = max((v.max() for v in values if v.size), default=0.0)
        if largest <= 0:
            return None
        kept = [v for v in values if v.size and v.min() > 1e-12 * largest]
        low = min(v.min() for v in kept) if kept else largest
        return low / 1.5, largest * 1.5


class TracePlot(_PlotDock):
    """Traces of chosen cells from (T, N) arrays, with named predictions and the current frame.

    Two ways to feed it: :meth:`show_cell` draws one cell's recorded trace against named
    predictions (the fit widget); :meth:`follow` keeps showing the cells selected in a Points
    layer (the detection widget). Every array is (T, N), time first, column i = point i.

    Attributes
    ----------
    shown : list of int
        The cells drawn now.
    """

    placeholder = "Select points to see their traces."

    def __init__(self, max_traces: int = 8) -> None:
        super().__init__()
        self.max_traces = max_traces
        self.label = QLabel("Select points to see their traces.")
        self.label.setWordWrap(True)
        self.layout().insertWidget(0, self.label)
        self.layer: Any = None
        self.activity: np.ndarray | None = None
        self.predicted: dict[str, np.ndarray] = {}
        self.frame_rate: float | None = None
        #: the frame marked by a dashed line (napari's time slider), None for no marker
        self.frame: int | None = None
        #: the y-axis label, e.g. "dF/F"
        self.ylabel = "activity"
        self.shown: list[int] = []
        self._marker = None
        self._legend_title = ""
        self._legend: Any = None  # a figure legend: clearing the axes leaves it
        self.figure.set_layout_engine("constrained")
        self._legend_width = 0
        self.canvas.mpl_connect("resize_event", self._on_resize)

    def follow(
        self,
        layer: Any,
        activity: np.ndarray,
        *,
        predicted: dict[str, np.ndarray] | None = None,
        frame_rate: float | None = None,
        frame: int | None = None,
        ylabel: str = "activity",
    ) -> None:
        """Show the cells selected in ``layer``, a Points layer whose rows are the columns of
        ``activity`` (T, N); follows later selections. ``frame`` is marked (see
        :meth:`mark_frame`)."""
        self._disconnect()
        self.layer = layer
        self.activity = np.asarray(activity)
        self.predicted = dict(predicted or {})
        self.frame_rate = frame_rate
        self.frame = frame
        self.ylabel = ylabel
        layer.selected_data.events.items_changed.connect(self._on_selection)
        self.show_cells(sorted(layer.selected_data), frame=frame)

    def show_cell(
        self,
        index: int,
        recorded: np.ndarray,
        predicted: dict[str, np.ndarray],
        frame: int | None = None,
        title: str = "",
    ) -> None:
        """Plot column ``index`` of (T, N) arrays: recorded and each named prediction."""
        self.activity = np.asarray(recorded)
        self.predicted = dict(predicted)
        self.show_cells([index], frame=frame if frame is not None else 0, title=title)

    def show_cells(self, indices: list[int], frame: int | None = None, title: str = "") -> None:
        """Draw the given cells (at most ``max_traces``); predictions when one cell is shown."""
        self.axes.clear()
        if self._legend is not None:
            self._legend.remove()
            self._legend = None
        self._marker = None
        n_cells = 0 if self.activity is None else self.activity.shape[1]
        self.shown = [int(i) for i in indices if 0 <= int(i) < n_cells][: self.max_traces]
        if not self.shown:
            self.label.setText("Select points to see their traces.")
            self.show_placeholder()
            return
        self.axes.set_axis_on()
        time = self._time_axis(self.activity.shape[0])
        single = len(self.shown) == 1
        for cell in self.shown:
            style = {"color": "black", "lw": 1.2} if single else {"lw": 0.8}
            label = "recorded" if single else self._cell_name(cell)
            self.axes.plot(time, self.activity[:, cell], label=label, **style)
        if single:
            self._plot_predictions(time, self.shown[0])
        self.axes.set_xlabel("frame" if not self.frame_rate else "time (s)")
        self.axes.set_ylabel(self.ylabel)
        self._legend_above(title or ", ".join(map(self._cell_name, self.shown)))
        if frame is not None:
            self._marker = self.axes.axvline(
                self._to_time(frame), color="grey", lw=0.8, ls="--"
            )
        self.label.setText(f"{len(self.shown)} trace(s) shown")
        self.canvas.draw_idle()

    def _legend_above(self, title: str) -> None:
        """The legend, titled, above the axes: inside them it covered the curves.

        A figure legend placed "outside upper center" by the constrained layout, which shrinks
        the axes to leave it room. It takes the most columns (at most six) whose measured
        width fits the canvas; a narrow dock stacks the entries in more rows, and breaks a title
        too wide for it at its commas.
        """
        self._legend_title = title
        self._legend_width = self.canvas.width()
        handles, labels = self.axes.get_legend_handles_labels()
        renderer = self.canvas.get_renderer()
        for text in (title, title.replace(", ", ",\n")):
            for columns in range(max(1, min(len(handles), 6)), 0, -1):
                if self._legend is not None:
                    self._legend.remove()
                self._legend = self.figure.legend(
                    handles,
                    labels,
                    title=text,
                    loc="outside upper center",
                    ncols=columns,
                    fontsize=7,
                    title_fontsize=9,
                    frameon=False,
                    handlelength=1.2,
                    columnspacing=0.8,
                    labelspacing=0.2,
                )
                if self._legend.get_window_extent(renderer).width <= self.figure.bbox.width:
                    return

    def _on_resize(self, _event: Any = None) -> None:
        """Re-lay the legend when the dock is resized after drawing."""
        if self._legend is not None and self.canvas.width() != self._legend_width:
            self._legend_above(self._legend_title)
            self.canvas.draw_idle()

    def mark_frame(self, frame: int) -> None:
        """Move the current-frame marker (follows napari's time slider)."""
        self.frame = int(frame)
        if self._marker is not None:
            position = self._to_time(frame)
            self._marker.set_xdata([position, position])
            self.canvas.draw_idle()

    def _plot_predictions(self, time: np.ndarray, cell: int) -> None:
        colors = ("C3", "C0", "C2", "C1", "C4")
        for (name, values), color in zip(self.predicted.items(), colors, strict=False):
            width = 1.2 if name == "mesoscale model" else 0.8
            self.axes.plot(time, np.asarray(values)[:, cell], color=color, lw=width, label=name)

    def _time_axis(self, n_frames: int) -> np.ndarray:
        return self._to_time(np.arange(n_frames, dtype=float))

    def _to_time(self, frames: Any) -> Any:
        return frames / float(self.frame_rate) if self.frame_rate else frames

    def _cell_name(self, cell: int) -> str:
        features = getattr(self.layer, "features", None)
        if features is not None and "id" in features and cell < len(features):
            return f"id {features['id'].iloc[cell]}"
        return f"cell {cell}"

    def _on_selection(self, *_: Any) -> None:
        if self.layer is not None:
            self.show_cells(sorted(self.layer.selected_data), frame=self.frame)

    def _disconnect(self) -> None:
        if self.layer is None:
            return
        try:
            self.layer.selected_data.events.items_changed.disconnect(self._on_selection)
        except (TypeError, ValueError, RuntimeError):
            pass
