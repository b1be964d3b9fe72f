"""Builds are quiet (make bench): a compiler's output goes to build.log in its build folder,
and a failed build shows the end of that log, then fails in one line (tb/runner.py
build_failed): the program player (tb/player.py) and the cocotb builds (tb/runner.py).
Icarus only (a build of a few seconds); skew.v carries the planted warning or error."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import runner
from model import cli
from model.errors import ModelError
from model.hwconfig import CONFIG
from tb import player as player_mod

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")

WARNING = "    localparam [3:0] noise = 4'b10000;   // iverilog: extra digits\nendmodule\n"
ERROR = "    wire broken = ;   // iverilog: syntax error\nendmodule\n"


def planted(tmp_path: Path, line: str) -> Path:
    """A copy of rtl/ whose skew.v ends with `line` (its `endmodule` replaced)."""
    rtl = tmp_path / "repo" / "rtl"
    shutil.copytree(runner.RTL, rtl)
    skew = rtl / "skew.v"
    text = skew.read_text()
    end = text.rindex("endmodule\n")
    skew.write_text(text[:end] + line + text[end + len("endmodule\n"):])
    return rtl


def test_player_build_is_quiet(tmp_path, monkeypatch, capfd):
    """The compiler's warnings go to the player's build.log, not between the bench's lines."""
    monkeypatch.setattr(player_mod, "REPO", planted(tmp_path, WARNING).parent)
    player = player_mod.Player("icarus", tmp_path / "build")
    out, err = capfd.readouterr()
    assert out == "building the program player (icarus) ...\n" and err == "", out + err
    assert "extra digits" in (player.build / "build.log").read_text().lower()


def test_failed_player_build_fails_rtl_bench_in_one_line(tmp_path, monkeypatch, capfd):
    """rtl-bench (make bench) on RTL that does not compile: the end of the build log (the
    compiler's error, file:line), then one error line and exit status 1."""
    monkeypatch.setattr(player_mod, "REPO", planted(tmp_path, ERROR).parent)
    assert cli.main(["rtl-bench", "--sim", "icarus", "--quick", "--out", str(tmp_path / "bench")]) == 1
    err = capfd.readouterr().err.splitlines()
    log = tmp_path / "bench" / f"player-icarus-{CONFIG.row}x{CONFIG.col}" / "build.log"
    assert any("skew.v:" in line and "syntax error" in line for line in err[:-1]), err
    assert err[-1] == ("error: building the program player (icarus) failed: the end of its log above, "
                       f"all of it in {log}")


def test_failed_cocotb_build_shows_its_log(tmp_path, monkeypatch, capfd):
    """runner.run: a failed build raises ModelError naming build.log, after its last lines."""
    monkeypatch.setattr(runner, "SIM_BUILD", tmp_path / "sim_build")
    monkeypatch.setenv("SIM", "icarus")
    rtl = planted(tmp_path, ERROR)
    with pytest.raises(ModelError, match=r"^building skew \(icarus\) failed: the end of its log above, all of it in "):
        runner.run("skew", "test_skew", parameters={"width": 4, "lanes": 2}, name="skew", rtl_dir=rtl)
    out, err = capfd.readouterr()
    assert "syntax error" in err and "syntax error" not in out
