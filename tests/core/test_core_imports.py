"""The core works without napari or Qt: scripts and GPU servers import it headless."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "napari_mesoscale",
    "napari_mesoscale.synth",
    "napari_mesoscale.io",
    "napari_mesoscale.segment",
    "napari_mesoscale.connectome",
    "napari_mesoscale.model",
    "napari_mesoscale.evaluate",
    "napari_mesoscale.forecasters",
    "napari_mesoscale.reproductions",
    "napari_mesoscale.motion",
    "napari_mesoscale.datasets",
    "napari_mesoscale.progress",
    "napari_mesoscale.params",
    "napari_mesoscale.baselines",
    "napari_mesoscale.workflow",
    "napari_mesoscale.cli",
]

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6',
                                  'magicgui', 'superqt', 'vispy'}:
            raise ImportError(f'core imported {name}')
sys.meta_path.insert(0, Block())
"""


def test_core_imports_without_napari_or_qt():
    code = BLOCKER + "".join(f"import {module}\n" for module in CORE_MODULES)
    code += "import napari_mesoscale as nm\nnm.make_toy_brain; nm.fit_mesoscale; nm.Connectome\n"
    # the CLI declares every subcommand, demo included, without importing napari
    code += "from napari_mesoscale.cli import build_parser\nbuild_parser()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_public_api_names_resolve():
    import napari_mesoscale as nm

    for name in nm.__all__:
        assert getattr(nm, name) is not None, name
