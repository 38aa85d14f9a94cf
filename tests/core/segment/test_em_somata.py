"""EM soma detection: classical pipeline and label volumes against truth; U-Net training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_mesoscale.segment import (
    SomaDetector,
    detect_somata_em,
    label_table,
    match_points,
    somata_from_labels,
    train_soma_detector,
)
from napari_mesoscale.synth import make_toy_brain


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(50, n_frames=10, shape=(24, 64, 64), em=True, seed=0, render=None)


def test_classical_pipeline_finds_somata(brain):
    result = detect_somata_em(brain.em, voxel_size=brain.em_voxel_size, cell_diameter=8.0)
    match = match_points(result.positions, brain.positions, max_distance=4.0)
    assert match.f1 >= 0.9, match.scores()
    assert np.median(match.distances) < 1.5
    assert result.labels.shape == brain.em.shape
    assert result.voxel_size == tuple(brain.em_voxel_size)
    assert result.traces is None and result.dff is None
    assert list(result.features.columns[:4]) == ["id", "size", "brightness", "snr"]
    # labels overlap the true somata
    inside = brain.em_labels[result.labels > 0] > 0
    assert inside.mean() > 0.5
    assert "contrast" in result.summary_images


def test_classical_pipeline_on_dask(brain):
    import dask.array as da

    lazy = da.from_array(brain.em, chunks=(16, 64, 64))
    eager = detect_somata_em(brain.em, voxel_size=brain.em_voxel_size)
    result = detect_somata_em(lazy, voxel_size=brain.em_voxel_size)
    assert np.allclose(result.positions, eager.positions)


def test_from_labels_tells_somata_from_fragments():
    labels = np.zeros((40, 80, 80), dtype=np.int32)
    zz, yy, xx = np.indices(labels.shape)
    vs = np.array([1.0, 0.5, 0.5])
    centres = [(10, 20, 20), (25, 50, 50), (20, 20, 60)]
    for i, c in enumerate(centres, start=1):
        r2 = ((zz - c[0]) * vs[0]) ** 2 + ((yy - c[1]) * vs[1]) ** 2 + ((xx - c[2]) * vs[2]) ** 2
        labels[r2 <= 16] = i  # 8 µm somata
    labels[30:34, 5:75, 8:11] = 10  # a long neurite (70 voxels = 35 µm along y)
    labels[5:7, 70:72, 70:72] = 11  # a tiny fragment
    result = somata_from_labels(labels, voxel_size=vs, cell_diameter=8.0)
    assert len(result) == 3
    assert sorted(result.features["label"]) == [1, 2, 3]
    truth = np.array(centres) * vs
    match = match_points(result.positions, truth, max_distance=0.5)
    assert match.n_matched == 3
    assert set(np.unique(result.labels)) == {0, 1, 2, 3}
    table = label_table(labels, voxel_size=vs)
    neurite = table[table["label"] == 10].iloc[0]
    assert neurite["elongation"] > 3
    assert np.allclose(table[table["label"] == 1]["diameter_um"], 8.0, atol=0.5)


@pytest.mark.parametrize("thin", [False, True], ids=["all zero", "only thin segments"])
def test_from_labels_without_a_soma_sized_segment_gives_no_somata(thin):
    """An empty segmentation (or one of neurites only) failed with IndexError: its empty
    table's label column was not integer."""
    labels = np.zeros((20, 40, 40), dtype=np.uint8)
    if thin:
        labels[5:7, 2:38, 10:12] = 3  # a neurite: no voxel 1.6 µm inside it
    result = somata_from_labels(labels, voxel_size=(1.5, 0.75, 0.75), cell_diameter=8.0)
    assert len(result) == 0
    assert result.positions.shape == (0, 3)
    assert not result.labels.any() and result.labels.shape == labels.shape
    assert {"label", "diameter_um", "has_nucleus"} <= set(result.features.columns)
    assert result.parameters["n_labels"] == 0
    table = label_table(np.zeros_like(labels), voxel_size=(1.5, 0.75, 0.75))
    assert len(table) == 0 and table["label"].dtype == np.int64


def test_from_labels_on_toy_brain(brain):
    result = somata_from_labels(brain.em_labels, voxel_size=brain.em_voxel_size)
    match = match_points(result.positions, brain.positions, max_distance=2.0)
    assert match.f1 >= 0.95


@pytest.mark.parametrize("seed", [0, 1])
def test_from_labels_finds_every_soma_of_the_toy_truth_on_its_coarse_grid(seed):
    # the calcium grid (2 x 1 x 1 µm): an 8 µm soma is 4 voxels deep; measuring only its core
    # (1-4 voxels, elongation up to 4) missed 3 of 100 (seed 0) and 2 of 100 (seed 1)
    truth = make_toy_brain(100, n_frames=10, em=False, seed=seed, render=None)
    labels = np.asarray(truth.soma_labels)
    result = somata_from_labels(labels, voxel_size=truth.voxel_size, cell_diameter=8.0)
    match = match_points(result.positions, truth.positions, max_distance=2.0)
    assert match.n_matched == len(truth.positions) == 100
    assert len(result) == 100  # no false positives
    assert result.features["elongation"].max() < 1.5
    assert np.allclose(result.features["diameter_um"], 8.0, atol=1.0)


def test_from_labels_a_nucleus_cut_by_the_face_still_counts():
    # the volume's face is no neighbour: a soma whose nucleus the block cuts keeps it
    labels = np.zeros((24, 40, 60), dtype=np.int32)
    zz, yy, xx = np.indices(labels.shape)
    centres = np.array([(12, 20, 15), (1, 20, 42)], float)
    for i, c in enumerate(centres, start=1):
        r2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        labels[r2 <= 25] = i
        labels[r2 <= 6] = 100 + i
    labels[2:4, 5:8, 5:8] = 60  # a fragment without nucleus
    result = somata_from_labels(labels, voxel_size=(1.0, 1.0, 1.0), cell_diameter=10.0)
    assert result.parameters["nucleus_required"]
    assert sorted(result.features["label"]) == [1, 2]
    assert result.features["has_nucleus"].all()
    assert match_points(result.positions, centres, 2.0).n_matched == 2


def _annotations(brain, n_somata=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = brain.em_labels
    in_crop = np.unique(labels[:24, :64, :64])
    ids = rng.choice(in_crop[in_crop > 0], min(n_somata, int((in_crop > 0).sum())), replace=False)
    ann = np.zeros(labels.shape, dtype=np.uint8)
    ann[np.isin(labels, ids)] = 2
    far = ndimage.distance_transform_edt(labels == 0, sampling=brain.em_voxel_size) > 1.5
    background = np.argwhere(far)
    background = background[
        (background[:, 0] < 24) & (background[:, 1] < 64) & (background[:, 2] < 64)
    ]
    for c in background[rng.choice(len(background), 15, replace=False)]:
        sl = tuple(slice(max(0, a - 3), a + 4) for a in c)
        block = ann[sl]
        block[(block == 0) & far[sl]] = 1
    return ann


def test_unet_training_lowers_loss_and_saves(brain, tmp_path):
    import torch

    torch.set_num_threads(1)
    # a crop keeps the test fast: 24 x 32 x 32 working voxels at 1 µm
    crop = (slice(0, 24), slice(0, 64), slice(0, 64))
    em, ann = brain.em[crop], _annotations(brain)[crop]
    if not (ann == 2).any():
        pytest.skip("no painted soma in the crop")
    detector = train_soma_detector(
        em,
        ann,
        voxel_size=brain.em_voxel_size,
        epochs=6,
        steps_per_epoch=2,
        batch_size=2,
        patch_size=16,
        base_channels=4,
        learning_rate=1e-2,
        device="cpu",
    )
    losses = [h["loss"] for h in detector.history]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < losses[0]
    probability = detector.predict(em, block=256)
    factors, work_vs = detector.working_grid(brain.em_voxel_size)
    assert probability.shape == tuple(s // f for s, f in zip(em.shape, factors, strict=True))
    assert 0.0 <= probability.min() and probability.max() <= 1.0
    path = detector.save(tmp_path / "somata.pt")
    loaded = SomaDetector.load(path, device="cpu")
    assert np.allclose(loaded.predict(em, block=256), probability, atol=1e-5)
    # the detector plugs into the EM pipeline
    result = detect_somata_em(em, voxel_size=brain.em_voxel_size, detector=loaded)
    assert "probability" in result.summary_images
    assert result.parameters["method"] == "unet"


def test_strong_augmentation_trains_deterministically_and_light_is_the_default(brain):
    import torch

    from napari_mesoscale.segment.unet import _augmented

    torch.set_num_threads(1)
    crop = (slice(0, 24), slice(0, 64), slice(0, 64))
    em, ann = brain.em[crop], _annotations(brain)[crop]
    if not (ann == 2).any():
        pytest.skip("no painted soma in the crop")
    settings = dict(
        voxel_size=brain.em_voxel_size,
        epochs=3,
        steps_per_epoch=2,
        batch_size=2,
        patch_size=16,
        base_channels=4,
        device="cpu",
        seed=3,
    )
    strong = [
        train_soma_detector(em, ann, augmentation="strong", **settings).history for _ in range(2)
    ]
    assert [h["loss"] for h in strong[0]] == [h["loss"] for h in strong[1]]
    light = train_soma_detector(em, ann, **settings).history
    assert [h["loss"] for h in light] != [h["loss"] for h in strong[0]]
    # the patch keeps its labels where they were; strong augmentation changes its grey levels
    patch = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    labels = np.arange(8**3).reshape(8, 8, 8)
    xl, yl = _augmented(patch, labels, np.random.default_rng(1), "light")
    xs, ys = _augmented(patch, labels, np.random.default_rng(1), "strong")
    assert np.array_equal(yl, ys) and xs.shape == patch.shape
    assert not np.allclose(xl, xs)
    with pytest.raises(ValueError, match="augmentation"):
        train_soma_detector(em, ann, augmentation="wild", **settings)


def test_block_prediction_matches_one_block(brain):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    from napari_mesoscale.segment.unet import build_unet

    detector = SomaDetector(
        model=build_unet(4, 2).eval(),
        voxel_size=tuple(brain.em_voxel_size),
        resolution=1.0,
        config={"base_channels": 4, "depth": 2, "margin": 20},
    )
    crop = brain.em[:32, :64, :64]
    whole = detector.predict(crop, block=256)
    blocks = detector.predict(crop, block=56)
    # blocks overlapping by the network's reach reproduce the whole-volume prediction
    assert np.abs(whole - blocks).max() < 1e-3


# -- bad input ------------------------------------------------------------------------------
def test_em_bad_input(brain):
    with pytest.raises(ValueError, match="3D"):
        detect_somata_em(brain.em[0], voxel_size=(0.5, 0.5), cell_diameter=8.0)
    with pytest.raises(ValueError, match="voxel_size"):
        detect_somata_em(brain.em, voxel_size=(0.5, 0.5))
    with pytest.raises(ValueError, match="smaller than one voxel"):
        detect_somata_em(brain.em, voxel_size=brain.em_voxel_size, cell_diameter=0.1)
    with pytest.raises(ValueError, match="NaN"):
        em = brain.em.astype(np.float32)
        em[3, 3, 3] = np.nan
        detect_somata_em(em, voxel_size=brain.em_voxel_size)
    with pytest.warns(UserWarning, match="constant"):
        result = detect_somata_em(np.full((20, 40, 40), 7, np.uint8), voxel_size=(1, 0.5, 0.5))
    assert len(result) == 0 and result.labels.shape == (20, 40, 40)
    with pytest.warns(UserWarning, match="empty"):
        assert len(detect_somata_em(np.zeros((0, 4, 4)), voxel_size=(1, 1, 1))) == 0
    with pytest.raises(ValueError, match="integers"):
        somata_from_labels(np.zeros((4, 4, 4), float), voxel_size=(1, 1, 1))


def test_training_bad_annotations(brain):
    ann = np.zeros(brain.em.shape, np.uint8)
    with pytest.raises(ValueError, match="both"):
        train_soma_detector(brain.em, ann, voxel_size=brain.em_voxel_size, epochs=1)
    with pytest.raises(ValueError, match="shape"):
        train_soma_detector(brain.em, ann[:-1], voxel_size=brain.em_voxel_size, epochs=1)
    ann[0, 0, 0] = 5
    with pytest.raises(ValueError, match="only hold"):
        train_soma_detector(brain.em, ann, voxel_size=brain.em_voxel_size, epochs=1)


def test_training_stops_at_once_when_cancelled(brain):
    from napari_mesoscale.segment import DetectionCancelled

    crop = (slice(0, 24), slice(0, 64), slice(0, 64))
    ann = _annotations(brain)[crop]
    seen = []

    def callback(info):
        seen.append(info)
        return False

    with pytest.raises(DetectionCancelled):
        train_soma_detector(
            brain.em[crop],
            ann,
            voxel_size=brain.em_voxel_size,
            epochs=50,
            steps_per_epoch=10,
            batch_size=1,
            patch_size=16,
            base_channels=2,
            device="cpu",
            callback=callback,
        )
    assert len(seen) == 1  # stopped after the first step, not the first epoch


def test_soma_diameter_is_a_deprecated_alias_of_cell_diameter():
    labels = np.zeros((20, 40, 40), np.int32)
    labels[5:13, 10:26, 10:26] = 1
    vs = (1.0, 0.5, 0.5)
    new = somata_from_labels(labels, voxel_size=vs, cell_diameter=8.0)
    with pytest.warns(DeprecationWarning, match="soma_diameter"):
        old = somata_from_labels(labels, voxel_size=vs, soma_diameter=8.0)
    assert np.allclose(new.positions, old.positions) and len(new) == 1
    assert new.parameters["cell_diameter"] == 8.0
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        somata_from_labels(labels, voxel_size=vs, cell_diameter=6.0, soma_diameter=8.0)
    with (
        pytest.warns(DeprecationWarning, match="soma_diameter"),
        pytest.raises(ValueError, match="smaller than one voxel"),
    ):
        detect_somata_em(np.zeros((8, 8, 8), np.uint8), voxel_size=vs, soma_diameter=0.1)


def test_em_defaults_come_from_the_dataclass():
    import inspect

    from napari_mesoscale.segment import SomaDetectionParams, SomaTrainingParams

    for function, params in (
        (detect_somata_em, SomaDetectionParams),
        (train_soma_detector, SomaTrainingParams),
    ):
        signature = inspect.signature(function).parameters
        for name in params.specs():
            assert signature[name].default is None, (function.__name__, name)
