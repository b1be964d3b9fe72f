"""The console command of pyproject.toml: one command, every user verb a subcommand."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from model.cli import COMMANDS, MODULES, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_names_one_command_with_every_verb():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"systolic": "model.cli:main"}
    assert {"train", "eval", "export", "demo", "bench", "rtl-bench"} <= set(COMMANDS)
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(subcommands) == set(COMMANDS) and set(MODULES) <= set(COMMANDS)


@pytest.mark.parametrize("command", ["demo", "rtl-bench"])
def test_bad_array_size_is_one_line(command, capsys):
    assert main([command, "--array", "17", "--out", "unused"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "array size 17 does not fit the 4-bit WCOL field" in err
