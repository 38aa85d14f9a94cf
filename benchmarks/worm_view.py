"""The C. elegans sample as a user first sees it: how much of the canvas the worm fills.

Opens File ▸ Open Sample ▸ C. elegans in a fresh viewer (window 1200 × 800), then colours the
neurons by their measured response to AVAL with the README's console line, and measures what
is on screen: the display (2D / 3D), the worm's length across the canvas (the 302 somata
projected on the camera's right direction, times the zoom, over the canvas width; in 2D the
displayed y, x plane), the neurons drawn in the displayed slice (2D), the points' diameter in
pixels, whether the 2,000+ synapse lines are drawn, and the colour limits; a viewer that opens
in 2D is then switched to 3D (napari's toggle) and measured again. Screenshots of the
canvas go to ``--images`` (``<prefix>_class.png``, ``<prefix>_aval.png``, and the head view
with *Names* ticked, ``<prefix>_head.png``, and zoomed in twice as far, ``_head_zoom.png``).
With *Names* ticked in the head view and zoomed in 2x it counts the names on the canvas and
the pairs of them that overlap, from the boxes the renderer draws them in
(:func:`name_overlaps`, :func:`label_box_check`).

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


def wait_for_events(seconds: float = 0.5) -> None:
    """Let Qt run its queued events and timers (the names are placed once the camera rests)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def name_boxes(viewer, layer) -> tuple[list[str], np.ndarray]:
    """The names the renderer draws and their boxes on the canvas (x0, y0, x1, y1, px), read
    from napari's vispy text node: its strings and positions, mapped to canvas pixels by the
    node's own transform; each box centred on its anchor (napari centres the text), as wide
    as napari's own text measure (Qt's metrics of the node's font, times 96/72, napari's
    ``Text.get_width_height``) and as tall as the capitals (the names are capitals and
    digits). :func:`label_box_check` compares these widths with the rendered ink."""
    from qtpy.QtGui import QFont, QFontMetricsF

    node = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node.text
    strings = [str(t) for t in np.atleast_1d(np.asarray(node.text, dtype=object))]
    pos = np.atleast_2d(np.asarray(node.pos, dtype=float))
    mapped = np.asarray(node.get_transform("visual", "canvas").map(pos), dtype=float)
    anchors = mapped[:, :2] / mapped[:, 3:4]
    metrics = QFontMetricsF(QFont(node.face, int(node.font_size)))
    scale = 96 / 72
    keep = [i for i, t in enumerate(strings) if t]
    names = [strings[i] for i in keep]
    widths = np.array([metrics.horizontalAdvance(t) * scale for t in names])
    height = metrics.capHeight() * scale
    centre = anchors[keep]
    boxes = np.stack([centre[:, 0] - widths / 2, centre[:, 1] - height / 2,
                      centre[:, 0] + widths / 2, centre[:, 1] + height / 2], axis=1)
    return names, boxes.reshape(-1, 4)


def head_on_canvas(viewer, layer) -> int:
    """How many of the head's neurons (within PART_UM of the nose) have their name's anchor
    (a point diameter above the point) on the canvas, named or not."""
    node = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node.text
    positions = np.asarray(layer.data, dtype=float)
    head = positions[:, 1] <= positions[:, 1].min() + PART_UM
    pos = np.atleast_2d(np.asarray(node.pos, dtype=float))
    if len(pos) != len(positions):  # the node holds one entry per point once text is set
        return -1
    mapped = np.asarray(node.get_transform("visual", "canvas").map(pos), dtype=float)
    anchors = mapped[:, :2] / mapped[:, 3:4]
    native = viewer.window._qt_viewer.canvas.native
    inside = ((anchors >= 0) & (anchors <= (native.width(), native.height()))).all(axis=1)
    return int((inside & head).sum())


def names_cut(viewer, layer, names, boxes) -> np.ndarray:
    """Per drawn name, whether the disc of a point nearer the camera than the name's own point
    meets its box (the point is drawn over the name): points mapped to the canvas by the
    text node's transform, discs of the point diameter times the zoom, depth along the
    camera's view direction."""
    node = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node.text
    data = np.asarray(layer.data, dtype=float)
    mapped = np.asarray(node.get_transform("visual", "canvas").map(data[:, ::-1]), dtype=float)
    discs = mapped[:, :2] / mapped[:, 3:4]
    camera = viewer.scene.camera
    radius = float(np.median(layer.size)) * camera.zoom / 2
    depth = (data - np.asarray(camera.center)) @ np.asarray(camera.view_direction)
    row_of = {name: row for row, name in enumerate(layer.features["id"].astype(str))}
    rows = np.array([row_of[name] for name in names], dtype=int)
    nearest = np.clip(discs[None, :, :], boxes[:, None, :2], boxes[:, None, 2:])
    meets = ((nearest - discs[None, :, :]) ** 2).sum(axis=2) < radius**2
    meets &= depth[None, :] < depth[rows][:, None]
    meets[np.arange(len(rows)), rows] = False
    return meets.any(axis=1)


def name_overlaps(viewer, layer) -> dict:
    """How the names written on the canvas overlap: the names whose centre lies on the
    canvas, the pairs of them whose boxes intersect, the names in at least one such pair, and
    the names a point nearer the camera is drawn over (:func:`names_cut`); the head's (within
    PART_UM of the nose) counted apart, with the share of the head's neurons on the canvas
    that are named."""
    names, boxes = name_boxes(viewer, layer)
    cut = names_cut(viewer, layer, names, boxes)
    native = viewer.window._qt_viewer.canvas.native
    width, height = float(native.width()), float(native.height())
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # on the canvas: the name's centre is
    on = ((centre >= 0) & (centre <= (width, height))).all(axis=1)
    names = [n for n, o in zip(names, on, strict=True) if o]
    boxes = boxes[on]
    meets = ((boxes[:, None, 0] < boxes[None, :, 2]) & (boxes[None, :, 0] < boxes[:, None, 2])
             & (boxes[:, None, 1] < boxes[None, :, 3]) & (boxes[None, :, 1] < boxes[:, None, 3]))
    np.fill_diagonal(meets, False)
    positions = np.asarray(layer.data, dtype=float)
    ids = layer.features["id"].astype(str).to_numpy()
    head = set(ids[positions[:, 1] <= positions[:, 1].min() + PART_UM])
    in_head = np.array([n in head for n in names], dtype=bool)
    head_meets = meets[np.ix_(in_head, in_head)] if in_head.any() else np.zeros((0, 0), bool)
    head_points = head_on_canvas(viewer, layer)
    return {
        "names_cut_by_a_nearer_point": int(cut[on].sum()),
        "head_points_on_canvas": head_points,
        "head_named_share": float(in_head.sum() / head_points) if head_points > 0 else None,
        "names_on_canvas": len(names),
        "overlapping_pairs": int(np.triu(meets).sum()),
        "names_overlapping": int(meets.any(axis=1).sum()),
        "head_names_on_canvas": int(in_head.sum()),
        "head_overlapping_pairs": int(np.triu(head_meets).sum()),
        "name_height_px": float(boxes[0, 3] - boxes[0, 1]) if len(boxes) else None,
    }


def label_box_check(names=("RMED", "AVAL", "IL2DL", "SMDVR", "I3", "ADFL")) -> dict:
    """The box widths :func:`name_boxes` uses against the ink napari renders: each name alone,
    white on black, at the names' size, in a fresh viewer; ink = pixels brighter than 60."""
    import napari

    from napari_mesoscale.napari._worm_sample import NAME_SIZE

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    layer = viewer.add_points(np.zeros((1, 3)), size=0.01, face_color="black", border_width=0)
    viewer.dims.ndisplay = 3
    rows = []
    for name in names:
        layer.text = {"string": {"constant": name}, "color": "white", "size": NAME_SIZE}
        image = viewer.screenshot(canvas_only=True, flash=False)
        ink = np.argwhere(image[..., :3].max(axis=-1) > 60)
        _, boxes = name_boxes(viewer, layer)
        ink_px = [int(np.ptp(ink[:, 1]) + 1), int(np.ptp(ink[:, 0]) + 1)]
        box_px = [float(boxes[0, 2] - boxes[0, 0]), float(boxes[0, 3] - boxes[0, 1])]
        rows.append({"name": name, "ink_px": ink_px, "box_px": box_px})
    viewer.close()
    return {"names": rows,
            "width_box_minus_ink_px": [r["box_px"][0] - r["ink_px"][0] for r in rows],
            "height_box_minus_ink_px": [r["box_px"][1] - r["ink_px"][1] for r in rows]}


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
            if part == "head":  # Names ticked: how the names overlap, then zoomed in 2x
                control.names.setChecked(True)
                wait_for_events()
                result["names_head_view"] = name_overlaps(viewer, layer)
                if images is not None:
                    viewer.screenshot(f"{images}_head.png", canvas_only=True, flash=False)
                camera = viewer.scene.camera
                framed = (tuple(camera.center), camera.zoom)
                camera.zoom = framed[1] * 2  # on the middle of the head: the nerve ring
                wait_for_events()
                result["names_head_zoom_2x"] = name_overlaps(viewer, layer)
                if images is not None:
                    viewer.screenshot(f"{images}_head_zoom.png", canvas_only=True, flash=False)
                camera.center, camera.zoom = framed
                wait_for_events()
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
    result["label_box_check"] = label_box_check()
    result["load_avg"] = os.getloadavg()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    write_json(RESULTS, {**previous, args.label: result})
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
