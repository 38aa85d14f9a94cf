"""Dock plot of the dF/F traces of the selected point sources; follows the Points selection."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

#: at most this many selected traces are drawn
MAX_TRACES = 8


class TracePlot(QWidget):
    """Shows ``traces[i]`` for the selected points ``i`` of a Points layer.

    Parameters
    ----------
    traces : numpy.ndarray, optional
        (N, T) traces (dF/F), one row per point of ``layer``.
    layer : napari.layers.Points, optional
        The layer whose selection is followed.
    frame_rate : float, optional
        Frames per second; the time axis is in seconds when given, else in frames.
    """

    def __init__(self, traces: np.ndarray | None = None, layer: Any = None, frame_rate=None):
        super().__init__()
        self.figure = Figure(figsize=(5, 2.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.label = QLabel("Select points to see their traces.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.canvas)
        self.layer = None
        self.traces = None
        self.frame_rate = None
        self.shown: list[int] = []
        if layer is not None and traces is not None:
            self.follow(layer, traces, frame_rate=frame_rate)

    def follow(self, layer: Any, traces: np.ndarray, *, frame_rate: float | None = None) -> None:
        """Follow the selection of ``layer`` (a Points layer whose rows match ``traces``)."""
        self._disconnect()
        self.layer = layer
        self.traces = np.asarray(traces)
        self.frame_rate = frame_rate
        try:
            layer.selected_data.events.items_changed.connect(self._on_selection)
        except AttributeError:  # older napari: selection is a plain set
            layer.events.highlight.connect(self._on_selection)
        self.show_points(sorted(layer.selected_data))

    def _disconnect(self) -> None:
        if self.layer is None:
            return
        for emitter in (
            getattr(getattr(self.layer.selected_data, "events", None), "items_changed", None),
            self.layer.events.highlight,
        ):
            if emitter is None:
                continue
            try:
                emitter.disconnect(self._on_selection)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _on_selection(self, *_: Any) -> None:
        if self.layer is not None:
            self.show_points(sorted(self.layer.selected_data))

    def show_points(self, indices: list[int]) -> None:
        """Draw the traces of the given point indices (at most ``MAX_TRACES``)."""
        self.axes.clear()
        self.shown = []
        if self.traces is None or len(indices) == 0:
            self.label.setText("Select points to see their traces.")
            self.canvas.draw_idle()
            return
        indices = [int(i) for i in indices if 0 <= int(i) < len(self.traces)][:MAX_TRACES]
        t = np.arange(self.traces.shape[1], dtype=float)
        unit = "frame"
        if self.frame_rate:
            t = t / float(self.frame_rate)
            unit = "s"
        ids = None
        if self.layer is not None and "id" in getattr(self.layer, "features", {}):
            ids = self.layer.features["id"].to_numpy()
        for i in indices:
            name = f"id {ids[i]}" if ids is not None and i < len(ids) else f"#{i}"
            self.axes.plot(t, self.traces[i], lw=0.8, label=name)
        self.axes.set_xlabel(f"time ({unit})")
        self.axes.set_ylabel("dF/F")
        self.axes.legend(loc="upper right", fontsize="small", frameon=False)
        self.shown = indices
        self.label.setText(f"{len(indices)} trace(s) shown")
        self.canvas.draw_idle()

    def save(self, path: str) -> None:
        """Export the plot (PNG, SVG or PDF by the suffix)."""
        self.figure.savefig(path, dpi=150)
