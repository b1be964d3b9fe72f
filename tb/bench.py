"""RTL benchmark: layers through the core at full simulator speed, every output verified.

    systolic bench [--sim verilator|icarus] [--out build/bench] [--quick] [--array N]

Each row builds the instruction program for a (layer, dataflow, schedule), replays it with
the pure-Verilog player (tb/core_player.v, no Python in the loop), checks every psum the
core wrote to pmem and every SFP output bit for bit against the reference tiling, and
reports the cycles counted by the core's own counter. Prints a table and writes it as
JSON (path printed) so figures can be compared between commits. Then the simulation-speed
table (tb/sim_speed.py): Icarus and Verilator, cocotb and the player, on one program,
under "sim_speed" in the JSON; and the Icarus floor (tb/icarus_floor.v: what an array of
one-line PEs alone costs vvp a cycle; and the Icarus player with every PE stubbed, on the
same program: what the core around the PEs costs), under "icarus_floor".

Columns (n x n array, n = --array): MACs = IC*OC*9*Ho*Wo (model.program.useful_macs);
ideal = MACs / n^2; utilization = MACs / (n^2 * cycles); in the 2-bit mode (a_bit 2, the
"fast2" schedule) every PE makes two MACs per cycle, so n^2 becomes 2 n^2 in both (and
SCALE-Sim, which has no such mode, is left out); SCALE-Sim = the SCALE-Sim v2
analytic model (model.program.scalesim_cycles), WS: ceil(9IC/n)*ceil(OC/n)*(2n+n+Ho*Wo-2)-1,
OS: ceil(Ho*Wo/n)*ceil(OC/n)*(n+n+9IC-2)-1. Cycles run from 'operands in xmem / wmem' to the
last ReLU output for single-pass layers, and from cycle 0 with every xmem / wmem load
included for layers that run in passes.

Then (not with --quick, and on the default array) the project VGG16's 13 convs at batch 1
(tb/conv_bench.py's network run: a synthetic image, random weights and thresholds, each
conv on the core's output of the one before, every output checked against numpy): a row
per conv with its SCALE-Sim WS and OS cycles, and the whole network, under "network" in
the JSON. Its templates are kept under OUT/network/templates, so a rerun only simulates.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model import program as programs
from model.errors import ModelError
from model.hwconfig import CONFIG
from model.options import out_path
from tb.player import Player
from tb.sim_speed import icarus_floors


@dataclass
class Row:
    layer: str
    dataflow: str
    schedule: str
    macs: int
    cycles: int | None
    ideal: float
    utilization: float | None
    scalesim: int | None
    sim_cycles_per_s: float | None    # program words / the player's simulation (start-up left out)
    wall_s: float | None              # the whole player process
    psums_checked: int
    outputs_checked: int
    note: str = ""
    a_bit: int = 4


def first_difference(got: np.ndarray, want: np.ndarray, what: str, describe) -> str | None:
    if got.shape != want.shape:
        return f"{what}: core produced {len(got)}, expected {len(want)}"
    bad = np.argwhere(got != want)
    if len(bad) == 0:
        return None
    i, c = bad[0]
    return f"{what} #{i} ({describe(i)}) column {c}: expected {want[i, c]}, got {got[i, c]} ({len(bad)} values differ)"


def bench_row(player: Player, name: str, x_int, w_int, schedule: str, out: Path) -> Row:
    ic, h, w = x_int.shape
    oc = w_int.shape[0]
    a_bit = 2 if schedule in programs.SCHEDULES_2BIT else 4
    n, pes = player.config.row, player.config.row * player.config.col * (2 if a_bit == 2 else 1)
    dataflow = "os" if schedule == "os" else "ws"
    macs = programs.useful_macs(ic, oc, h, w)      # (a refused row has no ProgramReference)
    base = dict(layer=name, dataflow=dataflow, schedule=schedule, macs=macs, ideal=macs / pes, a_bit=a_bit,
                scalesim=programs.scalesim_cycles(ic, oc, h, w, dataflow, n) if a_bit == 4 else None)
    try:
        program = programs.ALL_SCHEDULES[schedule](x_int, w_int, array_size=n)
    except ModelError as exc:
        return Row(**base, cycles=None, utilization=None, sim_cycles_per_s=None, wall_s=None,
                   psums_checked=0, outputs_checked=0, note=f"refused: {exc}")
    got = player.run(program, out / f"{name.replace(' ', '_')}-{schedule}")
    expected = programs.reference_results(program, x_int, w_int)
    macs = base["macs"] = expected.useful_macs
    want_addr = np.array([addr for addr, _ in program.psum_writes], dtype=np.int64)
    problems = [first_difference(got.psum_addr[:, None], want_addr[:, None], "psum write address",
                                 expected.describe_psum),
                first_difference(got.psums, expected.psums, "psum write", expected.describe_psum),
                first_difference(got.outputs, expected.outputs, "output", expected.describe_output)]
    if got.summary["errors"]:
        flags = [flag for i, flag in enumerate(CONFIG.error_names) if got.summary["errors"] >> i & 1]
        problems.append(f"core error flags: {', '.join(flags)}")
    problems = [p for p in problems if p]
    if problems:
        raise ModelError(f"bench: {name} {schedule}: {problems[0]}")
    cycles = int(got.output_counters[-1]) - got.summary["start"]
    if cycles != program.cycles:
        raise ModelError(f"bench: {name} {schedule}: RTL counted {cycles} cycles, program planned {program.cycles}")
    return Row(**base, cycles=cycles, utilization=macs / (pes * cycles),
               sim_cycles_per_s=len(program.inst) / player.last_sim_s, wall_s=got.wall_s,
               psums_checked=len(got.psums), outputs_checked=len(got.outputs))


def layers(quick: bool):
    from tb.layer_cases import model_case, random_case

    demo = model_case(seed=0)
    yield "8->8 4x4 (features.27)", demo["x_int"], demo["w_int"], ["classic", "fast", "os"]
    part2 = model_case(seed=0, model_name="vgg16_quant_project_part2")
    yield "16->16 4x4 2-bit (part 2)", part2["x_int"], part2["w_int"], ["fast2"]
    r = random_case(16, 16, 8, 8, seed=1)
    yield "16->16 8x8", r["x_int"], r["w_int"], ["fast", "os"]
    if not quick:
        r = random_case(64, 64, 32, 32, seed=2)
        yield "64->64 32x32", r["x_int"], r["w_int"], ["fast"]


def sim_speed_rows(out: Path, repeats: int) -> tuple[list, programs.Program]:
    """The simulation-speed table (tb/sim_speed.py): Icarus and Verilator, cocotb and the
    player, on the 16->16 8x8 fast program, every play checked; and that program."""
    from tb.layer_cases import random_case
    from tb.sim_speed import SIMULATORS, cocotb_speed, player_speed, print_table

    name, schedule = "16->16 8x8", "fast"
    case = random_case(16, 16, 8, 8, seed=1)
    program = programs.SCHEDULES[schedule](case["x_int"], case["w_int"], array_size=CONFIG.row)
    words = len(program.inst)

    def check(player):
        row = bench_row(player, name, case["x_int"], case["w_int"], schedule, out / "sim_speed")
        return words, row.wall_s, player.last_cpu_s, player.last_sim_s

    speeds = []
    for sim in SIMULATORS:
        print(f"  simulation speed: {sim}, cocotb and player, {repeats} plays each ...", flush=True)
        speeds.append(cocotb_speed(sim, name, case, schedule, repeats, out / f"sim_speed-cocotb-{sim}.log"))
        speeds.append(player_speed(sim, name, case, schedule, repeats, out, Player, check))
    print_table(speeds)
    return speeds, program


def network_rows(out: Path, sim: str) -> dict:
    """The project VGG16's convs at batch 1 on the core (tb.conv_bench.run_network): the
    rows and the whole-network totals, as conv-bench's JSON has them at batch 1."""
    import time

    from tb.conv_bench import images, print_table, run_network, totals
    from tb.core_conv import CoreConv

    t0 = time.perf_counter()
    conv = CoreConv(sim=sim, build=out / "network")
    rows, _ = run_network(conv, "vgg16_quant_project", images(0, 1, 32), 1, "network (batch 1)")
    print()
    print_table(rows, [])
    whole = totals(rows)
    wall = time.perf_counter() - t0
    print(f"network: {whole['cycles']:,} cycles per image at batch 1 ({whole['utilization']:.1%}; ideal "
          f"{whole['ideal_cycles_per_image']:,.0f}), every output bit-exact; {wall:.0f} s of wall time")
    return {"model": "vgg16_quant_project", "layers": rows, **whole, "wall_s": wall}


def add_arguments(p) -> None:
    p.add_argument("--sim", default=os.environ.get("BENCH_SIM", "verilator"), choices=["verilator", "icarus"],
                   help="simulator for the player (default verilator: Icarus simulates about 2,000-3,000 cycles/s here, "
                        "Verilator over 100,000)")
    p.add_argument("--out", type=out_path, default="build/bench", help="folder for programs, dumps and bench.json")
    p.add_argument("--quick", action="store_true", help="skip the 64->64 32x32 layer and the network rows")
    p.add_argument("--array", type=int, default=CONFIG.row,
                   help=f"array size n of an n x n core (default {CONFIG.row}, rtl/core_inst.vh)")


def run(args) -> int:
    out = Path(args.out).resolve()
    player = Player(args.sim, out, CONFIG.with_array(args.array))
    rows = []
    for name, x_int, w_int, schedules in layers(args.quick):
        for schedule in schedules:
            print(f"  {name}: {schedule} ...", flush=True)
            rows.append(bench_row(player, name, x_int, w_int, schedule, out))
    header = (f"{'layer':<27}{'flow':<5}{'schedule':<9}{'MACs':>11}{'cycles':>10}{'ideal':>10}"
              f"{'util':>8}{'SCALE-Sim':>11}{'sim cyc/s':>11}{'wall s':>8}  checked")
    print()
    print(header)
    for r in rows:
        scalesim = '-' if r.scalesim is None else f"{r.scalesim:,}"
        if r.cycles is None:
            print(f"{r.layer:<27}{r.dataflow:<5}{r.schedule:<9}{r.macs:>11,}{'-':>10}{r.ideal:>10,.0f}"
                  f"{'-':>8}{scalesim:>11}{'-':>11}{'-':>8}  {r.note}")
            continue
        print(f"{r.layer:<27}{r.dataflow:<5}{r.schedule:<9}{r.macs:>11,}{r.cycles:>10,}{r.ideal:>10,.0f}"
              f"{r.utilization:>8.1%}{scalesim:>11}{r.sim_cycles_per_s:>11,.0f}{r.wall_s:>8.2f}"
              f"  {r.psums_checked:,} psums + {r.outputs_checked:,} outputs bit-exact")
    network = None
    if not args.quick and player.config.row == CONFIG.row:
        network = network_rows(out, args.sim)
    elif not args.quick:
        print(f"\nnetwork rows: only on the default {CONFIG.row}x{CONFIG.col} array (tb/conv_bench.py)")
    speeds, program = sim_speed_rows(out, repeats=1 if args.quick else 3)
    floors = icarus_floors(out / "icarus_floor", CONFIG, 1 if args.quick else 3, program)
    path = out / "bench.json"
    path.write_text(json.dumps({"simulator": args.sim, "array": [player.config.row, player.config.col],
                                "rows": [asdict(r) for r in rows], "network": network,
                                "sim_speed": [asdict(s) for s in speeds], "icarus_floor": [asdict(f) for f in floors]}, indent=2))
    print(f"\ntable as JSON: {path}")
    print("sim cyc/s: program words / the player's simulation, its start-up left out (tb/sim_speed.py); "
          "wall s: the whole player process")
    print("cycles: counted by the core's own counter, from operands in xmem / wmem (single pass) or from cycle 0 "
          "with every load (multi-pass) to the last ReLU output")
    return 0
