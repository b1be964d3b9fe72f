"""A conv layer through the core, bit for bit: the cocotb bench and its pytest-side runner.

run_case (pytest side, the demo) writes a case file and simulates it; the cocotb side
(run_layer) builds the instruction program for each requested schedule, plays them
back to back into one core, and checks (a) every psum vector as it lands in pmem against
the reference tiling, (b) every SFP output against the reference accumulation + ReLU,
(c) for model layers, the recovered float output against the model's own layer output.
It reads the core's own cycle and busy counters and writes a JSON summary.

Schedules: "classic" (the notebooks' WS flow), "fast" (WS, output-aligned streaming),
"os" (output-stationary), "fast2" (fast in the 2-bit mode), and "network": the layer as a
network runs it (model.program.network.layer_program: levels when the case has thresholds,
else raw sums; a signed input as base-16 digits; every threshold and operand load in the
program), its outputs read from sfp_wide and, when the case has "expected" (the caller's
independent integer reference, (OC, H, W)), also compared with that. A case may list several
("fast,os,fast"); a name prefixed with "abort:" is cut off halfway through, unchecked, to
show the next program is unharmed; a name suffixed with "@1" plays the case's second layer
(x_int1, w_int1), e.g. "fast2,fast@1,fast2": a 2-bit, a 4-bit and a 2-bit layer.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np

from model import program as programs
from model.hwconfig import CONFIG

SCHEDULES = programs.SCHEDULES          # the 4-bit schedules (every 4-bit layer runs on each)
BUILDERS = programs.ALL_SCHEDULES       # and the 2-bit mode's: what a case may name
EXECUTE_BIT = programs.FIELDS["execute"][0]
TOPLEVEL = "core_harness"     # tb/core_harness.v: the core with its clock and program player in HDL


async def check_program(dut, tb, case, name: str) -> dict:
    """Play one program and check it. A case with allow_overflow may leave the hardware
    widths: then only representable values are compared, and the core must raise exactly
    the error flags that the reference's overflow report calls for."""
    from tb.core_tb import LayerScoreboard, expected_flags

    name, x_int, w_int = layer_of(case, name)
    allow_overflow = bool(case.get("allow_overflow", False))
    program, x_int, w_int, requant = build_program(case, name, x_int, w_int, tb.row)
    expected = programs.reference_results(program, x_int, w_int, psum_bw=tb.psum_bw, acc_bw=tb.acc_bw,
                                          check_widths=not allow_overflow, requant=requant)
    scoreboard = LayerScoreboard(expected, representable_only=allow_overflow)
    dut._log.info("layer %s: %s schedule, %d instructions", str(case["layer"]), name, len(program.inst))
    busy = await tb.play(program, scoreboard)

    scoreboard.check()
    flags = expected_flags(expected.ref.overflows)
    assert tb.errors() == flags, (
        f"core raised {', '.join(tb.errors()) or 'no error flag'}; the reference calls for "
        f"{', '.join(flags) or 'none'} ({expected.ref.overflows[0] if flags else 'everything fits'})")
    executes = sum(word >> EXECUTE_BIT & 1 for word in program.inst)
    assert busy == executes, (
        f"the core's busy counter moved by {busy} while the program executed {executes} "
        f"activation vectors")
    rtl_cycles = int(scoreboard.outputs.counter[-1]) - tb.driver.counter_at_start
    assert rtl_cycles == program.cycles, (
        f"RTL counted {rtl_cycles} cycles, the program builder planned {program.cycles}")
    macs = expected.useful_macs
    summary = {
        "layer": str(case["layer"]), "dataflow": program.dataflow, "schedule": name,
        "psums_checked": len(scoreboard.psums), "outputs_checked": len(scoreboard.outputs),
        "cycles": rtl_cycles, "executes": program.executes, "useful_macs": macs,
        "utilization": macs / (tb.row * tb.col * expected.ref.lanes * rtl_cycles), "a_bit": program.a_bit,
        "words": len(program.inst), "play_wall_s": tb.wall_s, "play_cpu_s": tb.cpu_s,
        "busy": busy, "errors": tb.errors(), "vectors_not_representable": scoreboard.skipped,
    }
    if "expected" in case:
        hw = expected.arrange(scoreboard.outputs.wide)
        want = np.asarray(case["expected"], dtype=np.int64)
        bad = np.argwhere(hw.reshape(want.shape) != want)
        assert not len(bad), (f"{len(bad)} outputs differ from the independent reference, first at (oc, y, x) = "
                              f"{tuple(bad[0])}: expected {want[tuple(bad[0])]}, got {hw.reshape(want.shape)[tuple(bad[0])]}")
        summary["independent_checked"] = int(want.size)
    if name == "network":       # what the core emitted, for tb.core_conv (sim="cocotb")
        summary["out"] = expected.arrange(scoreboard.outputs.wide).tolist()
    if "out_float" in case and x_int is case["x_int"]:
        hw = expected.arrange(scoreboard.outputs.lanes)
        recovered = hw.reshape(case["out_float"].shape) * float(case["act_delta"]) * float(case["w_delta"])
        error = float(np.abs(recovered - np.maximum(case["out_float"], 0)).mean())
        assert error < 1e-5, f"recovered float output differs from the model's: mean error {error:.3g}"
        summary["recovery_error"] = error
    dut._log.info("summary: %s", summary)
    return summary


def layer_of(case: dict, name: str) -> tuple:
    """(schedule, x_int, w_int) of a schedule entry: "fast" plays the case's layer,
    "fast@1" its second one (x_int1, w_int1)."""
    schedule, _, index = name.partition("@")
    return schedule, case["x_int" + index], case["w_int" + index]


def build_program(case: dict, schedule: str, x_int, w_int, array_size: int):
    """(program, x, w the array multiplies, requant or None) of layer (x_int, w_int) on
    `schedule`; "network" takes the case's thresholds when it has them."""
    if schedule != "network":
        return BUILDERS[schedule](x_int, w_int, array_size=array_size), x_int, w_int, None
    from model.program.network import layer_program
    from model.requant import Requant

    requant = Requant(case["thresholds"], case["descending"]) if "thresholds" in case else None
    return (*layer_program(x_int, w_int, requant, array_size=array_size), requant)


@cocotb.test()
async def run_layer(dut):
    from tb.core_tb import CoreTB
    from tb.layer_cases import load_case

    case = load_case(os.environ["LAYER_CASE"])
    tb = CoreTB(dut)
    await tb.reset()
    summaries = []
    for name in str(case["schedule"]).split(","):
        if name.startswith("abort:"):
            program = build_program(case, *layer_of(case, name[len("abort:"):]), tb.row)[0]
            half = len(program.inst) // 2
            cut = dataclasses.replace(program, inst=program.inst[:half], d_xmem=program.d_xmem[:half],
                                      d_wmem=program.d_wmem[:half])
            dut._log.info("playing half of the %s program, unchecked", name)
            await tb.play(cut, None)
            continue
        summaries.append(await check_program(dut, tb, case, name))
    result = os.environ.get("LAYER_RESULT")
    if result:
        Path(result).write_text(json.dumps(summaries, indent=2))


def run_case(case: dict, schedule: str, name: str, array_size: int = CONFIG.row,
             log_file: Path | None = None, rtl_dir: Path | None = None) -> list[dict]:
    """Write the case, simulate it on an array_size x array_size core, return one summary
    per checked program (the simulator output goes to log_file when given; rtl_dir: RTL
    other than rtl/, for mutations)."""
    from tb import runner
    from tb.layer_cases import save_case

    parameters = CONFIG.with_array(array_size).parameters()
    folder = runner.build_dir(name, parameters)
    case_path = save_case(folder / "case.npz", case, schedule)
    result_path = folder / "result.json"
    result_path.unlink(missing_ok=True)
    runner.run(TOPLEVEL, "tb.core_layer", parameters=parameters, name=name, rtl_dir=rtl_dir, log_file=log_file,
               extra_env={"LAYER_CASE": str(case_path), "LAYER_RESULT": str(result_path)})
    return json.loads(result_path.read_text())
