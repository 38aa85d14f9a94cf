"""Where the plugin's docks go: tabs beside each other instead of a stack of slivers.

napari docks a widget opened from *Plugins ▸ Mesoscale* in the right area with
``add_dock_widget(widget, name=...)``, no tabs: each new dock is stacked under the earlier ones,
which napari shrinks to make room. With *Correct motion*, *Detect point sources*, *Fit* and
*Score* open in a 1280 × 800 window, each kept a 67 px window onto its controls (two rows of
300-500 px of controls), and the window grew 120 px taller than asked (the docks' minimum
heights). The plots a run docks at the bottom were put side by side, the traces plot 182 px
wide.

So every dock of the plugin joins the plugin's docks already in the same area as a tab
(``QMainWindow.tabifyDockWidget``, what ``add_dock_widget(..., tabify=True)`` does, but with
the plugin's own docks rather than whichever dock napari lists last there, such as its hidden
console): each then has the area's whole height (and width), and its title stays on the tab
bar under the area. Other plugins' docks and napari's own are left where napari put them.
The one change to the window itself: once the plugin docks a plot at the bottom, the window's
bottom corners belong to the side areas (:func:`add_plugin_dock`), so the plots sit under the
canvas while the plugin's widgets and napari's layer controls and list keep the window's
height (stacked over a plot, the layer controls of a Points layer in 3D grew the window past
an 800 px screen).
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow

#: Qt dynamic property marking the docks of this plugin (the plugin's tab groups)
DOCK_PROPERTY = "napari_mesoscale_dock"


def unproxied(obj: Any) -> Any:
    """``obj`` itself where napari handed it out wrapped in its ``PublicOnlyProxy``.

    napari passes a widget that ``viewer.window.add_plugin_dock_widget`` builds (a script,
    ``napari -w napari-mesoscale ...``) a proxy of the viewer, whose methods return proxies:
    Qt refuses a proxied dock as an argument (``dockWidgetArea``, ``tabifyDockWidget``).
    """
    return getattr(obj, "__wrapped__", obj)


def dock_of(widget: Any) -> QDockWidget | None:
    """The dock holding ``widget`` (a Qt widget), or None while it is not docked."""
    parent = widget
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parent()
    return parent


def plugin_docks(window: QMainWindow, area: Any) -> list[QDockWidget]:
    """The plugin's docks in ``area`` of ``window`` that are open (shown or behind a tab)."""
    return [
        dock
        for dock in window.findChildren(QDockWidget)
        if dock.property(DOCK_PROPERTY)
        and window.dockWidgetArea(dock) == area
        and not dock.isFloating()
        and _open(window, dock)
    ]


def _open(window: QMainWindow, dock: QDockWidget) -> bool:
    """Shown, behind a tab, or docked and not shown yet (Qt shows a dock added to a shown
    window at its next event loop pass); not closed by the user (hidden explicitly)."""
    return (
        not dock.isHidden()
        or bool(window.tabifiedDockWidgets(dock))
        or not dock.testAttribute(Qt.WidgetAttribute.WA_WState_ExplicitShowHide)
    )


def in_front(dock: QDockWidget) -> bool:
    """Whether ``dock`` is on screen (shown, and not behind another tab of its group)."""
    return dock.isVisible() and not dock.visibleRegion().isEmpty()


def join_plugin_tabs(dock: QDockWidget, *, raise_: bool = True) -> None:
    """Mark ``dock`` as the plugin's and make it a tab of the plugin's docks in its area.

    Parameters
    ----------
    dock : QDockWidget
        A dock napari added (``viewer.window.add_dock_widget``).
    raise_ : bool
        Bring its tab to the front (default); False leaves the tab that was in front there
        (e.g. a result table docked when a run starts, behind the widget showing its progress).
    """
    dock = unproxied(dock)
    window = unproxied(dock.parent())
    if not isinstance(window, QMainWindow) or dock.property(DOCK_PROPERTY):
        return
    area = window.dockWidgetArea(dock)
    others = [other for other in plugin_docks(window, area) if other is not dock]
    dock.setProperty(DOCK_PROPERTY, True)
    if not others:
        return
    front = [other for other in others if in_front(other)]
    window.tabifyDockWidget((front or others)[-1], dock)
    dock.show()
    if raise_:
        dock.raise_()
    else:
        for other in front[-1:]:
            other.raise_()


def add_plugin_dock(
    viewer: Any, widget: Any, name: str, area: str = "bottom", *, raise_: bool = True
) -> QDockWidget | None:
    """Dock an auxiliary widget (a plot, a table) as a tab of the plugin's docks in ``area``.

    Returns the dock, or None for a viewer without a window (headless).
    """
    window = getattr(viewer, "window", None)
    if window is None or not hasattr(window, "add_dock_widget"):
        return None
    dock = unproxied(window.add_dock_widget(widget, name=name, area=area))
    main = unproxied(dock.parent())  # napari's QMainWindow (``Window._qt_window`` is private)
    if area == "bottom" and isinstance(main, QMainWindow):
        # Qt gives the window's bottom corners to the bottom area: plots docked there took
        # their height from the right area too, and left the widgets beside the canvas 440 px
        # for 500 px of controls; the right column now runs down to the status bar. On the
        # left, napari's layer controls (422 px for a Points layer in 3D) and layer list
        # stacked over a plot's 184 px grew a 1280 x 800 window to 852 px, past the screen's
        # bottom: the left column runs down to the status bar too, the plots under the canvas
        main.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        main.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
    join_plugin_tabs(dock, raise_=raise_)
    return dock


class _JoinWhenShown(QObject):
    """Joins the plugin's tabs when the widget it filters is first shown in a dock."""

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            dock = dock_of(watched)
            if dock is not None:
                join_plugin_tabs(dock)
                watched.removeEventFilter(self)
        return False


def tab_when_docked(widget: Any) -> None:
    """Once ``widget`` (a Qt widget) is docked, make its dock a tab of the plugin's docks in
    its area: at the next event loop pass (napari docks a widget from the Plugins menu right
    after building it, in the same call), or when it is first shown in a dock (a widget a
    script docks later)."""

    def join() -> None:
        try:
            dock = dock_of(widget)
        except RuntimeError:  # deleted before the event loop came back
            return
        if dock is not None:
            join_plugin_tabs(dock)

    widget.installEventFilter(_JoinWhenShown(widget))  # parented: deleted with the widget
    QTimer.singleShot(0, join)


__all__ = [
    "add_plugin_dock", "dock_of", "in_front", "join_plugin_tabs", "plugin_docks", "tab_when_docked",
    "unproxied",
]
