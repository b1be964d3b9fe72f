"""Mutation tests: the layer test can fail, and when it does it says where.

Each test copies rtl/*.v and rtl/*.vh to a folder under sim_build/, plants one bug by
exact text replacement (the replacement asserts the original text is there, so an RTL
edit breaks this test loudly instead of silently testing nothing), runs the cocotb layer
test (tb/test_core_layer.py) on the mutated copy with the mutation's layer on the "fast"
schedule (a random 8->8 4x4 layer, or a layer from tb/layer_cases.py that reaches the
bug; "fast2", the 2-bit mode, for a random 2-bit 16->16 4x4 layer; "os" for an OS bug), and expects
  (1) the run to fail, and
  (2) the simulator log to name the first difference: the first differing psum (kij,
      nij, column, expected, got; an OS psum names its output pixel), output, or counter, as
      the mutation says.
The unmutated copy must pass every layer (the control), so a failure is the mutation's doing.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from typing import NamedTuple

import pytest

import runner


class Mutation(NamedTuple):
    file: str
    edits: list[tuple[str, str]]        # (original text, mutated text)
    what: str                           # the bug, in words
    layer: str = "random"               # key of _layers()
    caught_by: str = "psum"             # key of FIRST_DIFFERENCE: what the log must name
    schedule: str = "fast"              # the schedule the layer runs


MUTATIONS: dict[str, Mutation] = {
    "mac_product_lsb": Mutation(
        "mac.v",
        [("wire signed [2*bw:0]   product = a_ext * b_s;",
          "wire signed [2*bw:0]   product = (a_ext * b_s) ^ 1;  // MUTATION: product LSB flipped")],
        "every MAC product has its LSB flipped",
    ),
    "fifo_drop_5th_write": Mutation(
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
    "skew_lane2_as_lane1": Mutation(
        "skew.v",
        [("            assign out = taps;",
          "            assign out = {taps[lanes*width-1:3*width], taps[width +: width], taps[2*width-1:0]};  // MUTATION")],
        "every skew line gives lane 2 lane 1's delay (row 2 one cycle early)",
    ),
    "busy_counts_idle_cycles": Mutation(
        "core.v",
        [("busy <= busy + {31'd0, inst[`INST_EXECUTE]};",
          "busy <= busy + 32'd1;  // MUTATION: every cycle counts as busy")],
        "the busy counter counts idle cycles too",
        caught_by="busy",
    ),
    "sfp_relu_passes_minus_1": Mutation(
        "sfp.v",
        [("(relu_q2 && held_c[acc_bw-1])",
          "(relu_q2 && held_c[acc_bw-1] && held_c != -1)  /* MUTATION */")],
        "ReLU lets -1 through",
        layer="relu_edge", caught_by="output",
    ),
    "sfp_accumulator_16_bits": Mutation(
        "sfp.v",
        [("wire signed [acc_bw-1:0]  sum_c = wide[acc_bw-1:0];",
          "wire signed [acc_bw-1:0]  sum_c = {{(acc_bw-16){wide[15]}}, wide[15:0]};  // MUTATION: 16-bit sums")],
        "the SFP accumulator wraps at 16 bits",
        layer="negative", caught_by="output",
    ),
    "sfp_threshold_off_by_one": Mutation(
        "sfp.v",
        [("if (desc[l] ? s <= t : s >= t)",
          "if (desc[l] ? s <= t : s > t)  // MUTATION: a sum equal to a threshold stays below it")],
        "requantization counts an ascending threshold only when the sum exceeds it",
        layer="requant", caught_by="output", schedule="network",
    ),
    "mac_2bit_second_product_dropped": Mutation(
        "mac_tile.v",
        [(".a(a1), .b(ws_weight1)", ".a({bw{1'b0}}), .b(ws_weight1)  /* MUTATION: no slot-1 product */")],
        "in 2-bit mode the PE drops its second product (the high 2-bit activation)",
        layer="random2", schedule="fast2",
    ),
    "os_start_keeps_the_finished_sum": Mutation(
        "mac_tile.v",
        [("wire shadow_en = shadow_drain | (os_op & start_in);",
          "wire shadow_en = shadow_drain;  // MUTATION: a start does not move the finished sum")],
        "in OS the next group's start does not move the finished sum into the shadow register",
        caught_by="os_psum", schedule="os",
    ),
    "load2_takes_the_low_word": Mutation(
        "corelet.v",
        [(".wload2_data(wmem_q[2*row*bw-1:row*bw]),",
          ".wload2_data(wmem_q[row*bw-1:0]),  // MUTATION: LOAD2 stages wmem Q's low word")],
        "LOAD2 stages the low word of the wmem entry (LOAD's) instead of its high word",
        layer="paired",
    ),
}


def _layers() -> dict:
    from layer_cases import network_case, random_case, relu_edge_case, saturating_case

    random = random_case(8, 8, 4, 4, seed=321)
    return {"random": random, "relu_edge": relu_edge_case(), "negative": saturating_case(-7),
            "requant": network_case(random["x_int"], random["w_int"], requant=True, seed=321, layer="requant 8->8"),
            "random2": random_case(16, 16, 4, 4, seed=322, a_bit=2),
            "paired": random_case(16, 16, 2, 2, seed=323)}     # 2x2: paired weight sets (LOAD2)

# What the log must show for a mutation: the scoreboard's first difference.
FIRST_DIFFERENCE = {
    "psum": re.compile(
        r"psum mismatch: kij=(?P<kij>\d+) nij=(?P<nij>\d+) .*?column=(?P<column>\d+) .*?"
        r"expected (?P<expected>-?\d+), got (?P<got>-?\d+)"),
    "os_psum": re.compile(
        r"psum mismatch: output pixel (?P<pixel>\d+) .*?column=(?P<column>\d+) .*?"
        r"expected (?P<expected>-?\d+), got (?P<got>-?\d+)"),
    "output": re.compile(
        r"output mismatch: o_nij=(?P<o_nij>\d+) .*?column=(?P<column>\d+): "
        r"expected (?P<expected>-?\d+), got (?P<got>-?\d+)"),
    "busy": re.compile(
        r"busy counter moved by (?P<got>\d+) while the program executed (?P<expected>\d+)"),
}
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
        filename, edits = MUTATIONS[name].file, MUTATIONS[name].edits
        path = folder / filename
        text = path.read_text()
        for old, new in edits:
            assert text.count(old) == 1, (
                f"mutation {name}: expected exactly one copy of {old!r} in rtl/{filename}, found "
                f"{text.count(old)}; the RTL changed, update the mutation in tb/test_mutations.py")
            text = text.replace(old, new)
        path.write_text(text)
    return folder


def run_layer(name: str, rtl_dir: Path, log: Path, layer: str = "random", schedule: str = "fast") -> list[dict]:
    """The layer test (one of _layers(), on `schedule`) on the RTL in rtl_dir."""
    from tb.core_layer import run_case

    return run_case(_layers()[layer], schedule, name, log_file=log, rtl_dir=rtl_dir)


def _folders(tag: str) -> tuple[str, Path, Path]:
    name = f"mutation-{tag}"
    build = runner.build_dir(name, {})
    return name, runner.SIM_BUILD / f"{name}-{runner.simulator()}-rtl", build / "sim.log"


@pytest.mark.parametrize("layer,schedule", [("random", "fast"), ("random", "os"), ("relu_edge", "fast"),
                                            ("negative", "fast"),
                                            ("requant", "network"), ("random2", "fast2"), ("paired", "fast")])
def test_unmutated_copy_passes(layer, schedule):
    """The control: the copied, unmutated RTL passes the same layer tests."""
    name, rtl_dir, log = _folders(f"none-{layer}")
    summaries = run_layer(name, mutate(None, rtl_dir), log, layer, schedule)
    case = _layers()[layer]
    outputs = case["x_int"][0].size * -(-case["w_int"].shape[0] // 8)     # pixels x oc tiles
    assert summaries and summaries[0]["psums_checked"] > 0 and summaries[0]["outputs_checked"] == outputs, summaries


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutation_is_caught(mutation):
    name, rtl_dir, log = _folders(mutation)
    what = MUTATIONS[mutation].what
    mutate(mutation, rtl_dir)
    with pytest.raises((AssertionError, SystemExit)):
        run_layer(name, rtl_dir, log, MUTATIONS[mutation].layer, MUTATIONS[mutation].schedule)
        pytest.fail(f"mutation {mutation} NOT caught: the layer test passed although {what} "
                    f"(mutated RTL in {rtl_dir}, log {log})")
    text = log.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-40:])
    match = FIRST_DIFFERENCE[MUTATIONS[mutation].caught_by].search(text)
    if mutation == "fifo_drop_5th_write" and match is None:
        assert PSUM_COUNT.search(text), (
            f"mutation {mutation} ({what}) failed the layer test, but the log names neither a "
            f"psum mismatch nor a psum count; log {log}:\n{tail}")
        return
    assert match, (
        f"mutation {mutation} ({what}) failed the layer test, but the log does not name the "
        f"first difference ({FIRST_DIFFERENCE[MUTATIONS[mutation].caught_by].pattern}); log {log}:\n{tail}")
    assert match["expected"] != match["got"], match.group(0)
