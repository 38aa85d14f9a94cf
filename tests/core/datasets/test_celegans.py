"""The C. elegans data set: real files of the worm data packages (skipped when not installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from napari_mesoscale.datasets import celegans

_MISSING = [p for p in (*celegans.DATA_PACKAGES, "h5py") if importlib.util.find_spec(p) is None]
needs_data = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"worm data packages {_MISSING} not installed ({celegans.INSTALL_COMMAND})",
)


def test_missing_package_gives_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "c302" else real(name, *a)
    )
    with pytest.raises(celegans.MissingDataPackageError, match="pip install --no-deps"):
        celegans.data_dir("c302")
    with pytest.raises(ImportError, match="c302"):
        celegans.load_celegans()


def test_canonical_names():
    assert celegans.canonical_name("AWCOF") == "AWCL"
    assert celegans.canonical_name("AWCOFF") == "AWCL"
    assert celegans.canonical_name("AWCON") == "AWCR"
    assert celegans.canonical_name("VD01") == "VD1"
    assert celegans.canonical_name(" AVAL") == "AVAL"
    assert celegans.canonical_name("IL2DL") == "IL2DL"
    assert celegans.homologue("AVAL", {"AVAL", "AVAR"}) == "AVAR"
    assert celegans.homologue("AVG", {"AVG"}) is None


@needs_data
def test_neuron_table_has_302_neurons_in_um():
    table = celegans.neurons()
    assert len(table) == 302 and table["id"].is_unique
    assert "MDL08" not in set(table["id"])  # the one muscle cell of c302 is dropped
    aval = table.set_index("id").loc["AVAL"]
    np.testing.assert_allclose(aval[["z", "y", "x"]].astype(float), [37.983, -271.5, -0.55])
    counts = table["neuron_class"].value_counts()
    assert counts["motor"] == 117 and counts["inter"] == 96 and counts["sensory"] == 61
    pairs = table[table["homologue"] != ""]
    assert len(pairs) == 198 and set(pairs["homologue"]) == set(pairs["id"])
    # the body spans about 800 µm along y (head to tail)
    assert 700 < np.ptp(table["y"]) < 900


@needs_data
def test_names_reconciled_across_sources():
    names = set(celegans.neurons()["id"])
    for strain in celegans.STRAINS:
        table = celegans.atlas(strain)
        atlas_names = set(table["responder"]) | set(table["stimulated"])
        assert atlas_names <= names, atlas_names - names
        assert {"AWCL", "AWCR"} <= atlas_names  # stored as AWCOF / AWCON
    for source in celegans.CONNECTOMES:
        table = celegans.connectome(source)
        assert set(table["pre"]) | set(table["post"]) <= names
    # every neuron the White 1986 connectome knows, and nearly all 302, survive reconciliation
    white = celegans.connectome("white_1986")
    assert len(set(white["pre"]) | set(white["post"])) >= 279


@needs_data
def test_connectomes_keep_chemical_and_gap_junctions_apart():
    white = celegans.connectome("white_1986")
    sums = white.groupby("type")["synapses"].sum()
    assert sums["chemical"] == 6509 and sums["electrical"] == 1916
    chemical = celegans.connectome("cook_2019", "chemical")
    assert set(chemical["type"]) == {"chemical"} and len(chemical) == 3709
    # cect's White 1986 agrees with the copy shipped by wormneuroatlas on >= 90 % of pairs
    path = celegans.data_dir("wormneuroatlas") / "data" / "aconnectome_white_1986_whole.csv"
    other = pd.read_csv(path, sep="\t")
    other = other[other["type"] == "chemical"].assign(
        pre=lambda t: t["pre"].map(celegans.canonical_name),
        post=lambda t: t["post"].map(celegans.canonical_name),
    )
    both = celegans.connectome("white_1986", "chemical").merge(other, on=["pre", "post"])
    assert len(both) > 2000
    assert (both["synapses_x"] == both["synapses_y"]).mean() > 0.9


@needs_data
def test_atlas_tables():
    wt, unc31 = celegans.atlas("wt"), celegans.atlas("unc31")
    assert len(wt) == 25345 and len(unc31) == 10588
    assert wt[["responder", "stimulated"]].drop_duplicates().shape[0] == len(wt)
    finite = np.isfinite(wt["dff"])
    assert finite.sum() > 24000
    trial_mean = np.array([np.mean(x) for x in wt.loc[finite, "dff_trials"]])
    np.testing.assert_allclose(trial_mean, wt.loc[finite, "dff"], atol=1e-9)
    lengths = wt.loc[finite, "dff_trials"].map(len)
    assert (wt.loc[finite, "n_trials"] >= lengths).all()  # occ1 also counts unusable trials
    q = wt["q"].dropna()
    assert len(q) > 24000 and q.between(0, 1).all()
    kernel = np.array([[0.5, 2.0, 1.0, 0.0], [1.0, -1.0, 0.0, 0.0]])
    t = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(
        celegans.kernel_response(kernel, t), 2 * t * np.exp(-0.5 * t) - np.exp(-t)
    )
    response = celegans.response_to("AWCON")
    assert response.index.is_unique and len(response) > 10


@needs_data
def test_stimulation_trials_plateau_at_measured_response():
    names = celegans.neurons()["id"].tolist()
    activity, stimulus, stimulated = celegans.stimulation_trials(
        names, stimulated=["AVJR", "AWCR"], frames_per_trial=30, rise_frames=1.0
    )
    assert activity.shape == (60, 302) and stimulus.shape == (60, 1)
    assert np.all(activity[0] == 0) and np.all(activity[30] == 0)
    column = names.index("AVJR")
    assert activity[1:30, column].min() == 1.0
    measured = celegans.response_to("AVJR").dropna()
    measured = measured[measured.index != "AVJR"]
    plateau = activity[29, [names.index(n) for n in measured.index]]
    np.testing.assert_allclose(plateau, measured.to_numpy(), rtol=1e-6)
    unobserved = set(names) - set(measured.index) - {"AVJR"}
    assert np.isnan(activity[5, [names.index(n) for n in unobserved]]).all()


@needs_data
def test_witvliet_development_through_connectome_tables():
    """Scaling case with real structure: 8 stages, birth to adult, same 302 nodes."""
    totals, edges = [], []
    for source in celegans.WITVLIET_SERIES:
        connectome = celegans.to_connectome(source)
        assert connectome.n_neurons == 302
        adjacency = connectome.adjacency
        totals.append(float(adjacency.sum()))
        edges.append(adjacency.nnz)
        features = connectome.node_features()
        assert len(features) == 302
        assert features["out_degree"].sum() == adjacency.nnz
        np.testing.assert_allclose(features["out_weight"].sum(), adjacency.sum())
    # synapses are added throughout development (Witvliet et al. 2021): 1152 → 7099
    assert totals[0] == 1152 and totals[-1] == 7099
    assert np.all(np.diff(totals) > 0)
    assert edges[-1] > 2.5 * edges[0]
    grid = celegans.to_connectome("witvliet_2021_8").grid(diameter=60.0)
    assert grid.n_neurons == 302 and grid.n_fields > 10
    assert grid.candidates.shape[0] == 302
    assert grid.mask.any(axis=1).all()  # every neuron lies in some receptive field


@needs_data
def test_stimulation_trials_lag_pulse_and_masked_rest():
    """Responders stay at rest for the lag, then sit at the measured response; the stimulated
    neuron holds the pulse; masked rest leaves frame 0 NaN only for the trial's observed
    neurons."""
    names = celegans.neurons()["id"].tolist()
    activity, stimulus, _ = celegans.stimulation_trials(
        names,
        stimulated=["AVJR"],
        frames_per_trial=3,
        rise_frames=0.01,
        response_lag_frames=1,
        mask_rest=True,
        pulse=0.3,
    )
    measured = celegans.response_to("AVJR").dropna()
    measured = measured[measured.index != "AVJR"]
    cols = [names.index(n) for n in measured.index]
    column = names.index("AVJR")
    np.testing.assert_allclose(activity[1:, column], 0.3)
    np.testing.assert_array_equal(activity[1, cols], 0.0)
    np.testing.assert_allclose(activity[2, cols], measured.to_numpy(), rtol=1e-6)
    observed = cols + [column]
    assert np.isnan(activity[0, observed]).all()
    others = np.setdiff1d(np.arange(len(names)), observed)
    np.testing.assert_array_equal(activity[0, others], 0.0)
    np.testing.assert_array_equal(stimulus[:, 0], [0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="response_lag_frames"):
        celegans.stimulation_trials(
            names, stimulated=["AVJR"], frames_per_trial=3, response_lag_frames=2
        )


@needs_data
def test_response_matrix_is_the_atlas_keyed_by_name():
    matrix = celegans.response_matrix("wt")
    assert matrix.shape == (302, 302)
    assert list(matrix.columns) == celegans.neurons()["id"].tolist()
    assert np.isnan(np.diag(matrix.to_numpy())).all()
    measured = celegans.response_to("AWCON").drop("AWCR", errors="ignore").dropna()
    np.testing.assert_allclose(matrix.loc[measured.index, "AWCR"], measured)


@needs_data
def test_field_key_counts_the_column_without_the_matrix(monkeypatch):
    """The fit's cache key counts one column of the atlas directly; it is the key the full
    302 × 302 matrix gave, for every neuron and both strains, and builds no matrix."""
    from napari_mesoscale.model.response_field import ResponseFieldParams

    least = ResponseFieldParams().min_responders
    names = celegans.neurons()["id"].tolist()
    for strain in celegans.STRAINS:
        counts = celegans.response_matrix(strain).notna().sum()
        expected = {n: (strain, n if counts[n] >= least else None) for n in names}
        assert {n: celegans._field_key(n, strain) for n in names} == expected
        assert len({key for key in expected.values() if key[1] is None}) == 1
        assert any(key[1] for key in expected.values())
    assert celegans._field_key(None, "wt") == ("wt", None)
    assert celegans._field_key("AWCON", "wt") == ("wt", "AWCR")

    def no_matrix(*args, **kwargs):
        raise AssertionError("the key built the whole response matrix")

    monkeypatch.setattr(celegans, "response_matrix", no_matrix)
    assert celegans._field_key("AVAL", "wt") == ("wt", "AVAL")


@needs_data
def test_predict_response_never_trains_on_the_column_it_predicts(monkeypatch):
    """The one-line entry: a fit per (strain, neuron) without that neuron's own column, reused;
    neurons the atlas never stimulated share one fit per strain (few steps here: the fit's
    accuracy on real data is tested in tests/core/model/test_response_field.py)."""
    from functools import partial

    from napari_mesoscale.model import response_field

    fits = []
    quick = partial(response_field.fit_response_field, steps=20)

    def counted(*args, **kwargs):
        fits.append(kwargs["exclude"])
        return quick(*args, **kwargs)

    monkeypatch.setattr(celegans, "_RESPONSE_FIELDS", {})
    monkeypatch.setattr(response_field, "fit_response_field", counted)
    predicted = celegans.predict_response("AVAL")
    assert predicted.name == "predicted_response" and len(predicted) == 302
    assert np.isnan(predicted["AVAL"]) and predicted.drop("AVAL").notna().all()
    assert fits == [["AVAL"]]
    assert "AVAL" not in celegans.response_field("AVAL").training_stimulated
    assert celegans.response_field_cached("AVAL")
    pd.testing.assert_series_equal(celegans.predict_response("AVAL"), predicted)
    assert len(fits) == 1  # cached
    counts = celegans.response_matrix("wt").notna().sum()
    never = counts.index[counts == 0][:2].tolist()
    for name in never:
        celegans.predict_response(name)
    assert fits == [["AVAL"], []]  # one shared fit, trained on every usable column
    with pytest.raises(ValueError, match="302 neurons"):
        celegans.predict_response("NOTANEURON")
    with pytest.raises(ValueError, match="strain"):
        celegans.predict_response("AVAL", "mutant")
