"""Mutation tests: the layer test can fail, and when it does it says where.

Each test copies rtl/*.v and rtl/*.vh to a folder under sim_build/, plants one bug by
exact text replacement (the replacement asserts the original text is there, so an RTL
edit breaks this test loudly instead of silently testing nothing), runs the cocotb layer
test (tb/test_core_layer.py) on the mutated copy with a random 8->8 4x4 layer on the
"fast" schedule, and expects
  (1) the run to fail, and
  (2) the simulator log to name the first differing psum: kij, nij, column, expected, got.
The unmutated copy must pass (the control), so a failure is the mutation's doing.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import runner

# name -> (file, [(original text, mutated text), ...], what the bug is)
MUTATIONS: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "mac_product_lsb": (
        "mac.v",
        [("wire signed [2*bw:0]   product = a_ext * b_s;",
          "wire signed [2*bw:0]   product = (a_ext * b_s) ^ 1;  // MUTATION: product LSB flipped")],
        "every MAC product has its LSB flipped",
    ),
    "fifo_drop_5th_write": (
        "fifo.v",
        [("    wire do_wr = wr & (~full | do_rd);\n",
          "    wire accept_wr = wr & (~full | do_rd);\n"
          "    // MUTATION: the 5th accepted write of every FIFO is silently dropped\n"
          "    reg [7:0] mut_accepted = 8'd0;\n"
          "    always @(posedge clk)\n"
          "        if (accept_wr && mut_accepted != 8'hff)\n"
          "            mut_accepted <= mut_accepted + 8'd1;\n"
          "    wire do_wr = accept_wr & (mut_accepted != 8'd4);\n"),
         ("            if (wr & ~do_wr)\n",
          "            if (wr & ~accept_wr)   // MUTATION: no overflow flag for the dropped write\n")],
        "every FIFO instance silently drops its 5th accepted write",
    ),
    "skew_lane2_as_lane1": (
        "skew.v",
        [("            assign out[i*width +: width] = stage[i];",
          "            assign out[i*width +: width] = (i == 2) ? stage[1] : stage[i];  // MUTATION")],
        "every skew line gives lane 2 lane 1's delay (row 2 one cycle early)",
    ),
}

# What the log must show for each mutation: the scoreboard's first psum difference.
PSUM_MISMATCH = re.compile(
    r"psum mismatch: kij=(?P<kij>\d+) nij=(?P<nij>\d+) .*?column=(?P<column>\d+) .*?"
    r"expected (?P<expected>-?\d+), got (?P<got>-?\d+)")
# A dropped write may show as a wrong psum or, if a whole vector is lost, as a count.
PSUM_COUNT = re.compile(r"saw \d+ psum writes, expected \d+|unexpected pmem write #\d+")


def mutate(name: str | None, folder: Path) -> Path:
    """Copy rtl/*.v and rtl/*.vh into `folder` and apply mutation `name` (None: no change)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for src in sorted(runner.RTL.glob("*.v")) + sorted(runner.RTL.glob("*.vh")):
        (folder / src.name).write_text(src.read_text())
    if name is not None:
        filename, edits, _ = MUTATIONS[name]
        path = folder / filename
        text = path.read_text()
        for old, new in edits:
            assert text.count(old) == 1, (
                f"mutation {name}: expected exactly one copy of {old!r} in rtl/{filename}, found "
                f"{text.count(old)}; the RTL changed, update the mutation in tb/test_mutations.py")
            text = text.replace(old, new)
        path.write_text(text)
    return folder


def run_layer(name: str, rtl_dir: Path, log: Path) -> list[dict]:
    """The layer test (fast schedule, a random 8->8 layer) on the RTL in rtl_dir."""
    from layer_cases import random_case
    from tb.core_layer import run_case

    return run_case(random_case(8, 8, 4, 4, seed=321), "fast", name, log_file=log, rtl_dir=rtl_dir)


def _folders(tag: str) -> tuple[str, Path, Path]:
    name = f"mutation-{tag}"
    build = runner.build_dir(name, {})
    return name, runner.SIM_BUILD / f"{name}-{runner.simulator()}-rtl", build / "sim.log"


def test_unmutated_copy_passes():
    """The control: the copied, unmutated RTL passes the same layer test."""
    name, rtl_dir, log = _folders("none")
    summaries = run_layer(name, mutate(None, rtl_dir), log)
    assert summaries and summaries[0]["psums_checked"] == 144, summaries


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutation_is_caught(mutation):
    name, rtl_dir, log = _folders(mutation)
    what = MUTATIONS[mutation][2]
    mutate(mutation, rtl_dir)
    with pytest.raises((AssertionError, SystemExit)):
        run_layer(name, rtl_dir, log)
        pytest.fail(f"mutation {mutation} NOT caught: the layer test passed although {what} "
                    f"(mutated RTL in {rtl_dir}, log {log})")
    text = log.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-40:])
    match = PSUM_MISMATCH.search(text)
    if mutation == "fifo_drop_5th_write" and match is None:
        assert PSUM_COUNT.search(text), (
            f"mutation {mutation} ({what}) failed the layer test, but the log names neither a "
            f"psum mismatch nor a psum count; log {log}:\n{tail}")
        return
    assert match, (
        f"mutation {mutation} ({what}) failed the layer test, but the log does not name the "
        f"first differing psum ('psum mismatch: kij=.. nij=.. column=..: expected .., got ..'); "
        f"log {log}:\n{tail}")
    assert match["expected"] != match["got"], match.group(0)
