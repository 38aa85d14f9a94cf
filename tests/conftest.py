"""Shared fixtures and the Qt hygiene every viewer test relies on.

Exit-time crashes (exit code 139 after pytest's summary) come from Qt objects outliving the
test that made them: parentless widgets (a widget never docked, a plot dock) and worker threads
of the global ``QThreadPool`` that still run while the interpreter shuts down. Python then
destroys their wrappers in arbitrary order, some after the ``QApplication``, and Qt segfaults.
So, as napari's own test suite does, every test here ends with its worker threads finished and
the top-level widgets it created closed and deleted, while the application is still alive; the
session ends the same way. ``faulthandler`` stays on until the very end so that a crash during
interpreter shutdown still prints where it happened.
"""

from __future__ import annotations

import faulthandler
import gc
import itertools
import os
import sys

import pytest

#: how long a test's leftover worker threads may take to finish (ms)
_WORKER_WAIT_MS = 60_000


def pytest_configure(config: pytest.Config) -> None:
    faulthandler.enable(file=sys.__stderr__, all_threads=True)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # pytest's own faulthandler plugin switches it off in its unconfigure; a crash at
    # interpreter exit is exactly the one we want to see, so switch it back on.
    _close_qt_leftovers(set())
    gc.unfreeze()
    gc.collect()  # everything left, while the application still lives
    faulthandler.enable(file=sys.__stderr__, all_threads=True)


@pytest.fixture(scope="session")
def brain():
    """The dynamics-sized toy brain shared by the connectome tests: 300 neurons, 600 frames,
    no rendering, no EM, seed 0 (built once per session)."""
    from napari_mesoscale.synth import make_toy_brain

    return make_toy_brain(300, n_frames=600, render=None, em=False, seed=0)


@pytest.fixture(scope="session")
def brain_small_movie():
    """A sample-sized toy brain with its calcium movie: 80 neurons, 120 frames of 20 × 48 × 48
    voxels of 3 × 1.5 × 1.5 µm at 5 Hz, no EM, seed 0."""
    from napari_mesoscale.synth import make_toy_brain

    return make_toy_brain(
        80, n_frames=120, shape=(20, 48, 48), voxel_size=(3.0, 1.5, 1.5), frame_rate=5.0,
        em=False, seed=0,
    )


@pytest.fixture(autouse=True)
def _qt_hygiene():
    """Finish worker threads and delete the top-level widgets a test left behind."""
    before = _top_level_widget_ids()
    yield
    _close_qt_leftovers(before)


def _application():
    if "qtpy" not in sys.modules:  # core tests never import Qt: nothing to clean
        return None
    from qtpy.QtWidgets import QApplication

    return QApplication.instance()


def _top_level_widget_ids() -> set[int]:
    app = _application()
    return set() if app is None else {id(widget) for widget in app.topLevelWidgets()}


def _close_qt_leftovers(before: set[int]) -> None:
    app = _application()
    if app is None:
        return
    from qtpy.QtCore import QCoreApplication, QEvent, QThreadPool

    QThreadPool.globalInstance().waitForDone(_WORKER_WAIT_MS)
    app.processEvents()  # deliver the finished workers' signals while their receivers live
    for widget in app.topLevelWidgets():
        if id(widget) in before or type(widget).__module__.startswith("napari."):
            continue  # napari closes its own windows (make_napari_viewer's teardown)
        if os.environ.get("MESOSCALE_SHOW_QT_LEFTOVERS"):
            kind = f"{type(widget).__module__}.{type(widget).__name__}"
            print(f"\nconftest: deleting leftover {kind}")
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    _collect_garbage()


_cleanups = itertools.count(1)
#: a full collection of everything every this many viewer tests: one costs 0.6-2 s late in the
#: suite, and the young generations (collected after every test, milliseconds) hold what a test
#: just dropped
_FULL_COLLECTION_EVERY = 25


def _collect_garbage() -> None:
    """Collect what the test dropped, then freeze what is left.

    napari collects everything (``gc.collect()``) each time a layer leaves a canvas, so every
    viewer's close walks the whole heap: 0.5 s at the suite's start, 2 s near its end, most of
    a viewer test's teardown. Frozen objects (``gc.freeze``) are skipped by those collections,
    so they walk only what the running test made. What was alive when frozen and dies later in
    a cycle waits for the next full collection here, which thaws everything first, and for the
    session's end (:func:`pytest_unconfigure`), which thaws before it collects.
    """
    if next(_cleanups) % _FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
