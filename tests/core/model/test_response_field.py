"""The response field: responses to stimulating neurons never seen stimulated, learned from the
stimulated ones by where their somata lie; ground truth from known anisotropic offset kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_mesoscale.model.response_field import (
    ResponseFieldParams,
    fit_response_field,
    winsorised,
)
from napari_mesoscale.progress import Cancelled

#: sd (µm) along z, y, x of the bumps the synthetic responses are made of: narrow along the
#: body axis y, wide across x (the shape the worm's learned kernels took).
TRUE_WIDTHS_UM = np.array([3.0, 2.0, 25.0])


def synthetic_atlas(n: int = 90, seed: int = 0, noise: float = 0.1):
    """R[i, j] = responder i's own smooth field at stimulated soma j: a sum of 25 anisotropic
    Gaussian bumps (``TRUE_WIDTHS_UM``) with amplitudes per responder, unit sd, plus noise;
    30 % of pairs unobserved, the diagonal never."""
    rng = np.random.default_rng(seed)
    positions = np.column_stack(
        [rng.uniform(0, 12, n), rng.uniform(0, 60, n), rng.uniform(-40, 40, n)]
    )
    centres = positions[rng.choice(n, 25, replace=False)]
    offsets = (positions[:, None] - centres[None]) / TRUE_WIDTHS_UM
    bumps = np.exp(-0.5 * (offsets**2).sum(-1))  # (stimulated, bump)
    R = rng.normal(size=(n, 25)) @ bumps.T
    R = R / R.std() + noise * rng.normal(size=(n, n))
    R[rng.random((n, n)) < 0.3] = np.nan
    np.fill_diagonal(R, np.nan)
    return positions, R


def _r(prediction: np.ndarray, target: np.ndarray) -> float:
    ok = np.isfinite(prediction) & np.isfinite(target)
    return float(np.corrcoef(prediction[ok], target[ok])[0, 1])


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    positions, R = synthetic_atlas()
    held_out = np.arange(0, 90, 5)
    fit = fit_response_field(R, positions, exclude=held_out)
    return positions, R, held_out, fit


def test_recovers_held_out_stimulations_far_above_the_responder_mean(fitted):
    positions, R, held_out, fit = fitted
    assert not set(held_out) & set(fit.train)
    prediction = fit.predict(list(held_out)).to_numpy()
    truth = R[:, held_out]
    responder_mean = np.repeat(np.nanmean(R[:, fit.train], axis=1)[:, None], len(held_out), 1)
    r, baseline = _r(prediction, truth), _r(responder_mean, truth)
    assert r > 0.7, r
    assert r > baseline + 0.4, (r, baseline)
    assert np.isnan(prediction[held_out, np.arange(len(held_out))]).all()  # own entry


def test_held_out_columns_are_never_read(fitted):
    positions, R, held_out, fit = fitted
    changed = R.copy()
    changed[:, held_out] = 99.0
    again = fit_response_field(changed, positions, exclude=held_out)
    np.testing.assert_array_equal(
        again.predict(list(held_out)).to_numpy(), fit.predict(list(held_out)).to_numpy()
    )


def test_kernels_learn_the_true_anisotropy(fitted):
    """The kernels that carry the prediction are narrow along y and wide along x, as the
    bumps the responses were made of (2 µm vs 25 µm)."""
    *_, fit = fitted
    widths = fit.kernel_widths_um
    weights = fit.mixing_weights.filter(like="basis_").to_numpy()[0]
    main = np.argsort(-np.abs(weights))[:2]
    for b in main:
        y, x = widths.loc[b, "y"], widths.loc[b, "x"]
        assert 0.5 < y < 2.0 * TRUE_WIDTHS_UM[1], widths
        assert x > 4 * y and x > 0.4 * TRUE_WIDTHS_UM[2], widths


def test_dataframes_keyed_by_name_give_the_array_fit():
    positions, R = synthetic_atlas(n=40, seed=1)
    names = [f"N{k}" for k in range(40)]
    table = pd.DataFrame(positions, columns=["z", "y", "x"]).assign(id=names)
    observed = pd.DataFrame(R, index=names, columns=names)
    shuffled = observed.sample(frac=1.0, random_state=0)  # rows in any order
    by_name = fit_response_field(shuffled, table, exclude=["N3"], steps=50)
    by_index = fit_response_field(R, positions, exclude=[3], steps=50)
    np.testing.assert_allclose(
        by_name.predict("N3")["N3"].to_numpy(), by_index.predict(3)[3].to_numpy(), atol=1e-12
    )
    assert by_name.training_stimulated == [n for n in names if n != "N3"]


def test_linear_component_is_used_when_informative():
    positions, R = synthetic_atlas(n=60, seed=2, noise=0.5)
    rng = np.random.default_rng(3)
    linear = np.nan_to_num(R) + 0.3 * rng.normal(size=R.shape)  # a good linear prediction
    held_out = np.arange(0, 60, 6)
    fit = fit_response_field(R, positions, linear=linear, exclude=held_out, steps=200)
    assert fit.mixing_weights["connectome_linear"][0] > 0.1
    with_linear = fit.predict(list(held_out), linear=linear[:, held_out]).to_numpy()
    without = fit_response_field(R, positions, exclude=held_out, steps=200)
    r_without = _r(without.predict(list(held_out)).to_numpy(), R[:, held_out])
    assert _r(with_linear, R[:, held_out]) > r_without
    with pytest.raises(ValueError, match="linear="):
        fit.predict(list(held_out))


def test_winsorising_keeps_one_far_pair_from_steering_the_fit():
    positions, R = synthetic_atlas(n=40, seed=4)
    held_out = np.arange(0, 40, 5)
    outlier = R.copy()
    outlier[5, 7] = 1e3  # one training pair far out
    bound = np.nanquantile(np.abs(outlier[:, np.setdiff1d(np.arange(40), held_out)]), 0.99)
    assert bound < 10 and np.nanmax(winsorised(outlier, np.arange(1, 40), 0.99)) < 10

    def held_out_r(responses, quantile):
        fit = fit_response_field(responses, positions, exclude=held_out, clip_quantile=quantile)
        return _r(fit.predict(list(held_out)).to_numpy(), R[:, held_out])

    clean = held_out_r(R, 0.99)
    assert held_out_r(outlier, 0.99) > clean - 0.05
    assert held_out_r(outlier, None) < held_out_r(outlier, 0.99)


def test_progress_and_cancel():
    positions, R = synthetic_atlas(n=30, seed=5)
    reports = []
    fit_response_field(R, positions, steps=20, callback=reports.append)
    fractions = [r["fraction"] for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "loss" in reports[-1] and "train" in reports[-1]["message"]
    with pytest.raises(Cancelled):
        fit_response_field(R, positions, steps=20, callback=lambda info: False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda R, p: (R[:, :5], p), r"\(N, N\)"),
        (lambda R, p: (R, p[:, :2]), r"\(N, 3\)"),
        (lambda R, p: (R, p[:20]), "one position per row"),
        (lambda R, p: (np.full_like(R, np.nan), p), "no observed"),
        (lambda R, p: (np.where(np.arange(30) < 2, R, np.nan), p), "min_stimulated"),
        (lambda R, p: (R[0], p), "2-D"),
    ],
)
def test_bad_input_is_named(change, message):
    positions, R = synthetic_atlas(n=30, seed=6)
    responses, where = change(R, positions)
    with pytest.raises(ValueError, match=message):
        fit_response_field(responses, where, steps=2)


def test_bad_parameters_and_names_are_named():
    positions, R = synthetic_atlas(n=30, seed=7)
    with pytest.raises(ValueError, match="clip_quantile"):
        fit_response_field(R, positions, clip_quantile=0.2)
    with pytest.raises(ValueError, match="unknown"):
        fit_response_field(R, positions, widths=3)
    with pytest.raises(ValueError, match="exclude"):
        fit_response_field(R, positions, exclude=[99])
    table = pd.DataFrame(positions, columns=["z", "y", "x"], index=[f"N{k}" for k in range(30)])
    with pytest.raises(ValueError, match="without a position"):
        fit_response_field(pd.DataFrame(R).rename(columns={0: "X"}), table)
    fit = fit_response_field(R, positions, steps=2)
    with pytest.raises(ValueError, match="not among"):
        fit.predict(["nobody"])
    assert ResponseFieldParams().clip_quantile == 0.99


def _worm_missing() -> list[str]:
    import importlib.util

    from napari_mesoscale.datasets import celegans

    return [p for p in (*celegans.DATA_PACKAGES, "h5py") if importlib.util.find_spec(p) is None]


@pytest.mark.skipif(bool(_worm_missing()), reason="worm data packages not installed")
def test_worm_held_out_stimulations_beat_the_responder_mean():
    """Wild type, one fold of the benchmark's split (a fifth of the stimulated neurons held
    out): the package fit, no connectome-linear component, against each responder's mean."""
    from napari_mesoscale.datasets import celegans

    torch.set_num_threads(1)
    responses = celegans.response_matrix("wt")
    stimulated = np.flatnonzero(responses.notna().sum().to_numpy() >= 5)
    held_out = np.sort(np.array_split(np.random.default_rng(0).permutation(stimulated), 5)[0])
    names = responses.columns[held_out].tolist()
    fit = fit_response_field(responses, celegans.neurons(), exclude=names, steps=100)
    assert not set(names) & set(fit.training_stimulated)
    truth = responses[names].to_numpy()
    r = _r(fit.predict(names).to_numpy(), truth)
    mean = responses.iloc[:, fit.train].mean(axis=1).to_numpy()
    baseline = _r(np.repeat(mean[:, None], len(names), 1), truth)
    assert r > 0.15 and r > baseline + 0.1, (r, baseline)
