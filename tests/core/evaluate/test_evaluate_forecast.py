"""evaluate_forecast and recovery_scores against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.evaluate import evaluate_forecast, forecast, recovery_scores


def test_perfect_and_known_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    s = evaluate_forecast(x, x)
    assert s[1]["mse"] == 0 and s[1]["r2"] == 1 and s[1]["pearson_mean"] == pytest.approx(1)
    pred = x + 0.5
    s = evaluate_forecast(pred, x)
    assert s[1]["mse"] == pytest.approx(0.25) and s[1]["mae"] == pytest.approx(0.5)
    sst = ((x - x.mean(0)) ** 2).sum()
    assert s[1]["r2"] == pytest.approx(1 - 0.25 * x.size / sst)
    assert s[1]["pearson_mean"] == pytest.approx(1)


def test_nan_rows_and_horizons():
    x = np.arange(40, dtype=float).reshape(20, 2)
    p1 = np.full_like(x, np.nan)
    p1[1:] = x[:-1]
    p3 = np.full_like(x, np.nan)
    p3[3:] = x[:-3]
    s = evaluate_forecast({1: p1, 3: p3}, x)
    assert s.summary["horizon"].tolist() == [1, 3]
    assert s[1]["n"] == 38 and s[3]["n"] == 34
    assert s[1]["mse"] == pytest.approx(4.0) and s[3]["mse"] == pytest.approx(36.0)
    assert len(s.per_neuron) == 4
    s2 = evaluate_forecast(np.stack([p1, p3]), x, frames=slice(10, 20))
    assert s2[1]["n"] == 20


def test_forecast_helper_and_errors():
    class Shift:
        def predict(self, a, steps=1, stimulus=None):
            out = np.full_like(a, np.nan)
            out[steps:] = a[:-steps]
            return out

    x = np.random.default_rng(1).normal(size=(30, 3))
    preds = forecast(Shift(), x, horizons=2)
    assert sorted(preds) == [1, 2]
    with pytest.raises(ValueError, match="shape"):
        evaluate_forecast(x[:10], x)
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        evaluate_forecast(x, x[:, 0])


def test_recovery_scores():
    motif = np.array([0, 0, 1, 1, 2, 2])
    inst = np.array([0, 0, 1, 1, 2, 3])
    r = recovery_scores(np.array([5, 5, 3, 3, 1, 1]), motif, inst, domain_labels=inst + 10)
    assert r["motif_ari"] == 1.0 and r["domain_ari"] == 1.0
    r = recovery_scores(np.zeros(6), motif, inst, domain_labels=np.zeros(6))
    assert r["motif_ari"] == 0.0
    with pytest.raises(ValueError, match="domain_labels"):
        recovery_scores(np.zeros(6), motif, inst)
    with pytest.raises(ValueError, match="shape"):
        recovery_scores(np.zeros(6), motif[:3], inst, domain_labels=np.zeros(6))


def test_evaluate_cli_options_default_to_the_scoring_params():
    import argparse

    from napari_mesoscale.evaluate import ScoringParams
    from napari_mesoscale.evaluate.cli import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["rec.npy", "--predicted", "p.npy"])
    assert ScoringParams.from_namespace(args) == ScoringParams()
    args = parser.parse_args(["rec.npy", "--predicted", "p.npy", "--n-repeats", "4"])
    assert ScoringParams.from_namespace(args) == ScoringParams(n_repeats=4)


def test_evaluate_cli_writes_scores_and_per_neuron_predictivity(tmp_path, capsys):
    import json

    import pandas as pd

    from napari_mesoscale.cli import main

    rng = np.random.default_rng(3)
    truth = np.cumsum(rng.standard_normal((120, 4)), axis=0)
    recorded = truth + 0.5 * rng.standard_normal(truth.shape)
    np.save(tmp_path / "rec.npy", recorded)
    np.save(tmp_path / "pred.npy", truth)
    rc = main(
        ["evaluate", str(tmp_path / "rec.npy"), "--predicted", str(tmp_path / "pred.npy")]
        + ["-o", str(tmp_path / "out")]
    )
    assert rc == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["scoring"]["n_repeats"] == 1
    table = pd.read_csv(tmp_path / "out" / "predictivity.csv")
    raw = [np.corrcoef(truth[:, k], recorded[:, k])[0, 1] for k in range(4)]
    np.testing.assert_allclose(table["predictivity"], raw, rtol=1e-9)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "per_neuron.csv",
        "predictivity.csv",
        "scores.json",
    ]
