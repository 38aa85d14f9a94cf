"""The worker runner every widget uses: progress, result, clear errors, cancel."""

from __future__ import annotations

import time

import pytest
from magicgui.widgets import SpinBox

from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget


def count_up(n: int, *, delay: float = 0.0, callback=None) -> int:
    total = 0
    for step in range(n):
        if callback is not None:
            callback({"step": step + 1, "steps": n, "message": f"step {step + 1}"})
        total += step
        time.sleep(delay)
    return total


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
        kwargs = {"n": self.n.value}
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
