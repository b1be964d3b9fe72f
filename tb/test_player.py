"""tb/player.py's build cache: the player is rebuilt when its RTL or its build command
(MAX_CYCLES, array size, flags) changes, and only then."""
from __future__ import annotations

from model.hwconfig import CONFIG
from tb import player as player_mod


def test_rebuilds_when_the_build_command_changes(tmp_path, capsys, monkeypatch):
    config = CONFIG.with_array(2)
    player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" in capsys.readouterr().out
    player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" not in capsys.readouterr().out, "an unchanged player was rebuilt"
    monkeypatch.setattr(player_mod, "MAX_CYCLES", player_mod.MAX_CYCLES // 2)
    player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" in capsys.readouterr().out, "a new MAX_CYCLES did not rebuild the player"
