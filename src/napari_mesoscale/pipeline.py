"""The main job on the bundled sample data: ``napari-mesoscale demo``.

It opens the toy brain's sample layers, writes them as a results bundle and saves a
screenshot of the viewer; with ``--show`` and a display it leaves napari open.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``demo`` subcommand's arguments."""
    parser.add_argument("--output", default="demo_output", help="folder for results")
    parser.add_argument("--show", action="store_true", help="keep napari open (needs a display)")


def run(args: argparse.Namespace) -> int:
    """Run the demo from parsed arguments."""
    summary = run_demo(args.output, show=args.show)
    print(json.dumps(summary, indent=2))
    return 0


def sample_layers() -> list[Any]:
    """All layer-data tuples of the bundled sample (calcium, EM, connectome)."""
    from napari_mesoscale.napari._sample_data import calcium_sample, connectome_sample, em_sample

    return [*calcium_sample(), *em_sample(), *connectome_sample()]


def run_demo(output: str | os.PathLike, *, show: bool = False) -> dict[str, Any]:
    """Open the sample layers in a viewer, save a screenshot and a results bundle.

    Parameters
    ----------
    output : path-like
        Folder receiving ``screenshot.png``, ``sample.mesoscale`` and ``summary.json``.
    show : bool
        Start napari's event loop so the user can explore the layers.

    Returns
    -------
    dict
        What was written and a summary of the layers.
    """
    import napari

    from napari_mesoscale.io import ResultsBundle, Volume, atomic_path
    from napari_mesoscale.napari._sample_data import sample_path

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)  # a hidden canvas renders black screenshots
    for data, attributes, layer_type in sample_layers():
        getattr(viewer, f"add_{layer_type}")(data, **attributes)
    viewer.dims.ndisplay = 3
    viewer.layers["EM volume"].visible = False
    viewer.layers["EM somata (truth)"].visible = False
    viewer.reset_view()
    screenshot = output / "screenshot.png"
    with atomic_path(screenshot) as temporary:
        viewer.screenshot(str(temporary.with_suffix(".png")), canvas_only=True)
        os.replace(temporary.with_suffix(".png"), temporary)

    from napari_mesoscale.io import read_table, read_volume

    neurons = read_table(sample_path("neurons"))
    somata = read_volume(sample_path("somata"))
    bundle = ResultsBundle(
        tables={"neurons": neurons, "synapses": read_table(sample_path("synapses"))},
        volumes={"somata_truth": Volume(somata.data, "ZYX", somata.voxel_size)},
        metadata={"source": "bundled toy-brain sample"},
    )
    bundle_path = bundle.save(output / "sample.mesoscale")
    summary = {
        "screenshot": str(screenshot),
        "bundle": str(bundle_path),
        "layers": [layer.name for layer in viewer.layers],
        "neurons": int(len(neurons)),
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    if show:
        napari.run()
    else:
        viewer.close()
    return summary
