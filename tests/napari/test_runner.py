"""The worker runner every widget uses: progress, result, clear errors, cancel."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
from magicgui.widgets import SpinBox

from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget, TaskCancelled
from napari_mesoscale.progress import Cancelled, Progress


def count_up(n: int, *, delay: float = 0.0, callback=None) -> int:
    progress = Progress.wrap(callback)
    total = 0
    for step in range(n):
        progress.report((step + 1) / n, f"step {step + 1}", step=step + 1)
        total += step
        time.sleep(delay)
    return total


@dataclass
class PartialSum:
    total: int
    cancelled: bool = False


def count_up_keeping_partial(n: int, *, callback=None) -> PartialSum:
    """Like training: on cancel, return what was summed so far, marked cancelled."""
    progress = Progress.wrap(callback)
    total = 0
    try:
        for step in range(n):
            progress.report((step + 1) / n, f"step {step + 1}", step=step + 1)
            total += step
            time.sleep(0.01)
    except Cancelled:
        return PartialSum(total, cancelled=True)
    return PartialSum(total)


def refuse(n: int, *, callback=None) -> int:
    raise ValueError("the movie has 2 dimensions; expected (T, Z, Y, X)")


class CountWidget(CoreTaskWidget):
    def __init__(self, viewer, function=count_up, delay=0.0):
        super().__init__(viewer)
        self.n = SpinBox(value=5, min=0, max=10_000, label="steps")
        self.function, self.delay = function, delay
        self.results: list[int] = []
        self.progress: list[dict] = []
        self.add_controls(self.n)

    def prepare(self) -> CoreCall:
        if self.n.value == 0:
            raise ValueError("Choose at least one step.")
        kwargs: dict = {"n": self.n.value}
        if self.function is count_up:
            kwargs["delay"] = self.delay
        return CoreCall(self.function, kwargs, python=f"count_up({self.n.value})",
                        result_name="total")

    def on_result(self, result):
        self.results.append(result)

    def on_progress(self, info):
        self.progress.append(info)


@pytest.mark.viewer
def test_runs_in_a_worker_and_reports_progress(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = CountWidget(viewer)
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    assert widget.results == [sum(range(5))]
    assert widget.progress[-1]["step"] == 5
    assert widget.last_call == "count_up(5)" and widget.last_error is None
    assert widget._status.value == "Done."


@pytest.mark.viewer
def test_bad_parameters_and_core_errors_reach_the_user_not_a_traceback(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = CountWidget(viewer)
    widget.n.value = 0
    widget.start()
    assert not widget.is_running
    assert widget.last_error == "Choose at least one step."

    failing = CountWidget(viewer, function=refuse)
    failing.start()
    qtbot.waitUntil(lambda: not failing.is_running, timeout=10_000)
    assert "expected (T, Z, Y, X)" in failing.last_error
    assert failing.results == []
    assert failing._run_button.enabled


class UnreadableFileWidget(CountWidget):
    """Reads a chosen file in ``prepare`` and meets what a damaged or locked file raises."""

    def __init__(self, viewer, error):
        super().__init__(viewer)
        self.error = error

    def prepare(self) -> CoreCall:
        raise self.error


@pytest.mark.viewer
@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (EOFError("No data left in file"), "EOFError: No data left in file"),
        (PermissionError(13, "Permission denied", "/data/a.npy"), "PermissionError: "),
        (IsADirectoryError(21, "Is a directory", "/data"), "IsADirectoryError: "),
    ],
)
def test_file_errors_in_prepare_reach_the_user_not_a_traceback(make_napari_viewer, error, shown):
    widget = UnreadableFileWidget(make_napari_viewer(), error)
    widget._run_button.native.click()  # the user's click: nothing may escape the slot
    assert not widget.is_running
    assert widget.last_error.startswith(shown)
    assert widget._status.value == f"Error: {widget.last_error}"
    assert widget._run_button.enabled


@pytest.mark.viewer
def test_cancel_stops_the_core_loop(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = CountWidget(viewer, delay=0.01)
    widget.n.value = 5000
    widget.start()
    qtbot.waitUntil(lambda: len(widget.progress) > 2, timeout=10_000)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    assert widget.results == []
    assert widget.last_error == "cancelled"
    assert widget.progress[-1]["step"] < 5000


def test_task_cancelled_is_the_package_wide_cancel():
    assert issubclass(TaskCancelled, Cancelled)


@pytest.mark.viewer
def test_progress_bar_follows_fraction_and_never_moves_back(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = CountWidget(viewer)
    widget.start()
    for fraction in (0.5, 0.25, 0.75):  # a late report must not pull the bar back
        widget._handle_progress((widget._run_number, {"fraction": fraction, "message": "x"}))
    assert widget._progress_bar.value == 750
    qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    assert [info["fraction"] for info in widget.progress][-1] == 1.0


class SummaryWidget(CountWidget):
    def on_result(self, result):
        super().on_result(result)
        total = result.total if isinstance(result, PartialSum) else result
        self._status.value = f"summed to {total}."


@pytest.mark.viewer
def test_final_status_keeps_the_result_summary(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = SummaryWidget(viewer)
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    qtbot.wait(50)  # late progress events must not overwrite the summary either
    assert widget._status.value == f"summed to {sum(range(5))}."


@pytest.mark.viewer
def test_cancel_shows_a_partial_result_and_ends_the_run(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = SummaryWidget(viewer, function=count_up_keeping_partial)
    widget.n.value = 5000
    widget.start()
    qtbot.waitUntil(lambda: len(widget.progress) > 2, timeout=10_000)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    [partial] = widget.results
    assert partial.cancelled and 0 < partial.total < sum(range(5000))
    steps = partial_steps(partial.total)
    assert widget.progress[-1]["step"] <= steps + 1
    assert widget._status.value.startswith("Cancelled: partial result shown")
    assert f"summed to {partial.total}" in widget._status.value
    assert widget.last_error == "cancelled"
    assert widget._run_button.enabled and not widget._cancel_button.enabled


def partial_steps(total: int) -> int:
    """Number of steps whose indices sum to ``total`` (0 + 1 + … + (k - 1) = total)."""
    k = 0
    while k * (k - 1) // 2 < total:
        k += 1
    return k


class WarningWidget(CountWidget):
    """Warns about an odd result (an odd number of steps), as detection does about 0 cells."""

    def on_result(self, result):
        super().on_result(result)
        if self.n.value % 2:
            self.warn_about_result(f"an odd number of steps ({self.n.value}).")


@pytest.mark.viewer
def test_a_warning_about_the_result_is_the_runs_only_toast(make_napari_viewer, qtbot):
    """The "done" toast came after the widget's warning and, stacked over it, hid it."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    widget = WarningWidget(viewer)
    shown = []
    notification_manager.notification_ready.connect(
        lambda n: shown.append((str(n.severity), n.message))
    )
    for steps in (5, 4):  # the second run has nothing to warn about: "done" again
        widget.n.value = steps
        widget._run_button.native.click()
        qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)
    assert shown == [
        ("warning", "napari-mesoscale: an odd number of steps (5)."),
        ("info", "napari-mesoscale: done. Python equivalent: count_up(4)"),
    ]
    assert widget._status.value == "Done."


class LayerWidget(CountWidget):
    """Adds a points and a labels layer per run, as detection does."""

    def on_result(self, result):
        super().on_result(result)
        points = np.arange(9, dtype=float).reshape(3, 3) + result
        self.replace_layers(
            [(points, {"name": "cells", "metadata": {"roi_labels": "ROIs"}}, "points"),
             (np.zeros((4, 8, 8), np.int32), {"name": "ROIs"}, "labels")],
            key="count",
        )


@pytest.mark.viewer
@pytest.mark.parametrize("edit", ["delete a point", "paint", "rename"])
def test_a_rerun_keeps_the_layers_the_user_edited(make_napari_viewer, qtbot, edit):
    """A rerun removed the last run's layers even after the user had curated them."""
    viewer = make_napari_viewer()
    widget = LayerWidget(viewer)

    def run():
        widget._run_button.native.click()
        qtbot.waitUntil(lambda: not widget.is_running, timeout=10_000)

    run()
    run()  # nothing edited: replaced, not doubled
    assert [layer.name for layer in viewer.layers] == ["cells", "ROIs"]
    cells, rois = viewer.layers["cells"], viewer.layers["ROIs"]
    if edit == "delete a point":
        cells.selected_data = {0}
        cells.remove_selected()
    elif edit == "paint":
        rois.paint((1, 4, 4), 7)
    else:
        rois.name = "my ROIs"
    run()
    names = [layer.name for layer in viewer.layers]
    edited = cells if edit == "delete a point" else rois
    assert edited in viewer.layers
    # curated cells keep their ROIs (named in their metadata): the new run's get a new name
    # and the new cells point to them
    assert names == {
        "delete a point": ["cells", "ROIs", "cells_2", "ROIs_2"],
        "paint": ["ROIs", "cells", "ROIs_2"],
        "rename": ["my ROIs", "cells", "ROIs"],
    }[edit]
    assert viewer.layers[-2 if edit == "delete a point" else 1].metadata["roi_labels"] == (
        "ROIs_2" if edit != "rename" else "ROIs"
    )
    if edit == "delete a point":
        assert len(cells.data) == 2
    if edit == "paint":
        assert rois.data[1, 4, 4] == 7
    rois = " and its ROIs 'ROIs'" if edit == "delete a point" else ""
    assert widget._status.value.endswith(
        f"Kept {edited.name!r} of the last run (you edited or renamed it){rois}."
    )
    run()  # the kept layers are the user's now; only the new result is replaced
    assert edited in viewer.layers and len(viewer.layers) == len(names)
