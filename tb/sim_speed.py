"""Simulation speed of the full core: each simulator (Icarus, Verilator) with each harness
(cocotb: tb/core_harness.v + tb/core_tb.py; the pure-Verilog player: tb/core_player.v),
on one program, side by side in one run. Part of `make bench` (tb/bench.py).

Every play is checked bit for bit (every psum written to pmem, every SFP output) before
its figure counts. cycles/s = program words / wall seconds of one play, the median of
`repeats` plays:
  cocotb  from handing the program to the HDL player to the scoreboard's verdict (load,
          simulate, read back, compare; the simulator's start-up and the reference model
          are not included);
  player  the whole simulator process (start-up, load, simulate, dump), then the checks
          are made outside the timed part.
cycles/CPU-s divides by the CPU seconds of the simulator process instead (cocotb: the
simulator with Python in it), a figure that a loaded machine disturbs much less.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

SIMULATORS = ("icarus", "verilator")


@dataclass
class SimSpeed:
    simulator: str
    harness: str
    program: str
    words: int
    cycles_per_s: float
    cycles_per_cpu_s: float
    plays: int


def _with_sim(sim: str, fn):
    """Run fn() with SIM=sim (tb/runner.py picks the simulator from it)."""
    old = os.environ.get("SIM")
    os.environ["SIM"] = sim
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("SIM", None)
        else:
            os.environ["SIM"] = old


def cocotb_speed(sim: str, name: str, case: dict, schedule: str, repeats: int) -> SimSpeed:
    """Play the program `repeats` times back to back in one cocotb simulation, each checked."""
    from tb.core_layer import run_case

    runs = _with_sim(sim, lambda: run_case(case, ",".join([schedule] * repeats), f"sim_speed-{schedule}"))
    words = runs[0]["words"]
    return SimSpeed(sim, "cocotb", f"{name} {schedule}", words,
                    words / statistics.median(r["play_wall_s"] for r in runs),
                    words / statistics.median(r["play_cpu_s"] for r in runs), len(runs))


def player_speed(sim: str, name: str, case: dict, schedule: str, repeats: int, out: Path, player_cls,
                 check) -> SimSpeed:
    """Replay the program `repeats` times with the pure-Verilog player; check(player) checks
    one play and returns (words, wall s, CPU s)."""
    player = player_cls(sim, out)
    plays = [check(player) for _ in range(repeats)]
    words = plays[0][0]
    return SimSpeed(sim, "player", f"{name} {schedule}", words,
                    words / statistics.median(p[1] for p in plays),
                    words / statistics.median(p[2] for p in plays), repeats)


def print_table(rows: list[SimSpeed]) -> None:
    print(f"\nsimulation speed, full core, program {rows[0].program} ({rows[0].words:,} words), "
          "every play checked bit for bit, median of plays:")
    print(f"{'simulator':<11}{'harness':<9}{'cycles/s':>11}{'cycles/CPU-s':>14}{'plays':>7}")
    for r in rows:
        print(f"{r.simulator:<11}{r.harness:<9}{r.cycles_per_s:>11,.0f}{r.cycles_per_cpu_s:>14,.0f}{r.plays:>7}")
