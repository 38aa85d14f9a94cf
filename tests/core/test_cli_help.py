"""``napari-mesoscale <command> --help``: the first thing a user types."""

from __future__ import annotations

import pytest

from napari_mesoscale.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", [name for name in SUBCOMMANDS if name != "demo"])
def test_every_subcommand_prints_its_help(command, capsys):
    """``fit --help`` crashed (ValueError from argparse: a help text said "5 %")."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: napari-mesoscale {command}")
    assert "--overwrite" in out
    if command == "fit":
        assert "by at least 10 %, or" in out  # the literal percent sign survives formatting
