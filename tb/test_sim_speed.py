"""tb/sim_speed.py's arithmetic on a stand-in player (no simulator): what each column of the
simulation-speed table divides by."""
from pathlib import Path

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
