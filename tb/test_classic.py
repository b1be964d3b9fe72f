"""`make classic` inside the regression: the pure-Verilog bench (tb/classic_tb.v) on the
text vectors of `python -m model export`, weight-stationary and output-stationary, plus a
negative test: one corrupted expected output must be reported as a MISMATCH and FAIL.

Each test exports into and builds in its own folder under sim_build/, so `pytest -n`
never shares one. Icarus only (the bench is plain Verilog-2005 run with vvp).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runner

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                reason="iverilog/vvp not installed")

# dataflow -> (plusargs, expected-output file, number of outputs)
FLOWS = {"ws": ([], "out.txt", 16), "os": (["+OS"], "out_os.txt", 8)}
VVP_TIMEOUT_S = 60   # a passing run takes about a second


def _folder(name: str) -> Path:
    folder = runner.SIM_BUILD / f"classic-{name}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def export(out: Path, dataflow: str) -> Path:
    """python -m model export --out <out> [--dataflow os]: the default layer's text vectors."""
    cmd = [sys.executable, "-m", "model", "export", "--out", str(out)]
    if dataflow == "os":
        cmd += ["--dataflow", "os"]
    done = subprocess.run(cmd, cwd=runner.REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return out


def compile_bench(folder: Path) -> Path:
    """iverilog -g2005 -I rtl tb/classic_tb.v rtl/*.v, as `make classic` does."""
    vvp = folder / "classic_tb.vvp"
    cmd = (["iverilog", "-g2005", "-Wall", "-I", str(runner.RTL), "-o", str(vvp), str(runner.TB / "classic_tb.v")]
           + [str(p) for p in sorted(runner.RTL.glob("*.v"))])
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"iverilog failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return vvp


def simulate(vvp: Path, vectors: Path, dataflow: str) -> list[str]:
    """vvp -n classic_tb.vvp +DIR=<vectors> [+OS]: the bench's output lines (the log is kept
    next to the build as <dataflow>.log)."""
    cmd = ["vvp", "-n", str(vvp.resolve()), f"+DIR={vectors.resolve()}", *FLOWS[dataflow][0]]
    try:
        done = subprocess.run(cmd, cwd=vvp.parent, capture_output=True, text=True, timeout=VVP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"vvp did not finish in {VVP_TIMEOUT_S} s although classic_tb.v's own watchdog ends "
                    f"a run that waits for a missing vector: the simulator itself stalled. Output so far:\n{tail(out)}")
    (vvp.parent / f"{dataflow}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"vvp exited with {done.returncode}:\n{tail(done.stdout + done.stderr)}"
    # Icarus may add its own notes after $finish; the bench's verdict is its last line of its own
    return [line for line in done.stdout.splitlines()
            if line.strip() and "$finish" not in line and not line.startswith(("VCD info", "FST info"))]


def tail(text: str | list[str], n: int = 30) -> str:
    lines = text.splitlines() if isinstance(text, str) else text
    return "\n".join(lines[-n:])


def match_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"output\s+\d+ match:", line)]


@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_classic_bench(dataflow):
    """make classic: every exported output matches and the bench ends with PASS."""
    folder = _folder(dataflow)
    vectors = export(folder / "export", dataflow)
    lines = simulate(compile_bench(folder), vectors, dataflow)
    n_out = FLOWS[dataflow][2]
    assert lines and lines[-1].startswith("PASS"), f"classic {dataflow} bench did not pass:\n{tail(lines)}"
    assert len(match_lines(lines)) == n_out, (
        f"classic {dataflow}: {len(match_lines(lines))} match lines, expected {n_out}:\n{tail(lines)}")
    assert f"PASS: {n_out} of {n_out} outputs match" in lines[-1], lines[-1]


@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_classic_bench_catches_a_wrong_output(dataflow):
    """One bit flipped in one expected output: the bench names that output and FAILs."""
    folder = _folder(f"{dataflow}-corrupt")
    vectors = export(folder / "export", dataflow)
    out_file, n_out = FLOWS[dataflow][1], FLOWS[dataflow][2]
    path = vectors / out_file
    text = path.read_text().splitlines()
    index = 5                                  # output 5; its line follows the three headers
    line = text[3 + index]
    assert re.fullmatch(r"[01]{128}", line), f"unexpected line in {out_file}: {line!r}"
    text[3 + index] = line[:-1] + ("1" if line[-1] == "0" else "0")   # flip the LSB of column 0
    path.write_text("\n".join(text) + "\n")

    lines = simulate(compile_bench(folder), vectors, dataflow)
    mismatches = [l for l in lines if "MISMATCH" in l]
    assert lines and lines[-1].startswith("FAIL"), (
        f"classic {dataflow} bench did not FAIL on a corrupted {out_file}:\n{tail(lines)}")
    assert len(mismatches) == 1 and re.match(rf"output\s+{index} MISMATCH", mismatches[0]), (
        f"classic {dataflow}: expected exactly one MISMATCH, for output {index}; got {mismatches}\n{tail(lines)}")
    assert len(match_lines(lines)) == n_out - 1, tail(lines)
    assert f"FAIL: {n_out - 1} of {n_out} outputs match" in lines[-1], lines[-1]
