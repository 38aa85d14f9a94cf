"""``napari-mesoscale fit`` and ``napari-mesoscale evaluate`` end to end on files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from napari_mesoscale.cli import main
from napari_mesoscale.synth import make_toy_brain

torch.set_num_threads(1)


def test_fit_and_evaluate_cli(tmp_path, capsys):
    b = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=2)
    np.save(tmp_path / "activity.npy", b.activity)
    pd.DataFrame(b.positions, columns=["z", "y", "x"]).to_csv(tmp_path / "pos.csv", index=False)
    pd.DataFrame(b.stimulus).to_parquet(tmp_path / "stim.parquet")
    out = tmp_path / "run"
    rc = main(
        [
            "fit",
            str(tmp_path / "activity.npy"),
            "--positions",
            str(tmp_path / "pos.csv"),
            "--stimulus",
            str(tmp_path / "stim.parquet"),
            "-o",
            str(out),
            "--epochs",
            "2",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "epoch 2/2" in err  # the progress bar
    for name in ("fit.pt", "fit.pt.json", "neurons.csv", "domains.csv", "history.csv"):
        assert (out / name).exists(), name
    neurons = pd.read_csv(out / "neurons.csv")
    assert len(neurons) == 60 and {"domain", "motif", "confidence"} <= set(neurons.columns)
    pred = np.load(out / "predicted.npy")
    assert pred.shape == b.activity.shape

    truth = pd.DataFrame({"motif": b.motif, "instance": b.instance})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    rc = main(
        [
            "evaluate",
            str(tmp_path / "activity.npy"),
            "--fit",
            str(out / "fit.pt"),
            "--stimulus",
            str(tmp_path / "stim.parquet"),
            "--horizons",
            "3",
            "--truth",
            str(tmp_path / "truth.csv"),
            "-o",
            str(tmp_path / "scores"),
        ]
    )
    assert rc == 0
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert [r["horizon"] for r in scores["forecast"]] == [1, 2, 3]
    assert 0 <= scores["recovery"]["motif_ari"] <= 1


def test_cli_bad_input(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((100, 5)))
    np.save(tmp_path / "p.npy", np.zeros((4, 3)))
    rc = main(["fit", str(tmp_path / "a.npy"), "--positions", str(tmp_path / "p.npy"), "-o", "x"])
    assert rc == 2
    assert "positions has 4 rows" in capsys.readouterr().err
    rc = main(["fit", str(tmp_path / "missing.npy"), "--positions", "p.npy", "-o", "x"])
    assert rc == 2


def test_fit_cli_population_filters_and_frozen_connectome_kernels(tmp_path):
    b = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=2)
    np.save(tmp_path / "activity.npy", b.activity)
    b.neurons.to_csv(tmp_path / "neurons.csv", index=False)
    b.synapses.to_csv(tmp_path / "synapses.csv", index=False)
    out = tmp_path / "run"
    args = ["fit", str(tmp_path / "activity.npy"), "--neurons", str(tmp_path / "neurons.csv")]
    args += ["--synapses", str(tmp_path / "synapses.csv"), "-o", str(out), "--epochs", "2"]
    args += ["--n-filters", "3", "--population-filters", "1", "--edge-init", "connectome"]
    assert main([*args, "--freeze-edges", "--quiet"]) == 0
    from napari_mesoscale.model import MesoscaleFit

    fit = MesoscaleFit.load(out / "fit.pt")
    assert list(fit.filters["type"]) == ["configurable", "configurable", "population"]
    assert fit.config.edge_init == "connectome" and fit.config.freeze_edges
    # frozen drive weights are not counted as trained parameters
    assert fit.n_params == fit.net.n_trainable() - fit.net.edge_weight.numel()


def test_fit_cli_defaults_are_model_config_defaults():
    import argparse

    from napari_mesoscale.model import ModelConfig
    from napari_mesoscale.model.cli import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["activity.npy", "-o", "out"])
    assert ModelConfig.from_namespace(args) == ModelConfig()
    args = parser.parse_args(
        [
            "a.npy",
            "-o",
            "o",
            "--n-filters",
            "3",
            "--epochs",
            "7",
            "--population-filters",
            "1",
            "--edge-init",
            "connectome",
            "--freeze-edges",
        ]
    )
    config = ModelConfig.from_namespace(args)
    assert (config.n_filters, config.epochs, config.population_filters) == (3, 7, 1)
    assert config.edge_init == "connectome" and config.freeze_edges is True
