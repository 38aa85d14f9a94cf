"""The C. elegans sample as a user first sees it: how much of the canvas the worm fills.

Opens File ▸ Open Sample ▸ C. elegans in a fresh viewer (window 1200 × 800), then colours the
neurons by their measured response to AVAL with the README's console line, and measures what
is on screen: the display (2D / 3D), the worm's length across the canvas (the 302 somata
projected on the camera's right direction, times the zoom, over the canvas width; in 2D the
displayed y, x plane), the neurons drawn in the displayed slice (2D), the points' diameter in
pixels, whether the 2,000+ synapse lines are drawn, and the colour limits; a viewer that opens
in 2D is then switched to 3D (napari's toggle) and measured again. Screenshots of the
canvas go to ``--images`` (``<prefix>_class.png``, ``<prefix>_aval.png``, and the head view
with *Names* ticked, ``<prefix>_head.png``).

Run it on this branch and on an older checkout (``PYTHONPATH=<old>/src``) for a before/after
pair; needs a display (``xvfb-run -a``) and the ``worm`` data packages::

    xvfb-run -a python benchmarks/worm_view.py --label after --images /tmp/worm

Writes ``benchmarks/results/worm_view.json`` (one entry per ``--label``, merged).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "worm_view.json"
#: µm from the nose (head) or from the posterior-most soma (tail) of a part
PART_UM = 60.0


def on_screen(viewer, layer) -> dict:
    """What the canvas shows of the neurons layer."""
    positions = np.asarray(layer.data, dtype=float)
    camera = getattr(viewer, "scene", viewer).camera
    native = viewer.window._qt_viewer.canvas.native
    width, height = float(native.width()), float(native.height())
    figures = {"ndisplay": viewer.dims.ndisplay, "canvas_px": [width, height],
               "zoom_px_per_um": camera.zoom, "angles_deg": list(camera.angles)}
    if viewer.dims.ndisplay == 3:
        right = np.cross(camera.view_direction, camera.up_direction)
        up = np.asarray(camera.up_direction)
        figures["length_across_canvas"] = float(np.ptp(positions @ right) * camera.zoom / width)
        figures["height_of_canvas"] = float(np.ptp(positions @ up) * camera.zoom / height)
        figures["neurons_drawn"] = len(positions)
    else:
        displayed = list(viewer.dims.displayed)
        span = np.ptp(positions[:, displayed], axis=0) * camera.zoom
        figures["length_across_canvas"] = float(span[1] / width)
        figures["height_of_canvas"] = float(span[0] / height)
        figures["neurons_drawn"] = len(layer._view_data)  # those in the displayed slice
    figures["point_diameter_px"] = float(np.median(layer.size) * camera.zoom)
    return figures


def part_on_screen(viewer, layer, part: str) -> dict:
    """What the canvas shows of one part of the worm (3D): its span over the canvas, the
    median distance (px) from each of its neurons to its nearest neighbour on screen, and how
    many of its neurons are drawn inside the canvas."""
    from scipy.spatial import cKDTree

    positions = np.asarray(layer.data, dtype=float)
    along = positions[:, 1]  # body axis, anterior at small y (the same parts on any checkout)
    keep = along <= along.min() + PART_UM if part == "head" else along >= along.max() - PART_UM
    positions = positions[keep]
    camera = viewer.scene.camera
    native = viewer.window._qt_viewer.canvas.native
    width, height = float(native.width()), float(native.height())
    up = np.asarray(camera.up_direction)
    right = np.cross(camera.view_direction, up)
    offset = positions - np.asarray(camera.center)
    screen = np.stack([offset @ right * camera.zoom + width / 2,
                       -(offset @ up) * camera.zoom + height / 2], axis=1)
    inside = (screen[:, 0] >= 0) & (screen[:, 0] <= width) & (screen[:, 1] >= 0) & (
        screen[:, 1] <= height)
    spacing = cKDTree(screen).query(screen, k=2)[0][:, 1]
    return {
        "part": part,
        "neurons": len(positions),
        "span_px": [float(np.ptp(screen[:, 0])), float(np.ptp(screen[:, 1]))],
        "width_share": float(np.ptp(screen[:, 0]) / width),
        "height_share": float(np.ptp(screen[:, 1]) / height),
        "canvas_share": float(max(np.ptp(screen[:, 0]) / width, np.ptp(screen[:, 1]) / height)),
        "median_neighbour_px": float(np.median(spacing)),
        "inside_canvas": int(inside.sum()),
        "point_diameter_px": float(np.median(layer.size) * camera.zoom),
    }


def hover_text(viewer, layer, name: str) -> dict:
    """The status bar's and the tooltip's text with the cursor on neuron ``name`` (3D)."""
    row = int(np.flatnonzero(layer.features["id"].astype(str) == name)[0])
    viewer.layers.selection.active = layer
    viewer.cursor.position = tuple(np.asarray(layer.data[row], dtype=float))
    viewer.cursor._view_direction = np.asarray(viewer.scene.camera.view_direction)
    viewer.mouse_over_canvas = True
    status, tooltip = viewer._calc_status_from_cursor()
    viewer.mouse_over_canvas = False
    status = status if isinstance(status, str) else " ".join(map(str, status.values()))
    return {"neuron": name, "tooltip_shown": bool(viewer.tooltip.visible), "tooltip": tooltip,
            "status_names_it": f"id: {name}" in status, "status": status}


def head_named_share(viewer, layer) -> float:
    """Share of the head's neurons whose own name the status bar shows with the cursor on
    their centre (the others are hidden behind a neighbour nearer the camera)."""
    positions = np.asarray(layer.data, dtype=float)
    names = layer.features["id"].astype(str).to_numpy()
    head = np.flatnonzero(positions[:, 1] <= positions[:, 1].min() + PART_UM)
    named = 0
    for row in head:
        named += hover_text(viewer, layer, names[row])["status_names_it"]
    return named / len(head)


def measure(images: Path | None) -> dict:
    import napari

    from napari_mesoscale.napari import colour_by_response

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    wall, cpu = time.perf_counter(), time.process_time()
    viewer.open_sample("napari-mesoscale", "celegans")
    opened = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    layer = viewer.layers["C. elegans neurons"]
    synapses = next(item for item in viewer.layers if "synapses" in item.name)
    result = {"open": opened, "as_opened": on_screen(viewer, layer),
              "synapse_lines_drawn": bool(synapses.visible), "n_synapse_lines": len(synapses.data)}
    if viewer.dims.ndisplay == 2:  # what the 3D toggle then shows, with napari's camera
        viewer.dims.ndisplay = 3
        result["after_3d_toggle"] = on_screen(viewer, layer)
    if images is not None:
        viewer.screenshot(f"{images}_class.png", canvas_only=True, flash=False)
    result["head_as_opened"] = part_on_screen(viewer, layer, "head")
    result["hover"] = hover_text(viewer, layer, "AVAL")
    result["head_named_share_as_opened"] = head_named_share(viewer, layer)
    window = viewer.window
    if "C. elegans view" in window.dock_widgets:  # the view control: its buttons clicked
        control = window.dock_widgets["C. elegans view"]._worm_view_control
        buttons = control.buttons
        for part in ("head", "tail"):
            buttons[part].click()
            result[f"{part}_view"] = part_on_screen(viewer, layer, part)
            if part == "head":
                result["hover_head_view"] = hover_text(viewer, layer, "AVAL")
                result["head_named_share_head_view"] = head_named_share(viewer, layer)
            if images is not None and part == "head":  # with Names ticked, after measuring
                control.names.setChecked(True)
                viewer.screenshot(f"{images}_head.png", canvas_only=True, flash=False)
                control.names.setChecked(False)
        buttons["whole"].click()
        result["whole_view_back"] = on_screen(viewer, layer)
        result["canvas_after_view_dock"] = [
            float(window._qt_viewer.canvas.native.width()),
            float(window._qt_viewer.canvas.native.height()),
        ]
    response = colour_by_response(layer, "AVAL")
    mapped = str(getattr(layer, "face_color_mode", "direct")).endswith("colormap")
    limits = layer.face_contrast_limits if mapped else None
    result["coloured_by_aval"] = {
        "observed_responders": int(np.isfinite(response).sum()),
        "colour_limits": None if limits is None else [float(v) for v in limits],
        "colorbar": bool(getattr(getattr(layer, "face_colorbar", None), "visible", False)),
        "max_abs_response": float(np.nanmax(np.abs(response))),
    }
    if images is not None:
        viewer.screenshot(f"{images}_aval.png", canvas_only=True, flash=False)
    viewer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="key of this run in the JSON")
    parser.add_argument("--images", type=Path, default=None, help="screenshot path prefix")
    args = parser.parse_args()
    result = measure(args.images)
    result["load_avg"] = os.getloadavg()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    write_json(RESULTS, {**previous, args.label: result})
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
