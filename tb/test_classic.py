"""`make classic` inside the regression: the pure-Verilog bench (tb/classic_tb.v) on the
text vectors of `python -m model export`, weight-stationary and output-stationary, and
on what a course user may hand it instead: malformed files (each must end the run with
the same `file:line: reason` the Python reader gives, and a non-zero exit status),
headerless files, files without the optional psums, a student's reversed lane order,
psums of another width, and folders with long paths or spaces.

Each dataflow is exported and the bench compiled once per module (per xdist worker);
every case copies the exported folder into its own temporary folder. Icarus only (the
bench is plain Verilog-2005 run with vvp).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from itertools import takewhile
from pathlib import Path

import numpy as np
import pytest

import runner
from model import vectors as V
from model.errors import VectorFileError

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                reason="iverilog/vvp not installed")

# dataflow -> (plusargs, expected-output file, number of outputs)
FLOWS = {"ws": ([], "out.txt", 16), "os": (["+OS"], "out_os.txt", 8)}
VVP_TIMEOUT_S = 60   # a passing run takes about a second
PSUM_FILES = [f"psum_kij{k}.txt" for k in range(9)]


def compile_bench(folder: Path, *params: str) -> Path:
    """iverilog -g2005 -I rtl [-Pclassic_tb.<param>=...] tb/classic_tb.v rtl/*.v, as `make classic` does."""
    folder.mkdir(parents=True, exist_ok=True)
    vvp = folder / "classic_tb.vvp"
    cmd = (["iverilog", "-g2005", "-Wall", "-Wno-timescale", "-I", str(runner.RTL), "-o", str(vvp)]
           + [f"-Pclassic_tb.{p}" for p in params] + [str(runner.TB / "classic_tb.v")]
           + [str(p) for p in sorted(runner.RTL.glob("*.v"))])
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"iverilog failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return vvp


def simulate(vvp: Path, vectors: Path, dataflow: str, plusargs=()) -> tuple[int, list[str]]:
    """vvp -n classic_tb.vvp +DIR=<vectors> [+OS] [plusargs]: (exit status, the bench's own output lines)."""
    cmd = ["vvp", "-n", str(vvp), f"+DIR={vectors}", *FLOWS[dataflow][0], *plusargs]
    try:
        done = subprocess.run(cmd, cwd=vvp.parent, capture_output=True, text=True, timeout=VVP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"vvp did not finish in {VVP_TIMEOUT_S} s although classic_tb.v's own watchdog ends "
                    f"a run that waits for a missing vector: the simulator itself stalled. Output so far:\n{tail(out)}")
    # Icarus adds its own notes after $finish / $fatal; the verdict is the bench's PASS/FAIL line
    lines = [line for line in done.stdout.splitlines()
             if line.strip() and not line.startswith(("VCD info", "FST info", "FATAL:", " "))]
    return done.returncode, lines


def tail(text: str | list[str], n: int = 30) -> str:
    lines = text.splitlines() if isinstance(text, str) else text
    return "\n".join(lines[-n:])


def match_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"output\s+\d+ match:", line)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """dataflow -> its exported folder (as `python -m model export`, one capture for both;
    read-only by convention: cases copy it)."""
    from model.capture import default_capture
    from model.export import export_capture

    base = tmp_path_factory.mktemp("classic-export")
    cap = default_capture()
    for flow in FLOWS:
        export_capture(cap, base / flow, flow, echo=lambda *a: None)
    return {flow: base / flow for flow in FLOWS}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return compile_bench(tmp_path_factory.mktemp("classic-build"))


@pytest.fixture
def vectors(exported, tmp_path):
    """copy(dataflow, where=None) -> a private copy of that dataflow's exported folder."""
    def copy(dataflow: str, where: Path | None = None) -> Path:
        return Path(shutil.copytree(exported[dataflow], where or tmp_path / dataflow))
    return copy


def assert_pass(rc: int, lines: list[str], dataflow: str) -> str:
    n_out = FLOWS[dataflow][2]
    assert lines and lines[-1].startswith("PASS"), f"classic {dataflow} bench did not pass:\n{tail(lines)}"
    assert rc == 0, f"PASS but exit status {rc}"
    assert len(match_lines(lines)) == n_out, (
        f"classic {dataflow}: {len(match_lines(lines))} match lines, expected {n_out}:\n{tail(lines)}")
    assert f"PASS: {n_out} of {n_out} outputs match" in lines[-1], lines[-1]
    return lines[-1]


def assert_fail(rc: int, lines: list[str], where: str) -> str:
    """The run FAILed with a non-zero exit status, and its verdict starts with `where`."""
    assert lines and lines[-1].startswith("FAIL: "), f"expected FAIL, got:\n{tail(lines)}"
    assert rc != 0, f"FAIL but exit status 0:\n{tail(lines)}"
    assert lines[-1].startswith(f"FAIL: {where}"), f"expected 'FAIL: {where}...', got:\n{lines[-1]}"
    return lines[-1]


@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_classic_bench(bench, vectors, dataflow):
    """make classic: every exported output (and WS psum) matches, PASS, exit status 0."""
    rc, lines = simulate(bench, vectors(dataflow), dataflow)
    verdict = assert_pass(rc, lines, dataflow)
    if dataflow == "ws":
        assert "324 psum vectors match" in verdict, verdict


@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_classic_bench_catches_a_wrong_output(bench, vectors, dataflow):
    """One bit flipped in one expected output: the bench names that output and its line, and FAILs."""
    folder = vectors(dataflow)
    out_file, n_out = FLOWS[dataflow][1], FLOWS[dataflow][2]
    path = folder / out_file
    text = path.read_text().splitlines()
    index = 5                                  # output 5; its line follows the three headers
    line = text[3 + index]
    assert re.fullmatch(r"[01]{128}", line), f"unexpected line in {out_file}: {line!r}"
    text[3 + index] = line[:-1] + ("1" if line[-1] == "0" else "0")   # flip the LSB of column 0
    path.write_text("\n".join(text) + "\n")

    rc, lines = simulate(bench, folder, dataflow)
    verdict = assert_fail(rc, lines, f"{path}:{3 + index + 1}: first differing line")
    mismatches = [l for l in lines if "MISMATCH" in l]
    assert len(mismatches) == 1 and re.match(rf"output\s+{index} MISMATCH \({out_file}:{3 + index + 1}\)",
                                             mismatches[0]), (
        f"classic {dataflow}: expected exactly one MISMATCH, for output {index}; got {mismatches}\n{tail(lines)}")
    assert len(match_lines(lines)) == n_out - 1, tail(lines)
    assert f"{n_out - 1} of {n_out} outputs match" in verdict, verdict


def test_os_second_pixel_group(bench, vectors):
    """make classic runs every OS pixel group: +GROUP=1 reads activation_os_group1.txt and
    out_os_group1_otile0.txt (output pixels 8..15 of the 8->8 layer), every output matches;
    one flipped bit in that out file FAILs naming its line (a bench that read group 0's
    files instead would PASS here)."""
    folder = vectors("os")
    group1 = folder / "out_os_group1_otile0.txt"
    assert group1.read_text() != (folder / "out_os.txt").read_text(), "the two groups must differ"
    rc, lines = simulate(bench, folder, "os", ["+GROUP=1"])
    assert_pass(rc, lines, "os")
    text = group1.read_text().splitlines()
    text[3 + 2] = text[3 + 2][:-1] + ("1" if text[3 + 2][-1] == "0" else "0")
    group1.write_text("\n".join(text) + "\n")
    rc, lines = simulate(bench, folder, "os", ["+GROUP=1"])
    assert_fail(rc, lines, f"{group1}:6: first differing line")


def test_group_needs_os(bench, vectors):
    """+GROUP is an OS pixel group: with the WS flow it is refused in one line."""
    rc, lines = simulate(bench, vectors("ws"), "ws", ["+GROUP=1"])
    assert_fail(rc, lines, "+GROUP (an OS pixel group) needs +OS")


# ---- malformed files: (dataflow, file, edit of its lines) ----------------------------
def _set(i, value):
    def edit(lines):
        lines[i] = value(lines[i])
        return lines
    return edit


MALFORMED = {
    "out cut to 13 of 16 lines": ("ws", "out.txt", lambda l: l[:3 + 13]),
    "psum missing its last 6 lines": ("ws", "psum_kij4.txt", lambda l: l[:-6]),
    "activation with an extra line": ("ws", "activation_tile0.txt", lambda l: l + [l[-1]]),
    "weight with CRLF endings": ("ws", "weight_itile0_otile0_kij2.txt", lambda l: [s + "\r" for s in l]),
    "out with a trailing space": ("ws", "out.txt", _set(9, lambda s: s + " ")),
    "psum with a long line": ("ws", "psum_kij0.txt", _set(5, lambda s: s + "0000")),
    "psum with a 2": ("ws", "psum_kij8.txt", _set(20, lambda s: s[:40] + "2" + s[41:])),
    "activation with an x": ("ws", "activation_tile0.txt", _set(10, lambda s: "x" + s[1:])),
    "weight truncated": ("ws", "weight_itile0_otile0_kij0.txt", lambda l: l[:-1] + [l[-1][:17]]),
    "acc_address with an empty line": ("ws", "acc_address.txt", _set(7, lambda s: "")),
    "acc_address with a comment inside": ("ws", "acc_address.txt", _set(7, lambda s: "#" + s)),
    "acc_address with an extra line": ("ws", "acc_address.txt", lambda l: l + ["00000000000"]),
    "os weights short": ("os", "weight_os.txt", lambda l: l[:-1]),
    "os activation with a tab": ("os", "activation_os.txt", _set(3, lambda s: s + "\t")),
    "os out with a long line": ("os", "out_os.txt", _set(10, lambda s: s + "1")),
    # a NUL byte ends $fgets' C string: the bench counts the bytes with $ftell (it took a line
    # of NULs for the end of the file, and passed)
    "activation with a line of NULs after the last": ("ws", "activation_tile0.txt", lambda l: l + ["\0" * 5]),
    "out with a NUL byte inside": ("ws", "out.txt", _set(9, lambda s: s[:10] + "\0" + s[11:])),
    "out with a NUL byte first": ("ws", "out.txt", _set(9, lambda s: "\0" + s[1:])),
    "out with an x before a NUL byte": ("ws", "out.txt", _set(9, lambda s: s[:3] + "x" + s[4:9] + "\0" + s[10:])),
    # the last character of a line with a NUL byte is past what $fgets shows: the bench reads
    # it back (it reported the line's length, the reader the ending)
    "out with a NUL byte and CRLF": ("ws", "out.txt", _set(9, lambda s: s[:10] + "\0" + s[11:] + "\r")),
    "out with a NUL byte and a trailing space": ("ws", "out.txt", _set(9, lambda s: "\0" + s[1:] + " ")),
    "out with a NUL byte and a tab, the line cut": ("ws", "out.txt", _set(9, lambda s: s[:5] + "\0\t")),
    "psum with a NUL byte in its first chunk and CRLF": ("ws", "psum_kij0.txt",
                                                        _set(5, lambda s: "\0" + s[1:] + "\r")),
}

# the Python reader of each kind, with the bench's expectations (the classic layer)
READERS = {"out.txt": V.read_out, "out_os.txt": V.read_out_os, "activation_os.txt": V.read_activation_os,
           "weight_os.txt": V.read_weight_os, "acc_address.txt": V.read_acc_address,
           "activation_tile0.txt": V.read_activation}


def reader_of(name: str):
    return READERS.get(name) or (V.read_psum if name.startswith("psum") else V.read_weight)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_fails_naming_file_and_line(bench, vectors, case):
    """The bench refuses what the Python reader refuses, with the same `file:line: reason`,
    and exits non-zero; today's bench passed most of these or said only 'n psums differ'."""
    dataflow, name, edit = MALFORMED[case]
    folder = vectors(dataflow)
    path = folder / name
    path.write_text("\n".join(edit(path.read_text().split("\n")[:-1])) + "\n", newline="")
    with pytest.raises(VectorFileError) as ei:
        reader_of(name)(path)
    rc, lines = simulate(bench, folder, dataflow)
    assert_fail(rc, lines, str(ei.value))
    assert lines[-1] == f"FAIL: {ei.value}", "bench and reader disagree"


@pytest.mark.parametrize("missing", ["out.txt", "weight_itile0_otile0_kij3.txt", "psum_kij6.txt"])
def test_missing_file_fails(bench, vectors, missing):
    """A required file, or one psum file of the nine, missing: FAIL naming it (line 0), as
    the Python reader does (the bench said "not found or not readable")."""
    folder = vectors("ws")
    (folder / missing).unlink()
    rc, lines = simulate(bench, folder, "ws")
    want = f"FAIL: {folder / missing}:0: file not found"      # the Python reader's words
    assert rc != 0 and (lines[-1] == want or missing.startswith("psum") and lines[-1].startswith(f"{want} (")), \
        tail(lines)


@pytest.mark.parametrize("name", ["out.txt", "psum_kij3.txt"])
@pytest.mark.parametrize("case", ["a NUL byte after the last line", "a directory", "a symlink loop"])
def test_unreadable_or_nul_ended_file_fails(bench, vectors, case, name):
    """A file ending in a NUL byte without a line break, a directory, or one that cannot be
    opened (a symlink loop): the bench says what the Python reader says (it passed the first,
    took the second for an empty file, and the third for a missing one, "not found or not
    readable"; an optional psum file for an absent one)."""
    folder = vectors("ws")
    path = folder / name
    if case == "a directory":
        path.unlink()
        path.mkdir()
    elif case == "a symlink loop":
        path.unlink()
        path.symlink_to(name)
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(VectorFileError) as ei:
        reader_of(name)(path)
    rc, lines = simulate(bench, folder, "ws")
    assert_fail(rc, lines, str(ei.value))
    assert lines[-1] == f"FAIL: {ei.value}", "bench and reader disagree"


def test_optional_psums_and_acc_address(bench, vectors):
    """Without psum_kij*.txt and acc_address.txt (course testbenches need neither) the run
    still checks every output, and says the psums were not checked."""
    folder = vectors("ws")
    for name in PSUM_FILES + ["acc_address.txt"]:
        (folder / name).unlink()
    rc, lines = simulate(bench, folder, "ws")
    verdict = assert_pass(rc, lines, "ws")
    assert "psums not checked" in verdict, verdict


@pytest.mark.parametrize("headers", [[], ["# a header, with spaces"]], ids=["none", "with-spaces"])
@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_other_headers(bench, vectors, dataflow, headers):
    """One notebook writes its files without the three '#' lines, a user may write their own:
    leading '#' lines are headers, whatever their number and content."""
    folder = vectors(dataflow)
    for path in folder.glob("*.txt"):
        path.write_text("".join([h + "\n" for h in headers]
                                + [l for l in path.read_text().splitlines(True) if not l.startswith("#")]))
    assert_pass(*simulate(bench, folder, dataflow), dataflow)


def _first_wrong_line(folder: Path, dataflow: str) -> str:
    """`path:line` of the first expected vector, in the bench's checking order (WS:
    psum_kij0..8.txt, then out.txt; OS: out_os.txt), that differs from what the array
    computes from the activation and weight files as they are: psum_kij = W_kij @ A per
    padded position; OS out[row, col] = ReLU(sum over steps of act[step, row] * wgt[step, col])."""
    def line_of(path: Path, index: int) -> str:
        headers = len(list(takewhile(lambda l: l.startswith("#"), path.read_text().splitlines())))
        return f"{path}:{headers + index + 1}"

    if dataflow == "ws":
        act = V.read_activation(folder / "activation_tile0.txt")
        for k, name in enumerate(PSUM_FILES):
            computed = V.read_weight(folder / f"weight_itile0_otile0_kij{k}.txt") @ act
            differs = (computed != V.read_psum(folder / name)).any(axis=0)
            if differs.any():
                return line_of(folder / name, int(np.argmax(differs)))
        raise AssertionError("no psum differs: the case tests nothing")
    computed = np.maximum(V.read_activation_os(folder / "activation_os.txt").T
                          @ V.read_weight_os(folder / "weight_os.txt"), 0)
    differs = (computed != V.read_out_os(folder / "out_os.txt")).any(axis=1)
    assert differs.any(), "no output differs: the case tests nothing"
    return line_of(folder / "out_os.txt", int(np.argmax(differs)))


@pytest.mark.parametrize("dataflow", sorted(FLOWS))
def test_reversed_lane_order_fails_at_first_differing_line(bench, vectors, dataflow):
    """A student writes every file lane 0 first (row0..row7, col0..col7). The bench must
    FAIL naming the first expected line that differs from what the array computes."""
    folder = vectors(dataflow)
    for path in folder.glob("*.txt"):
        if path.name == "acc_address.txt":
            continue
        width = 4 if path.name.startswith(("activation", "weight")) else 16
        path.write_text("".join(
            l if l.startswith("#") else
            "".join(l[i:i + width] for i in range(len(l) - 1 - width, -1, -width)) + "\n"
            for l in path.read_text().splitlines(True)))
    rc, lines = simulate(bench, folder, dataflow)
    assert_fail(rc, lines, f"{_first_wrong_line(folder, dataflow)}: first differing line")


def test_psum_width_parameter(tmp_path, exported):
    """Files with 20-bit psums (export --psum-bw 20): the default bench refuses their
    160-bit lines by length; the bench built with -Pclassic_tb.psum_bw=20 (make classic
    PSUM_BW=20) passes them."""
    from model.tiling import ws_reference

    t = np.load(exported["ws"] / "tensors.npz")
    folder = tmp_path / "bw20"
    V.write_ws_files(folder, ws_reference(t["x_int"], t["w_int"], 8, 20, 20))
    rc, lines = simulate(compile_bench(tmp_path / "b16"), folder, "ws")
    assert_fail(rc, lines, f"{folder}/psum_kij0.txt:4: line length 160, expected 128 characters (8 lanes x 16 bits)")
    assert_pass(*simulate(compile_bench(tmp_path / "b20", "psum_bw=20"), folder, "ws"), "ws")


def test_psum_widths_the_bench_builds_with(tmp_path):
    """classic_tb builds with exactly the psum widths of CONFIG.psum_bw_range (the range make
    classic checks PSUM_BW against), and refuses any other in one error line (mac.v's check
    used to fail once per MAC: 128 lines for PSUM_BW=0)."""
    from model.hwconfig import CONFIG

    widths = CONFIG.psum_bw_range
    for bw in (0, widths.start - 1, widths.start, widths.stop - 1, widths.stop, 100):
        done = subprocess.run(["iverilog", "-g2005", "-I", str(runner.RTL), "-o", str(tmp_path / "b.vvp"),
                               f"-Pclassic_tb.psum_bw={bw}", str(runner.TB / "classic_tb.v"),
                               *map(str, sorted(runner.RTL.glob("*.v")))], capture_output=True, text=True)
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line]
        assert (done.returncode == 0) == (bw in widths) and len(errors) == (bw not in widths), (bw, errors)


def test_long_path_with_spaces(bench, vectors, tmp_path):
    """A checkout path of 100+ characters with spaces: today's 128-character registers cut
    it at the front; the bench must read the files all the same."""
    where = tmp_path / ("a folder with spaces " * 8) / "and the vectors"
    assert len(str(where)) > 200
    assert_pass(*simulate(bench, vectors("ws", where), "ws"), "ws")


def test_export_knows_the_bench_psum_width():
    """model.export warns for any psum width but the bench's default: the two must agree."""
    from model.export import CLASSIC_TB_PSUM_BW
    from model.hwconfig import CONFIG

    source = (runner.TB / "classic_tb.v").read_text()
    assert re.search(r"parameter\s+psum_bw\s*=\s*`CORE_PSUM_BW\b", source)   # rtl/core_inst.vh
    assert CLASSIC_TB_PSUM_BW == CONFIG.psum_bw


# ---- course part 2: the 2-bit mode (+A2), a 16 -> 16 layer in two oc tiles (+OTILE=o) ----
@pytest.fixture(scope="module")
def part2(tmp_path_factory):
    """The part-2 model's 16 -> 16 4x4 layer (a_bit=2), exported (read-only: cases copy it)."""
    from model.capture import default_capture
    from model.export import export_capture

    folder = tmp_path_factory.mktemp("classic-part2") / "ws"
    export_capture(default_capture(model_name="vgg16_quant_project_part2"), folder, echo=lambda *a: None)
    return folder


@pytest.mark.parametrize("otile", [0, 1])
def test_part2_classic_bench(bench, part2, otile):
    """Activation lines of 16 2-bit lanes, weight lines of 16 4-bit lanes (two weights per
    PE): each oc tile's 324 psums and 16 outputs match in the 2-bit mode."""
    verdict = assert_pass(*simulate(bench, part2, "ws", ["+A2", f"+OTILE={otile}"]), "ws")
    assert "324 psum vectors match" in verdict, verdict


def test_part2_classic_bench_catches_a_wrong_output(bench, part2, tmp_path):
    folder = Path(shutil.copytree(part2, tmp_path / "ws"))
    path = folder / "out_otile1.txt"
    text = path.read_text().splitlines()
    text[3 + 7] = text[3 + 7][:-1] + ("1" if text[3 + 7][-1] == "0" else "0")
    path.write_text("\n".join(text) + "\n")
    assert_fail(*simulate(bench, folder, "ws", ["+A2", "+OTILE=1"]), f"{path}:11: first differing line")


@pytest.mark.parametrize("name,edit,reader", [
    ("activation_tile0.txt", lambda ln: ln + "0", lambda p: V.read_activation2(p, n_lines=36)),
    ("weight_itile0_otile0_kij4.txt", lambda ln: ln[:32], lambda p: V.read_weight(p, lanes=16, n_lines=8)),
    ("activation_tile0.txt", lambda ln: ln[:-1] + "2", lambda p: V.read_activation2(p, n_lines=36)),
])
def test_part2_malformed_file_fails_naming_file_and_line(bench, part2, tmp_path, name, edit, reader):
    """The 2-bit files' readers (model.vectors) and the bench refuse alike: `file:line: reason`."""
    folder = Path(shutil.copytree(part2, tmp_path / "ws"))
    path = folder / name
    lines = path.read_text().split("\n")[:-1]
    lines[5] = edit(lines[5])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VectorFileError) as ei:
        reader(path)
    rc, out = simulate(bench, folder, "ws", ["+A2", "+OTILE=0"])
    assert_fail(rc, out, str(ei.value))
    assert out[-1] == f"FAIL: {ei.value}", "bench and reader disagree"


def test_part2_files_need_the_2bit_mode(bench, part2):
    """Read as 4-bit files, the 2-bit layer's weights are refused (16 lanes, not 8)."""
    rc, lines = simulate(bench, part2, "ws", ["+OTILE=0"])
    assert_fail(rc, lines, f"{part2 / 'weight_itile0_otile0_kij0.txt'}:4: line length 64, expected 32")
