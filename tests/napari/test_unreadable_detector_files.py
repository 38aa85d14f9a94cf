"""A file that is no soma detector, chosen in "Detect somata (EM)": one line saying so.

Random bytes that open like a pickle (0x80) and a plain pickle were refused as holding
"objects … which could run code when loaded", as if they were crafted detectors.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.viewer


def _text(folder):
    path = folder / "notes.txt"
    path.write_text("a text file, not a detector\n" * 20)
    return path


def _random_bytes(folder):
    path = folder / "detector.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _random_bytes_like_a_pickle(folder):
    path = folder / "detector.pt"
    path.write_bytes(b"\x80" + np.random.default_rng(0).bytes(4096))
    return path


def _plain_pickle(folder):
    path = folder / "detector.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    return path


def _detect_with(viewer, detector_path):
    """'Detect somata (EM)' started with the U-Net method and ``detector_path`` picked."""
    from napari_mesoscale.napari._detect_widgets import DetectSomataWidget

    viewer.add_image(np.zeros((8, 16, 16), dtype=np.float32), name="EM volume")
    widget = DetectSomataWidget(viewer)
    widget._method.value = "U-Net (trained detector)"
    widget._detector_file.value = detector_path
    widget.start()
    return widget


@pytest.mark.parametrize(
    "make",
    [_text, _random_bytes, _random_bytes_like_a_pickle, _plain_pickle],
    ids=["text", "random-bytes", "random-bytes-from-0x80", "plain-pickle"],
)
def test_detect_somata_says_the_file_is_no_detector(make_napari_viewer, tmp_path, make):
    path = make(tmp_path)
    widget = _detect_with(make_napari_viewer(), path)
    assert not widget.is_running
    message = widget.last_error
    assert message is not None
    assert "is not a readable soma detector" in message, message
    assert "no file written by torch.save" in message, message
    assert "could run code" not in message and "Traceback" not in message, message
    assert widget._status.value == f"Error: {message}"


def test_a_torch_file_of_something_else_is_no_saved_detector(make_napari_viewer, tmp_path):
    """Another torch.save dictionary (here a fit's) was "not a complete soma detector"."""
    path = tmp_path / "fit.pt"
    torch.save({"format": "napari-mesoscale-fit", "weights": torch.zeros(3)}, path)
    widget = _detect_with(make_napari_viewer(), path)
    assert widget.last_error is not None
    assert "is not a saved soma detector" in widget.last_error, widget.last_error
