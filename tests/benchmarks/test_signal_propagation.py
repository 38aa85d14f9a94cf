"""Pieces of benchmarks/signal_propagation.py that need no atlas: the drive adjacency the fitted
models share and the resampled correlation of the paper's in-sample metric."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
signal_propagation = pytest.importorskip("signal_propagation")


def test_drive_adjacency_as_wired_or_both_directions():
    A = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]])  # [post, pre]
    np.testing.assert_array_equal(signal_propagation.drive_adjacency(A, "as_wired"), A)
    both = signal_propagation.drive_adjacency(A, "both_directions")
    np.testing.assert_array_equal(both, A + A.T)
    assert both[1, 0] == 2.0 and both[1, 2] == 3.0  # the reversed chemical edges
    with pytest.raises(ValueError, match="drive_edges"):
        signal_propagation.drive_adjacency(A, "reversed")


def test_column_bootstrap_brackets_the_pooled_correlation():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(60, 40))
    Y = 0.3 * P + rng.normal(size=P.shape)
    Y[rng.random(Y.shape) < 0.3] = np.nan  # unobserved pairs
    Y[:, 5] = np.nan  # a neuron never stimulated is never drawn
    r = signal_propagation.pearson(P, Y)
    draws = signal_propagation._column_bootstrap_r(P, Y, np.random.default_rng(1), n=300)
    assert np.isfinite(draws).all()
    assert np.percentile(draws, 2.5) < r < np.percentile(draws, 97.5)
    assert 0.2 < r < 0.4  # the true correlation is 0.3 / sqrt(1.09) = 0.287


def test_atlas_adjacency_reads_training_columns_only():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(5, 5))
    R[0, 1] = np.nan  # an unobserved pair
    np.fill_diagonal(R, np.nan)
    train = np.array([1, 2])
    drive = signal_propagation.atlas_adjacency(R, train)
    held = R.copy()
    held[:, [0, 3, 4]] = 99.0  # what a held-out column says must not matter
    np.testing.assert_array_equal(signal_propagation.atlas_adjacency(held, train), drive)
    assert drive[3, 1] == R[3, 1] + 0.0  # j=1 -> i=3 as measured
    assert drive[1, 3] == R[3, 1]  # held-out 3 drives 1, whose stimulation it responded to
    assert drive[0, 1] == 0.0 and np.all(np.diag(drive) == 0.0)
    assert drive[0, 3] == 0.0  # two held-out neurons are never linked


def test_replace_responses_keeps_masks_and_the_clamped_neuron():
    protocol = signal_propagation.SELECTED_PROTOCOL  # 3 frames, responders at frame 2
    names = ["a", "b", "c"]
    activity = np.array(
        [[np.nan, 0.0, np.nan], [0.3, 0.0, np.nan], [0.3, 0.05, np.nan]]  # trial of "a"
    )
    responses = np.array([[np.nan, 0, 0], [-0.2, np.nan, 0], [np.nan, 0, np.nan]])
    out = signal_propagation.replace_responses(activity, responses, names, ["a"], protocol)
    np.testing.assert_allclose(out[:, 0], [np.nan, 0.3, 0.3])  # the clamped neuron unchanged
    np.testing.assert_allclose(out[:, 1], [0.0, 0.0, -0.2])  # rest, pulse frame, new plateau
    assert np.isnan(out[:, 2]).all()  # unobserved stays masked


def test_score_row_means_seeds_per_fold_and_keeps_the_ensemble():
    row = signal_propagation.score_row(
        [[0.1, 0.3], [0.0, 0.2]], [0.25, 0.15], [0.1, 0.2], [{}, {}], np.random.default_rng(0)
    )
    np.testing.assert_allclose(row["pearson_r_per_fold"], [0.2, 0.1])
    np.testing.assert_allclose(row["seed_spread_per_fold"], [0.2, 0.2])
    assert row["pearson_r_mean"] == pytest.approx(0.15)
    assert row["pearson_r_seed_ensemble_mean"] == pytest.approx(0.2)


def test_field_pooling_averages_nearby_training_columns_only():
    positions = np.array([[0.0, 0, 0], [0, 0, 1.0], [0, 0, 100.0], [0, 0, 0.5], [0, 0, 50.0]])
    R = np.arange(25, dtype=float).reshape(5, 5)
    R[2, 1] = np.nan  # responder 2 unobserved for stimulated 1
    train, test = np.array([1, 2]), np.array([0, 3])
    pooled = signal_propagation.field_pooled(R, positions, train, test, width_um=2.0)
    # neuron 1 is 1 µm (and 0.5 µm) away, neuron 2 is ~100 µm away: column 1 dominates
    np.testing.assert_allclose(pooled[[0, 1, 3, 4], 0], R[[0, 1, 3, 4], 1], rtol=1e-6)
    np.testing.assert_array_equal(pooled[2, :], 0.0)  # no observed column within reach
    wide = signal_propagation.field_pooled(R, positions, train, test, width_um=1000.0)
    np.testing.assert_allclose(wide[2, :], R[2, 2])  # the only observed column for row 2
    np.testing.assert_allclose(wide[0, :], R[0, [1, 2]].mean(), rtol=1e-3)  # near-even mix
    held = R.copy()
    held[:, test] = 99.0  # held-out columns must not matter
    np.testing.assert_array_equal(
        signal_propagation.field_pooled(held, positions, train, test, 2.0), pooled
    )


def test_reciprocal_responses_transpose_the_held_out_rows():
    R = np.arange(16, dtype=float).reshape(4, 4)
    R[0, 2] = np.nan
    out = signal_propagation.reciprocal_responses(R, np.array([1, 2]), np.array([0, 3]))
    assert out.shape == (4, 2)
    assert out[1, 0] == R[0, 1] and out[1, 1] == R[3, 1]  # R[i, j] predicted by R[j, i]
    assert out[2, 0] == 0.0  # unobserved -> 0
    assert np.all(out[[0, 3]] == 0.0)  # held-out responders get nothing


def test_readout_weights_recover_a_non_negative_mixture():
    rng = np.random.default_rng(0)
    parts = [{"a": rng.normal(size=(30, 8)), "b": 5 * rng.normal(size=(30, 8))} for _ in range(3)]
    targets = [2 * p["a"] + 0.2 * p["b"] + 0.01 * rng.normal(size=(30, 8)) for p in parts]
    weights = signal_propagation.readout_weights(parts, targets, ("a", "b"))
    np.testing.assert_allclose(weights, [2.0, 0.2], atol=0.02)
    assert signal_propagation.readout_inner_r(parts, targets, ("a", "b")) > 0.99
    negative = [-t for t in targets]  # anti-correlated: NNLS gives 0, fall back to the sum
    assert np.all(signal_propagation.readout_weights(parts, negative, ("a", "b")) > 0)


def _toy_atlas(n: int = 14, seed: int = 0):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 40, size=(n, 3))
    A = (rng.random((n, n)) < 0.3) * rng.integers(1, 4, size=(n, n)).astype(float)
    np.fill_diagonal(A, 0.0)
    R = 0.05 * A + 0.02 * rng.normal(size=(n, n))
    R[rng.random((n, n)) < 0.2] = np.nan
    np.fill_diagonal(R, np.nan)
    return positions, A, R


def test_fit_readout_and_its_drive_read_no_held_out_column():
    positions, A, R = _toy_atlas()
    train, test = np.arange(2, 14), np.array([0, 1])
    linear, _ = signal_propagation.predict_connectome_linear(A, R, train, test, steps=20)

    def run(R):
        return signal_propagation.fit_readout(
            "receptive-field readout",
            A,
            R,
            positions,
            train,
            test,
            linear,
            seed=3,
            scales=signal_propagation.READOUT_SCALES,
            folds=3,
        )

    prediction, crossfit, info = run(R)
    held = R.copy()
    held[:, test] = 99.0  # what a held-out column says must not matter
    again = run(held)
    np.testing.assert_array_equal(again[0], prediction)
    np.testing.assert_array_equal(again[1], crossfit)
    assert info["scale"] in signal_propagation.READOUT_SCALES
    assert np.isnan(crossfit[:, test]).all() and np.isfinite(crossfit[:, train]).all()
    drive = signal_propagation.readout_drive((prediction, crossfit, info), train, test)
    assert drive.shape == R.shape and np.all(np.diag(drive) == 0.0)
    scale = np.std(crossfit[:, train])
    np.testing.assert_allclose(drive[3:, 0] * scale, prediction[3:, 0])  # held-out column
    np.testing.assert_allclose(drive[:2, 5] * scale, crossfit[:2, 5])  # cross-fitted column


def test_per_fold_scaling_gives_every_component_unit_spread():
    rng = np.random.default_rng(1)
    parts = {"a": 3 * rng.normal(size=(20, 4)), "b": 0.01 * rng.normal(size=(20, 4))}
    scaled = signal_propagation.scaled_components(parts, ("a", "b"), "per fold")
    assert np.std(scaled["a"]) == pytest.approx(1.0) and np.std(scaled["b"]) == pytest.approx(1.0)
    assert signal_propagation.scaled_components(parts, ("a", "b"), "as fitted") is parts


def test_mask_pulse_frames_leaves_the_stimulated_neuron_alone():
    protocol = signal_propagation.READOUT_DRIVE_PROTOCOL  # 3 frames, response at frame 2
    activity = np.array(
        [
            [np.nan, np.nan, 0.0],
            [0.3, 0.0, 0.0],
            [0.3, 0.05, -0.02],  # trial of "a"
            [np.nan, 0.0, np.nan],
            [0.0, 0.0, 0.3],
            [0.1, 0.0, 0.3],
        ]  # trial of "c"
    )
    out = signal_propagation.mask_pulse_frames(activity, ["a", "b", "c"], ["a", "c"], protocol)
    np.testing.assert_array_equal(out[1], [0.3, np.nan, np.nan])
    np.testing.assert_array_equal(out[4], [np.nan, np.nan, 0.3])
    np.testing.assert_array_equal(out[[0, 2, 3, 5]], activity[[0, 2, 3, 5]])  # rest, response


class _LinearFit:
    """Stands in for a MesoscaleFit: row t of ``predict`` is frame t predicted from frame t - 1,
    next state = W @ state + bias (NaN = 0, the mean)."""

    def __init__(self, W, bias):
        self.W, self.bias = W, bias

    def predict(self, activity, stimulus=None):
        out = np.full_like(activity, np.nan)
        out[1:] = np.nan_to_num(activity[:-1]) @ self.W.T + self.bias
        return out


def test_evoked_read_out_removes_each_responders_own_offset():
    W = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [-1.0, 0.5, 0.0]])
    fit = _LinearFit(W, bias=np.array([0.0, 7.0, -3.0]))
    protocol = signal_propagation.READOUT_DRIVE_PROTOCOL
    evoked = signal_propagation.predict_mesoscale(fit, 3, np.array([0]), protocol)
    # only the pulse moves the drive: the responders get W[:, 0] * pulse, no bias
    np.testing.assert_allclose(evoked[1:, 0], W[1:, 0] * protocol.pulse)
    raw = signal_propagation.stimulate(fit, 3, np.array([0]), protocol)
    np.testing.assert_allclose(raw[1:, 0], W[1:, 0] * protocol.pulse + fit.bias[1:])


def test_anatomy_common_pairs_scores_only_pairs_measured_in_both_strains(monkeypatch):
    positions, A, R = _toy_atlas(n=30, seed=2)
    unc = R.copy()
    unc[:, :10] = np.nan  # stimulated only in wild type: must not count
    unc[np.isfinite(unc)] += 5.0  # an offset changes no correlation
    matrices = {("wt", "dff"): R, ("unc31", "dff"): unc}
    matrices |= {(s, "q"): 1.0 - m for (s, _), m in list(matrices.items())}
    monkeypatch.setattr(
        signal_propagation,
        "response_matrix",
        lambda names, strain, column="dff": matrices[strain, column],
    )
    out = signal_propagation.anatomy_common_pairs(A, [], np.random.default_rng(0))
    both = np.isfinite(R) & np.isfinite(unc)
    assert out["dff"]["pairs"] == both.sum() and out["dff"]["stimulated_neurons"] == 20
    assert out["dff"]["wt"]["r"] == pytest.approx(out["dff"]["unc31"]["r"])  # same pairs
    assert out["dff"]["unc31_minus_wt"]["ci95_paired"] == [0.0, 0.0]


@pytest.mark.slow
def test_readout_residual_is_the_readout_plus_the_networks_correction(monkeypatch):
    """The residual row: the network is trained on the readout's cross-fitted residuals (never a
    held-out column); with a network whose evoked response is 0 the row is exactly the mean of
    the seeds' readout predictions, and a network's correction is added to it."""
    positions, A, R = _toy_atlas()
    train, test = np.arange(2, 14), np.array([0, 1])
    names = [f"n{k}" for k in range(len(A))]
    seen = []

    def fake_fit(
        names, positions, drive, strain, train_names, device, epochs, seed, protocol, responses=None
    ):
        seen.append(responses.copy())
        assert dict(protocol.fit_options)["output_init"] == "zero"
        passes_on = np.roll(np.eye(len(A)), 1, axis=0)  # neuron k + 1 gets neuron k's state
        return _LinearFit(gain * passes_on, bias=np.full(len(A), 5.0))

    monkeypatch.setattr(signal_propagation, "mesoscale_fit", fake_fit)
    fast_linear = partial(signal_propagation.predict_connectome_linear, steps=20)
    monkeypatch.setattr(signal_propagation, "predict_connectome_linear", fast_linear)
    setting = SimpleNamespace(
        protocol=signal_propagation.SELECTED_PROTOCOL, seeds=2, epochs=1, device="cpu"
    )

    def run(R, cache):
        return signal_propagation.predict_readout_residual(
            setting, names, positions, A, R, "wt", train, test, cache
        )

    gain = 0.0  # a network that has learned nothing: no correction
    (prediction,), info = run(R, {"fold": 3})
    readouts = [
        signal_propagation.fit_readout(
            "receptive-field readout",
            A,
            R,
            positions,
            train,
            test,
            signal_propagation.predict_connectome_linear(A, R, train, test)[0],
            seed,
            signal_propagation.READOUT_SCALES,
        )
        for seed in (3, 13)
    ]
    responders = np.ones_like(prediction, dtype=bool)
    responders[test, [0, 1]] = False  # the clamped neuron's own entry is never scored
    readout_mean = np.mean([r[0] for r in readouts], axis=0)
    np.testing.assert_allclose(prediction[responders], readout_mean[responders])
    for residual, readout in zip(seen, readouts, strict=True):
        assert np.isnan(residual[:, test]).all()  # no held-out column reaches the network
        np.testing.assert_allclose(residual[:, train], R[:, train] - readout[1][:, train])
    assert len(info["per_seed"]) == 2
    held = R.copy()
    held[:, test] = 99.0
    np.testing.assert_allclose(run(held, {"fold": 3})[0][0], prediction)
    gain = 1.0  # a correction: the pulse passed on to the next neuron, offsets not
    (corrected,), _ = run(R, {"fold": 3})
    pulse = signal_propagation.READOUT_RESIDUAL_PROTOCOL.pulse
    passed = np.zeros_like(prediction)
    passed[test + 1, [0, 1]] = pulse
    np.testing.assert_allclose(corrected[responders], (prediction + passed)[responders])


def _smooth_atlas(n: int = 60, seed: int = 0):
    """Responses that vary smoothly with the stimulated soma's position along one axis (a
    receptive field of ~5 µm), plus noise; 20 % of pairs unobserved."""
    rng = np.random.default_rng(seed)
    positions = np.zeros((n, 3))
    positions[:, 1] = np.sort(rng.uniform(0, 100, n))
    gain = rng.normal(size=n)
    R = gain[:, None] * np.sin(positions[None, :, 1] / 8.0) + 0.1 * rng.normal(size=(n, n))
    R[rng.random((n, n)) < 0.2] = np.nan
    np.fill_diagonal(R, np.nan)
    return positions, R


def test_learned_field_generalises_to_held_out_stimulations_from_its_neighbours():
    positions, R = _smooth_atlas()
    test = np.arange(3, 60, 6)
    train = np.setdiff1d(np.arange(60), test)
    groups = np.zeros(60, dtype=int)
    linear_train, linear_test = np.zeros((60, train.size)), np.zeros((60, test.size))
    model, _ = signal_propagation.fit_learned_field(
        R, positions, groups, train, linear_train, steps=200, lr=0.05
    )
    prediction = signal_propagation.predict_with_field(
        model, R, positions, groups, train, test, linear_test
    )
    truth = np.isfinite(R[:, test])
    assert signal_propagation.pearson(prediction, R[:, test]) > 0.8
    assert np.isfinite(prediction[truth]).all()
    held = R.copy()
    held[:, test] = 99.0  # what a held-out column says must not matter
    again = signal_propagation.predict_with_field(
        model, held, positions, groups, train, test, linear_test
    )
    np.testing.assert_array_equal(again, prediction)


def test_learned_field_training_never_reads_the_column_it_predicts():
    positions, R = _smooth_atlas(n=12)
    train = np.arange(12)
    inputs = signal_propagation.learned_field_inputs(R, positions, train, train, np.ones((12, 12)))
    np.testing.assert_array_equal(inputs["keep"].numpy(), 1.0 - np.eye(12))
    model = signal_propagation.LearnedField(1)
    with torch.no_grad():
        model.mix[:] = torch.tensor([[1.0, 0, 0, 0, 0, 0]])  # the narrowest basis alone
        base = model.predict(inputs, torch.zeros(12, dtype=torch.long)).numpy()
        changed = R.copy()
        changed[:, 4] = 50.0  # column 4 changes: only the other columns' predictions may move
        inputs = signal_propagation.learned_field_inputs(
            changed, positions, train, train, np.ones((12, 12))
        )
        moved = model.predict(inputs, torch.zeros(12, dtype=torch.long)).numpy()
    np.testing.assert_array_equal(moved[:, 4], base[:, 4])
    assert not np.allclose(moved[:, 5], base[:, 5])


def test_winsorised_clips_at_the_training_columns_quantile_only():
    R = np.array([[np.nan, 1.0, 100.0], [-50.0, np.nan, 2.0], [3.0, -4.0, np.nan]])
    train = np.array([0, 1])  # |responses| 50, 3, 1, 4: the held-out column's 100 not read
    clipped = signal_propagation.winsorised(R, train, 0.5)
    bound = np.quantile([50.0, 3.0, 1.0, 4.0], 0.5)
    np.testing.assert_array_equal(clipped[:, 2], [bound, 2.0, np.nan])
    assert clipped[1, 0] == -bound and clipped[0, 1] == 1.0
    assert signal_propagation.winsorised(R, train, None) is R


def test_winsorised_readout_control_clips_the_readouts_responses_not_the_linear_fits(monkeypatch):
    """The control row: the scale-chosen readout fed winsorised responses. Without clipping it
    is the readout row itself; it reads no held-out column; and the inner connectome-linear fits
    it shares with the other rows stay those of the raw responses."""
    positions, A, R = _toy_atlas()
    R[4, 6] = 5.0  # one training pair far out: the clipping has something to do
    train, test = np.arange(2, 14), np.array([0, 1])
    fast_linear = partial(signal_propagation.predict_connectome_linear, steps=20)
    monkeypatch.setattr(signal_propagation, "predict_connectome_linear", fast_linear)
    setting = SimpleNamespace(
        protocol=signal_propagation.SELECTED_PROTOCOL, seeds=2, epochs=1, device="cpu"
    )
    control = "receptive-field readout, winsorised 0.99"
    readout = f"receptive-field readout{signal_propagation.SCALE_CHOSEN}"

    def run(model, R, cache):
        return signal_propagation.predict_fold(
            model, setting, [], positions, A, R, "wt", train, test, cache
        )

    plain, _ = run(readout, R, {"fold": 3})
    cache = {"fold": 3}
    clipped, info = run(control, R, cache)
    assert info["clip_quantile"] == 0.99 and len(clipped) == 2 == len(info["per_seed"])
    assert not np.allclose(clipped[0], plain[0])
    after, _ = run(readout, R, cache)  # the shared inner linear fits were fitted on raw R
    for a, b in zip(after, plain, strict=True):
        np.testing.assert_allclose(a, b)
    held = R.copy()
    held[:, test] = 99.0
    for a, b in zip(run(control, held, {"fold": 3})[0], clipped, strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setitem(signal_propagation.WINSORISED_READOUTS, control, (readout, 1.0))
    for a, b in zip(run(control, R, {"fold": 3})[0], plain, strict=True):
        np.testing.assert_allclose(a, b)
