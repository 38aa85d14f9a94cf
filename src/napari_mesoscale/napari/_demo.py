"""The main job on the bundled sample data: ``napari-mesoscale demo``.

Detect cells in the sample's calcium movie, build the connectome from its tables, register
the cells to the connectome, fit the mesoscale model, score it against the baselines, and
show everything as napari layers. Writes into the output folder:

``results.mesoscale``  the results bundle (opening it in napari restores the layers)
``screenshot.png``     the viewer with domains, cells coloured by motif and the movie
``summary.json``       counts, held-out scores of model and baselines, F1 and ARI vs truth

With ``--show`` and a display, napari stays open with all layers.

The module lives on the napari side because it shows layers and takes a screenshot; it imports
napari only inside :func:`run_demo`, so ``napari-mesoscale --help`` and the other subcommands
stay headless.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``demo`` subcommand's arguments."""
    parser.add_argument("--output", default="demo_output", help="folder for results")
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: ModelConfig's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="keep napari open (needs a display)")


def run(args: argparse.Namespace) -> int:
    """Run the demo from parsed arguments."""
    summary = run_demo(
        args.output, epochs=args.epochs, seed=args.seed, show=args.show, progress=_print_progress
    )
    print(json.dumps(summary, indent=2))
    return 0


def _print_progress(info: dict[str, Any]) -> None:
    message = info.get("message", "")
    print(
        f"\r[{100 * float(info.get('fraction', 0)):5.1f}%] {message[:70]:<70}", end="", flush=True
    )
    if float(info.get("fraction", 0)) >= 1:
        print()


def run_sample_pipeline(*, epochs: int | None = None, seed: int = 0, callback: Any = None):
    """Run :func:`napari_mesoscale.workflow.run_pipeline` on the bundled sample."""
    import numpy as np

    from napari_mesoscale.io import read_table, read_volume
    from napari_mesoscale.napari._sample_data import sample_path
    from napari_mesoscale.workflow import run_pipeline

    movie = read_volume(sample_path("calcium"))
    return movie, run_pipeline(
        movie.data,
        voxel_size=movie.voxel_size,
        frame_rate=movie.frame_rate,
        neurons=read_table(sample_path("neurons")),
        synapses=read_table(sample_path("synapses")),
        stimulus=np.load(sample_path("stimulus")),
        epochs=epochs,
        seed=seed,
        callback=callback,
    )


def run_demo(
    output: str | os.PathLike,
    *,
    epochs: int | None = None,
    seed: int = 0,
    show: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the whole pipeline on the sample, write bundle, screenshot and summary.

    Parameters
    ----------
    output : path-like
        Folder receiving ``results.mesoscale``, ``screenshot.png`` and ``summary.json``.
    epochs, seed : int
        Training length (``None``: :class:`~napari_mesoscale.model.ModelConfig`'s) and seed.
    show : bool
        Start napari's event loop so the user can explore the layers.
    progress : callable, optional
        Receives progress dictionaries (``fraction``, ``message``).

    Returns
    -------
    dict
        The run's summary (also written to ``summary.json``).
    """
    import napari

    from napari_mesoscale.io import atomic_path
    from napari_mesoscale.napari._layers import axis_labels
    from napari_mesoscale.napari._reader import read_bundle_layers
    from napari_mesoscale.napari._units import with_units

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    movie, result = run_sample_pipeline(epochs=epochs, seed=seed, callback=progress)
    with tempfile.TemporaryDirectory() as scratch:
        bundle_path = result.to_bundle(model_folder=scratch).save(output / "results.mesoscale")

    viewer = napari.Viewer(show=True)  # a hidden canvas renders black screenshots
    [(data, attributes, _)] = with_units([(movie.data, {
        "name": "calcium movie",
        "scale": (1.0, *movie.voxel_size),
        "colormap": "gray",
        "opacity": 0.6,
        "axis_labels": axis_labels(movie.data.ndim, getattr(movie, "axes", None)),
    }, "image")])
    viewer.add_image(data, **attributes)
    for data, attributes, layer_type in read_bundle_layers(str(bundle_path)):
        getattr(viewer, f"add_{layer_type}")(data, **attributes)
    viewer.layers["predicted activity"].visible = False
    viewer.layers["functional domains"].opacity = 0.5
    viewer.dims.ndisplay = 3
    canvas = getattr(viewer, "canvas", None)  # napari ≥ 0.9; viewer.scale_bar before
    (canvas.overlays if canvas is not None else viewer).scale_bar.visible = True  # in µm
    viewer.dims.set_current_step(0, movie.data.shape[0] // 2)
    viewer.reset_view()
    # napari >= 0.9 keeps the camera on viewer.scene (viewer.camera is deprecated there)
    getattr(viewer, "scene", viewer).camera.angles = (-10, 25, 80)
    viewer.window.resize(1400, 900)
    screenshot = output / "screenshot.png"
    with atomic_path(screenshot) as temporary:
        png = temporary.with_suffix(".png")
        viewer.screenshot(str(png), canvas_only=False, flash=False)
        os.replace(png, temporary)
    summary = {
        **result.summary,
        "bundle": str(bundle_path),
        "screenshot": str(screenshot),
        "layers": [layer.name for layer in viewer.layers],
        "sliders": list(viewer.dims.axis_labels),
    }
    with atomic_path(output / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2, default=str))
    if show:
        napari.run()
    else:
        viewer.close()
    return summary
