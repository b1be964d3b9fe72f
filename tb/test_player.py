"""tb/player.py's build cache: the player is rebuilt when its RTL or its build command
(MAX_CYCLES, array size, flags) changes, and only then. Its reader of %h vectors
(hex_lanes), as the cocotb bench's recorder reader (tb/core_tb.read_recording) uses it:
every lane's value, and an X or Z refused; an empty program refused before it plays."""
from __future__ import annotations

import re

import numpy as np
import pytest

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program import Program
from tb import core_tb
from tb import player as player_mod
from tb.core_tb import read_recording


def test_rebuilds_when_the_build_command_changes(tmp_path, capsys, monkeypatch):
    config = CONFIG.with_array(2)
    player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" in capsys.readouterr().out
    player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" not in capsys.readouterr().out, "an unchanged player was rebuilt"
    monkeypatch.setattr(player_mod, "MAX_CYCLES", player_mod.MAX_CYCLES // 2)
    player = player_mod.Player("icarus", tmp_path, config)
    assert "building the program player" in capsys.readouterr().out, "a new MAX_CYCLES did not rebuild the player"
    # a program without words is refused before the player runs (it used to blame X/Z values)
    with pytest.raises(ModelError, match="^program has no instruction words: nothing to play$"):
        player.run(Program("ws", "test", 2, [], [], compute_start=0), tmp_path / "empty")


@pytest.mark.parametrize("bits, lanes", [(16, 8), (20, 8), (5, 3), (1, 4), (63, 1)])
def test_hex_lanes_reads_every_lane(bits, lanes):
    """Each lane against Python's int(vector, 16): its bits, two's complement."""
    rng = np.random.default_rng(bits)
    digits = (bits * lanes + 3) // 4
    words = [0, (1 << bits * lanes) - 1, *(int(b, 2) for b in ("".join(rng.choice(["0", "1"], bits * lanes))
                                                               for _ in range(20)))]
    vectors = [f"{w:0{digits}x}" for w in words]
    vectors[1] = vectors[1].upper()
    half = 1 << (bits - 1)
    want = [[(int(v, 16) >> bits * lane & (2 * half - 1) ^ half) - half for lane in range(lanes)] for v in vectors]
    got = player_mod.hex_lanes(vectors, bits, lanes)
    assert got.dtype == np.int64 and got.tolist() == want


def test_hex_lanes_refuses_unknowns_and_other_lengths():
    """Every vector in its bus's digits, each checked on its own: a short vector and a long
    one that add up to the right total must not pass; nor a vector above its bus's bits."""
    for vectors, bad in ((["123", "4"], "#0 '123'"), (["12", "3"], "#1 '3'"), (["12", "x3"], "#1 'x3'")):
        with pytest.raises(ValueError, match=f"^vector {bad}: not 2 hex digits"):
            player_mod.hex_lanes(vectors, 4, 2)
    assert player_mod.hex_lanes(["3f", "1f"], 3, 2).tolist() == [[-1, -1], [-1, 3]]
    with pytest.raises(ValueError, match="^vector #1 '4f': does not fit 6 bits$"):
        player_mod.hex_lanes(["3f", "4f"], 3, 2)


def test_recorded_unknowns_and_bad_lines_are_refused(tmp_path):
    """core_harness.v's recorders write %h fields: an X or Z bit must fail the read, not pass
    as 0, and so must a line whose fields are not in their buses' digits (16 for the time,
    3 for an 11-bit key here), the first line too; errors name the file and line and echo
    at most core_tb.ECHO characters of it."""
    path = tmp_path / "psums.txt"
    where = re.escape(str(path))
    path.write_text("0000000000000c26 000 0000ffff\n0000000000000c30 7ff 00010002\n")
    times, keys, lanes = read_recording(path, 11, 16, 2)
    assert times.tolist() == [3110, 3120] and keys.tolist() == [0, 2047] and lanes.tolist() == [[-1, 0], [2, 1]]
    for line in ("0000000000000c30 001 0000fffx", "0000000000000c30 00z 0000ffff", "000000000000Xc30 001 0000ffff",
                 "0000000000000c30 001 0000ffff0", "0000000000000c30 0001 0000ffff", "0000000000000c30  01 0000ffff"):
        path.write_text(f"0000000000000c26 000 00000000\n{line}\n")
        with pytest.raises(ValueError, match=f"^{where} line 2: '{line}"):
            read_recording(path, 11, 16, 2)
    path.write_text("0000000000000c26 000 00000000\n0000000000000c30 001 0000ffff")    # cut off
    with pytest.raises(ValueError, match="line 2: '0000000000000c30 001 0000ffff'"):
        read_recording(path, 11, 16, 2)
    # the first line bad alone; every key short (all lines alike); the time short; an empty first line
    bad_first = {"0000000000000c26 00 00000000\n0000000000000c30 001 0000ffff\n": "'0000000000000c26 00 ",
                 "0000000000000c26 00 00000000\n0000000000000c30 01 0000ffff\n": "'0000000000000c26 00 ",
                 "000000000000c26 000 00000000\n": "'000000000000c26 000 ",
                 "\n0000000000000c30 001 0000ffff\n": "an empty line is not"}
    for text, shown in bad_first.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=f"^{where} line 1: {shown}"):
            read_recording(path, 11, 16, 2)
    path.write_text("0000000000000c26 000 00000000\n8000000000000000 001 0000ffff\n")   # 2**63 ns
    with pytest.raises(ValueError, match=f"^{where} line 2: time 8000000000000000 does not fit int64"):
        read_recording(path, 11, 16, 2)
    # a field above its bus's bits (its top digit): an 11-bit key, vectors of 2 lanes of 13 and 17 bits
    path.write_text("0000000000000c26 7ff 3ffffff 3ffffffff\n")
    assert [a.tolist() for a in read_recording(path, 11, 13, 2, wide=17)] == [[3110], [2047], [[-1, -1]], [[-1, -1]]]
    for line, field in (("800 0000000 000000000", "key 800 does not fit 11 bits"),
                        ("001 4000000 000000000", "vector 4000000 does not fit 26 bits"),
                        ("001 0000000 400000000", "wide vector 400000000 does not fit 34 bits")):
        path.write_text(f"0000000000000c26 7ff 3ffffff 3ffffffff\n0000000000000c30 {line}\n")
        with pytest.raises(ValueError, match=f"^{where} line 2: {field}$"):
            read_recording(path, 11, 13, 2, wide=17)
    path.write_text("0000000000000c26 000 00000000\n" + "0" * 100_000 + "\n")
    with pytest.raises(ValueError, match=f"^{where} line 2: '{'0' * core_tb.ECHO}'\\.\\.\\. is not") as error:
        read_recording(path, 11, 16, 2)
    assert len(str(error.value)) < len(str(path)) + 2 * core_tb.ECHO
    path.write_text("")
    assert [a.shape for a in read_recording(path, 11, 16, 2, wide=20)] == [(0,), (0,), (0, 2), (0, 2)]
