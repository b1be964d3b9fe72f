"""tb/sim_speed.py's arithmetic on a stand-in player (no simulator): what each column of the
simulation-speed table divides by."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tb import sim_speed


class FakePlayer:
    """Plays nothing; reports the CPU seconds it is told for the one-word start-up plays."""

    def __init__(self, startup_cpu: float):
        self.last_cpu_s = startup_cpu

    def play(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("startup_cpu, want", [(0.04, 1000 / 0.06), (0.12, None), (0.10, None)])
def test_player_cycles_per_cpu_s(tmp_path: Path, startup_cpu, want):
    """cycles/CPU-s = words / (play CPU s - one-word play CPU s); not measurable (None, "-")
    when the one-word play took as much CPU as the real one or more."""
    check = lambda player: (1000, 0.5, 0.10, 0.25)      # words, process wall s, CPU s, simulation s
    row = sim_speed.player_speed("verilator", "layer", {}, "fast", 3, tmp_path,
                                 lambda sim, out: FakePlayer(startup_cpu), check)
    assert row.cycles_per_s == 1000 / 0.25 and row.process_cycles_per_s == 1000 / 0.5
    assert row.startup_s == pytest.approx(0.25)
    assert row.cycles_per_cpu_s == (None if want is None else pytest.approx(want))


CONFIGS = [(8, 8, 16), (2, 3, 8)]   # rows, cols, psum_bw (8 wraps the sums)


@pytest.mark.parametrize("memories", sim_speed.FLOOR_STRUCTURES)
@pytest.mark.parametrize("rows, cols, psum_bw", CONFIGS)
def test_icarus_floor_psums(tmp_path: Path, rows, cols, psum_bw, memories):
    """tb/icarus_floor.v, in both structures, really does the MACs it is timed on: its bottom
    psums after 100 and 300 edges are floor_psums' (icarus_floor raises ModelError if not)."""
    config = SimpleNamespace(row=rows, col=cols, lane_bits=4, psum_bw=psum_bw)
    sim_speed.icarus_floor(tmp_path, config, memories, cycles=300, repeats=1)


@pytest.mark.parametrize("rows, cols, psum_bw", CONFIGS)
def test_floor_psums_closed_form(rows, cols, psum_bw):
    """floor_psums' closed form is the RTL's recurrence stepped edge by edge."""
    for edges in (1, 7, 100, 300):
        assert np.array_equal(sim_speed.floor_psums(rows, cols, 4, psum_bw, edges),
                              floor_psums_stepped(rows, cols, psum_bw, edges))


def floor_psums_stepped(rows: int, cols: int, psum_bw: int, edges: int) -> np.ndarray:
    """tb/icarus_floor.v stepped edge by edge (the RTL's recurrence), to check the closed form."""
    a = np.zeros((rows, cols), dtype=np.int64)
    psum = np.zeros((rows, cols), dtype=np.int64)
    w = (np.arange(rows * cols).reshape(rows, cols) * 5) % 15 - 7
    for t in range(edges):
        west = (t + 3 * np.arange(rows)) % 16
        a_in = np.concatenate([west[:, None], a[:, :-1]], axis=1)
        signed = np.where(a_in >= 8, a_in - 16, a_in)
        psum = np.concatenate([np.zeros((1, cols), dtype=np.int64), psum[:-1]]) + signed * w
        a = a_in
    total = psum[-1] % (1 << psum_bw)
    return np.where(total >= 1 << (psum_bw - 1), total - (1 << psum_bw), total)


def test_pe_stub_player_computes_nothing(tmp_path: Path):
    """core_without_pes times a player whose PEs really are stubbed: the 8->8 4x4 fast
    program's psums come back all zero on it (the reference's are not); a Verilator build
    of a replacement mac_tile is refused."""
    from model import program as programs
    from model.errors import ModelError
    from model.hwconfig import CONFIG
    from tb.layer_cases import random_case
    from tb.player import Player

    case = random_case(8, 8, 4, 4, seed=2)
    program = programs.SCHEDULES["fast"](case["x_int"], case["w_int"], array_size=CONFIG.row)
    stub = sim_speed.pe_stub_source(tmp_path / "mac_tile_stub.v")
    got = Player("icarus", tmp_path, CONFIG, mac_tile=stub).run(program, tmp_path / "play")
    want = programs.reference_results(program, case["x_int"], case["w_int"]).psums
    assert len(got.psums) == len(want) and not got.psums.any() and want.any()
    with pytest.raises(ModelError, match="Icarus only"):
        Player("verilator", tmp_path, CONFIG, mac_tile=stub)
