"""The layer test: a conv layer from the PyTorch model, through the core, bit for bit.

The pytest side captures the layer (or draws random integers) and writes a case file;
the cocotb side builds the instruction program for each requested schedule, plays them
back to back into one core, and checks (a) every psum vector as it lands in pmem against
the reference tiling, (b) every SFP output against the reference accumulation + ReLU,
(c) for model layers, the recovered float output against the model's own layer output.
It reads the core's own cycle and busy counters and writes a JSON summary.

Schedules: "classic" (the notebooks' WS flow), "fast" (WS, output-aligned streaming),
"os" (output-stationary). A case may list several ("fast,os,fast"); a name prefixed with
"abort:" is cut off halfway through, unchecked, to show the next program is unharmed.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest

from model import program as programs

SCHEDULES = programs.SCHEDULES
EXECUTE_BIT = programs.FIELDS["execute"][0]


async def check_program(dut, tb, case, name: str) -> dict:
    """Play one program and check it. A case with allow_overflow may leave the hardware
    widths: then only representable values are compared, and the core must raise exactly
    the error flags that the reference's overflow report calls for."""
    from core_tb import LayerScoreboard, expected_flags

    x_int, w_int = case["x_int"], case["w_int"]
    allow_overflow = bool(case.get("allow_overflow", False))
    program = SCHEDULES[name](x_int, w_int, array_size=tb.row)
    expected = programs.reference_results(program, x_int, w_int, psum_bw=tb.psum_bw, acc_bw=tb.acc_bw,
                                          check_widths=not allow_overflow)
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
    rtl_cycles = scoreboard.outputs[-1].counter - tb.driver.counter_at_start
    assert rtl_cycles == program.cycles, (
        f"RTL counted {rtl_cycles} cycles, the program builder planned {program.cycles}")
    macs = expected.useful_macs
    summary = {
        "layer": str(case["layer"]), "dataflow": program.dataflow, "schedule": name,
        "psums_checked": len(scoreboard.psums), "outputs_checked": len(scoreboard.outputs),
        "cycles": rtl_cycles, "executes": program.executes, "useful_macs": macs,
        "utilization": macs / (tb.row * tb.col * rtl_cycles),
        "busy": busy, "errors": tb.errors(), "vectors_not_representable": scoreboard.skipped,
    }
    if "out_float" in case:
        hw = expected.arrange(np.array([out.lanes for out in scoreboard.outputs]))
        recovered = hw.reshape(case["out_float"].shape) * float(case["act_delta"]) * float(case["w_delta"])
        error = float(np.abs(recovered - np.maximum(case["out_float"], 0)).mean())
        assert error < 1e-5, f"recovered float output differs from the model's: mean error {error:.3g}"
        summary["recovery_error"] = error
    dut._log.info("summary: %s", summary)
    return summary


@cocotb.test()
async def run_layer(dut):
    from core_tb import CoreTB
    from layer_cases import load_case

    case = load_case(os.environ["LAYER_CASE"])
    tb = CoreTB(dut)
    await tb.reset()
    summaries = []
    for name in str(case["schedule"]).split(","):
        if name.startswith("abort:"):
            program = SCHEDULES[name[len("abort:"):]](case["x_int"], case["w_int"], array_size=tb.row)
            half = len(program.inst) // 2
            cut = dataclasses.replace(program, inst=program.inst[:half], d_xmem=program.d_xmem[:half])
            dut._log.info("playing half of the %s program, unchecked", name)
            await tb.play(cut, None)
            continue
        summaries.append(await check_program(dut, tb, case, name))
    result = os.environ.get("LAYER_RESULT")
    if result:
        Path(result).write_text(json.dumps(summaries, indent=2))


def run_case(case: dict, schedule: str, name: str, log_file: Path | None = None,
             rtl_dir: Path | None = None) -> list[dict]:
    """Write the case, simulate it, return one summary per checked program (the simulator
    output goes to log_file when given; rtl_dir: RTL other than rtl/, for mutations)."""
    import runner
    from layer_cases import save_case

    folder = runner.build_dir(name, {})
    case_path = save_case(folder / "case.npz", case, schedule)
    result_path = folder / "result.json"
    result_path.unlink(missing_ok=True)
    runner.run("core", "test_core_layer", name=name, rtl_dir=rtl_dir, log_file=log_file,
               extra_env={"LAYER_CASE": str(case_path), "LAYER_RESULT": str(result_path)})
    return json.loads(result_path.read_text())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_model_layer(seed, schedule):
    """The squeezed 8->8 layer of the project VGG16, seeded weights and synthetic image."""
    from layer_cases import model_case

    run_case(model_case(seed=seed), schedule, f"core_layer-model{seed}-{schedule}")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_random_layer(seed, schedule):
    from layer_cases import random_case

    run_case(random_case(8, 8, 4, 4, seed=100 + seed), schedule, f"core_layer-random{seed}-{schedule}")


def test_mixed_dataflows():
    """WS, OS and WS again in one simulation, no reset in between."""
    from layer_cases import random_case

    runs = run_case(random_case(8, 8, 4, 4, seed=7), "fast,os,classic,os,fast", "core_layer-mixed")
    assert [r["dataflow"] for r in runs] == ["ws", "os", "ws", "os", "ws"]


def test_mode_switch_mid_layer():
    """A WS layer cut off halfway, then OS, then an OS layer cut off, then WS: each checked
    layer starts with a flush, so what the cut-off one left in flight does no harm."""
    from layer_cases import random_case

    runs = run_case(random_case(8, 8, 4, 4, seed=8), "abort:fast,os,abort:os,fast", "core_layer-abort")
    assert [r["schedule"] for r in runs] == ["os", "fast"]


def test_os_activations_above_7():
    """Activations 8..15 through the OS path: the notebooks decoded them as signed."""
    from layer_cases import random_case

    case = random_case(8, 8, 4, 4, seed=9)
    case["x_int"] = (case["x_int"] % 8 + 8).astype(np.uint8)     # every activation in 8..15
    run_case(case, "os", "core_layer-os-high")


@pytest.mark.parametrize("ic,oc,size,schedules", [
    (16, 16, 8, "fast,os"),          # 2 ic tiles x 2 oc tiles
    (3, 16, 4, "fast,classic,os"),   # input channels padded to a tile (the first VGG layer's case)
    (24, 16, 4, "fast,classic"),     # 3 ic tiles x 2 oc tiles
    (64, 16, 8, "fast"),             # operands do not fit xmem at once: two passes
])
def test_multi_tile_layer(ic, oc, size, schedules):
    from layer_cases import random_case

    runs = run_case(random_case(ic, oc, size, size, seed=ic * oc), schedules,
                    f"core_layer-{ic}x{oc}x{size}")
    assert [r["schedule"] for r in runs] == schedules.split(",")
