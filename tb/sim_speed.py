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
import resource
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import ModelError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

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


# The Icarus target: 15,000 cycles per (wall) second leaves this much a cycle for
# the whole core, its player and cocotb.
ICARUS_TARGET_CYCLES_PER_S = 15_000


FLOOR_STRUCTURES = {0: "a process per PE", 1: "one process, PE state in memories"}   # tb/icarus_floor.v MEMORIES


@dataclass
class IcarusFloor:
    """tb/icarus_floor.v timed: a rows x cols array of one-line WS PEs, nothing else."""
    structure: str              # FLOOR_STRUCTURES
    rows: int
    cols: int
    cycles: int                 # simulated cycles of the long run
    us_per_cycle: float | None  # vvp CPU us a cycle: (long run - short run) / cycle difference
    cycles_per_cpu_s: float | None  # None: not measurable (the difference was not positive)
    target_us_per_cycle: float  # 1e6 / ICARUS_TARGET_CYCLES_PER_S
    plays: int

    @classmethod
    def measured(cls, structure: str, config, cycles: int, us: float, plays: int) -> "IcarusFloor":
        """From a CPU difference per cycle `us`; not measurable (None) when it is not positive:
        load can give the short run more CPU than the long one (as player_speed)."""
        ok = us > 0
        return cls(structure, config.row, config.col, cycles, us if ok else None, 1e6 / us if ok else None,
                   1e6 / ICARUS_TARGET_CYCLES_PER_S, plays)


def floor_psums(rows: int, cols: int, bw: int, psum_bw: int, cycles: int) -> np.ndarray:
    """[cols] int64: the bottom row's psums of tb/icarus_floor.v after `cycles` rising edges,
    in closed form. Row k's activation at edge m (from 1) is the low bw bits of m - 1 + 3k;
    PE (k, c) sees it c edges later (its a registers start at 0), and the psum that leaves
    row rows-1 at edge T took row k's product at edge T - (rows - 1 - k). The weight of PE
    (k, c) is ((k cols + c) 5 mod 15) - 7. Sums wrap at psum_bw bits, two's complement."""
    k, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    edge = cycles - (rows - 1 - k) - c          # the row input's edge that reaches PE (k, c) in time
    a = np.where(edge >= 1, (edge - 1 + 3 * k) % (1 << bw), 0)
    a = np.where(a >= 1 << (bw - 1), a - (1 << bw), a)
    w = (k * cols + c) * 5 % 15 - 7
    total = (a * w).sum(axis=0) % (1 << psum_bw)
    return np.where(total >= 1 << (psum_bw - 1), total - (1 << psum_bw), total)


def icarus_floor(out: Path, config, memories: int, cycles: int = 20_000, repeats: int = 3) -> IcarusFloor:
    """Time tb/icarus_floor.v (structure MEMORIES=memories) on vvp at the core's array size
    and widths: `repeats` runs of `cycles` and of 100 cycles, alternating; us_per_cycle =
    median CPU difference / cycle difference (the start-up cancels). Each run's bottom psums
    are checked against floor_psums (ModelError otherwise)."""
    out.mkdir(parents=True, exist_ok=True)
    binary = out / f"icarus_floor-{memories}.vvp"
    params = {"ROWS": config.row, "COLS": config.col, "BW": config.lane_bits, "PSUM_BW": config.psum_bw,
              "MEMORIES": memories}
    subprocess.run(["iverilog", "-g2005", "-o", str(binary), *(f"-Picarus_floor.{k}={v}" for k, v in params.items()),
                    str(HERE / "icarus_floor.v")], check=True, capture_output=True)

    def cpu_s(n: int) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(["vvp", "-n", str(binary), f"+cycles={n}"], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        got = dict(map(int, line.split()[1:]) for line in done.stdout.splitlines() if line.startswith("psum "))
        want = floor_psums(config.row, config.col, config.lane_bits, config.psum_bw, n)
        if done.returncode or [got.get(c) for c in range(config.col)] != want.tolist():
            raise ModelError(f"tb/icarus_floor.v MEMORIES={memories}, {n} cycles: bottom psums {got}, "
                             f"expected {want.tolist()}")
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    short = 100
    diffs = [cpu_s(cycles) - cpu_s(short) for _ in range(repeats)]
    return IcarusFloor.measured(FLOOR_STRUCTURES[memories], config, cycles,
                                statistics.median(diffs) / (cycles - short) * 1e6, repeats)


PE_STUB = "the core, every mac_tile body constant"   # IcarusFloor.structure of core_without_pes


def pe_stub_source(path: Path) -> Path:
    """Write rtl/mac_tile.v's module header (its parameters and ports, as they are) with a
    body of constant zero outputs to `path`: a PE that costs vvp nothing a cycle."""
    text = (REPO / "rtl" / "mac_tile.v").read_text()
    header = text[:text.index(");", text.index("module mac_tile")) + 2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + """
    // tb/sim_speed.py's PE stub: constant outputs, so a play times the core around the PEs
    assign {act2_out, os_out, start_out, valid_out, a_out} = {(bw+4){1'b0}};
    assign w_out = {bw{1'b0}};
    assign psum_out = {psum_bw{1'b0}};
    initial os_overflow = 1'b0;
endmodule
""")
    return path


def core_without_pes(out: Path, config, program, repeats: int) -> IcarusFloor:
    """vvp CPU us a cycle of the Icarus player with every PE stubbed (pe_stub_source) on
    `program`: (median play CPU - median one-word play CPU) / words. Its dumps are not
    checked: a stubbed array computes nothing."""
    from tb.player import Player

    player = Player("icarus", out, config, mac_tile=pe_stub_source(out / "mac_tile_stub.v"))
    startup = startup_cpu_s(player, out / "pe-stub-startup", repeats)
    folder, words = out / "pe-stub-program", len(program.inst)
    program.save_hex(folder)
    cpu = []
    for _ in range(repeats):
        player.play(folder, words, program.compute_start, psums=False, progress=False)
        cpu.append(player.last_cpu_s)
    return IcarusFloor.measured(PE_STUB, config, words, (statistics.median(cpu) - startup) / words * 1e6, repeats)


def icarus_floors(out: Path, config, repeats: int, program) -> list[IcarusFloor]:
    """Both structures of tb/icarus_floor.v and the core without its PEs on `program`
    (core_without_pes), timed and printed with what the two cheapest parts leave of the
    budget."""
    floors = [icarus_floor(out, config, memories, repeats=repeats) for memories in FLOOR_STRUCTURES]
    floors.append(core_without_pes(out, config, program, repeats))
    budget = floors[0].target_us_per_cycle
    print(f"\nIcarus floor: what parts of the {config.row}x{config.col} core cost vvp a cycle (no cocotb); "
          f"cocotb + Icarus at {ICARUS_TARGET_CYCLES_PER_S:,} cycles/s allows {budget:.1f} us a cycle for everything:")
    for f in floors:
        what = (f"{f.structure} ({f.cycles:,}-word program)" if f.structure == PE_STUB
                else f"one-line WS PEs alone, {f.structure} (psums checked)")
        figure = ("not measurable (load)" if f.us_per_cycle is None else
                  f"{f.us_per_cycle:>7.1f} us ({f.cycles_per_cpu_s:,.0f} cycles/CPU-s)")
        print(f"  {what:<74}{figure}")
    least = [f.us_per_cycle for f in (floors[0], floors[-1])]
    if None not in least:
        print(f"  the core around its PEs plus the cheapest PE array: {sum(least):.1f} us of the {budget:.1f}, "
              f"before the PEs' real work and cocotb's")
    return floors
