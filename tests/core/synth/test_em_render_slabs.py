"""The EM-like volume is the same whether rendered whole or slab by slab along z (any split)."""

import numpy as np
import pytest

import napari_mesoscale.synth.toy_brain as toy_brain_mod
from napari_mesoscale.synth.toy_brain import make_toy_brain

# 300 neurons: more than one batch of 256 somata, so somata of different batches overlap
KW = dict(n_frames=20, render=None, em=True, em_voxel_size=(2.0, 1.0, 1.0), seed=0)


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(300, **KW)


def _splits(z: int) -> dict[str, list[int]]:
    return {
        "halves": [0, z // 2, z],
        "z25": [0, 25, z],
        "uneven": [0, 3, 17, 18, 40, z],
        "every7": [*range(0, z, 7), z],
        "rows1": list(range(z + 1)),
    }


def test_config_has_overlapping_somata_of_different_batches(brain):
    # the membrane zones (radius + 1 µm) of a soma among the first 256 and one after them meet,
    # so a split that regroups the somata would change voxels (it did before the fix)
    pos, rad = brain.positions, brain.diameters / 2
    d = np.linalg.norm(pos[:256, None, :] - pos[None, 256:, :], axis=2)
    reach = rad[:256, None] + rad[None, 256:] + 2 * 4 * 0.25
    assert len(pos) > 256
    assert (d < reach).sum() >= 5


@pytest.mark.parametrize("name", list(_splits(1)))
def test_em_slab_split_equals_whole(brain, name):
    r = brain._em_renderer
    z = r.shape[0]
    assert isinstance(brain.em, np.ndarray)  # small brain: rendered whole (eager)
    assert brain.em.shape == r.shape == (64, 128, 128)
    cuts = _splits(z)[name]
    em = np.concatenate([r.render(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    lab = np.concatenate([r.labels(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    assert em.dtype == np.uint8 and em.shape == brain.em.shape
    n_diff = int((em != brain.em).sum())
    assert n_diff == 0, f"split {cuts}: {n_diff} voxels differ from the whole volume"
    assert np.array_equal(lab, brain.em_labels)
    # not a blank volume: somata (labelled) are brighter than the neuropil on average
    assert em[lab > 0].mean() > em[lab == 0].mean() + 10


def test_lazy_em_equals_eager(brain, monkeypatch):
    monkeypatch.setattr(toy_brain_mod, "EAGER_EM_VOXELS", 0)
    monkeypatch.setattr(toy_brain_mod, "SLAB_VOXELS", 9 * 128 * 128)  # slabs of 9 z rows
    lazy = make_toy_brain(300, **KW)
    assert not isinstance(lazy.em, np.ndarray)
    assert lazy.em.chunks[0][:2] == (9, 9)
    assert np.array_equal(np.asarray(lazy.em), brain.em)
    assert np.array_equal(np.asarray(lazy.em_labels), brain.em_labels)
