"""Tests of the mesoscale model on small toy brains (real numbers against ground truth)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from napari_mesoscale.evaluate import evaluate_forecast, recovery_scores
from napari_mesoscale.model import FitCancelled, MesoscaleFit, ModelConfig, fit_mesoscale
from napari_mesoscale.synth import make_toy_brain

torch.set_num_threads(1)

FAST = {"batch_frames": 32, "rollout": 2, "patience": 100}


@pytest.fixture(scope="module")
def brain():
    return make_toy_brain(n_neurons=150, n_frames=400, render=None, em=False, seed=3)


@pytest.fixture(scope="module")
def fitted(brain):
    return fit_mesoscale(
        brain.activity,
        brain.positions,
        connectome=brain.adjacency,
        stimulus=brain.stimulus,
        epochs=12,
        seed=0,
        **FAST,
    )


def _test_mse(pred, x, fit):
    t0, t1 = fit.blocks["test"]
    frames = slice(t0 + 1, t1)
    return evaluate_forecast(pred, x, frames=frames)[1]["mse"]


def test_fit_beats_persistence_and_recovers_motifs(brain, fitted):
    x = brain.activity
    pred = fitted.predict(x, stimulus=brain.stimulus)
    assert pred.shape == x.shape
    assert np.isnan(pred[0]).all() and np.isfinite(pred[1:]).all()
    persistence = np.full_like(x, np.nan)
    persistence[1:] = x[:-1]
    mse_model = _test_mse(pred, x, fitted)
    mse_persist = _test_mse(persistence, x, fitted)
    assert mse_model < 0.5 * mse_persist
    rec = recovery_scores(fitted, brain.motif, brain.instance)
    assert rec["motif_ari"] > 0.85, rec  # measured 1.00 (seed 3, 12 epochs)
    assert rec["domain_ari"] > 0.8, rec  # measured 1.00
    # labels, confidence, tables
    n = brain.n_neurons
    assert fitted.domain_labels.shape == (n,) and fitted.motif_labels.shape == (n,)
    assert fitted.confidence.shape == (n,)
    assert np.all((fitted.confidence >= 0) & (fitted.confidence <= 1))
    assert set(fitted.domains.columns) >= {"domain", "motif", "size", "local_loss"}
    assert fitted.domains["size"].sum() == n
    assert len(fitted.history) == 12 and "val_loss" in fitted.history
    assert fitted.n_params < n * n  # fewer than a dense autoregression


def test_free_running_prediction(brain, fitted):
    x = brain.activity
    p8 = fitted.predict(x, steps=8, stimulus=brain.stimulus)
    assert np.isnan(p8[:8]).all() and np.isfinite(p8[8:]).all()
    s = evaluate_forecast({1: fitted.predict(x, stimulus=brain.stimulus), 8: p8}, x)
    assert s[8]["mse"] > s[1]["mse"]  # errors grow with the horizon
    mean_mse = np.nanmean((x - x.mean(0)) ** 2)
    assert s[8]["mse"] < 2 * mean_mse  # and stay bounded


def test_save_load_round_trip(tmp_path, brain, fitted):
    path = fitted.save(tmp_path / "fit.pt")
    assert path.exists() and (tmp_path / "fit.pt.json").exists()
    again = MesoscaleFit.load(path)
    x = brain.activity[:60]
    np.testing.assert_array_equal(
        fitted.predict(x, stimulus=brain.stimulus[:60]),
        again.predict(x, stimulus=brain.stimulus[:60]),
    )
    np.testing.assert_array_equal(fitted.domain_labels, again.domain_labels)
    assert again.config == fitted.config
    import json

    meta = json.loads((tmp_path / "fit.pt.json").read_text())
    assert meta["seed"] == 0 and "torch" in meta["versions"] and meta["format_version"] == 1


def test_a_fit_saved_before_a_default_changed_loads_with_its_former_value(fitted):
    from napari_mesoscale.model.config import FORMER_DEFAULTS

    payload = dict(fitted._p)
    payload["config"] = {
        k: v for k, v in payload["config"].items() if k not in FORMER_DEFAULTS
    }  # as written before these fields existed
    old = MesoscaleFit(payload)
    assert old.config.wiring_features == 0.0 and old.config.wiring_scope == "neuron"
    assert old.config.lambda_range == 0.0
    assert old.config.revert_tolerance == 0.01 and fitted.config.revert_tolerance == 0.02
    assert MesoscaleFit(dict(fitted._p)).config == fitted.config  # a new file keeps its own


def _small():
    b = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    return b


def test_deterministic_on_cpu():
    b = _small()
    kw = dict(epochs=3, seed=5, device="cpu", **FAST)
    f1 = fit_mesoscale(b.activity, b.positions, **kw)
    f2 = fit_mesoscale(b.activity, b.positions, **kw)
    np.testing.assert_array_equal(f1.predict(b.activity), f2.predict(b.activity))


def test_resume_continues_from_checkpoint(tmp_path):
    b = _small()
    kw = dict(seed=2, device="cpu", **FAST)
    full = fit_mesoscale(b.activity, b.positions, epochs=4, **kw)

    def stop_after_two(info):
        return not (info["stage"] == "epoch" and info["epoch"] == 1)

    part = fit_mesoscale(
        b.activity, b.positions, epochs=4, checkpoint_dir=tmp_path, callback=stop_after_two, **kw
    )
    assert part.stopped == "cancelled"
    assert (tmp_path / "checkpoint.pt").exists()
    resumed = fit_mesoscale(
        b.activity, b.positions, epochs=4, checkpoint_dir=tmp_path, resume=True, **kw
    )
    assert len(resumed.history) == 4
    np.testing.assert_allclose(
        resumed.predict(b.activity)[1:], full.predict(b.activity)[1:], rtol=1e-5, atol=1e-6
    )


def test_cancel_stops_cleanly():
    b = _small()
    calls = []

    def cancel(info):
        if "step" not in info:  # prepare / initialise reports come before the training steps
            return True
        calls.append(info)
        if info["step"] >= 1:
            raise FitCancelled

    fit = fit_mesoscale(b.activity, b.positions, epochs=50, callback=cancel, **FAST)
    assert fit.stopped == "cancelled"
    assert len(calls) == 2 and calls[0]["epoch"] == 0
    assert {"prediction", "local", "entropy", "complexity", "interface"} <= set(calls[0]["losses"])
    assert fit.domain_labels.shape == (60,)


def test_nan_masked_and_connectome_forms():
    b = _small()
    x = b.activity.copy()
    rng = np.random.default_rng(0)
    x[rng.random(x.shape) < 0.05] = np.nan
    fit = fit_mesoscale(x, b.positions, connectome=sp.csr_matrix(b.adjacency), epochs=3, **FAST)
    pred = fit.predict(x)
    assert np.isfinite(pred[1:]).all()
    assert np.isfinite(fit.scores["test_mse"])


def test_bad_input():
    b = _small()
    x, pos = b.activity, b.positions
    with pytest.raises(ValueError, match="positions has"):
        fit_mesoscale(x, pos[:-1], epochs=1)
    with pytest.raises(ValueError, match="too few time points"):
        fit_mesoscale(x[:12], pos, epochs=1)
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        fit_mesoscale(x[:, 0], pos, epochs=1)
    bad = x.copy()
    bad[:, 3] = np.nan
    with pytest.raises(ValueError, match="fewer than 2 finite"):
        fit_mesoscale(bad, pos, epochs=1)
    bad = x.copy()
    bad[5, 2] = np.inf
    with pytest.raises(ValueError, match="inf"):
        fit_mesoscale(bad, pos, epochs=1)
    with pytest.raises(ValueError, match="connectome adjacency has shape"):
        fit_mesoscale(x, pos, connectome=sp.eye(5, format="csr"), epochs=1)
    with pytest.raises(ValueError, match="unknown model option"):
        fit_mesoscale(x, pos, epochs=1, not_an_option=3)


def test_grid_without_field_warns():
    b = _small()
    with pytest.warns(UserWarning, match="no receptive field"):
        fit = fit_mesoscale(
            b.activity, b.positions, rf_diameter=20.0, stride=30.0, epochs=1, **FAST
        )
    assert fit.field_labels.shape == (60,)


def test_config_round_trip():
    cfg = ModelConfig(n_filters=3, hidden=5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_out_of_memory_gives_clear_message(monkeypatch):
    from napari_mesoscale.model.core import MesoscaleNet

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    b = _small()
    monkeypatch.setattr(MesoscaleNet, "evaluate", boom)
    with pytest.raises(MemoryError, match="reduce batch_frames"):
        fit_mesoscale(b.activity, b.positions, epochs=1, **FAST)


def test_bfloat16_mixed_precision_trains_like_float32():
    """The autocast path used on CUDA, run on CPU: no dtype clashes, the same accuracy."""
    torch.set_num_threads(2)
    b = make_toy_brain(n_neurons=80, n_frames=240, render=None, em=False, seed=3)
    common = dict(connectome=b.adjacency, stimulus=b.stimulus, epochs=6, seed=0)
    common.update(n_filters=4, population_filters=1)
    fp32 = fit_mesoscale(b.activity, b.positions, precision="fp32", **common)
    bf16 = fit_mesoscale(b.activity, b.positions, precision="bf16", **common)
    assert bf16.config.precision == "bf16"
    assert bf16.scores["test_mse"] == pytest.approx(fp32.scores["test_mse"], rel=0.05)
    val = bf16.history["val_loss"]
    assert val.iloc[-1] < 0.9 * val.iloc[0]  # it learns
    with pytest.raises(ValueError, match="precision"):
        fit_mesoscale(b.activity, b.positions, precision="fp16", epochs=1)


def test_config_is_the_source_of_defaults_and_keywords_override_it():
    b = _small()
    fit = fit_mesoscale(b.activity, b.positions, config=ModelConfig(n_filters=2, epochs=2), **FAST)
    assert fit.config.n_filters == 2 and fit.config.epochs == 2
    assert len(fit.history) == 2 and len(fit.filters["filter"]) == 2
    assert fit.motif_labels.max() <= 1
    fit = fit_mesoscale(
        b.activity,
        b.positions,
        config=ModelConfig(n_filters=2, epochs=2),
        n_filters=3,
        epochs=1,
        **FAST,
    )
    assert fit.config.n_filters == 3 and len(fit.history) == 1
    assert len(fit.filters["filter"]) == 3
    old = ModelConfig().to_dict() | {"extra": {}, "n_filters": 5}  # fits saved with `extra`
    assert ModelConfig.from_dict(old).n_filters == 5


def test_progress_covers_the_whole_fit_and_only_rises():
    b = _small()
    seen = []
    fit = fit_mesoscale(
        b.activity, b.positions, epochs=3, callback=lambda info: seen.append(info), **FAST
    )
    fractions = [info["fraction"] for info in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    stages = [info["message"].split(":")[0] for info in seen]
    assert stages[0] == "prepare" and "initialise" in stages and stages[-1] == "package"
    steps = [info for info in seen if info.get("stage") == "train"]
    assert len(steps) == 3 * steps[0]["steps"]
    assert not fit.cancelled


def test_cancel_by_returning_false_or_any_cancelled_gives_a_partial_fit():
    from napari_mesoscale.progress import Cancelled

    b = _small()

    def stop_at_second_epoch(info):
        if info.get("epoch") == 1:
            raise Cancelled

    fit = fit_mesoscale(b.activity, b.positions, epochs=5, callback=stop_at_second_epoch, **FAST)
    assert fit.cancelled and fit.stopped == "cancelled" and len(fit.history) == 1
    assert issubclass(FitCancelled, Cancelled)
    with pytest.raises(FitCancelled):  # before training there is no partial fit to return
        fit_mesoscale(b.activity, b.positions, epochs=5, callback=lambda info: False, **FAST)


@pytest.mark.parametrize("normalisation", ["l1", "spectral", "binary", "none"])
def test_kernel_normalisation_sets_the_frozen_drive_weights(normalisation):
    """The frozen drive weights are the connectome's counts scaled as the option says."""
    b = _small()
    adjacency = sp.csr_matrix(b.adjacency)  # pre -> post, signed counts
    fit = fit_mesoscale(
        b.activity,
        b.positions,
        connectome=adjacency,
        epochs=1,
        edge_init="connectome",
        freeze_edges=True,
        kernel_normalisation=normalisation,
        **FAST,
    )
    pre, post = fit.net.pre.numpy().copy(), fit.net.post.numpy().copy()
    weights = fit.net.edge_weight.detach().numpy().astype(float)
    counts = np.asarray(adjacency[pre, post]).ravel()
    if normalisation == "l1":
        in_norm = np.bincount(post, np.abs(counts), minlength=adjacency.shape[0])
        expected = counts / in_norm[post]
    elif normalisation == "spectral":
        expected = counts / np.abs(np.linalg.eigvals(adjacency.toarray())).max()
    elif normalisation == "binary":
        expected = np.sign(counts)
    else:
        expected = counts
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)
    assert fit.config.kernel_normalisation == normalisation


def test_kernel_normalisation_is_checked():
    b = _small()
    with pytest.raises(ValueError, match="kernel_normalisation"):
        fit_mesoscale(
            b.activity,
            b.positions,
            connectome=b.adjacency,
            epochs=1,
            edge_init="connectome",
            kernel_normalisation="max",
            **FAST,
        )


def test_zero_output_init_starts_at_no_correction():
    """``output_init="zero"``: untrained (lr 0), every filter's output layer is 0, so the
    prediction does not depend on the input (its evoked response is 0); trained, the output
    layer moves away from 0."""
    b = _small()
    untrained = fit_mesoscale(
        b.activity, b.positions, epochs=1, output_init="zero", lr=0.0, seed=3, **FAST
    )
    assert untrained.config.output_init == "zero"
    assert float(untrained.net.bank.w_out.detach().abs().max()) == 0.0
    quiet = untrained.predict(np.zeros_like(b.activity[:20]))
    driven = untrained.predict(b.activity[:20] * 3.0)
    np.testing.assert_allclose(driven[1:], quiet[1:], atol=1e-6)
    trained = fit_mesoscale(b.activity, b.positions, epochs=1, output_init="zero", seed=3, **FAST)
    assert float(trained.net.bank.w_out.detach().abs().max()) > 0.0
    with pytest.raises(ValueError, match="output_init"):
        ModelConfig(output_init="zero", population_filters=1, n_filters=2).check(
            has_connectome=False
        )
