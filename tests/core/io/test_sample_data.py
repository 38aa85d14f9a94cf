"""The bundled sample regenerates byte for byte from its seed."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _load_script():
    spec = importlib.util.spec_from_file_location("make_sample_data",
                                                  ROOT / "scripts" / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_data_regenerates_byte_for_byte(tmp_path):
    hashes = _load_script().make_sample_data(tmp_path, seed=0)
    committed = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / "sample_data").iterdir())
        if path.name.startswith("toy_")
    }
    assert hashes == committed


def test_sample_data_is_small():
    total = sum(p.stat().st_size for p in (ROOT / "sample_data").iterdir())
    assert total < 12 * 2**20, f"sample_data is {total / 2**20:.1f} MB"
