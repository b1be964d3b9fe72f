"""Small shared pieces of the cocotb benches: clock and reset, parameters, packing."""
from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


def param(dut, name: str) -> int:
    """Read an HDL parameter back from the DUT, so the bench follows the build."""
    value = getattr(dut, name).value
    return value if isinstance(value, int) else value.to_unsigned()


def uint(handle) -> int:
    """Unsigned value of a signal of any width (a 1-bit signal reads as Logic, not LogicArray).

    Raises ValueError when any bit is X or Z, so an unknown never passes a check.
    """
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def seeded_rng(dut, default: int | None = None) -> random.Random:
    """A private RNG for one test, its seed logged so a failure can be replayed.

    The seed is TB_SEED when set, else cocotb's per-test seed (cocotb.RANDOM_SEED, which
    cocotb 2.x derives from COCOTB_RANDOM_SEED and the test's name), else `default`.
    """
    if "TB_SEED" in os.environ:
        seed = int(os.environ["TB_SEED"])
    elif getattr(cocotb, "RANDOM_SEED", None) is not None:
        seed = int(cocotb.RANDOM_SEED)
    else:
        seed = 1 if default is None else default
    dut._log.info("random seed %d (rerun this test with TB_SEED=%d)", seed, seed)
    return random.Random(seed)


async def start_clock_and_reset(dut, clk: str = "clk", reset: str | None = "reset", cycles: int = 2, period_ns: int = 10):
    """Start the clock, hold reset for `cycles` rising edges, then release it.

    Returns just after the first rising edge that sampled reset low. Like every driver
    here, reset is written right after a rising edge, so the next edge samples it and a
    monitor sampling in ReadOnly after an edge sees what the following edge will take.
    """
    Clock(getattr(dut, clk), period_ns, unit="ns").start()
    if reset is not None:
        getattr(dut, reset).value = 1
        await ClockCycles(getattr(dut, clk), cycles)
        getattr(dut, reset).value = 0
    await RisingEdge(getattr(dut, clk))


def pack(values, bits: int) -> int:
    """Lane i of the result holds values[i] (two's complement when negative)."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, bits: int, lanes: int, signed: bool) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (int(word) >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out
