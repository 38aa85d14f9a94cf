"""Table files that cannot open as neurons or synapses: napari's error says what is wrong.

Opened without naming a plugin (the reader preferred for ``*.csv``, ``*.parquet`` …), an empty
CSV, one without a header row or with some of the columns, a binary file named ``.csv`` and a
damaged ``.parquet`` got napari's bare "… refused the file", or a pandas / pyarrow error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.errors import ReaderPluginError

from napari_mesoscale.napari._connectome_reader import table_problem

pytestmark = pytest.mark.viewer


def _neurons() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(200), **{a: rng.random(200) for a in "zyx"}})


def _empty(folder):
    path = folder / "empty.csv"
    path.write_bytes(b"")
    return path, "it is empty (0 bytes)"


def _no_header(folder):
    path = folder / "neurons.csv"
    path.write_text("1,2.5,3,4\n5,6,7,8\n")
    return path, "it has no header row: its first line (1, 2.5, 3, 4) holds values"


def _a_column_missing(folder):
    path = folder / "cells.csv"
    path.write_text("cell,z,y,x\n1,2,3,4\n")
    return path, "it has the columns cell, z, y, x: a neurons table also needs id"


def _capitals(folder):
    path = folder / "cells.csv"
    path.write_text("ID,Z,Y,X\n1,2,3,4\n")
    return path, "names its columns ID, Z, Y, X: the reader needs them in lower case"


def _binary(folder):
    path = folder / "neurons.csv"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    return path, "it holds binary data, not comma- or tab-separated text"


def _positions_not_numbers(folder):
    path = folder / "neurons.csv"
    path.write_text("id,z,y,x\n1,deep,3,4\n")
    return path, "it has positions that are not numbers"


def _truncated_parquet(folder):
    path = folder / "neurons.parquet"
    _neurons().to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "it is not a readable Parquet file (damaged, or not Parquet"


def _damaged_parquet(folder):
    """Its footer (the column names) intact, its data overwritten."""
    path = folder / "neurons.parquet"
    _neurons().to_parquet(path, index=False)
    raw = bytearray(path.read_bytes())
    raw[8 : len(raw) // 2] = np.random.default_rng(0).bytes(len(raw) // 2 - 8)
    path.write_bytes(bytes(raw))
    return path, "it is damaged ("


CASES = [
    _empty,
    _no_header,
    _a_column_missing,
    _capitals,
    _binary,
    _positions_not_numbers,
    _truncated_parquet,
    _damaged_parquet,
]
IDS = [
    "empty-csv",
    "no-header",
    "id-missing",
    "capital-columns",
    "binary-csv",
    "positions-not-numbers",
    "truncated-parquet",
    "damaged-parquet",
]


@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_open_says_what_is_wrong_with_the_table(
    make_napari_viewer, tmp_path, reader_preferences, make
):
    path, reason = make(tmp_path)
    viewer = make_napari_viewer()
    with pytest.raises(ReaderPluginError) as caught:
        viewer.open(path, plugin=None)
    message = str(caught.value)
    assert f"{path.name} cannot be opened as neurons" in message, message
    assert reason in message, message
    assert "refused the file" not in message and len(viewer.layers) == 0
    assert reason.removeprefix("it ") in table_problem(path)


def test_table_problem_is_none_for_a_table_that_opens(tmp_path):
    _neurons().to_parquet(tmp_path / "neurons.parquet", index=False)
    _neurons().to_csv(tmp_path / "neurons.csv", index=False)
    assert table_problem(tmp_path / "neurons.parquet") is None
    assert table_problem(tmp_path / "neurons.csv") is None
