"""Docks as a user opens them: does each one keep the height its controls need?

Opens a fresh viewer (window 1280 × 800) with File ▸ Open Sample ▸ Toy brain calcium movie,
docks *Correct motion*, *Detect point sources*, *Fit mesoscale model* and *Score predictions*
from the Plugins ▸ Mesoscale menu (napari's own path: ``add_dock_widget`` in the right area,
no tabs), runs motion correction and detection on the sample (their shift and trace docks
open), and opens the fit's docks (loss curves, traces, functional domains) as a fit does when
it starts. Then, for every dock of the window, records its area, its height, the height its
contents need (a plugin widget: the height of all its controls; a plot: its minimum plot
height; the domain table: its minimum height of 8 rows), the tab group it belongs to, and
whether it is on screen (a tab behind another is not, but its tab title is); then brings each
tab to the front in turn, as a click on its title does, and measures it there
(``each_tab_clicked``; the figures of a dock behind a tab are Qt's last layout of it).

A dock is **usable** when it is on screen with at least the height its contents need, or when
it is a tab (its title reachable) whose group's shown dock is; a scrolling widget counts as
usable only with the whole of its controls in view, or at least :data:`USABLE_SCROLL_PX` of
them.

Run it on this branch and on an older checkout (``PYTHONPATH=<old>/src``) for a before/after
pair; needs a display::

    NAPARI_CONFIG=/tmp/napari_fresh/settings.yaml \
        xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/dock_layout.py --label after

(a fresh napari settings file: napari remembers the area a user last dragged each dock to).

Writes ``benchmarks/results/dock_layout.json`` (one entry per ``--label``, merged).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "dock_layout.json"
#: window size of the measurement (a laptop-sized window)
WINDOW = (1280, 800)
#: a scrolling widget shows at least this many pixels of its controls to count as usable
USABLE_SCROLL_PX = 240
#: widgets docked from Plugins ▸ Mesoscale, in this order
OPENED = (
    "Correct motion (calcium)",
    "Detect point sources (calcium)",
    "Fit mesoscale model",
    "Score predictions",
)


def menu_action(viewer, *words):
    """The one menu-bar QAction whose path (e.g. "Plugins > Mesoscale > Fit…") has ``words``."""

    def actions(menu, path):
        menu.aboutToShow.emit()  # napari fills its dynamic menus when they are about to show
        for action in menu.actions():
            text = f"{path} > {action.text().replace('&', '')}"
            if action.menu() is not None:
                yield from actions(action.menu(), text)
            else:
                yield text, action

    bar = viewer.window._qt_window.menuBar()
    found = [
        action
        for top in bar.actions()
        if top.menu() is not None
        for text, action in actions(top.menu(), top.text().replace("&", ""))
        if all(word in text for word in words)
    ]
    assert len(found) == 1, f"{len(found)} menu actions match {words}"
    return found[0]


def settle(app, ms: int = 200) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def run_widget(app, widget, timeout_s: float = 300.0) -> None:
    widget.start()
    end = time.perf_counter() + timeout_s
    while widget.is_running and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)
    assert not widget.is_running, "widget did not finish"
    assert widget.last_error is None, widget.last_error
    settle(app)


def needed_height(dock) -> tuple[int, str]:
    """Height (px) the dock's contents need, and what it was read from."""
    from qtpy.QtWidgets import QAbstractScrollArea, QScrollArea

    inner = dock.widget()
    scroll = inner if isinstance(inner, QScrollArea) else inner.findChild(QScrollArea)
    if scroll is not None and scroll.widget() is not None:
        content = scroll.widget()
        return content.sizeHint().height(), "controls (scroll area content)"
    table = inner if isinstance(inner, QAbstractScrollArea) else None
    if table is not None:
        return table.minimumHeight(), "minimum height"
    return inner.minimumSizeHint().height(), "minimum size hint"


def shown_height(dock) -> int:
    """Height (px) of what the dock shows of its contents (the scroll viewport if it scrolls)."""
    from qtpy.QtWidgets import QScrollArea

    inner = dock.widget()
    scroll = inner if isinstance(inner, QScrollArea) else inner.findChild(QScrollArea)
    if scroll is not None and scroll.widget() is not None:
        return scroll.viewport().height()
    return inner.height()


def docks_on_screen(viewer) -> list[dict]:
    from qtpy.QtWidgets import QDockWidget

    window = viewer.window._qt_window
    area_names = {1: "left", 2: "right", 4: "top", 8: "bottom"}
    records = []
    for dock in window.findChildren(QDockWidget):
        if dock.isHidden() and not window.tabifiedDockWidgets(dock):
            continue  # closed (e.g. napari's console until asked for)
        tabs = [other.windowTitle() for other in window.tabifiedDockWidgets(dock)]
        need, need_from = needed_height(dock)
        shown = shown_height(dock)
        visible = dock.isVisible() and not dock.visibleRegion().isEmpty()
        records.append(
            {
                "name": dock.windowTitle(),
                "area": area_names.get(int(window.dockWidgetArea(dock).value
                                           if hasattr(window.dockWidgetArea(dock), "value")
                                           else window.dockWidgetArea(dock)), "?"),
                "dock_px": [dock.width(), dock.height()],
                "shown_px": shown,
                "needed_px": need,
                "needed_from": need_from,
                "on_screen": visible,
                "tabbed_with": tabs,
            }
        )
    for record in records:
        full = record["shown_px"] >= record["needed_px"]
        scrolls = record["needed_from"].startswith("controls")
        record["usable"] = bool(
            record["on_screen"] and (full or (scrolls and record["shown_px"] >= USABLE_SCROLL_PX))
        )
    shown = {r["name"]: r for r in records}
    for record in records:  # a tab behind another: usable when its group's shown dock is
        if not record["on_screen"] and record["tabbed_with"]:
            front = [shown[t] for t in record["tabbed_with"] if t in shown]
            record["usable"] = any(f["on_screen"] and f["usable"] for f in front)
            record["behind_a_tab"] = True
    return records


def tabs_clicked(app, viewer) -> list[dict]:
    """Each dock behind a tab brought to the front (its tab clicked), then measured."""
    from qtpy.QtWidgets import QDockWidget

    window = viewer.window._qt_window
    records = []
    for dock in window.findChildren(QDockWidget):
        if not window.tabifiedDockWidgets(dock):
            continue
        dock.raise_()
        settle(app)
        need, need_from = needed_height(dock)
        shown = shown_height(dock)
        records.append({"name": dock.windowTitle(), "dock_px": [dock.width(), dock.height()],
                        "shown_px": shown, "needed_px": need,
                        "on_screen": dock.isVisible() and not dock.visibleRegion().isEmpty(),
                        "whole": shown >= need})
    return records


def measure() -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(*WINDOW)
    settle(app)
    wall, cpu = time.perf_counter(), time.process_time()
    viewer.open_sample("napari-mesoscale", "calcium")
    widgets = {}
    for title in OPENED:
        menu_action(viewer, "Plugins", "Mesoscale", title).trigger()
        settle(app, 100)
        [name] = [name for name in viewer.window.dock_widgets if name.startswith(title)]
        widgets[title] = viewer.window.dock_widgets[name]
    settle(app)
    just_opened = docks_on_screen(viewer)
    run_widget(app, widgets["Correct motion (calcium)"])
    run_widget(app, widgets["Detect point sources (calcium)"])
    widgets["Fit mesoscale model"]._add_docks()  # what a fit does when it starts
    settle(app, 400)
    window = viewer.window._qt_window
    result = {
        "window_px": [window.width(), window.height()],
        "canvas_px": [viewer.window._qt_viewer.canvas.native.width(),
                      viewer.window._qt_viewer.canvas.native.height()],
        "widgets_opened": just_opened,
        "all_docks": docks_on_screen(viewer),
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
    }
    result["each_tab_clicked"] = tabs_clicked(app, viewer)
    everything = result["all_docks"]
    result["summary"] = {
        "docks": len(everything),
        "usable": sum(r["usable"] for r in everything),
        "not_usable": [r["name"] for r in everything if not r["usable"]],
        "widgets_opened_usable": sum(r["usable"] for r in just_opened),
        "widgets_opened": len(just_opened),
    }
    viewer.close()
    return result


def code_version() -> dict:
    """Which checkout of the package was measured (its folder and git commit)."""
    import napari_mesoscale

    folder = Path(napari_mesoscale.__file__).parent
    commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(folder), "status", "--short", "--", "."],
                           capture_output=True, text=True).stdout.strip()
    return {"package": str(folder), "commit": commit, "uncommitted_changes": bool(dirty)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="key of this run in the JSON")
    args = parser.parse_args()
    result = measure()
    result["load_avg"] = os.getloadavg()
    result["code"] = code_version()
    result["command"] = " ".join(["python", *sys.argv])
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    write_json(RESULTS, {**previous, args.label: result})
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
