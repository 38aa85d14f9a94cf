"""The viewer used by hand: menus clicked, docks looked at, layers chosen as a user finds them.

Each test follows what a user does in a fresh viewer (File ▸ Open Sample, Plugins ▸ Mesoscale)
and failed before the fix it guards.
"""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint

pytestmark = pytest.mark.viewer

WIDGET_TITLES = (
    "Correct motion (calcium)",
    "Detect point sources (calcium)",
    "Detect somata (EM)",
    "Train soma detector (EM)",
    "Build connectome",
    "Fit mesoscale model",
    "Score predictions",
)


def _menu_action(viewer, *words):
    """The one menu-bar QAction whose path (e.g. "Plugins > Mesoscale > Fit…") has ``words``."""

    def actions(menu, path):
        menu.aboutToShow.emit()  # napari fills its dynamic menus when they are about to show
        for action in menu.actions():
            text = f"{path} > {action.text().replace('&', '')}"
            if action.menu() is not None:
                yield from actions(action.menu(), text)
            else:
                yield text, action

    menu_bar = viewer.window._qt_window.menuBar()
    found = [
        action
        for top in menu_bar.actions()
        if top.menu() is not None
        for text, action in actions(top.menu(), top.text().replace("&", ""))
        if all(word in text for word in words)
    ]
    assert len(found) == 1, f"{len(found)} menu actions match {words}"
    return found[0]


def _dock_from_menu(viewer, qtbot, title):
    _menu_action(viewer, "Plugins", "Mesoscale", title).trigger()
    qtbot.wait(50)
    [name] = [name for name in viewer.window.dock_widgets if name.startswith(title)]
    return viewer.window.dock_widgets[name]


@pytest.mark.parametrize("title", WIDGET_TITLES)
def test_widget_docked_from_the_plugins_menu_fits_its_dock(make_napari_viewer, qtbot, title):
    """The controls were cut off at the dock's right and top edges (a stale, wider size)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    widget = _dock_from_menu(viewer, qtbot, title)
    qtbot.wait(100)
    dock = widget.native
    while type(dock).__name__ != "QtViewerDockWidget":
        dock = dock.parent()
    for control in (widget[0], widget._run_button):
        native = control.native
        corner = native.mapTo(dock, QPoint(0, 0))
        assert corner.x() >= 0 and corner.y() >= 0, (control, corner)
        assert corner.x() + native.width() <= dock.width(), (control, corner, dock.width())
    assert widget._run_button.native.visibleRegion().boundingRect().width() == (
        widget._run_button.native.width()
    )


@pytest.mark.parametrize("dock_first", [False, True])
def test_pickers_choose_the_neurons_not_the_synapses(make_napari_viewer, qtbot, dock_first):
    """After File ▸ Open Sample ▸ connectome, Fit/Score/Build offered the ``synapses`` layer."""
    viewer = make_napari_viewer()
    docked = {}
    titles = ("Fit mesoscale model", "Score predictions", "Build connectome")
    if dock_first:
        docked = {title: _dock_from_menu(viewer, qtbot, title) for title in titles}
    _menu_action(viewer, "Open Sample", "connectome with ground truth").trigger()
    if not dock_first:
        docked = {title: _dock_from_menu(viewer, qtbot, title) for title in titles}
    assert "synapses" in viewer.layers
    assert docked["Fit mesoscale model"].cells.value == "neurons (truth)"
    assert docked["Score predictions"]._points.value == "neurons (truth)"
    build = docked["Build connectome"]
    assert build._source.value == "Points layer"
    assert build._neurons_layer.value == "neurons (truth)"

