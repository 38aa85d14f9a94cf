"""Toy brain: the ground truth everything else is checked against."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from napari_mesoscale.progress import Cancelled
from napari_mesoscale.synth import (
    MOTIF_NAMES,
    ToyBrain,
    ToyBrainCancelled,
    ToyBrainParams,
    make_toy_brain,
)


@pytest.fixture(scope="module")
def brain() -> ToyBrain:
    """Dynamics-sized brain: all four motifs, long enough for spectra, no rendering."""
    return make_toy_brain(240, n_frames=1000, shape=None, render=None, em=False, seed=3)


@pytest.fixture(scope="module")
def small() -> ToyBrain:
    """Rendering-sized brain: eager movie and EM."""
    return make_toy_brain(
        30, n_frames=40, shape=(20, 64, 64), render="eager", em=True, seed=1, snr=8.0
    )


def _members(b: ToyBrain, motif: str) -> list[np.ndarray]:
    k = b.motif_names.index(motif)
    insts = np.unique(b.instance[b.motif == k])
    out = []
    for i in insts:
        mem = np.flatnonzero(b.instance == i)
        out.append(mem[np.argsort(b.neurons["order"].to_numpy()[mem])])
    return out


# ---------------------------------------------------------------- structure


def test_counts_and_shapes(brain: ToyBrain) -> None:
    n, t = 240, 1000
    assert brain.positions.shape == (n, 3)
    assert brain.activity.shape == brain.spikes.shape == brain.calcium.shape == (t, n)
    assert brain.stimulus.shape[0] == t
    assert brain.motif_names == MOTIF_NAMES
    assert set(np.unique(brain.motif)) == set(range(4))
    assert len(brain.neurons) == n
    assert list(brain.neurons.columns[:9]) == [
        "id",
        "z",
        "y",
        "x",
        "motif",
        "motif_name",
        "instance",
        "sign",
        "diameter",
    ]
    sizes = np.bincount(brain.instance)
    assert sizes.min() >= 5 and sizes.max() <= 30
    assert brain.instance.max() + 1 == brain.n_instances == len(brain.instance_motif)
    # each instance has one motif type, matching instance_motif
    for i in range(brain.n_instances):
        assert np.all(brain.motif[brain.instance == i] == brain.instance_motif[i])
    assert brain.spikes.dtype.kind == "i" and brain.spikes.min() >= 0
    assert brain.activity.min() >= 0 and 0.05 < brain.activity.mean() < 1.0
    assert brain.movie is None and brain.em is None
    assert brain.soma_labels.shape == brain.shape


def test_somata_inside_and_not_overlapping(brain: ToyBrain) -> None:
    from scipy.spatial import cKDTree

    extent = (np.asarray(brain.shape) - 1) * brain.voxel_size
    r = brain.diameters[:, None] / 2
    assert np.all(brain.positions - r >= 0) and np.all(brain.positions + r <= extent)
    d, _ = cKDTree(brain.positions).query(brain.positions, k=2)
    assert np.all(d[:, 1] >= brain.diameters.max() - 1e-9)
    # instances are compact clusters
    for i in range(brain.n_instances):
        p = brain.positions[brain.instance == i]
        assert np.linalg.norm(p - p.mean(0), axis=1).max() < 30.0


def test_synapses_match_adjacency(brain: ToyBrain) -> None:
    syn = brain.synapses
    n = brain.n_neurons
    assert list(syn.columns) == ["pre", "post", "z", "y", "x", "weight", "sign"]
    counts = np.zeros((n, n))
    np.add.at(counts, (syn["pre"].to_numpy(), syn["post"].to_numpy()), 1)
    signs = brain.neurons["sign"].to_numpy()
    assert np.array_equal(brain.adjacency.toarray(), signs[:, None] * counts)
    assert np.all(syn["sign"].to_numpy() == signs[syn["pre"].to_numpy()])
    # it is a multigraph and weights add up per pair to the dynamical coupling
    assert counts.max() > 1
    w = np.zeros((n, n))
    np.add.at(w, (syn["pre"].to_numpy(), syn["post"].to_numpy()), syn["weight"].to_numpy())
    assert np.allclose(w, brain.weights.toarray())
    assert (brain.weights != 0).nnz == brain.adjacency.nnz
    assert np.array_equal(np.sign(brain.weights.toarray()), np.sign(brain.adjacency.toarray()))
    # synapses sit at the post-synaptic soma surface, inside the volume
    post = brain.positions[syn["post"].to_numpy()]
    dist = np.linalg.norm(syn[["z", "y", "x"]].to_numpy() - post, axis=1)
    assert np.allclose(dist, brain.diameters[syn["post"].to_numpy()] / 2 + 0.4)
    # most synapses are inside instances, a few between them
    same = brain.instance[syn["pre"]] == brain.instance[syn["post"]]
    assert 0.6 < same.mean() < 1.0


def test_determinism_by_seed() -> None:
    kw = dict(n_frames=30, shape=(20, 64, 64), render="eager", em=True)
    a = make_toy_brain(30, seed=5, **kw)
    b = make_toy_brain(30, seed=5, **kw)
    c = make_toy_brain(30, seed=6, **kw)
    for name in (
        "positions",
        "activity",
        "spikes",
        "calcium",
        "stimulus",
        "movie",
        "em",
        "soma_labels",
        "em_labels",
    ):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.adjacency != b.adjacency).nnz == 0
    assert a.synapses.equals(b.synapses) and a.neurons.equals(b.neurons)
    assert not np.array_equal(a.positions, c.positions)
    assert not np.array_equal(a.activity, c.activity)
    assert a.params == b.params and a.params["seed"] == 5


def test_params_json(small: ToyBrain) -> None:
    import json

    p = json.loads(json.dumps(small.params))
    assert p["n_neurons"] == 30 and p["voxel_size"] == [2.0, 1.0, 1.0]
    assert p["noise_std"] == small.noise_std
    again = make_toy_brain(
        **{
            k: p[k]
            for k in (
                "n_neurons",
                "n_frames",
                "voxel_size",
                "frame_rate",
                "motif_types",
                "instance_size",
                "soma_diameter",
                "snr",
                "drift",
                "render",
                "em",
                "em_voxel_size",
                "seed",
            )
        },
        shape=p["shape"],
    )
    assert np.array_equal(again.activity, small.activity)


# ---------------------------------------------------------------- dynamics


def test_one_step_markov_noise_floor(brain: ToyBrain) -> None:
    x = brain.activity.astype(float)
    pred = brain.one_step()[:-1]
    resid = x[1:] - pred
    # residual is the injected noise: std ≈ noise_std (a bit less where clipped at 0)
    assert 0.7 * brain.noise_std < resid.std() < 1.05 * brain.noise_std
    var = x[1:].var(0)
    r2_oracle = 1 - (resid**2).mean(0) / var
    r2_persist = 1 - ((x[1:] - x[:-1]) ** 2).mean(0) / var
    assert np.median(r2_oracle) > 0.9
    assert np.median(r2_oracle) - np.median(r2_persist) > 0.2
    for k in range(4):
        sel = brain.motif == k
        assert np.median(r2_oracle[sel]) > np.median(r2_persist[sel]), brain.motif_names[k]


def test_oscillator_spectrum_peaks_at_frequency(brain: ToyBrain) -> None:
    f0 = brain.params["osc_frequency"]
    for mem in _members(brain, "oscillator"):
        x = brain.activity[:, mem].astype(float)
        f = np.fft.rfftfreq(len(x), 1 / brain.frame_rate)
        p = (np.abs(np.fft.rfft(x - x.mean(0), axis=0)) ** 2).mean(1)
        peak = f[1:][np.argmax(p[1:])]
        assert abs(peak - f0) < 0.1, peak
    # the same data from another motif has no such peak
    x = brain.activity[:, np.concatenate(_members(brain, "integrator"))].astype(float)
    p = (np.abs(np.fft.rfft(x - x.mean(0), axis=0)) ** 2).mean(1)
    assert abs(f[1:][np.argmax(p[1:])] - f0) > 0.1


def test_integrator_follows_low_passed_stimulus(brain: ToyBrain) -> None:
    lam = brain.params["dynamics"]["int_self"] + brain.params["dynamics"]["int_coupling"]
    for mem in _members(brain, "integrator"):
        ch = int(np.argmax(np.abs(brain.dynamics.gain[mem]).sum(0)))
        u = brain.stimulus[:, ch].astype(float)
        m = brain.activity[:, mem].mean(1)
        low = lfilter([1.0], [1.0, -lam], u)
        c_low = np.corrcoef(m[1:], low[:-1])[0, 1]
        c_raw = np.corrcoef(m[1:], u[:-1])[0, 1]
        assert c_low > 0.8 and c_low > c_raw + 0.3


def test_chain_members_lag_one_frame(brain: ToyBrain) -> None:
    for mem in _members(brain, "chain"):
        for a, b in zip(mem[:-1], mem[1:], strict=True):
            xa = brain.activity[:, a] - brain.activity[:, a].mean()
            xb = brain.activity[:, b] - brain.activity[:, b].mean()
            cc = [float(np.dot(xa[: len(xa) - lag], xb[lag:])) for lag in range(4)]
            assert int(np.argmax(cc)) == 1


def test_wta_competes_within_instance(brain: ToyBrain) -> None:
    for mem in _members(brain, "wta"):
        if len(mem) < 6:
            continue
        x = brain.activity[:, mem].astype(float)
        # normalisation: the group total varies less than independent members would
        assert x.sum(1).var() / x.var(0).sum() < 0.6
        c = np.corrcoef(x.T)[np.triu_indices(len(mem), 1)]
        assert np.nanmean(c) < 0
    # an integrator instance, by contrast, moves together
    mem = max(_members(brain, "integrator"), key=len)
    x = brain.activity[:, mem].astype(float)
    assert x.sum(1).var() / x.var(0).sum() > 2


def test_motifs_separable_by_ar_coefficients(brain: ToyBrain) -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x = brain.activity.astype(float)
    feats = []
    for i in range(x.shape[1]):
        a = np.c_[x[1:-1, i], x[:-2, i], np.ones(len(x) - 2)]
        coef, *_ = np.linalg.lstsq(a, x[2:, i], rcond=None)
        feats.append(coef[:2])
    feats = np.asarray(feats)
    feats = (feats - feats.mean(0)) / feats.std(0)
    lab = KMeans(4, n_init=10, random_state=0).fit_predict(feats)
    assert adjusted_rand_score(brain.motif, lab) > 0.7


def test_spikes_and_calcium(brain: ToyBrain) -> None:
    from napari_mesoscale.synth.dynamics import calcium_kernel

    fr = brain.frame_rate
    rate = brain.spikes.mean(0) * fr
    expected = brain.activity.mean(0) * brain.params["max_rate"]
    assert np.corrcoef(rate, expected)[0, 1] > 0.95
    assert abs(rate.mean() / expected.mean() - 1) < 0.05
    # calcium is exactly the spikes convolved with the indicator kernel
    p = brain.params
    k = calcium_kernel(fr, p["tau_rise"], p["tau_decay"], brain.n_frames)
    k *= p["dynamics"]["calcium_amplitude"]
    assert k.argmax() <= 2 and k[-1] < 1e-6
    for i in (0, 17, brain.n_neurons - 1):
        direct = np.convolve(brain.spikes[:, i].astype(float), k)[: brain.n_frames]
        assert np.allclose(brain.calcium[:, i], direct, rtol=1e-4, atol=1e-4)
    assert brain.calcium.min() > -1e-6


# ---------------------------------------------------------------- rendering


def test_movie_and_labels(small: ToyBrain) -> None:
    mov = small.movie
    assert isinstance(mov, np.ndarray) and mov.dtype == np.uint16
    assert mov.shape == (small.n_frames, *small.shape)
    lab = small.soma_labels
    assert lab.dtype == np.int32 and lab.shape == small.shape
    assert set(np.unique(lab)) == set(range(small.n_neurons + 1))
    # each label's centroid is its neuron's position
    for i in (0, small.n_neurons // 2, small.n_neurons - 1):
        cen = np.argwhere(lab == i + 1).mean(0) * small.voxel_size
        assert np.linalg.norm(cen - small.positions[i]) < 1.0


def test_movie_brighter_when_spiking(small: ToyBrain) -> None:
    lab = small.soma_labels.reshape(-1)
    mov = small.movie.reshape(small.n_frames, -1).astype(float)
    wins = 0
    tested = 0
    for i in range(small.n_neurons):
        f = mov[:, lab == i + 1].mean(1)
        c = small.calcium[:, i]
        hi, lo = c > np.quantile(c, 0.8), c < np.quantile(c, 0.2)
        if c.max() - c.min() < 0.3:
            continue
        tested += 1
        wins += f[hi].mean() > f[lo].mean()
        assert np.corrcoef(f, c)[0, 1] > 0.5
    assert tested >= 10 and wins == tested


def test_lazy_chunk_equals_eager(small: ToyBrain) -> None:
    lazy = small.render_movie(chunk=7)
    assert lazy.shape == small.movie.shape and lazy.chunks[0][0] == 7
    assert np.array_equal(lazy[10:20].compute(), small.movie[10:20])
    assert np.array_equal(small.render_frames([33]), small.movie[33:34])
    assert np.array_equal(small.render_movie([5, 2]).compute(), small.movie[[5, 2]])
    lz = make_toy_brain(
        30, n_frames=40, shape=(20, 64, 64), render="lazy", em=False, seed=1, snr=8.0
    )
    assert not isinstance(lz.movie, np.ndarray)
    assert np.array_equal(lz.movie[3:9].compute(), small.movie[3:9])


def test_render_modes() -> None:
    b = make_toy_brain(30, n_frames=5, shape=(20, 64, 64), render=None, em=False)
    assert b.movie is None and b.soma_labels.shape == (20, 64, 64)
    # auto: small movies eager
    b = make_toy_brain(30, n_frames=5, shape=(20, 64, 64), em=False)
    assert isinstance(b.movie, np.ndarray)
    # drift darkens late frames on average
    d = make_toy_brain(30, n_frames=40, shape=(20, 64, 64), em=False, drift=True)
    assert d.drift_trace[-1] < d.drift_trace[0]


def test_em_volume(small: ToyBrain) -> None:
    em, lab = small.em, small.em_labels
    assert em.dtype == np.uint8 and lab.dtype == np.int32
    expect = tuple(
        int(round(s * v / e))
        for s, v, e in zip(small.shape, small.voxel_size, small.em_voxel_size, strict=True)
    )
    assert em.shape == lab.shape == small.em_shape == expect
    assert set(np.unique(lab)) == set(range(small.n_neurons + 1))
    # cytoplasm brighter than neuropil, nucleus darker than cytoplasm, dark plasma membrane
    inside = lab > 0
    ev = small.em_voxel_size
    for i in range(small.n_neurons):
        zz, yy, xx = np.nonzero(lab == i + 1)
        d = np.linalg.norm(np.c_[zz, yy, xx] * ev - small.positions[i], axis=1)
        r = small.diameters[i] / 2
        vals = em[zz, yy, xx].astype(float)
        cyto = vals[(d > 0.6 * r) & (d < 0.85 * r)].mean()
        assert cyto > em[~inside].mean() + 15
        assert vals[d < 0.25 * r].mean() < cyto - 25
        assert vals[d > 0.95 * r].mean() < cyto - 25
    # synapse puncta are dark dots
    syn = small.synapses[["z", "y", "x"]].to_numpy()
    idx = np.clip(np.rint(syn / ev).astype(int), 0, np.asarray(em.shape) - 1)
    assert em[idx[:, 0], idx[:, 1], idx[:, 2]].mean() < em[~inside].mean() - 20


# ---------------------------------------------------------------- sizes and errors


def test_shape_none_scales_with_neurons() -> None:
    b = make_toy_brain(600, n_frames=4, shape=None, render=None, em=False)
    vol = np.prod(np.asarray(b.shape) * b.voxel_size)
    assert vol == pytest.approx(2 * 128.0**3, rel=0.1)
    assert b.positions.shape == (600, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_neurons": -5}, "n_neurons"),
        ({"n_neurons": 0}, "n_neurons"),
        ({"n_frames": 0}, "n_frames"),
        ({"shape": (64, -1, 128)}, "shape"),
        ({"shape": (64, 128)}, "shape"),
        ({"voxel_size": (1.0, 1.0)}, "voxel_size"),
        ({"voxel_size": (1.0, 0.0, 1.0)}, "voxel_size"),
        ({"em_voxel_size": (1.0, 0.5, 0.5, 0.5)}, "em_voxel_size"),
        ({"instance_size": (1, 5)}, "instance_size"),
        ({"instance_size": (10, 5)}, "instance_size"),
        ({"n_neurons": 11, "instance_size": (4, 5)}, "instance_size"),
        ({"n_neurons": 3, "instance_size": (5, 30)}, "instance_size"),
        ({"motif_types": ("oscillator", "spiral")}, "unknown motif"),
        ({"motif_types": ()}, "motif_types"),
        ({"render": "fast"}, "render"),
        ({"frame_rate": -1.0}, "frame_rate"),
        ({"osc_frequency": 3.0}, "Nyquist"),
        ({"n_neurons": 5000, "shape": (16, 32, 32)}, "volume|shape"),
        ({"snr": 0}, "snr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    kw = {"n_frames": 5, "render": None, "em": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_toy_brain(**kw)


def test_subset_of_motifs_and_callback() -> None:
    seen = []
    b = make_toy_brain(
        40,
        n_frames=20,
        shape=(24, 64, 64),
        motif_types=("chain", "oscillator"),
        render=None,
        em=False,
        callback=lambda p: seen.append(p["stage"]),
    )
    assert b.motif_names == ("chain", "oscillator")
    assert set(b.neurons["motif_name"]) == {"chain", "oscillator"}
    assert "layout" in seen and seen[-1] == "done"
    with pytest.raises(ToyBrainCancelled):
        make_toy_brain(
            40,
            n_frames=20,
            shape=(24, 64, 64),
            render=None,
            em=False,
            callback=lambda p: p["stage"] != "dynamics",
        )


def test_params_dataclass_matches_keywords() -> None:
    assert issubclass(ToyBrainCancelled, Cancelled) and issubclass(
        ToyBrainCancelled, InterruptedError
    )
    kw = dict(n_frames=20, shape=(24, 64, 64), render=None, em=False, seed=3)
    by_keyword = make_toy_brain(40, **kw)
    by_params = make_toy_brain(params=ToyBrainParams(n_neurons=40, **kw))
    mixed = make_toy_brain(
        40, params=ToyBrainParams(seed=3), **{k: v for k, v in kw.items() if k != "seed"}
    )
    for other in (by_params, mixed):
        np.testing.assert_array_equal(other.activity, by_keyword.activity)
        np.testing.assert_array_equal(other.positions, by_keyword.positions)
        assert other.params == by_keyword.params
    assert ToyBrainParams().n_neurons == 300 and ToyBrainParams().shape == (64, 128, 128)


def test_auto_render_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_mesoscale.synth.toy_brain as tbm

    kw = dict(n_frames=6, shape=(20, 64, 64), em=False, seed=2)
    monkeypatch.setattr(tbm, "EAGER_MOVIE_BYTES", 1000)
    lazy = make_toy_brain(30, **kw)
    assert lazy.params["render_mode"] == "lazy" and hasattr(lazy.movie, "dask")
    assert lazy.movie.chunks[0][0] >= 1
    monkeypatch.setattr(tbm, "AUTO_NO_MOVIE_NEURONS", 20)
    none = make_toy_brain(30, **kw)
    assert none.movie is None and none.params["render_mode"] is None
    # asked for explicitly, the movie is still made
    assert make_toy_brain(30, render="lazy", **kw).movie is not None
    eager = make_toy_brain(30, render="eager", **kw)
    assert np.array_equal(lazy.movie.compute(), eager.movie)


def test_lazy_soma_labels_match_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_mesoscale.synth.toy_brain as tbm

    kw = dict(n_frames=4, shape=(40, 64, 64), render=None, em=False, seed=4)
    eager = make_toy_brain(50, **kw)
    monkeypatch.setattr(tbm, "EAGER_LABEL_VOXELS", 1000)
    monkeypatch.setattr(tbm, "SLAB_VOXELS", 5 * 64 * 64)
    lazy = make_toy_brain(50, **kw)
    assert not isinstance(lazy.soma_labels, np.ndarray)
    assert len(lazy.soma_labels.chunks[0]) == 8
    assert np.array_equal(lazy.soma_labels.compute(), eager.soma_labels)


def test_lazy_em_matches_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    import napari_mesoscale.synth.toy_brain as tbm

    kw = dict(n_frames=4, shape=(20, 64, 64), render=None, em=True, seed=7)
    eager = make_toy_brain(30, **kw)
    monkeypatch.setattr(tbm, "EAGER_EM_VOXELS", 1000)
    monkeypatch.setattr(tbm, "SLAB_VOXELS", 7 * 128 * 128)
    lazy = make_toy_brain(30, **kw)
    assert not isinstance(lazy.em, np.ndarray) and len(lazy.em.chunks[0]) > 3
    assert np.array_equal(lazy.em.compute(), eager.em)
    assert np.array_equal(lazy.em_labels.compute(), eager.em_labels)
    assert np.array_equal(lazy.em[9:23].compute(), eager.em[9:23])


def test_dynamics_use_the_weights_and_noise_level(brain: ToyBrain) -> None:
    d = brain.dynamics
    assert abs(d.wt_exc - d.wt_inh - brain.weights.T.tocsr()).max() < 1e-12
    assert brain.params["noise_std"] == brain.noise_std == d.noise_std
    # without process noise the next state is exactly the map of the current one
    b = make_toy_brain(60, n_frames=50, shape=None, render=None, em=False, noise_std=0.0, seed=9)
    pred = b.one_step()[:-1]
    assert np.abs(pred - b.activity[1:]).max() < 1e-5
    # the map depends on the partners' states: silencing presynaptic cells changes it
    x = b.activity[10].astype(float).copy()
    strength = np.abs(b.weights).sum(0).A1 * (b.neurons["role"] == "integrator").to_numpy()
    post = int(np.argmax(strength))
    pre = b.weights[:, post].nonzero()[0]
    x2 = x.copy()
    x2[pre] = 0.0
    f1 = b.dynamics.mean_map(x, b.stimulus[10])[post]
    f2 = b.dynamics.mean_map(x2, b.stimulus[10])[post]
    assert abs(f1 - f2) > 1e-3


def test_oscillator_frequency_holds_at_other_frame_rates() -> None:
    for fr in (2.0, 10.0):
        b = make_toy_brain(
            120,
            n_frames=800,
            shape=None,
            frame_rate=fr,
            motif_types=("oscillator",),
            render=None,
            em=False,
            seed=1,
        )
        x = b.activity.astype(float)
        f = np.fft.rfftfreq(len(x), 1 / fr)
        p = (np.abs(np.fft.rfft(x - x.mean(0), axis=0)) ** 2).mean(1)
        assert abs(f[1:][np.argmax(p[1:])] - 0.5) < 0.1
