"""Simulation speed of the full core: each simulator (Icarus, Verilator) with each harness
(cocotb: tb/core_harness.v + tb/core_tb.py; the pure-Verilog player: tb/core_player.v),
on one program, side by side in one run. Part of `make bench` (tb/bench.py).

Every play is checked bit for bit (every psum written to pmem, every SFP output) before
its figure counts. Each figure is the median of `repeats` plays; what a play's time counts:
  cocotb  cycles_per_s = program words / wall seconds from handing the program to the HDL
          player to the scoreboard's verdict (write the program files, load, simulate,
          read back, compare); the simulator's start-up (once per simulation, however many
          programs it plays) and the reference model are not included. startup_s is None.
  player  cycles_per_s = program words / seconds from the player's "playing" line (start-up
          over: process, elaboration, program memory, files) to the end of its process
          (simulate, dump): the simulation rate, comparable with cocotb's and with rates
          measured on long programs, where start-up does not count. startup_s = the rest
          of the process's wall seconds; process_cycles_per_s = words / the whole process's
          wall seconds (start-up included; on a short program mostly start-up). The checks
          run outside the timed part.
cycles/CPU-s divides by CPU seconds instead, a figure that a loaded machine disturbs much
less: cocotb, the simulator process with Python in it during the play; player, the whole
player process minus that of a one-word program (its start-up), measured in the same run;
"-" (None in the JSON) when that difference is not positive, which load can cause on a
short program.
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
    cycles_per_cpu_s: float | None             # None: not measurable (see player_speed)
    plays: int
    startup_s: float | None = None             # player: its process's wall s before the first cycle
    process_cycles_per_s: float | None = None  # player: words / whole process, start-up included


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


def cocotb_speed(sim: str, name: str, case: dict, schedule: str, repeats: int, log_file: Path) -> SimSpeed:
    """Play the program `repeats` times back to back in one cocotb simulation, each checked;
    the simulator's output goes to log_file (a failure names it)."""
    from tb.core_layer import run_case

    log_file.parent.mkdir(parents=True, exist_ok=True)
    runs = _with_sim(sim, lambda: run_case(case, ",".join([schedule] * repeats), f"sim_speed-{schedule}",
                                           log_file=log_file))
    words = runs[0]["words"]
    return SimSpeed(sim, "cocotb", f"{name} {schedule}", words,
                    words / statistics.median(r["play_wall_s"] for r in runs),
                    words / statistics.median(r["play_cpu_s"] for r in runs), len(runs))


def startup_cpu_s(player, folder: Path, repeats: int) -> float:
    """CPU seconds of a whole player process on a one-word program (the idle word): the
    median of `repeats` plays."""
    from model.hwconfig import CONFIG

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inst.hex").write_text(f"{CONFIG.isa.idle:x}\n")
    (folder / "dxmem.hex").write_text("0\n")
    cpu = []
    for _ in range(repeats):
        player.play(folder, 1, 0, psums=False, progress=False)
        cpu.append(player.last_cpu_s)
    return statistics.median(cpu)


def player_speed(sim: str, name: str, case: dict, schedule: str, repeats: int, out: Path, player_cls,
                 check) -> SimSpeed:
    """Replay the program `repeats` times with the pure-Verilog player, and a one-word program
    as often for the start-up's CPU time; check(player) checks one play and returns (words,
    process wall s, process CPU s, simulation wall s)."""
    player = player_cls(sim, out)
    startup_cpu = startup_cpu_s(player, out / f"sim_speed-startup-{sim}", repeats)
    plays = [check(player) for _ in range(repeats)]
    words = plays[0][0]
    wall, cpu, sim_s = (statistics.median(p[i] for p in plays) for i in (1, 2, 3))
    # on a short program a loaded machine can give the one-word play more CPU than the real
    # one: then the difference measures nothing, and the figure is left out
    per_cpu_s = words / (cpu - startup_cpu) if cpu > startup_cpu else None
    return SimSpeed(sim, "player", f"{name} {schedule}", words, words / sim_s, per_cpu_s, repeats,
                    startup_s=statistics.median(p[1] - p[3] for p in plays), process_cycles_per_s=words / wall)


def print_table(rows: list[SimSpeed]) -> None:
    print(f"\nsimulation speed, full core, program {rows[0].program} ({rows[0].words:,} words), "
          "every play checked bit for bit, median of plays (tb/sim_speed.py says what each counts):")
    print(f"{'simulator':<11}{'harness':<9}{'cycles/s':>11}{'cycles/CPU-s':>14}{'start-up s':>12}"
          f"{'with start-up':>15}{'plays':>7}")
    for r in rows:
        startup = "-" if r.startup_s is None else f"{r.startup_s:.3f}"
        whole = "-" if r.process_cycles_per_s is None else f"{r.process_cycles_per_s:,.0f}"
        per_cpu = "-" if r.cycles_per_cpu_s is None else f"{r.cycles_per_cpu_s:,.0f}"
        print(f"{r.simulator:<11}{r.harness:<9}{r.cycles_per_s:>11,.0f}{per_cpu:>14}{startup:>12}"
              f"{whole:>15}{r.plays:>7}")
    print("cycles/s: cocotb from handing the program over to the verdict, player from the end of its start-up "
          "to its exit; with start-up: the whole player process")
