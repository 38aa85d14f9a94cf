"""Noise-corrected predictivity on synthetic trials with known reliability."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.evaluate.predictivity import (
    EvaluationCancelled,
    linear_predictivity,
    noise_corrected_predictivity,
    noise_corrected_rsa,
    pearson_columns,
    rdm,
    rsa,
    spearman_brown,
    split_half_reliability,
    summarize_scores,
)
from trial_data import population as _population
from trial_data import trials as _trials


def test_pearson_and_spearman_brown():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 4))
    b = a + rng.standard_normal((50, 4))
    expected = [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(4)]
    np.testing.assert_allclose(pearson_columns(a, b), expected, rtol=1e-12)
    assert np.isnan(pearson_columns(np.ones((5, 1)), a[:5, :1])[0])
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(1.0) == pytest.approx(1.0)


def test_split_half_reliability_matches_theory():
    truth, rng = _population(400, 60)
    sigma = np.linspace(0.5, 3.0, 60)  # per-neuron noise
    n_trials = 8
    trials = truth[None] + sigma * rng.standard_normal((n_trials, *truth.shape))
    rel = split_half_reliability(trials, n_splits=50)
    # classical test theory: reliability of the mean of n trials = 1 / (1 + sigma^2 / n)
    expected = 1.0 / (1.0 + sigma**2 / n_trials)
    assert np.mean(np.abs(rel - expected)) < 0.03 and np.max(np.abs(rel - expected)) < 0.1
    half = split_half_reliability(trials, n_splits=50, spearman_brown_corrected=False)
    expected_half = 1.0 / (1.0 + sigma**2 / (n_trials // 2))
    assert np.mean(np.abs(half - expected_half)) < 0.03


def test_ground_truth_model_scores_one_and_raw_falls_with_noise():
    truth, rng = _population()
    raw, corrected, thesis = [], [], []
    for sigma in (0.5, 1.0, 2.0, 3.0):
        trials = _trials(truth, sigma, 10, rng)
        res = noise_corrected_predictivity(truth, trials, n_splits=40)
        raw.append(np.median(res.raw))
        corrected.append(res.median)
        thesis.append(
            noise_corrected_predictivity(truth, trials, n_splits=40, estimator="thesis").median
        )
        assert res.median == pytest.approx(1.0, abs=0.05)
        full = noise_corrected_predictivity(truth, trials, n_splits=40, estimator="full")
        assert full.median == pytest.approx(1.0, abs=0.05)
    assert np.all(np.diff(raw) < -0.02), raw  # raw score falls as noise grows
    assert raw[-1] < 0.8
    assert max(corrected) - min(corrected) < 0.05  # corrected score stays flat
    # the printed thesis form (half numerator, SB denominator) is biased low at high noise
    assert thesis[-1] < 0.9 and thesis[-1] < corrected[-1] - 0.1


def test_noisy_model_is_worse_and_per_trial_predictions_are_corrected():
    truth, rng = _population()
    trials = _trials(truth, 1.5, 10, rng)
    # a model that is right up to a fixed independent error: true correlation 1/sqrt(2)
    err = rng.standard_normal(truth.shape)
    res = noise_corrected_predictivity(truth + err, trials, n_splits=30)
    assert res.median == pytest.approx(1 / np.sqrt(2), abs=0.06)
    # per-trial predictions carrying their own noise: the model reliability corrects for it
    pred_trials = _trials(truth, 1.0, 10, rng)
    res = noise_corrected_predictivity(pred_trials, trials, n_splits=30)
    assert res.median == pytest.approx(1.0, abs=0.05)
    assert np.median(res.model_reliability) < 0.95


def test_permuted_copy_scores_one_under_one_to_one_and_random_features_zero():
    truth, rng = _population(200, 60)
    trials = _trials(truth, 1.5, 10, rng)
    perm = rng.permutation(truth.shape[1])
    source = _trials(truth[:, perm], 1.5, 10, rng)  # another "animal": same cells, own noise
    res = linear_predictivity(source, trials, mapping="one_to_one", n_train_test=3, n_splits=8)
    assert res.median == pytest.approx(1.0, abs=0.05)
    assert np.median(res.raw) < 0.9  # the raw score is clearly attenuated
    random = rng.standard_normal((truth.shape[0], 40))
    for mapping in ("ridge", "one_to_one"):
        res = linear_predictivity(random, trials, mapping=mapping, n_train_test=3, n_splits=5)
        assert abs(res.median) < 0.1, mapping


def test_ridge_and_pls_recover_a_linear_model():
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((240, 8))
    truth = latent @ rng.standard_normal((8, 50))
    trials = _trials(truth, 2.0 * truth.std(), 8, rng)
    features = latent @ rng.standard_normal((8, 30))  # model units: another basis, same space
    for mapping in ("ridge", "pls"):
        res = linear_predictivity(
            features, trials, mapping=mapping, n_components=8, n_train_test=3, n_splits=5
        )
        assert res.median == pytest.approx(1.0, abs=0.05), mapping
        assert np.median(res.raw) < res.median - 0.05


def test_reliability_threshold_and_group_summary():
    truth, rng = _population(200, 40)
    sigma = np.r_[np.full(20, 0.5), np.full(20, 20.0)]  # half the neurons are pure noise
    trials = truth[None] + sigma * rng.standard_normal((6, *truth.shape))
    res = noise_corrected_predictivity(truth, trials, n_splits=30, reliability_threshold=0.3)
    assert res.reliable[:20].all()
    assert res.reliable[20:].mean() < 0.3
    assert np.isnan(res.corrected[~res.reliable]).all()
    groups = np.repeat(["a", "b"], 20)
    table = res.summary(groups)
    row = table[(table.group == "a") & (table.score == "corrected")].iloc[0]
    assert row["n"] == 20 and row["median"] == pytest.approx(1.0, abs=0.05)
    assert 0 < row["sem"] < 0.05
    summary = summarize_scores([1.0, 2.0, np.nan, 3.0])
    assert summary.loc[0, "n"] == 3 and summary.loc[0, "median"] == 2.0
    assert summary.loc[0, "sem"] == pytest.approx(1 / np.sqrt(3))
    assert len(res.to_frame()) == 40


def test_rsa_and_its_noise_correction():
    rng = np.random.default_rng(4)
    truth = rng.standard_normal((60, 100))
    d = rdm(truth)
    assert d.shape == (60, 60) and np.allclose(np.diag(d), 0)
    assert rsa(truth, truth) == pytest.approx(1.0)
    trials = _trials(truth, 2.0, 10, rng)
    res = noise_corrected_rsa(truth, trials, n_splits=20)
    assert res.raw < 0.9
    assert res.corrected == pytest.approx(1.0, abs=0.05)
    assert noise_corrected_rsa(truth, trials, estimator="thesis").corrected < res.corrected - 0.05
    unrelated = rng.standard_normal((60, 30))
    assert abs(noise_corrected_rsa(unrelated, trials, n_splits=10).corrected) < 0.15
    # a different population measuring the same representation scores ~1 (eq. 3.10)
    other = _trials(truth[:, rng.permutation(100)], 2.0, 10, rng)
    assert noise_corrected_rsa(other, trials, n_splits=20).corrected == pytest.approx(1, abs=0.07)


def test_toy_brain_ideal_forecast_scores_one_and_beats_persistence():
    from napari_mesoscale.synth import make_toy_brain
    from napari_mesoscale.synth.dynamics import simulate

    brain = make_toy_brain(160, n_frames=300, render=None, em=False, seed=2)
    trials = np.stack(
        [
            simulate(brain.dynamics, brain.stimulus, brain.activity[0], np.random.default_rng(k), 0)
            for k in range(6)
        ]
    ).astype(np.float64)
    ideal = np.stack([brain.one_step(trial) for trial in trials])[:, :-1]  # predicts t + 1
    target = trials[:, 1:]
    best = noise_corrected_predictivity(ideal, target, n_splits=20, reliability_threshold=0.3)
    persistence = noise_corrected_predictivity(
        trials[:, :-1], target, n_splits=20, reliability_threshold=0.3
    )
    assert best.reliable.sum() > 80
    assert best.median == pytest.approx(1.0, abs=0.05)
    assert persistence.median < best.median - 0.05


@pytest.mark.parametrize(
    ("trials", "match"),
    [
        (np.zeros((10, 5)), "3-D"),
        (np.zeros((1, 10, 5)), "at least 2"),
        (np.zeros((4, 2, 5)), "at least 3"),
        (np.full((4, 10, 5), np.nan), "NaN"),
    ],
)
def test_bad_trials_raise(trials, match):
    with pytest.raises(ValueError, match=match):
        noise_corrected_predictivity(np.zeros((10, 5)), trials)


def test_bad_arguments_raise():
    truth, rng = _population(20, 5)
    trials = _trials(truth, 1.0, 4, rng)
    with pytest.raises(ValueError, match="neurons"):
        noise_corrected_predictivity(truth[:, :3], trials)
    with pytest.raises(ValueError, match="stimuli"):
        noise_corrected_predictivity(truth[:10], trials)
    with pytest.raises(ValueError, match="estimator"):
        noise_corrected_predictivity(truth, trials, estimator="best")
    with pytest.raises(ValueError, match="mapping"):
        linear_predictivity(truth, trials, mapping="lasso")
    with pytest.raises(ValueError, match="train_fraction"):
        linear_predictivity(truth, trials, train_fraction=1.5)
    with pytest.raises(ValueError, match="same stimuli"):
        rsa(truth, truth[:10])


def test_callback_progress_and_cancel():
    truth, rng = _population(30, 5)
    trials = _trials(truth, 1.0, 4, rng)
    seen = []
    noise_corrected_predictivity(truth, trials, n_splits=5, callback=seen.append)
    assert len(seen) == 5 and seen[-1]["fraction"] == pytest.approx(1.0)
    with pytest.raises(EvaluationCancelled):
        linear_predictivity(truth, trials, callback=lambda info: False)


# -- the napari widget ------------------------------------------------------------------------


def test_score_predictions_table():
    from napari_mesoscale.evaluate.predictivity import score_predictions

    truth, rng = _population(300, 30)
    recorded = np.concatenate(list(_trials(truth, 1.0, 6, rng)))  # 6 consecutive repeats
    predicted = np.tile(truth, (6, 1))
    table = score_predictions(predicted, recorded, n_repeats=6, n_splits=20, n_eigenvectors=4)
    assert list(table.columns[:4]) == ["predictivity", "raw", "reliability", "reliable"]
    assert {"eig_0", "eig_3"} <= set(table.columns) and len(table) == 30
    assert np.median(table["predictivity"]) == pytest.approx(1.0, abs=0.05)
    # one recording only: no correction possible, predictivity is the raw correlation
    single = score_predictions(truth, recorded[:300])
    np.testing.assert_allclose(single["predictivity"], single["raw"])
    assert single["reliability"].isna().all()
    # one-step forecasts stored at the time they were made: lag 1 aligns them
    shifted = np.tile(np.roll(truth, -1, axis=0), (6, 1))
    noisy = np.concatenate(list(_trials(truth, 0.1, 6, rng)))
    aligned = score_predictions(shifted, noisy, n_repeats=6, lag=1)
    assert np.median(aligned["raw"]) > 0.99
    # a forecast's first row is NaN (nothing to predict it from): that time point is left out
    forecast = predicted.copy()
    forecast[0] = np.nan
    with_nan = score_predictions(forecast, recorded, n_repeats=6, n_splits=20)
    assert np.isfinite(with_nan["predictivity"]).all()
    assert np.median(with_nan["predictivity"]) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="neurons"):
        score_predictions(truth[:, :5], recorded)
    with pytest.raises(ValueError, match="finite"):
        score_predictions(np.full_like(truth, np.nan), recorded[:300])
