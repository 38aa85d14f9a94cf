"""The README's main job: the whole pipeline on the bundled sample, layers, bundle, screenshot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_mesoscale.cli import main


@pytest.mark.viewer
def test_demo_runs_the_whole_pipeline_and_its_bundle_restores(tmp_path, make_napari_viewer):
    assert main(["demo", "--output", str(tmp_path), "--epochs", "2"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    # detection on the sample finds its 100 cells and registration matches them
    assert 95 <= summary["point_sources"] <= 115
    assert summary["matched_to_connectome"] >= 95
    assert summary["detection_f1_vs_connectome"] > 0.9
    models = {row["model"] for row in summary["test_one_step"]}
    assert {"mesoscale model", "persistence", "ridge_var", "gru", "connectome_linear"} <= models
    assert {"motif_ari", "domain_ari"} <= set(summary)
    assert summary["sliders"][0] == "t"  # the time slider read "-4"

    from imageio.v3 import imread

    shot = imread(tmp_path / "screenshot.png")
    assert shot[..., :3].std() > 5

    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "results.mesoscale"), plugin="napari-mesoscale")
    names = [layer.name for layer in viewer.layers]
    assert {"functional domains", "motifs", "predicted activity", "point sources"} <= set(names)
    domains = np.asarray(viewer.layers["functional domains"].data)
    assert domains.max() >= 1
    cells = viewer.layers["point sources"]
    assert {"domain", "motif", "confidence"} <= set(cells.features.columns)
    assert viewer.layers["predicted activity"].data.ndim == 4
