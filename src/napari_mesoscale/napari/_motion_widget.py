"""Widget "Correct motion": register a calcium movie, show it and a plot of its shifts.

Runs :func:`napari_mesoscale.motion.correct_motion` in a worker (progress, cancel) on an Image
layer (T, [Z,] Y, X) whose ``scale`` gives the voxel size, adds the registered movie beside it
and docks a plot of the rigid shifts (µm per axis), the largest patch shift and the quality
(correlation to the reference) over time, with outlier frames marked and a line that follows
napari's time slider. The result is pushed into the console as ``motion``.
"""

from __future__ import annotations

import tempfile
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit

from napari_mesoscale.motion.params import MotionParams
from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._detect_widgets import (
    _check_movie_axes,
    _layer_data,
    _layer_names,
    _LayerWidget,
    _path,
)
from napari_mesoscale.napari._docks import add_plugin_dock
from napari_mesoscale.napari._layers import output_name
from napari_mesoscale.napari._param_controls import param_control
from napari_mesoscale.napari._plots import _PlotDock

_FIELDS = ("nonrigid", "max_shift_um", "block_size_um", "max_block_shift_um", "batch_frames")


def _source_path(layer: Any) -> str | None:
    """The file or folder the layer was opened from, if napari knows it."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return None if path in (None, "") else str(path)


#: plot width (pixels) from which the legend's six entries fit in one row
_ONE_ROW_LEGEND_WIDTH = 480


class MotionPlot(_PlotDock):
    """Rigid shifts and quality per frame; a marker follows the current frame."""

    def __init__(self) -> None:
        super().__init__(height=3.0)
        self.quality_axes = self.axes.twinx()
        self._marker = None
        self.frame: int | None = None

    def show(self, result: Any) -> None:
        self.axes.clear()
        self.quality_axes.clear()
        frames = np.arange(result.n_frames)
        for i, axis in enumerate("zyx"[-result.shifts_um.shape[1] :]):
            self.axes.plot(frames, result.shifts_um[:, i], lw=1, label=f"shift {axis}")
        if result.block_shifts_um is not None:
            table = result.to_table()
            self.axes.plot(frames, table["max_block_shift_um"], ":", lw=1, label="max patch")
        self.axes.set_xlabel("frame")
        self.axes.set_ylabel("shift (µm)")
        self.quality_axes.plot(frames, result.quality, color="black", lw=0.8, label="quality")
        bad = np.flatnonzero(result.outliers)
        self.quality_axes.plot(bad, result.quality[bad], "rx", label="outlier")
        # clear() put the twin axis' ticks and label back on the left, over the shift label
        self.quality_axes.yaxis.tick_right()
        self.quality_axes.yaxis.set_label_position("right")
        self.quality_axes.set_ylabel("quality (r)")
        # one legend in a row above the axes: two inside them hid the curves' jumps
        shifts, quality = self.axes.get_legend_handles_labels(), (
            self.quality_axes.get_legend_handles_labels()
        )
        entries = len(shifts[0]) + len(quality[0])
        one_row = self.canvas.width() >= _ONE_ROW_LEGEND_WIDTH
        self.axes.legend(
            shifts[0] + quality[0], shifts[1] + quality[1], fontsize=7, frameon=False,
            ncol=entries if one_row else (entries + 1) // 2, loc="lower center",
            bbox_to_anchor=(0.5, 1.0), handlelength=1.5, columnspacing=1.0,
        )
        self._marker = self.axes.axvline(0, color="grey", lw=0.8, ls="--")
        self.canvas.draw_idle()

    def mark_frame(self, frame: int) -> None:
        self.frame = int(frame)
        if self._marker is not None:
            self._marker.set_xdata([frame, frame])
            self.canvas.draw_idle()


class CorrectMotionWidget(_LayerWidget):
    """Correct motion: rigid + piecewise non-rigid registration of a calcium movie."""

    run_text = "Correct motion"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._movie = ComboBox(label="movie (T, Z, Y, X)", choices=self._movie_choices)
        self._params = {
            name: param_control(MotionParams, name) for name in _FIELDS
        }
        self._output = FileEdit(label="registered Zarr (empty = memory)", mode="w")
        self._overwrite = CheckBox(label="replace an existing registered Zarr", value=False)
        self._plot_dock = CheckBox(label="show shift plot", value=True)
        self._pickers = [self._movie]
        self.plot: MotionPlot | None = None
        self.add_controls(
            self._movie, *self._params.values(), self._output, self._overwrite, self._plot_dock
        )
        viewer.dims.events.current_step.connect(self._follow_time)

    def _movie_choices(self, *_: Any) -> list[str]:
        return _layer_names(self._viewer, napari.layers.Image, (3, 4))

    def prepare(self) -> Any:
        from napari_mesoscale.motion import correct_motion
        from napari_mesoscale.motion.register import check_registered_output
        from napari_mesoscale.napari._runner import CoreCall

        name = self._movie.value
        if name is None:
            raise ValueError("add a calcium movie: an Image layer (T, Z, Y, X) or (T, Y, X).")
        layer = self._viewer.layers[name]
        data = _layer_data(layer)
        _check_movie_axes(layer, data)
        n_spatial = data.ndim - 1
        voxel_size = tuple(float(s) for s in np.asarray(layer.scale)[-n_spatial:])
        options = {key: widget.value for key, widget in self._params.items()}
        output = _path(self._output.value)
        if output is None and not isinstance(data, np.ndarray):
            output = tempfile.mkdtemp(prefix="registered-") + "/registered.zarr"
        kwargs: dict[str, Any] = {"voxel_size": voxel_size, **options}
        if output is not None:
            overwrite = bool(self._overwrite.value)
            check_registered_output(
                output, data, overwrite, sources=(_source_path(layer),),
                overwrite_hint=f"tick '{self._overwrite.label}'",
            )
            kwargs["output"] = str(output)
            if overwrite:
                kwargs["overwrite"] = True
            frame_rate = _contract.read(layer).frame_rate_hz
            if frame_rate is not None:  # written with the Zarr, beside the voxel size
                kwargs["frame_rate"] = frame_rate
        self._context = {"name": name, "layer": layer}
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return CoreCall(
            function=correct_motion,
            kwargs={"movie": data, **kwargs},
            python=f"motion = correct_motion(viewer.layers[{name!r}].data, {args})",
            result_name="motion",
        )

    def on_result(self, result: Any) -> None:
        layer = self._context["layer"]
        attributes = {
            "name": output_name(self._context["name"], " registered"),
            "scale": tuple(layer.scale),
            "translate": tuple(layer.translate),
            "units": tuple(str(unit) for unit in layer.units),
            "metadata": {**layer.metadata, "motion_shifts_um": result.shifts_um},
            "colormap": layer.colormap.name,
        }
        self.replace_layers([(result.registered, attributes, "image")])
        self._status.value = (
            f"largest shift {np.abs(result.shifts_um).max():.2f} µm; "
            f"{int(result.outliers.sum())} outlier frame(s)."
        )
        self.note_unset_voxel_size(self._context["name"])
        if self._plot_dock.value:
            self.show_plot(result)

    def show_plot(self, result: Any) -> MotionPlot:
        """Dock (or update) the plot of shifts and quality over time."""
        if self.plot is None:
            self.plot = MotionPlot()
            try:
                add_plugin_dock(self._viewer, self.plot, "motion", "bottom")
            except Exception:  # noqa: BLE001 - headless viewers without a window
                pass
        self.plot.show(result)
        self._follow_time()
        return self.plot

    def _follow_time(self, *_: Any) -> None:
        if self.plot is not None:
            self.plot.mark_frame(int(self._viewer.dims.current_step[0]))
