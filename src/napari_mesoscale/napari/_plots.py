"""Dock plots: live loss curves of a fit, and recorded vs predicted traces of a selected cell."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget


class _PlotDock(QWidget):
    def __init__(self, height: float = 2.6) -> None:
        super().__init__()
        self.figure = Figure(figsize=(5, height), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    def save(self, path: str) -> None:
        """Export the plot (PNG, SVG or PDF by the suffix)."""
        self.figure.savefig(path, dpi=150)


class LossPlot(_PlotDock):
    """Training and validation loss, and each loss term, per epoch (log scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[float] = []
        self.curves: dict[str, list[float]] = {}

    def clear(self) -> None:
        self.epochs.clear()
        self.curves.clear()
        self._draw()

    def add(self, info: dict[str, Any]) -> None:
        """Append one progress dictionary (uses ``epoch``, ``losses`` and ``val_loss``)."""
        if info.get("epoch") is None or not info.get("epoch_end", True):
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
        self.axes.clear()
        for name, series in sorted(self.curves.items()):
            style = "-" if name in ("total", "prediction", "validation") else ":"
            self.axes.plot(self.epochs, np.abs(series), style, label=name)
        self.axes.set_xlabel("epoch")
        self.axes.set_ylabel("loss")
        if self.curves:
            self.axes.set_yscale("log")
            self.axes.legend(fontsize=7, ncol=2)
        self.canvas.draw_idle()


class TracePlot(_PlotDock):
    """Recorded, predicted and baseline traces of one cell, with the current frame marked."""

    def __init__(self) -> None:
        super().__init__()
        self._marker = None
        self.shown: int | None = None

    def show_cell(
        self,
        index: int,
        recorded: np.ndarray,
        predicted: dict[str, np.ndarray],
        frame: int | None = None,
        title: str = "",
    ) -> None:
        """Plot column ``index`` of (T, N) arrays: recorded and each named prediction."""
        self.axes.clear()
        self.shown = int(index)
        self.axes.plot(recorded[:, index], color="black", lw=1.2, label="recorded")
        for (name, values), color in zip(
            predicted.items(), ("C3", "C0", "C2", "C1", "C4"), strict=False
        ):
            width = 1.2 if name == "mesoscale model" else 0.8
            self.axes.plot(values[:, index], color=color, lw=width, label=name)
        self.axes.set_xlabel("frame")
        self.axes.set_ylabel("activity")
        self.axes.set_title(title or f"cell {index}", fontsize=9)
        self.axes.legend(fontsize=7)
        self._marker = self.axes.axvline(frame or 0, color="grey", lw=0.8, ls="--")
        self.canvas.draw_idle()

    def mark_frame(self, frame: int) -> None:
        """Move the current-frame marker (follows napari's time slider)."""
        if self._marker is not None:
            self._marker.set_xdata([frame, frame])
            self.canvas.draw_idle()
