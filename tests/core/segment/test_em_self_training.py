"""Test-time augmentation and self-training of the soma U-Net (both options, off by default)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.segment import detect_somata_em, match_points, train_soma_detector
from napari_mesoscale.segment.params import SomaDetectionParams, SomaTrainingParams
from napari_mesoscale.segment.unet import (
    BACKGROUND,
    SOMA,
    _apply_view,
    _test_time_views,
    _undo_view,
    pretrained_soma_detector,
    self_training_labels,
)
from napari_mesoscale.synth import make_toy_brain


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(50, n_frames=10, shape=(24, 64, 64), em=True, seed=0, render=None)


def _painted(brain, n_somata=3):
    """Somata 1..n painted (2) and a band of neuropil far from any soma (1)."""
    from scipy import ndimage

    annotations = np.zeros(brain.em.shape, np.uint8)
    annotations[np.isin(brain.em_labels, np.arange(1, n_somata + 1))] = SOMA
    far = ndimage.distance_transform_edt(brain.em_labels == 0) > 4
    band = np.zeros_like(far)
    band[:, :, ::9] = True
    annotations[far & band] = BACKGROUND
    return annotations


def test_the_views_are_16_distinct_and_undone():
    x = np.random.default_rng(0).normal(size=(4, 5, 5)).astype(np.float32)
    views = _test_time_views(True, True)
    assert len(views) == 16 and len(set(views)) == 16
    assert _test_time_views(True, False) == [v for v in views if not v[1]]
    assert _test_time_views(False, True) == [((), False)]
    seen = set()
    for flips, transpose in views:
        view = _apply_view(x, flips, transpose)
        seen.add(view.tobytes())
        assert np.array_equal(_undo_view(view, flips, transpose), x)
    assert len(seen) == 16


def test_augmented_probability_does_not_depend_on_orientation(brain):
    """Averaged over the flips and the y-x transpose, the probability of a flipped and
    transposed volume is that volume's probability flipped and transposed (one block)."""
    detector = pretrained_soma_detector(device="cpu")
    image = brain.em[:, :32, :32].astype(np.float32)
    plain = detector.predict_working(image)
    augmented = detector.predict_working(image, augment=True)
    turned = np.ascontiguousarray(image[::-1, :, ::-1].transpose(0, 2, 1))
    augmented_turned = detector.predict_working(turned, augment=True)
    back = augmented_turned.transpose(0, 2, 1)[::-1, :, ::-1]
    assert np.allclose(back, augmented, atol=1e-5)
    plain_turned = detector.predict_working(turned).transpose(0, 2, 1)[::-1, :, ::-1]
    assert not np.allclose(plain_turned, plain, atol=1e-3)  # the network alone is not


def test_options_default_off():
    assert SomaDetectionParams().test_time_augmentation is False
    assert SomaTrainingParams().self_training is False


def test_detection_with_test_time_augmentation_keeps_the_toy_brain(brain):
    detector = pretrained_soma_detector(device="cpu")
    common = {"voxel_size": brain.em_voxel_size, "cell_diameter": 8.0, "detector": detector}
    plain = detect_somata_em(brain.em, **common)
    augmented = detect_somata_em(brain.em, test_time_augmentation=True, **common)
    assert augmented.parameters["test_time_augmentation"] is True
    scores = [match_points(r.positions, brain.positions, 4.0).f1 for r in (plain, augmented)]
    assert scores[1] >= scores[0] - 0.05, scores


def test_self_training_labels_are_true_somata_and_keep_the_paint(brain):
    """The somata the prior and the classical path agree on are true somata (the toy brain's
    classical path is exact), the background dabs lie outside every soma, painted voxels stay."""
    annotations = _painted(brain)
    detector = pretrained_soma_detector(device="cpu")
    extended = self_training_labels(
        detector, brain.em, annotations, voxel_size=brain.em_voxel_size, cell_diameter=8.0
    )
    assert extended.shape == annotations.shape and extended.dtype == np.uint8
    painted = annotations > 0
    assert np.array_equal(extended[painted], annotations[painted])
    added_soma = (extended == SOMA) & ~painted
    added_background = (extended == BACKGROUND) & ~painted
    assert added_soma.sum() > 0 and added_background.sum() > 0
    assert np.mean(brain.em_labels[added_soma] > 0) > 0.95
    assert np.all(brain.em_labels[added_background] == 0)


def test_self_training_is_the_fine_tuning_then_one_more_round(brain):
    """``self_training=True`` = the default fine-tuning, then ``self_training_labels`` and
    ``self_training_epochs`` more epochs on them (the benchmark reuses this identity)."""
    annotations = _painted(brain)
    short = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16}
    common = {"voxel_size": brain.em_voxel_size, "device": "cpu", "seed": 0, **short}
    losses = []
    whole = train_soma_detector(
        brain.em,
        annotations,
        self_training=True,
        self_training_epochs=1,
        callback=lambda info: losses.append(info.get("fraction")),
        **common,
    )
    first = train_soma_detector(brain.em, annotations, **common)
    extended = self_training_labels(
        first, brain.em, annotations, voxel_size=brain.em_voxel_size, cell_diameter=8.0
    )
    again = train_soma_detector(brain.em, extended, detector=first, **common)
    for a, b in zip(
        whole.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert len(whole.history) == len(again.history) == len(first.history) + 1
    assert max(f for f in losses if f is not None) == pytest.approx(1.0)


def test_cell_diameter_reaches_the_self_training_detection_pass(monkeypatch):
    """``train_soma_detector(cell_diameter=…)`` is the diameter self-training detects with."""
    from napari_mesoscale.segment import unet

    seen = {}
    monkeypatch.setattr(unet, "train_soma_detector", lambda *a, **k: "detector")

    def labels(detector, volume, annotations, **kwargs):
        seen.update(kwargs)
        return annotations

    monkeypatch.setattr(unet, "self_training_labels", labels)
    volume, painted = np.zeros((4, 8, 8), np.float32), np.zeros((4, 8, 8), np.uint8)
    got = train_soma_detector(
        volume, painted, voxel_size=(1, 1, 1), self_training=True, cell_diameter=11.5
    )
    assert got == "detector" and seen["cell_diameter"] == 11.5
